// A ChangeSet in words and as an exact rule diff, for plans, previews and logs. Pure.
import { addressKey, isEmptyChangeSet, routeKey, ruleKey, type ChangeSet } from './diff.ts';
import { HOOK_CHAINS, type GatewayState } from './model.ts';
import { NFT_TABLE } from './nftables.ts';
import { backendKey, describeRule, forwardOf, portKey, type Forward } from './rules.ts';

export type GatewayAction = 'create' | 'update' | 'delete' | 'unchanged';

/** The target that removes everything natops owns in `live` (what deleting a gateway takes away). */
export function removalTarget(live: GatewayState): GatewayState {
  const nat: GatewayState['nat'] = {};
  for (const chain of Object.keys(live.nat) as (keyof GatewayState['nat'])[]) nat[chain] = [];
  return {
    iptables: live.iptables,
    net1Up: live.net1Up,
    sysctls: live.sysctls,
    addresses: [],
    rules: [],
    routes: [],
    nat,
  };
}

export function describeChanges(c: ChangeSet): string[] {
  const words: string[] = [];
  if (c.net1Up || c.rules.add.length)
    words.push('+ init: net1 up, forwarding, policy routing and the Kube-OVN nat chains');
  else if (c.sysctls.length) words.push(`+ kernel settings: ${c.sysctls.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  if (c.move) words.push(`~ data plane: ${c.move === 'nftables' ? 'iptables -> nftables' : 'nftables -> iptables'}`);
  for (const a of c.addresses.add) words.push(`+ EIP ${a.cidr}`);
  for (const a of c.addresses.remove) words.push(`- EIP ${a.cidr}`);
  for (const r of c.routes.add) words.push(`+ route ${r.dst} via ${r.via} dev ${r.dev}`);
  for (const r of c.routes.remove) words.push(`- route ${r.dst} via ${r.via} dev ${r.dev}`);
  for (const { from, to } of c.routes.change)
    words.push(`~ route ${to.dst} via ${from.via} -> ${to.via} dev ${to.dev}`);
  // a shared port's backends are said per port (sharedPortWords)
  const mapping = (chain: string, spec: string) =>
    chain !== 'EXCLUSIVE_SNAT' &&
    !spec.startsWith('-j ') &&
    !(HOOK_CHAINS as readonly string[]).includes(chain) &&
    forwardOf(chain, spec)?.every === undefined;
  for (const r of c.added) if (mapping(r.chain, r.spec)) words.push(`+ ${describeRule(r.chain, r.spec)}`);
  for (const r of c.removed) if (mapping(r.chain, r.spec)) words.push(`- ${describeRule(r.chain, r.spec)}`);
  return [...words, ...sharedPortWords(c)];
}

/**
 * One line per shared port a change touches: its backends that come and go. Each backend's rule
 * counts the backends after it (sharedForward), so others' rules change too; they are not news.
 */
function sharedPortWords(c: ChangeSet): string[] {
  const ports = new Map<string, { came: Map<string, Forward>; went: Map<string, Forward> }>();
  const note = (side: 'came' | 'went', chain: string, spec: string) => {
    const f = forwardOf(chain, spec);
    if (f?.every === undefined) return;
    const entry = ports.get(portKey(f)) ?? { came: new Map(), went: new Map() };
    entry[side].set(backendKey(f), f);
    ports.set(portKey(f), entry);
  };
  for (const r of c.added) note('came', r.chain, r.spec);
  for (const r of c.removed) note('went', r.chain, r.spec);
  const words: string[] = [];
  for (const [port, { came, went }] of ports) {
    for (const key of [...came.keys()]) if (went.delete(key)) came.delete(key);
    const after = c.sharedPorts?.[port];
    if (after === undefined) continue;
    const before = after - came.size + went.size;
    const list = (m: Map<string, Forward>, sign = '') =>
      [...m.values()].map((f) => `${sign}${f.internalIp}:${f.internalPort}`).join(', ');
    const by = (n: number) => `shared by ${n} backend${n === 1 ? '' : 's'}`;
    if (before === 0) words.push(`+ port forward ${port} ${by(after)}: ${list(came)}`);
    else if (after === 0) words.push(`- port forward ${port} ${by(before)}: ${list(went)}`);
    else if (came.size || went.size)
      words.push(
        `~ port forward ${port} ${by(after)}${before === after ? '' : ` (was ${before})`}: ${[list(came, '+ '), list(went, '- ')].filter(Boolean).join(', ')}`,
      );
  }
  return words;
}

export function ruleDiff(c: ChangeSet): string[] {
  const lines: string[] = [];
  for (const r of c.rules.add) lines.push(`+ ip rule ${ruleKey(r)}`);
  for (const r of c.rules.remove) lines.push(`- ip rule ${ruleKey(r)}`);
  for (const a of c.addresses.add) lines.push(`+ ip addr ${addressKey(a)}`);
  for (const a of c.addresses.remove) lines.push(`- ip addr ${addressKey(a)}`);
  for (const r of c.routes.add) lines.push(`+ ip route ${routeKey(r)}`);
  for (const r of c.routes.remove) lines.push(`- ip route ${routeKey(r)}`);
  for (const { from, to } of c.routes.change) lines.push(`~ ip route ${routeKey(from)} -> via ${to.via} dev ${to.dev}`);
  if (c.move) lines.push(`~ nat rules move to ${c.move} (both answer until the move is done)`);
  if (c.nftables?.kind === 'create') lines.push(`+ nftables table ip ${NFT_TABLE} (made whole)`);
  if (c.nftables?.kind === 'remove') lines.push(`- nftables table ip ${NFT_TABLE}`);
  for (const e of c.chains)
    if (e.rewrite) lines.push(`~ -t nat ${e.chain}: rewritten (kept rules out of order or repeated)`);
  // on nftables too, each mapping in iptables' words (dataplane/nftables.ts holds them alike)
  for (const r of c.added) lines.push(`+ -t nat -A ${r.chain} ${r.spec}`);
  for (const r of c.removed) lines.push(`- -t nat -A ${r.chain} ${r.spec}`);
  // A delete of a rule that stays is a surplus copy going (iptables only: with nftables in play,
  // the iptables deletes are of rules moving to or left behind by the other plane)
  const gone = new Set(c.removed.map((r) => `${r.chain} ${r.spec}`));
  for (const e of c.nftables || c.move ? [] : c.chains) {
    for (const op of e.ops)
      if (op.op === 'delete' && !gone.has(`${e.chain} ${op.spec}`))
        lines.push(`- -t nat -A ${e.chain} ${op.spec} (duplicate)`);
  }
  return lines;
}

export function renderGatewayPlan(name: string, action: GatewayAction, c: ChangeSet): string {
  const head = `gateway ${name}: ${action}`;
  if (action === 'unchanged' || isEmptyChangeSet(c)) return `${head}\n  no changes`;
  const words = describeChanges(c).map((w) => `  ${w}`);
  const diff = ruleDiff(c).map((l) => `    ${l}`);
  return [head, ...words, '  rule diff:', ...diff].join('\n');
}
