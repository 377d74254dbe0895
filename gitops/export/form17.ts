// `natops export --form 1.7`: the cluster's gateways in Kube-OVN 1.7's form, every rule inline in
// its VpcNatGateway, written from the gateways natops resolved from the cluster's objects (the
// current form's), so the two exports are one gateway to natops by construction;
// test/unit/export-form17.test.ts holds them to that for every seed scenario. Pure.
//
// Kept: the ConfigMaps (ovn-vpc-nat-gw-config gains the `nic` the 1.7 form reads it from), Vpcs,
// the VPCs' Subnets, and each VpcNatGateway's own fields but `externalSubnets` and `noDefaultEIP`.
// Dropped: the Iptables* objects (inline now), the external networks' Subnets and their
// NetworkAttachmentDefinitions (1.7's EIPs carry their prefix and next hop, its ConfigMap the nic).
// Refused, by gateway, what the 1.7 form cannot say: a port several backends share (it has no
// share type), an EIP without an address (natops would allocate one; 1.7's needs it written), and
// external networks on different nics (1.7 has one, in its ConfigMap).
import type { GatewaySpec, Json } from '../../dataplane/model.ts';
import { DEFAULT_EXTERNAL_NETWORK } from '../manifests/current-form.ts';
import type { ClusterObject } from './clean.ts';

const RULE_KINDS = new Set(['IptablesEIP', 'IptablesFIPRule', 'IptablesDnatRule', 'IptablesSnatRule']);
/** the 1.7 form's ConfigMap, which holds the nic */
const GW_CONFIG = 'ovn-vpc-nat-gw-config';

export interface Form17 {
  objects: ClusterObject[];
  /** what the 1.7 form cannot say, one line each: nothing is written when there is any */
  problems: string[];
}

const specOf = (o: ClusterObject): Record<string, Json> =>
  o.spec && typeof o.spec === 'object' && !Array.isArray(o.spec) ? (o.spec as Record<string, Json>) : {};

/** The cluster's objects in the 1.7 form; `gateways` is what natops resolved from them (validated). */
export function toForm17(objects: readonly ClusterObject[], gateways: ReadonlyMap<string, GatewaySpec>): Form17 {
  const problems: string[] = [];
  for (const g of gateways.values()) {
    const shared = g.dnats.find((d) => d.shared);
    if (shared)
      problems.push(
        `gateway ${g.name}: port ${shared.protocol} ${shared.eip}:${shared.externalPort} is shared by several backends, which the 1.7 form cannot say`,
      );
    const allocated = g.eips.find((e) => e.allocatedFor);
    if (allocated)
      problems.push(
        `gateway ${g.name}: IptablesEIP ${allocated.allocatedFor} has no v4ip; the 1.7 form needs the address written (set its v4ip)`,
      );
  }
  const nics = [...new Set([...gateways.values()].map((g) => g.workload.nic))];
  if (nics.length > 1)
    problems.push(`the gateways' external networks are on several nics (${nics.join(', ')}); the 1.7 form has one`);
  if (gateways.size && !objects.some((o) => o.kind === 'ConfigMap' && o.metadata.name === GW_CONFIG))
    problems.push(`no ConfigMap ${GW_CONFIG}: the 1.7 form reads the gateways' nic from it`);

  // the external networks: every Subnet an EIP or a gateway takes addresses from
  const external = new Set<string>();
  for (const o of objects) {
    const spec = specOf(o);
    if (o.kind === 'IptablesEIP')
      external.add(typeof spec.externalSubnet === 'string' ? spec.externalSubnet : DEFAULT_EXTERNAL_NETWORK);
    if (o.kind === 'VpcNatGateway' && Array.isArray(spec.externalSubnets))
      for (const s of spec.externalSubnets) if (typeof s === 'string') external.add(s);
  }

  const out: ClusterObject[] = [];
  for (const o of objects) {
    if (RULE_KINDS.has(o.kind) || o.kind === 'NetworkAttachmentDefinition') continue;
    if (o.kind === 'Subnet' && external.has(o.metadata.name)) continue;
    if (o.kind === 'ConfigMap' && o.metadata.name === GW_CONFIG && nics[0] !== undefined) {
      const data = (o.data ?? {}) as Record<string, string>;
      out.push({ ...o, data: { ...data, nic: nics[0] } });
      continue;
    }
    const g = o.kind === 'VpcNatGateway' ? gateways.get(o.metadata.name) : undefined;
    if (!g) {
      out.push(o);
      continue;
    }
    const { externalSubnets: _e, noDefaultEIP: _n, ...own } = specOf(o);
    const rules = {
      floatingIpRules: g.floatingIps.map((f) => ({ eip: f.eip, internalIp: f.internalIp })),
      dnatRules: g.dnats.map((d) => ({
        eip: d.eip,
        externalPort: d.externalPort,
        protocol: d.protocol,
        internalIp: d.internalIp,
        internalPort: d.internalPort,
      })),
      snatRules: g.snats.map((n) => ({ eip: n.eip, internalCIDR: n.internalCidr })),
    };
    out.push({
      ...o,
      spec: {
        ...own,
        eips: g.eips.map((e) => ({ eipCIDR: e.cidr, gateway: e.gateway })),
        ...Object.fromEntries(Object.entries(rules).filter(([, list]) => list.length)),
      },
    });
  }
  return { objects: out, problems };
}
