// natops's nftables data plane, pure: a gateway's mappings as one table whose maps hold the
// floating IPs and the exclusive port forwards (a lookup costs the same at any count), a change as
// one `nft -f` transaction of element deletes and adds, and the table read back into the iptables
// rule specs the rest of natops diffs, describes and cleans conntrack by (docs/dataplane.md).
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { PermanentError } from '../common/errors.ts';
import {
  isMappingChain,
  MAPPING_CHAINS,
  NAT_JUMPS,
  type JumpChain,
  type MappingChain,
  type NftablesState,
  type Protocol,
  type RuleChange,
} from './model.ts';
import { ParseError } from './parse.ts';
import {
  floatingDnat,
  floatingSnat,
  hairpinSnat,
  IP,
  mappingOf,
  portForward,
  sharedForward,
  sourceNat,
} from './rules.ts';

export const NFT_TABLE = 'natops';
const TABLE = `ip ${NFT_TABLE}`;

/** The maps, by the chain whose rules they hold: a floating IP's two sides, and the exclusive forwards. */
const MAPS = {
  EXCLUSIVE_DNAT: { name: 'floating_dnat', key: ['ipv4_addr'], value: 'ipv4_addr' },
  EXCLUSIVE_SNAT: { name: 'floating_snat', key: ['ipv4_addr'], value: 'ipv4_addr' },
  SHARED_DNAT: {
    name: 'forwards',
    key: ['ipv4_addr', 'inet_proto', 'inet_service'],
    value: 'ipv4_addr . inet_service',
  },
} as const;
type MapChain = keyof typeof MAPS;
const MAP_CHAINS = Object.keys(MAPS) as MapChain[];
const isMapChain = (chain: string): chain is MapChain => chain in MAPS;

/** Each map's lookup: the first rule of its chain (a miss goes on to the next rule). */
const LOOKUPS: Record<MapChain, string> = {
  EXCLUSIVE_DNAT: 'dnat to ip daddr map @floating_dnat',
  EXCLUSIVE_SNAT: 'snat to ip saddr map @floating_snat',
  SHARED_DNAT: 'dnat ip to ip daddr . meta l4proto . th dport map @forwards',
};
const payload = (protocol: string, field: string) => ({ payload: { protocol, field } });
/** The lookups as `nft -j` prints them. */
const LOOKUPS_JSON: Record<MapChain, string> = {
  EXCLUSIVE_DNAT: JSON.stringify([
    { dnat: { addr: { map: { key: payload('ip', 'daddr'), data: '@floating_dnat' } } } },
  ]),
  EXCLUSIVE_SNAT: JSON.stringify([
    { snat: { addr: { map: { key: payload('ip', 'saddr'), data: '@floating_snat' } } } },
  ]),
  SHARED_DNAT: JSON.stringify([
    {
      dnat: {
        family: 'ip',
        addr: {
          map: {
            key: { concat: [payload('ip', 'daddr'), { meta: { key: 'l4proto' } }, payload('th', 'dport')] },
            data: '@forwards',
          },
        },
      },
    },
  ]),
};

/** The hook and filter chains hold only jumps, as Kube-OVN's iptables chains do. */
const CHAINS = [...(Object.keys(NAT_JUMPS) as JumpChain[]), ...MAPPING_CHAINS];

/**
 * Just before iptables' nat (-100 and 100). While a gateway moves between the data planes both
 * hold its mappings; the first nat chain to bind a new connection wins, so none meets neither.
 */
const HOOKS = {
  PREROUTING: { hook: 'prerouting', prio: -101 },
  POSTROUTING: { hook: 'postrouting', prio: 99 },
} as const;

/** The revision's set (NftablesState.revision): one element, swapped by every change. */
const REVISION = 'revision';

/** A rule read back that natops does not write: kept as its JSON, so the diff removes it. */
const FOREIGN = 'nft: ';

/** A spec the table cannot hold (never one the compiler makes). */
export class NftablesSpecError extends PermanentError {
  constructor(
    readonly chain: string,
    readonly spec: string,
  ) {
    super(`no nftables form for a ${chain} rule: ${JSON.stringify(spec.slice(0, 200))}`);
  }
}

type Placed = { map: MapChain; key: string; value: string } | { rule: string };

/** Where a mapping goes in the table: an element of a map, or a rule of its chain. */
function place(chain: MappingChain, spec: string): Placed {
  const m = mappingOf(chain, spec);
  if (!m) throw new NftablesSpecError(chain, spec);
  switch (m.kind) {
    case 'floating-dnat':
      return { map: 'EXCLUSIVE_DNAT', key: m.eip, value: m.internalIp };
    case 'floating-snat':
      return { map: 'EXCLUSIVE_SNAT', key: m.internalIp, value: m.eip };
    case 'forward': {
      const f = m.forward;
      if (f.every === undefined)
        return {
          map: 'SHARED_DNAT',
          key: `${f.eip} . ${f.protocol} . ${f.externalPort}`,
          value: `${f.internalIp} . ${f.internalPort}`,
        };
      // iptables' nth: each backend's own counter, as sharedForward's rule
      return {
        rule: `ip daddr ${f.eip} ${f.protocol} dport ${f.externalPort} numgen inc mod ${f.every} 0 dnat to ${f.internalIp}:${f.internalPort}`,
      };
    }
    case 'snat':
      return { rule: `ip saddr ${m.internalCidr} oifname "net1" snat to ${m.eip}` };
    case 'hairpin':
      return { rule: `ip saddr ${m.internalCidr} oifname "eth0" ct status dnat snat to ${m.eip}` };
  }
}

export const emptyMappings = () =>
  Object.fromEntries(MAPPING_CHAINS.map((c) => [c, [] as string[]])) as Record<MappingChain, string[]>;

/** A spec the table holds as a map element (a floating IP, an exclusive forward); the rest are rules. */
export function isElement(chain: MappingChain, spec: string): boolean {
  if (spec.startsWith(FOREIGN) || !isMapChain(chain)) return false;
  return chain !== 'SHARED_DNAT' || !spec.includes(' -m statistic ');
}

const rulesOf = (chain: MappingChain, specs: readonly string[]) => specs.filter((s) => !isElement(chain, s));

/**
 * A change to the table: made whole (it is not there, or not only natops's), removed, or its
 * elements deleted and added and the chains whose rules change written again (they are few: the
 * SNATs, the hairpins, the shared ports' backends, whose order matters).
 */
export type NftablesEdit =
  | { kind: 'create'; nat: Record<MappingChain, string[]> }
  | { kind: 'remove' }
  | {
      kind: 'update';
      /** the revision the table must still have: the change fails whole where another came first */
      from: number;
      remove: RuleChange[];
      add: RuleChange[];
      rules: Partial<Record<MappingChain, string[]>>;
    };

/** Per chain, how many specs the two sides hold alike at their head and at their tail, in place. */
export type MappingsAlike = Partial<Record<MappingChain, { head: number; tail: number }>>;

/**
 * `added` and `removed`: the mappings that come and go (diffStates computes them once for both
 * planes); `alike`, what it found the same at both ends: there the chains' rules are the same
 * too, so only the middles are searched for rules (at 100,000 forwards, the search is the cost).
 */
export function diffNftables(
  live: NftablesState | undefined,
  desired: NftablesState | undefined,
  added: readonly RuleChange[],
  removed: readonly RuleChange[],
  alike: MappingsAlike = {},
): NftablesEdit | undefined {
  if (!desired) return live ? { kind: 'remove' } : undefined;
  if (!live?.intact || live.revision === undefined) {
    // (a target made from a live table keeps its rules natops did not write: the new table has none)
    const nat = emptyMappings();
    for (const chain of MAPPING_CHAINS) nat[chain] = desired.nat[chain].filter((spec) => !spec.startsWith(FOREIGN));
    return { kind: 'create', nat };
  }
  const rules: Partial<Record<MappingChain, string[]>> = {};
  for (const chain of MAPPING_CHAINS) {
    if (live.nat[chain] === desired.nat[chain]) continue;
    const ends = alike[chain] ?? { head: 0, tail: 0 };
    const middle = (specs: string[]) => specs.slice(ends.head, specs.length - ends.tail);
    const want = rulesOf(chain, middle(desired.nat[chain]));
    const have = rulesOf(chain, middle(live.nat[chain]));
    if (want.length !== have.length || want.some((s, i) => s !== have[i]))
      rules[chain] = rulesOf(chain, desired.nat[chain]);
  }
  const elements = (changes: readonly RuleChange[]) =>
    changes.filter((r) => isMappingChain(r.chain) && isElement(r.chain, r.spec));
  const remove = elements(removed);
  const add = elements(added);
  if (!remove.length && !add.length && !Object.keys(rules).length) return undefined;
  return { kind: 'update', from: live.revision, remove, add, rules };
}

/** Elements per `add element` line: nft takes any number, smaller lines keep its parser's memory low. */
const ELEMENTS_PER_LINE = 10_000;

/** A new revision for a change: random, so that a table made again never repeats an old one. */
export const newRevision = () => randomInt(1, 2 ** 31);

/** The `nft -f` input that makes the edit, leaving `revision` in the table: one transaction, all or nothing. */
export function nftablesPayload(edit: NftablesEdit, revision: number): string {
  if (edit.kind === 'remove') return `delete table ${TABLE}\n`;
  const lines: string[] = [];
  const elements = (verb: 'add' | 'delete', changes: readonly { chain: MappingChain; spec: string }[]) => {
    const byMap = new Map<MapChain, string[]>();
    for (const { chain, spec } of changes) {
      const p = place(chain, spec);
      if (!('map' in p)) continue;
      const list = byMap.get(p.map) ?? [];
      list.push(verb === 'add' ? `${p.key} : ${p.value}` : p.key);
      byMap.set(p.map, list);
    }
    for (const [map, list] of byMap)
      for (let i = 0; i < list.length; i += ELEMENTS_PER_LINE)
        lines.push(`${verb} element ${TABLE} ${MAPS[map].name} { ${list.slice(i, i + ELEMENTS_PER_LINE).join(', ')} }`);
  };
  const chainRules = (chain: MappingChain, specs: readonly string[]) => {
    if (isMapChain(chain)) lines.push(`add rule ${TABLE} ${chain} ${LOOKUPS[chain]}`);
    for (const spec of specs) {
      const p = place(chain, spec);
      if ('rule' in p) lines.push(`add rule ${TABLE} ${chain} ${p.rule}`);
    }
  };
  if (edit.kind === 'create') {
    // an empty table first, so that the delete always finds one: the table is then made whole
    lines.push(`add table ${TABLE}`, `delete table ${TABLE}`, `add table ${TABLE}`);
    lines.push(`add set ${TABLE} ${REVISION} { type mark; }`, `add element ${TABLE} ${REVISION} { ${revision} }`);
    for (const chain of MAP_CHAINS) {
      const m = MAPS[chain];
      lines.push(`add map ${TABLE} ${m.name} { type ${m.key.join(' . ')} : ${m.value}; }`);
    }
    for (const chain of CHAINS) {
      const hook = chain === 'PREROUTING' || chain === 'POSTROUTING' ? HOOKS[chain] : undefined;
      lines.push(
        `add chain ${TABLE} ${chain}${hook ? ` { type nat hook ${hook.hook} priority ${hook.prio}; policy accept; }` : ''}`,
      );
    }
    for (const chain of Object.keys(NAT_JUMPS) as JumpChain[])
      for (const target of NAT_JUMPS[chain]) lines.push(`add rule ${TABLE} ${chain} jump ${target}`);
    for (const chain of MAPPING_CHAINS) chainRules(chain, edit.nat[chain]);
    elements(
      'add',
      MAPPING_CHAINS.flatMap((chain) => edit.nat[chain].map((spec) => ({ chain, spec }))),
    );
  } else {
    lines.push(`delete element ${TABLE} ${REVISION} { ${edit.from} }`);
    elements('delete', edit.remove as { chain: MappingChain; spec: string }[]);
    for (const [chain, specs] of Object.entries(edit.rules) as [MappingChain, string[]][]) {
      lines.push(`flush chain ${TABLE} ${chain}`);
      chainRules(chain, specs);
    }
    elements('add', edit.add as { chain: MappingChain; spec: string }[]);
    lines.push(`add element ${TABLE} ${REVISION} { ${revision} }`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A read of a few elements that costs the same at any table size (nft 1.0.6 lists a map only
 * whole, 4 s at 100,000 elements): a transaction that always fails, so it changes nothing, whose
 * errors say what is there. `delete element` fails where the key is absent; `add element k : v`
 * fails where k maps to another value; a last delete of revision 0 (never one) makes it fail.
 */
export interface NftablesProbe {
  payload: string;
  /** per line of the payload (from 1), whether it must fail for the table to be as expected */
  mustFail: boolean[];
}

/**
 * Above this many changed elements the read-back probes the revision only: the probe of each would
 * cost as much as the change, which the kernel took whole (every delete found its element, every
 * add found none in its way) in the transaction that also set the revision.
 */
export const PROBED_ELEMENTS = 1000;

/**
 * The probe that `revision` holds and, if given, that the changed mappings are as `edit` left
 * them: each added element there with its value, each removed one gone (unless added again).
 */
export function nftablesProbe(revision: number, edit?: Extract<NftablesEdit, { kind: 'update' }>): NftablesProbe {
  const lines: [string, boolean][] = [[`delete element ${TABLE} ${REVISION} { ${revision} }`, false]];
  const added = new Set<string>();
  if (edit && edit.add.length + edit.remove.length > PROBED_ELEMENTS) edit = undefined;
  for (const { chain, spec } of edit?.add ?? []) {
    const p = place(chain as MappingChain, spec);
    if (!('map' in p)) continue;
    added.add(`${p.map} ${p.key}`);
    lines.push([`add element ${TABLE} ${MAPS[p.map].name} { ${p.key} : ${p.value} }`, false]);
  }
  for (const { chain, spec } of edit?.remove ?? []) {
    const p = place(chain as MappingChain, spec);
    if ('map' in p && !added.has(`${p.map} ${p.key}`))
      lines.push([`delete element ${TABLE} ${MAPS[p.map].name} { ${p.key} }`, true]);
  }
  lines.push([`delete element ${TABLE} ${REVISION} { 0 }`, true]);
  return { payload: `${lines.map(([l]) => l).join('\n')}\n`, mustFail: lines.map(([, fail]) => fail) };
}

/** Whether a probe's errors (nft's stderr) are exactly those it expects: the table is as expected. */
export function probeHolds(probe: NftablesProbe, stderr: string): boolean {
  const failed = new Set([...stderr.matchAll(/^\/dev\/stdin:(\d+):\d+(?:-\d+)?: Error: /gm)].map((m) => Number(m[1])));
  return probe.mustFail.every((fail, i) => fail === failed.has(i + 1));
}

/**
 * An `nft -f` payload as one line of `nft -i` (runtime/nft-session.ts), where a line is one
 * transaction as a file is: its commands joined by `; `, each starting at the column given.
 */
export function nftLine(payload: string): { line: string; columns: number[] } {
  const commands = payload.split('\n').filter((l) => l !== '');
  const columns: number[] = [];
  let at = 0;
  for (const c of commands) {
    columns.push(at);
    at += c.length + 2;
  }
  return { line: commands.join('; '), columns };
}

/**
 * probeHolds for a probe run as one line of `nft -i`: there an error names no line, it echoes the
 * line and marks the failing command with carets under it. An error whose place is not found
 * counts against the probe (the table is then read whole).
 */
export function lineProbeHolds(probe: NftablesProbe, stderr: string): boolean {
  const { line, columns } = nftLine(probe.payload);
  const text = stderr.split('\n');
  const failed = new Set<number>();
  let errors = 0;
  for (const [i, l] of text.entries()) {
    if (l.startsWith('Error: ')) errors++;
    const marks = text[i + 1];
    if (l !== line || marks === undefined || !/^ *[\^~]/.test(marks)) continue;
    const col = marks.search(/[\^~]/);
    let command = columns.length - 1;
    while (command > 0 && columns[command]! > col) command--;
    failed.add(command);
  }
  if (errors !== failed.size) return false;
  return probe.mustFail.every((fail, i) => fail === failed.has(i));
}

/** The command that reads the table (exit 1 and "No such file or directory" when there is none). */
export const NFT_READ = ['nft', '-j', 'list', 'table', 'ip', NFT_TABLE] as const;

const Entry = z.record(z.string(), z.unknown());
const NftJson = z.object({ nftables: z.array(Entry) });
const MapJson = z.object({
  name: z.string(),
  type: z.union([z.string(), z.array(z.string())]),
  map: z.string().optional(),
  elem: z.array(z.tuple([z.unknown(), z.unknown()])).optional(),
});
const RevisionJson = z.object({
  name: z.literal(REVISION),
  type: z.literal('mark'),
  elem: z.tuple([z.number().int().positive()]),
});
const ChainJson = z.object({
  name: z.string(),
  hook: z.string().optional(),
  prio: z.number().optional(),
  type: z.string().optional(),
  policy: z.string().optional(),
});
const RuleJson = z.object({ chain: z.string(), expr: z.array(z.unknown()) });

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
const IPV4 = new RegExp(`^${IP}$`);

/** One map element as a rule spec, or undefined when natops would not have written it. */
function elementSpec(chain: MapChain, key: unknown, value: unknown): string | undefined {
  if (chain !== 'SHARED_DNAT') {
    const k = str(key);
    const v = str(value);
    if (!k || !v || !IPV4.test(k) || !IPV4.test(v)) return undefined;
    return chain === 'EXCLUSIVE_DNAT' ? floatingDnat(k, v) : floatingSnat(v, k);
  }
  const concat = (x: unknown) => (x as { concat?: unknown[] } | null)?.concat;
  const k = concat(key);
  const v = concat(value);
  if (k?.length !== 3 || v?.length !== 2) return undefined;
  const [eip, protocol, port] = k;
  const [ip, internalPort] = v;
  if (typeof eip !== 'string' || !IPV4.test(eip) || (protocol !== 'tcp' && protocol !== 'udp')) return undefined;
  if (typeof port !== 'number' || typeof ip !== 'string' || !IPV4.test(ip) || typeof internalPort !== 'number')
    return undefined;
  return portForward(eip, protocol, port, ip, internalPort);
}

/** One expression of a rule as a short token, for the few rule shapes natops writes. */
function token(e: unknown): string {
  const x = e as Record<string, Record<string, unknown>>;
  const match = x.match as { op?: string; left?: Record<string, Record<string, unknown>>; right?: unknown } | undefined;
  if (match?.left) {
    const { left, right, op } = match;
    const p = left.payload;
    if (p?.field === 'saddr' && p.protocol === 'ip' && op === '==') {
      if (typeof right === 'string') return `saddr=${right}/32`;
      const prefix = (right as { prefix?: { addr?: unknown; len?: unknown } } | undefined)?.prefix;
      if (prefix) return `saddr=${String(prefix.addr)}/${String(prefix.len)}`;
    }
    if (p?.field === 'daddr' && p.protocol === 'ip' && op === '==') return `daddr=${String(right)}`;
    if (p?.field === 'dport' && op === '==') return `dport=${String(p.protocol)}:${String(right)}`;
    if (left.meta?.key === 'oifname' && op === '==') return `oifname=${String(right)}`;
    if (left.ct?.key === 'status' && op === 'in' && right === 'dnat') return 'ct=dnat';
    const n = left.numgen;
    if (n?.mode === 'inc' && n.offset === 0 && right === 0 && op === '==') return `nth=${String(n.mod)}`;
  }
  if (x.snat && Object.keys(x.snat).length === 1) return `snat=${String(x.snat.addr)}`;
  if (x.dnat && Object.keys(x.dnat).length === 2) return `dnat=${String(x.dnat.addr)}:${String(x.dnat.port)}`;
  return '?';
}

const SHARED_RULE = new RegExp(`^daddr=${IP} dport=(tcp|udp):(\\d+) nth=(\\d+) dnat=${IP}:(\\d+)$`);
const SNAT_RULE = new RegExp(`^saddr=${IP}/(\\d+) oifname=net1 snat=${IP}$`);
const HAIRPIN_RULE = new RegExp(`^saddr=${IP}/(\\d+) oifname=eth0 ct=dnat snat=${IP}$`);

/** A rule of a mapping chain as a rule spec; one natops does not write comes back FOREIGN. */
function ruleSpec(chain: MappingChain, expr: unknown[]): string {
  const t = expr.map(token).join(' ');
  let m: RegExpExecArray | null;
  if (chain === 'SHARED_DNAT' && (m = SHARED_RULE.exec(t)))
    return sharedForward(m[1]!, m[2] as Protocol, Number(m[3]), m[5]!, Number(m[6]), Number(m[4]));
  if (chain === 'SHARED_SNAT' && (m = SNAT_RULE.exec(t))) return sourceNat(m[3]!, `${m[1]}/${m[2]}`);
  if (chain === 'HAIRPIN_SNAT' && (m = HAIRPIN_RULE.exec(t))) return hairpinSnat(m[3]!, `${m[1]}/${m[2]}`);
  return `${FOREIGN}${JSON.stringify(expr)}`;
}

/**
 * `nft -j list table ip natops` -> the mappings it holds, as rule specs, and whether everything else
 * in it is exactly what natops makes (the maps' types, the chains, their hooks, the jumps and the
 * lookups, and no element natops would not write); when not, the next change makes it whole again.
 */
export function parseNftables(json: string): NftablesState {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new ParseError(NFT_READ.join(' '), `not JSON (${(e as Error).message})`);
  }
  const parsed = NftJson.safeParse(value);
  if (!parsed.success) throw new ParseError(NFT_READ.join(' '), parsed.error.issues[0]?.message ?? 'unexpected shape');
  const nat = emptyMappings();
  let intact = true;
  let revision: number | undefined;
  const maps = new Set<string>();
  const chains = new Set<string>();
  const rules = new Map<string, unknown[][]>();
  for (const entry of parsed.data.nftables) {
    if ('metainfo' in entry) continue;
    if ('table' in entry) {
      // a dormant table (flags) holds its mappings and applies none of them
      if ((entry.table as { flags?: unknown } | null)?.flags !== undefined) intact = false;
      continue;
    }
    if ('map' in entry) {
      const m = MapJson.safeParse(entry.map);
      const chain = m.success ? MAP_CHAINS.find((c) => MAPS[c].name === m.data.name) : undefined;
      const want = chain && MAPS[chain];
      if (!m.success || !chain || !want || maps.has(chain)) {
        intact = false;
        continue;
      }
      const type = Array.isArray(m.data.type) ? m.data.type : [m.data.type];
      if (type.join(' . ') !== want.key.join(' . ') || m.data.map !== want.value) intact = false;
      maps.add(chain);
      for (const [key, v] of m.data.elem ?? []) {
        const spec = elementSpec(chain, key, v);
        if (spec) nat[chain].push(spec);
        else intact = false;
      }
    } else if ('chain' in entry) {
      const c = ChainJson.safeParse(entry.chain);
      if (!c.success || !(CHAINS as string[]).includes(c.data.name) || chains.has(c.data.name)) {
        intact = false;
        continue;
      }
      chains.add(c.data.name);
      const hook = HOOKS[c.data.name as keyof typeof HOOKS];
      const { hook: h, prio, type, policy } = c.data;
      if (hook ? h !== hook.hook || prio !== hook.prio || type !== 'nat' || policy !== 'accept' : h !== undefined)
        intact = false;
    } else if ('rule' in entry) {
      const r = RuleJson.safeParse(entry.rule);
      if (!r.success) {
        intact = false;
        continue;
      }
      rules.set(r.data.chain, [...(rules.get(r.data.chain) ?? []), r.data.expr]);
    } else if ('set' in entry) {
      const r = RevisionJson.safeParse(entry.set);
      if (r.success && revision === undefined) revision = r.data.elem[0];
      else intact = false;
    } else {
      // a flowtable, anything natops does not make
      intact = false;
    }
  }
  if (maps.size !== MAP_CHAINS.length || chains.size !== CHAINS.length) intact = false;
  for (const chain of Object.keys(NAT_JUMPS) as JumpChain[]) {
    const want = NAT_JUMPS[chain].map((target) => JSON.stringify([{ jump: { target } }]));
    const have = (rules.get(chain) ?? []).map((expr) => JSON.stringify(expr));
    if (want.join('\n') !== have.join('\n')) intact = false;
  }
  for (const chain of MAPPING_CHAINS) {
    const list = [...(rules.get(chain) ?? [])];
    if (isMapChain(chain) && JSON.stringify(list.shift() ?? null) !== LOOKUPS_JSON[chain]) intact = false;
    for (const expr of list) nat[chain].push(ruleSpec(chain, expr));
  }
  for (const chain of rules.keys()) if (!(CHAINS as string[]).includes(chain)) intact = false;
  if (revision === undefined) intact = false;
  return { nat, intact, ...(revision !== undefined && { revision }) };
}
