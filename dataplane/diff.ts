// Two GatewayStates -> the minimal change set between them.
import {
  HOOK_CHAINS, NAT_CHAINS, type Address, type GatewaySysctl, type GatewayState, type NatChain, type PolicyRule, type Route,
} from './model.ts';

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

export interface RuleChange {
  chain: NatChain;
  spec: string;
}

export interface ChangeSet {
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
  const added: RuleChange[] = [];
  const removed: RuleChange[] = [];
  for (const chain of NAT_CHAINS) {
    const want = desired.nat[chain];
    if (want === undefined) continue; // natops never deletes chains; a removed gateway goes whole
    const have = live.nat[chain];
    const edit = diffChain(chain, have, want);
    if (!edit) continue;
    chains.push(edit);
    const haveSet = new Set(have ?? []);
    const wantSet = new Set(want);
    for (const spec of want) if (!haveSet.has(spec)) added.push({ chain, spec });
    for (const spec of have ?? []) if (!wantSet.has(spec)) removed.push({ chain, spec });
  }
  return {
    net1Up: desired.net1Up && !live.net1Up,
    sysctls: (Object.entries(desired.sysctls) as [GatewaySysctl, string][]).filter(([k, v]) => live.sysctls[k] !== v),
    addresses: setDiff(live.addresses, desired.addresses, addressKey),
    rules: setDiff(live.rules, desired.rules, ruleKey),
    routes: diffRoutes(live.routes, desired.routes),
    chains,
    added,
    removed,
  };
}

/**
 * Deletes the rules that went, inserts the new ones at their place. When the kept rules would
 * end up in another order or repeat (an SNAT reorder, a hand edit) the chain is rewritten instead;
 * either way it happens inside one iptables-restore transaction. The desired state has each rule
 * once, so a repeated rule is always a surplus.
 */
function diffChain(chain: NatChain, haveOrMissing: string[] | undefined, want: string[]): ChainEdit | undefined {
  const isHook = (HOOK_CHAINS as readonly string[]).includes(chain);
  // Built-in chains always exist; natops never declares (and so never flushes) them.
  const have = isHook ? (haveOrMissing ?? []) : haveOrMissing;
  if (have === undefined) {
    return { chain, create: true, rewrite: false, ops: want.map((spec) => ({ op: 'append', spec })) };
  }
  if (have.length === want.length && have.every((spec, i) => spec === want[i])) return undefined;

  const wantSet = new Set(want);
  const haveSet = new Set(have);
  const duplicates = haveSet.size !== have.length || wantSet.size !== want.length;
  const kept = have.filter((spec) => wantSet.has(spec));
  const keptInWant = want.filter((spec) => haveSet.has(spec));
  if (!isHook && (duplicates || kept.some((spec, i) => spec !== keptInWant[i]))) {
    return { chain, create: false, rewrite: true, ops: want.map((spec) => ({ op: 'append', spec })) };
  }

  const ops: ChainOp[] = have.filter((spec) => !wantSet.has(spec)).map((spec) => ({ op: 'delete', spec }));
  if (isHook) {
    // Hook chains are never rewritten, so a repeated jump goes by -D, which takes the first copy;
    // which one stays does not matter, natops does not place its jumps among other rules anyway.
    const wanted = countRules(want);
    for (const [spec, n] of countRules(kept)) for (let k = wanted.get(spec) ?? 0; k < n; k++) ops.push({ op: 'delete', spec });
  }
  // Hook chains hold other software's rules too, whose positions natops does not know: append there.
  let length = kept.length;
  want.forEach((spec, i) => {
    if (haveSet.has(spec)) return;
    if (isHook || i >= length) ops.push({ op: 'append', spec });
    else ops.push({ op: 'insert', position: i + 1, spec });
    length++;
  });
  return { chain, create: false, rewrite: false, ops };
}

function countRules(specs: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const spec of specs) counts.set(spec, (counts.get(spec) ?? 0) + 1);
  return counts;
}

export function isEmptyChangeSet(c: ChangeSet): boolean {
  return !c.net1Up && c.sysctls.length === 0 && c.chains.length === 0 && c.routes.change.length === 0 &&
    [c.addresses, c.rules, c.routes].every((d) => d.add.length === 0 && d.remove.length === 0);
}
