// GatewaySpec -> the full GatewayState its namespace should hold (docs/architecture.md, "What a gateway holds").
import { cidrWithin, parseCidr } from '../common/ipv4.ts';
import {
  GATEWAY_SYSCTLS,
  ROUTE_TABLE,
  type GatewaySpec,
  type GatewayState,
  type Route,
  type SnatSpec,
} from './model.ts';
import { floatingDnat, floatingSnat, hairpinSnat, jump, portForward, sourceNat } from './rules.ts';

export function compileGateway(spec: GatewaySpec): GatewayState {
  const routes: Route[] = [];
  const nextHop = spec.eips[0]?.gateway;
  if (nextHop) routes.push({ table: ROUTE_TABLE, dst: 'default', via: nextHop, dev: 'net1' });
  // Replies to every subnet of the VPC go back through its logical router on eth0's subnet.
  for (const s of spec.vpcSubnets)
    routes.push({ table: ROUTE_TABLE, dst: s.cidr, via: spec.subnet.gateway, dev: 'eth0' });

  const snats = moreSpecificFirst(spec.snats);
  const vpcCidrs = spec.vpcSubnets.map((s) => parseCidr(s.cidr)!);
  const hairpinned = new Set<string>();
  const hairpins: string[] = [];
  for (const s of snats) {
    const inside = vpcCidrs.some((c) => cidrWithin(parseCidr(s.internalCidr)!, c));
    if (inside && !hairpinned.has(s.internalCidr)) {
      hairpinned.add(s.internalCidr);
      hairpins.push(hairpinSnat(s.eip, s.internalCidr));
    }
  }

  return {
    iptables: 'legacy',
    net1Up: true,
    sysctls: { ...GATEWAY_SYSCTLS },
    addresses: spec.eips.map((e) => ({ dev: 'net1', cidr: e.cidr })),
    rules: [
      { iif: 'net1', table: ROUTE_TABLE },
      { iif: 'eth0', table: ROUTE_TABLE },
    ],
    routes,
    nat: {
      PREROUTING: [jump('DNAT_FILTER')],
      POSTROUTING: [jump('SNAT_FILTER')],
      DNAT_FILTER: [jump('EXCLUSIVE_DNAT'), jump('SHARED_DNAT')],
      SNAT_FILTER: [jump('EXCLUSIVE_SNAT'), jump('SHARED_SNAT'), jump('HAIRPIN_SNAT')],
      EXCLUSIVE_DNAT: spec.floatingIps.map((f) => floatingDnat(f.eip, f.internalIp)),
      EXCLUSIVE_SNAT: spec.floatingIps.map((f) => floatingSnat(f.eip, f.internalIp)),
      SHARED_DNAT: spec.dnats.map((d) => portForward(d.eip, d.protocol, d.externalPort, d.internalIp, d.internalPort)),
      SHARED_SNAT: snats.map((s) => sourceNat(s.eip, s.internalCidr)),
      HAIRPIN_SNAT: hairpins,
    },
  };
}

/** The first matching SNAT rule wins, so longer prefixes go first; ties keep manifest order. */
function moreSpecificFirst(snats: SnatSpec[]): SnatSpec[] {
  return snats
    .map((s, i) => ({ s, i, prefix: parseCidr(s.internalCidr)!.prefix }))
    .sort((a, b) => b.prefix - a.prefix || a.i - b.i)
    .map((x) => x.s);
}

/** What a fresh gateway holds: nothing natops owns, only the built-in hook chains (empty). */
export function emptyGatewayState(): GatewayState {
  return {
    iptables: 'legacy',
    net1Up: false,
    sysctls: {},
    addresses: [],
    rules: [],
    routes: [],
    nat: { PREROUTING: [], POSTROUTING: [] },
  };
}
