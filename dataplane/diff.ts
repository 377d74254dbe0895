// Two GatewayStates -> the minimal change set between them.
import {
  HOOK_CHAINS,
  MAPPING_CHAINS,
  NAT_CHAINS,
  OWNED_CHAINS,
  STATE_READS,
  type Address,
  type GatewaySysctl,
  type GatewayState,
  type NatChain,
  type PolicyRule,
  type RuleChange,
  type Route,
  type IptablesBackend,
  type Dataplane,
  type MappingChain,
  type NftablesState,
  type StateRead,
} from './model.ts';
import { diffNftables, type MappingsAlike, type NftablesEdit } from './nftables.ts';
import { sharedBackendCounts } from './rules.ts';

export type ChainOp =
  | { op: 'delete'; spec: string }
  | { op: 'insert'; position: number; spec: string }
  | { op: 'append'; spec: string };

export interface ChainEdit {
  chain: NatChain;
  /** the chain does not exist yet */
  create: boolean;
  /** replace the chain's rules wholesale (the kept rules changed order) */
  rewrite: boolean;
  ops: ChainOp[];
}

export interface SetDiff<T> {
  add: T[];
  remove: T[];
}

export interface RouteDiff extends SetDiff<Route> {
  /**
   * Same destination, another next hop or device. `ip route replace` swaps such a route in place,
   * so the old one is not also removed: deleting it after the replace finds nothing and fails.
   */
  change: { from: Route; to: Route }[];
}

export interface ChangeSet {
  /** the iptables the chain edits go to: the live state's */
  iptables: IptablesBackend;
  net1Up: boolean;
  /** sysctls to set, with their values */
  sysctls: [GatewaySysctl, string][];
  addresses: SetDiff<Address>;
  rules: SetDiff<PolicyRule>;
  routes: RouteDiff;
  /** only the chains whose rules change */
  chains: ChainEdit[];
  added: RuleChange[];
  removed: RuleChange[];
  /** backends each shared port that `added` or `removed` touch will have ("tcp eip:port"), for words */
  sharedPorts?: Record<string, number>;
  /** the change to natops's nftables table (dataplane/nftables.ts) */
  nftables?: NftablesEdit;
  /** the table that change leaves (without its revision, which the commands draw) */
  nftablesAfter?: NftablesState;
  /** the data plane the mappings move to, when they are in the other one now */
  move?: Dataplane;
}

export const addressKey = (a: Address) => `${a.cidr} dev ${a.dev}`;
export const ruleKey = (r: PolicyRule) => `iif ${r.iif} table ${r.table}`;
export const routeKey = (r: Route) => `${r.dst} via ${r.via} dev ${r.dev} table ${r.table}`;
const routeDestination = (r: Route) => `${r.dst} table ${r.table}`;

function setDiff<T>(live: T[], desired: T[], key: (t: T) => string): SetDiff<T> {
  const liveKeys = new Set(live.map(key));
  const desiredKeys = new Set(desired.map(key));
  return {
    add: desired.filter((d) => !liveKeys.has(key(d))),
    remove: live.filter((l) => !desiredKeys.has(key(l))),
  };
}

/** A route that goes and one that comes to the same destination pair up as a change. */
function diffRoutes(live: Route[], desired: Route[]): RouteDiff {
  const { add, remove } = setDiff(live, desired, routeKey);
  const change: RouteDiff['change'] = [];
  const gone = [...remove];
  const added = add.filter((to) => {
    const i = gone.findIndex((from) => routeDestination(from) === routeDestination(to));
    if (i < 0) return true;
    change.push({ from: gone[i]!, to });
    gone.splice(i, 1);
    return false;
  });
  return { add: added, remove: gone, change };
}

export function diffStates(live: GatewayState, desired: GatewayState): ChangeSet {
  const chains: ChainEdit[] = [];
  let added: RuleChange[] = [];
  let removed: RuleChange[] = [];
  for (const chain of NAT_CHAINS) {
    // natops never deletes chains (a removed gateway goes whole); on nftables it empties its iptables ones
    const want = desired.nat[chain] ?? (desired.nftables && live.nat[chain]?.length ? [] : undefined);
    if (want === undefined) continue;
    const d = diffChain(chain, live.nat[chain], want);
    if (!d) continue;
    chains.push(d.edit);
    for (const spec of d.added) added.push({ chain, spec });
    for (const spec of d.removed) removed.push({ chain, spec });
  }
  let nftables: NftablesEdit | undefined;
  if (live.nftables || desired.nftables) {
    // the mappings that come and go, wherever they are: a move between the planes keeps them all
    let alike: MappingsAlike;
    ({ added, removed, alike } = diffMappings(mappingsOf(live), mappingsOf(desired)));
    nftables = diffNftables(live.nftables, desired.nftables, added, removed, alike);
  }
  const sharedPorts = sharedBackendCounts([...added, ...removed], mappingsOf(desired).SHARED_DNAT);
  const from = planeOf(live);
  const to: Dataplane = desired.nftables ? 'nftables' : 'iptables';
  return {
    iptables: live.iptables,
    net1Up: desired.net1Up && !live.net1Up,
    sysctls: (Object.entries(desired.sysctls) as [GatewaySysctl, string][]).filter(([k, v]) => live.sysctls[k] !== v),
    addresses: setDiff(live.addresses, desired.addresses, addressKey),
    rules: setDiff(live.rules, desired.rules, ruleKey),
    routes: diffRoutes(live.routes, desired.routes),
    chains,
    added,
    removed,
    ...(sharedPorts && { sharedPorts }),
    ...(nftables && { nftables }),
    ...(nftables && desired.nftables && { nftablesAfter: desired.nftables }),
    ...(from && from !== to && { move: to }),
  };
}

/** A state's mappings, from the plane that holds them (nftables answers first while both do). */
export function mappingsOf(s: GatewayState): Record<MappingChain, string[]> {
  if (s.nftables) return s.nftables.nat;
  return Object.fromEntries(MAPPING_CHAINS.map((c) => [c, s.nat[c] ?? []])) as Record<MappingChain, string[]>;
}

/** Whether natops's iptables chains hold any rule (jumps or mappings). */
export const iptablesHolds = (s: GatewayState): boolean => OWNED_CHAINS.some((c) => s.nat[c]?.length);

/** The plane natops's rules are in now; undefined when neither holds any (a new gateway). */
function planeOf(s: GatewayState): Dataplane | undefined {
  if (s.nftables) return 'nftables';
  return iptablesHolds(s) ? 'iptables' : undefined;
}

/**
 * Mapping rules are a set: a map has no order, and where order matters the chain is rewritten.
 * When both sides share a head and a tail in place, what comes and goes is in the middle: a
 * change of one forward among 100,000 compares them and hashes a few (hashing every spec is the
 * cost). A middle spec that the other side also holds in its head or tail (a rule repeated by
 * hand) neither comes nor goes.
 */
function diffMappings(
  live: Record<MappingChain, string[]>,
  desired: Record<MappingChain, string[]>,
): { added: RuleChange[]; removed: RuleChange[]; alike: MappingsAlike } {
  const added: RuleChange[] = [];
  const removed: RuleChange[] = [];
  const alike: MappingsAlike = {};
  for (const chain of MAPPING_CHAINS) {
    const h = live[chain];
    const w = desired[chain];
    if (h === w) continue;
    const max = Math.min(h.length, w.length);
    let head = 0;
    while (head < max && h[head] === w[head]) head++;
    let tail = 0;
    while (tail < max - head && h[h.length - 1 - tail] === w[w.length - 1 - tail]) tail++;
    alike[chain] = { head, tail };
    const have = new Set(h.slice(head, h.length - tail));
    const want = new Set(w.slice(head, w.length - tail));
    const outside = (side: string[], spec: string) => {
      for (let i = 0; i < head; i++) if (side[i] === spec) return true;
      for (let i = side.length - tail; i < side.length; i++) if (side[i] === spec) return true;
      return false;
    };
    for (const spec of want) if (!have.has(spec) && !outside(h, spec)) added.push({ chain, spec });
    for (const spec of have) if (!want.has(spec) && !outside(w, spec)) removed.push({ chain, spec });
  }
  return { added, removed, alike };
}

/**
 * Deletes the rules that went, inserts the new ones at their place. When the kept rules would
 * end up in another order or repeat (an SNAT reorder, a hand edit) the chain is rewritten instead;
 * either way it happens inside one iptables-restore transaction. The desired state has each rule
 * once, so a repeated rule is always a surplus. Also returns the rules that come and go, from the
 * same two sets: a chain holds up to tens of thousands of rules, and hashing them is the cost.
 */
function diffChain(
  chain: NatChain,
  haveOrMissing: string[] | undefined,
  want: string[],
): { edit: ChainEdit; added: string[]; removed: string[] } | undefined {
  const isHook = (HOOK_CHAINS as readonly string[]).includes(chain);
  // Built-in chains always exist; natops never declares (and so never flushes) them.
  const have = isHook ? (haveOrMissing ?? []) : haveOrMissing;
  if (have === undefined) {
    return {
      edit: { chain, create: true, rewrite: false, ops: want.map((spec) => ({ op: 'append', spec })) },
      added: want,
      removed: [],
    };
  }
  if (have.length === want.length && have.every((spec, i) => spec === want[i])) return undefined;
  if (!isHook) {
    const small = smallEdit(chain, have, want);
    if (small) return small;
  }

  const wantSet = new Set(want);
  const haveSet = new Set(have);
  const added = want.filter((spec) => !haveSet.has(spec));
  const removed = have.filter((spec) => !wantSet.has(spec));
  const duplicates = haveSet.size !== have.length || wantSet.size !== want.length;
  const kept = have.filter((spec) => wantSet.has(spec));
  const keptInWant = want.filter((spec) => haveSet.has(spec));
  if (!isHook && (duplicates || kept.some((spec, i) => spec !== keptInWant[i]))) {
    return {
      edit: { chain, create: false, rewrite: true, ops: want.map((spec) => ({ op: 'append', spec })) },
      added,
      removed,
    };
  }

  const ops: ChainOp[] = removed.map((spec) => ({ op: 'delete', spec }));
  if (isHook) {
    // Hook chains are never rewritten, so a repeated jump goes by -D, which takes the first copy;
    // which one stays does not matter, natops does not place its jumps among other rules anyway.
    const wanted = countRules(want);
    for (const [spec, n] of countRules(kept))
      for (let k = wanted.get(spec) ?? 0; k < n; k++) ops.push({ op: 'delete', spec });
  }
  // Hook chains hold other software's rules too, whose positions natops does not know: append there.
  placeNew(ops, want, (spec) => !haveSet.has(spec), 0, kept.length, isHook);
  return { edit: { chain, create: false, rewrite: false, ops }, added, removed };
}

/**
 * Puts the new rules of `want` (a chain's desired rules from position `offset`) at their place:
 * inserted before the rule now there, or appended past the end (always, with `appendOnly`).
 * `length`: the rules the chain holds once the deletions are done.
 */
function placeNew(
  ops: ChainOp[],
  want: readonly string[],
  isNew: (spec: string) => boolean,
  offset: number,
  length: number,
  appendOnly: boolean,
): void {
  want.forEach((spec, j) => {
    if (!isNew(spec)) return;
    const i = offset + j;
    if (appendOnly || i >= length) ops.push({ op: 'append', spec });
    else ops.push({ op: 'insert', position: i + 1, spec });
    length++;
  });
}

/** Above this many rules between the shared head and tail, diffChain's sets are the cheaper way. */
const SMALL_EDIT = 32;

/**
 * diffChain's answer for a change among few rules of a long chain (one port forward of 10,000),
 * without hashing every rule: the head and tail both sides share stay, only the middle differs.
 * Only when the result is the same as the full way's: each middle rule once, and nowhere in the
 * shared part (so -D finds that very rule), and the middle's kept rules in the same order (no
 * rewrite). Otherwise undefined, and the full way decides.
 */
function smallEdit(
  chain: NatChain,
  have: string[],
  want: string[],
): { edit: ChainEdit; added: string[]; removed: string[] } | undefined {
  const max = Math.min(have.length, want.length);
  let head = 0;
  while (head < max && have[head] === want[head]) head++;
  let tail = 0;
  while (tail < max - head && have[have.length - 1 - tail] === want[want.length - 1 - tail]) tail++;
  const h = have.slice(head, have.length - tail);
  const w = want.slice(head, want.length - tail);
  if (h.length + w.length > SMALL_EDIT) return undefined;
  const hSet = new Set(h);
  const wSet = new Set(w);
  if (hSet.size !== h.length || wSet.size !== w.length) return undefined;
  const shared = (spec: string) => {
    for (let i = 0; i < head; i++) if (have[i] === spec) return true;
    for (let i = have.length - tail; i < have.length; i++) if (have[i] === spec) return true;
    return false;
  };
  if (h.some(shared) || w.some(shared)) return undefined;
  const kept = h.filter((spec) => wSet.has(spec));
  const keptInWant = w.filter((spec) => hSet.has(spec));
  if (kept.some((spec, i) => spec !== keptInWant[i])) return undefined;

  const removed = h.filter((spec) => !wSet.has(spec));
  const added = w.filter((spec) => !hSet.has(spec));
  const ops: ChainOp[] = removed.map((spec) => ({ op: 'delete', spec }));
  // positions count the kept rules of the whole chain
  placeNew(ops, w, (spec) => !hSet.has(spec), head, head + kept.length + tail, false);
  return { edit: { chain, create: false, rewrite: false, ops }, added, removed };
}

function countRules(specs: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const spec of specs) counts.set(spec, (counts.get(spec) ?? 0) + 1);
  return counts;
}

export function isEmptyChangeSet(c: ChangeSet): boolean {
  return (
    !c.net1Up &&
    !c.nftables &&
    c.sysctls.length === 0 &&
    c.chains.length === 0 &&
    c.routes.change.length === 0 &&
    [c.addresses, c.rules, c.routes].every((d) => d.add.length === 0 && d.remove.length === 0)
  );
}

/**
 * What must be read back after running `c`: what it changed, and what the kernel may change along
 * with it. Removing an address drops the routes through its network (and a link going up or down
 * touches routing), so an address or net1 change re-reads rules and routes too. nat rules, routes,
 * rules and sysctls have no such side effects on the other reads. Order: STATE_READS's.
 */
export function readBackOf(c: ChangeSet): StateRead[] {
  const reads = new Set<StateRead>();
  if (c.chains.length || c.nftables) reads.add('nat');
  if (c.sysctls.length) reads.add('sysctls');
  if (c.rules.add.length || c.rules.remove.length) reads.add('rules');
  if (c.routes.add.length || c.routes.remove.length || c.routes.change.length) reads.add('routes');
  if (c.net1Up || c.addresses.add.length || c.addresses.remove.length)
    for (const r of ['net1', 'rules', 'routes'] as const) reads.add(r);
  return STATE_READS.filter((r) => reads.has(r));
}
