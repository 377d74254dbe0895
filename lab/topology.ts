// Desired state -> the networks the lab builds for it (pure).
import { networkAddress, parseCidr } from '../common/ipv4.ts';
import type { Desired } from '../gitops/manifests/validate.ts';
import type { StaticRoute } from '../gitops/manifests/schema.ts';

export interface LabTopology {
  /** the underlay's name (the ConfigMap's nic), also its bridge's name */
  nic: string;
  subnets: { name: string; vpc: string; cidr: string; gateway: string }[];
  vpcs: { name: string; staticRoutes: StaticRoute[] }[];
  /** upstream router addresses: every EIP gateway, with its EIPs' prefix length */
  underlay: { address: string; prefix: number; network: string }[];
}

export const DEFAULT_NIC = 'eth1';

export function labTopology(desired: Desired): LabTopology {
  const subnets = [...desired.subnets.values()].sort((a, b) => a.name.localeCompare(b.name));
  const vpcNames = new Set([...desired.vpcs.keys(), ...subnets.map((s) => s.vpc)]);
  const underlay = new Map<string, LabTopology['underlay'][number]>();
  for (const gw of desired.gateways.values()) {
    for (const eip of gw.eips) {
      const { prefix } = parseCidr(eip.cidr)!;
      underlay.set(eip.gateway, { address: eip.gateway, prefix, network: `${networkAddress(eip.gateway, prefix)}/${prefix}` });
    }
  }
  return {
    nic: desired.config?.data.nic ?? DEFAULT_NIC,
    subnets: subnets.map((s) => ({ ...s })),
    vpcs: [...vpcNames].sort().map((name) => ({ name, staticRoutes: desired.vpcs.get(name)?.staticRoutes ?? [] })),
    underlay: [...underlay.values()].sort((a, b) => a.address.localeCompare(b.address)),
  };
}
