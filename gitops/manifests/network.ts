// Validated manifests -> the networks their gateways live in (pure).
import { networkAddress, parseCidr } from '../../common/ipv4.ts';
import { DEFAULT_NIC, type EipNextHop, type NetworkModel } from '../../dataplane/network.ts';
import type { Desired } from './validate.ts';

export function networkModel(desired: Desired): NetworkModel {
  const subnets = [...desired.subnets.values()].sort((a, b) => a.name.localeCompare(b.name));
  const vpcNames = new Set([...desired.vpcs.keys(), ...subnets.map((s) => s.vpc)]);
  const nextHops = new Map<string, EipNextHop>();
  for (const gw of desired.gateways.values()) {
    for (const eip of gw.eips) {
      const { prefix } = parseCidr(eip.cidr)!;
      nextHops.set(eip.gateway, {
        address: eip.gateway,
        prefix,
        network: `${networkAddress(eip.gateway, prefix)}/${prefix}`,
      });
    }
  }
  return {
    // without the ConfigMap's nic, the gateways' (their external network's NetworkAttachmentDefinition's
    // master): the first by name, so it does not depend on the manifests' order or on which are valid
    nic:
      desired.config?.data.nic ??
      [...desired.gateways.values()].sort((a, b) => a.name.localeCompare(b.name))[0]?.workload.nic ??
      DEFAULT_NIC,
    vpcs: [...vpcNames]
      .sort()
      .map((name) => ({ name, staticRoutes: (desired.vpcs.get(name)?.staticRoutes ?? []).map((r) => ({ ...r })) })),
    subnets: subnets.map((s) => ({ name: s.name, vpc: s.vpc, cidr: s.cidr, gateway: s.gateway })),
    eipNextHops: [...nextHops.values()].sort((a, b) => a.address.localeCompare(b.address)),
  };
}
