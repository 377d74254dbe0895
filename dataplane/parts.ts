// A gateway's state split the way Kube-OVN splits its workers: each handler owns some parts of
// GatewayState and reconciles only those, leaving the rest as it finds it. Pure.
import { compileGateway } from './compile.ts';
import { iptablesHolds, mappingsOf } from './diff.ts';
import { emptyMappings } from './nftables.ts';
import {
  isMappingChain,
  OWNED_CHAINS,
  type GatewaySpec,
  type GatewayState,
  type NatChain,
  type StateRead,
} from './model.ts';

/** The parts of a live gateway, in the order a fresh gateway gets them (docs/architecture.md, "The loop"). */
export const GATEWAY_PARTS = ['init', 'eip', 'subnet-route', 'fip', 'dnat', 'snat'] as const;
export type GatewayPart = (typeof GATEWAY_PARTS)[number];

const PART_CHAINS: Record<GatewayPart, readonly NatChain[]> = {
  init: ['PREROUTING', 'POSTROUTING', 'DNAT_FILTER', 'SNAT_FILTER'],
  eip: [],
  'subnet-route': [],
  fip: ['EXCLUSIVE_DNAT', 'EXCLUSIVE_SNAT'],
  dnat: ['SHARED_DNAT'],
  // hairpin SNAT is derived from the SNAT rules
  snat: ['SHARED_SNAT', 'HAIRPIN_SNAT'],
};

/**
 * What a part's target compares, so what its handler must read: partTarget takes everything else
 * from the live state as it is, where it cannot differ. (init also creates the owned chains.)
 */
export const PART_READS: Record<GatewayPart, readonly StateRead[]> = {
  init: ['nat', 'net1', 'rules', 'sysctls'],
  eip: ['net1'],
  'subnet-route': ['routes'],
  fip: ['nat'],
  dnat: ['nat'],
  snat: ['nat'],
};

/**
 * `live` with the parts `part` owns replaced by `desired`'s. The data plane is init's: a move
 * between iptables and nftables takes every mapping along in one change, so that one plane or
 * the other answers throughout; the other parts then find theirs in place.
 */
export function partTarget(part: GatewayPart, live: GatewayState, desired: GatewayState): GatewayState {
  // (a copy down to the arrays, which are only ever replaced below: cloning 100,000 specs was the
  // cost. The target shares the rest with `live`, maybe a runtime's cached table: no one changes
  // a GatewayState's arrays in place.)
  const t: GatewayState = {
    ...live,
    nat: { ...live.nat },
    ...(live.nftables && { nftables: { ...live.nftables, nat: { ...live.nftables.nat } } }),
  };
  if (part === 'init') {
    t.net1Up = desired.net1Up;
    t.sysctls = { ...desired.sysctls };
    t.rules = structuredClone(desired.rules);
    // a move: to iptables whenever there is a table; to nftables whenever iptables holds natops's
    // rules (a fresh gateway on nftables gets the bare table here, its mappings from their parts)
    const moving = desired.nftables ? iptablesHolds(live) : live.nftables !== undefined;
    if (moving) {
      t.nat = structuredClone(desired.nat);
      t.nftables = desired.nftables && structuredClone(desired.nftables);
      return t;
    }
    // init makes the table or every chain the filter chains jump to; their rules are the other parts'
    if (desired.nftables) t.nftables ??= { nat: emptyMappings(), intact: true };
    else for (const chain of OWNED_CHAINS) t.nat[chain] ??= [];
  }
  if (part === 'eip') t.addresses = structuredClone(desired.addresses);
  if (part === 'subnet-route') t.routes = structuredClone(desired.routes);
  for (const chain of PART_CHAINS[part]) {
    const want = desired.nat[chain];
    // on nftables, iptables' copy goes (diffStates empties it) and the table gets the rules
    if (want) t.nat[chain] = [...want];
    else delete t.nat[chain];
    if (desired.nftables && isMappingChain(chain)) {
      const table = t.nftables ?? { nat: emptyMappings(), intact: true };
      t.nftables = { ...table, nat: { ...table.nat, [chain]: [...desired.nftables.nat[chain]] } };
    }
  }
  return t;
}

/** The slice of a state one part owns, as text, to compare two states part by part. */
function partKey(part: GatewayPart, s: GatewayState): string {
  const mappings = mappingsOf(s);
  const chains = PART_CHAINS[part].map((c) => (isMappingChain(c) ? mappings[c] : (s.nat[c] ?? null)));
  switch (part) {
    case 'init':
      return JSON.stringify([s.net1Up, s.sysctls, s.rules, chains]);
    case 'eip':
      return JSON.stringify(s.addresses);
    case 'subnet-route':
      return JSON.stringify(s.routes);
    default:
      return JSON.stringify(chains);
  }
}

/** Where the gateway sits and what its pod runs: a change here recreates it (a Deployment with strategy Recreate). */
export function placementOf(spec: GatewaySpec): string {
  return JSON.stringify([spec.vpc, spec.subnet, spec.lanIp, spec.workload]);
}

/**
 * What must run to take a gateway from `live` (undefined: it does not exist) to `desired`:
 * whether the gateway itself changes, and which parts. A recreated gateway starts empty, so it
 * gets every part; an EIP change is followed by the routes, since removing a network's last
 * address takes the routes through it along.
 */
export function changedParts(
  live: GatewaySpec | undefined,
  desired: GatewaySpec,
): { gateway: boolean; parts: GatewayPart[] } {
  if (!live || placementOf(live) !== placementOf(desired)) return { gateway: true, parts: [...GATEWAY_PARTS] };
  const before = compileGateway(live);
  const after = compileGateway(desired);
  const changed = new Set(GATEWAY_PARTS.filter((p) => partKey(p, before) !== partKey(p, after)));
  if (changed.has('eip')) changed.add('subnet-route');
  return { gateway: false, parts: GATEWAY_PARTS.filter((p) => changed.has(p)) };
}
