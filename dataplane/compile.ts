// GatewaySpec -> the full GatewayState its namespace should hold (docs/architecture.md, "What a gateway holds").
import { cidrWithin, parseCidr } from '../common/ipv4.ts';
import {
  GATEWAY_SYSCTLS,
  dataplaneOf,
  NAT_JUMPS,
  type JumpChain,
  ROUTE_TABLE,
  type GatewaySpec,
  type GatewayState,
  type DnatSpec,
  type Route,
  type SnatSpec,
} from './model.ts';
import { floatingDnat, floatingSnat, hairpinSnat, jump, portForward, sharedForward, sourceNat } from './rules.ts';

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

  const mappings = {
    EXCLUSIVE_DNAT: spec.floatingIps.map((f) => floatingDnat(f.eip, f.internalIp)),
    EXCLUSIVE_SNAT: spec.floatingIps.map((f) => floatingSnat(f.eip, f.internalIp)),
    SHARED_DNAT: portForwards(spec.name, spec.dnats),
    SHARED_SNAT: snats.map((s) => sourceNat(s.eip, s.internalCidr)),
    HAIRPIN_SNAT: hairpins,
  };
  const nftables = dataplaneOf(spec) === 'nftables';
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
    // on nftables, iptables holds nothing of natops's: no jump, and what its chains held goes (diffStates)
    nat: nftables
      ? { PREROUTING: [], POSTROUTING: [] }
      : {
          ...(Object.fromEntries(
            Object.entries(NAT_JUMPS).map(([chain, targets]) => [chain, targets.map(jump)]),
          ) as Record<JumpChain, string[]>),
          ...mappings,
        },
    ...(nftables && { nftables: { nat: mappings, intact: true } }),
  };
}

/**
 * Exclusive forwards in manifest order, then each shared port's backends (sharedForward). Shared
 * ports are sorted by port and their backends as Kube-OVN sorts them (dedupSortedBackends: the
 * strings "ip:port", each once), so neither file order nor a repeated backend changes the rules.
 */
function portForwards(gateway: string, dnats: DnatSpec[]): string[] {
  const before = dnats.length >= KEPT_FROM ? keptForwards.get(gateway) : undefined;
  // (one pass, arrays made at their size: at 100,000 forwards, growing them push by push, and
  // every further pass over the specs, cost more than the rest)
  const rules = new Array<string>(dnats.length);
  const specs = new Array<string | undefined>(dnats.length);
  const shared: DnatSpec[] = [];
  let k = 0;
  for (let i = 0; i < dnats.length; i++) {
    const d = dnats[i]!;
    if (d.shared) {
      shared.push(d);
      continue;
    }
    const b = before?.dnats[i];
    const spec =
      b && !b.shared && sameForward(b, d)
        ? before!.specs[i]!
        : portForward(d.eip, d.protocol, d.externalPort, d.internalIp, d.internalPort);
    specs[i] = spec;
    rules[k++] = spec;
  }
  rules.length = k;
  if (dnats.length >= KEPT_FROM) keepForwards(gateway, dnats, specs);
  const ports = new Map<string, { port: DnatSpec; backends: Set<string> }>();
  for (const d of shared) {
    const key = `${d.eip} ${d.protocol} ${d.externalPort}`;
    const entry = ports.get(key) ?? { port: d, backends: new Set<string>() };
    entry.backends.add(`${d.internalIp}:${d.internalPort}`);
    ports.set(key, entry);
  }
  const order = (d: DnatSpec) => [...d.eip.split('.').map(Number), d.protocol === 'tcp' ? 0 : 1, d.externalPort];
  const sorted = [...ports.values()].sort((a, b) => {
    const x = order(a.port);
    const y = order(b.port);
    return x.map((v, i) => v - y[i]!).find((v) => v !== 0) ?? 0;
  });
  for (const { port: p, backends } of sorted) {
    const list = [...backends].sort();
    list.forEach((backend, k) => {
      const [ip, internalPort] = backend.split(':');
      rules.push(sharedForward(p.eip, p.protocol, p.externalPort, ip!, Number(internalPort), list.length - k));
    });
  }
  return rules;
}

/**
 * The exclusive forwards' specs of the last compiles of big gateways, by gateway name and place
 * in its list of forwards: a forward unchanged at its place gets the same string again. Building 100,000 specs, then comparing each
 * with the live table's character by character, was most of a one-forward change; the same
 * string compares at once (dataplane/diff.ts diffMappings). What compileGateway returns is the
 * same with or without it, as long as specs are values: natops never changes one in place (a
 * DnatSpec changed in place would compare equal to itself here).
 */
const keptForwards = new Map<string, { dnats: DnatSpec[]; specs: (string | undefined)[] }>();
/** forwards from which a gateway's are kept, and how many gateways' */
const KEPT_FROM = 1000;
const KEPT_GATEWAYS = 16;

function keepForwards(gateway: string, dnats: DnatSpec[], specs: (string | undefined)[]): void {
  keptForwards.delete(gateway);
  keptForwards.set(gateway, { dnats, specs });
  for (const oldest of keptForwards.keys()) {
    if (keptForwards.size <= KEPT_GATEWAYS) break;
    keptForwards.delete(oldest);
  }
}

/** Every field portForward's spec is made of. */
const sameForward = (a: DnatSpec, b: DnatSpec) =>
  a.eip === b.eip &&
  a.protocol === b.protocol &&
  a.externalPort === b.externalPort &&
  a.internalIp === b.internalIp &&
  a.internalPort === b.internalPort;

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
