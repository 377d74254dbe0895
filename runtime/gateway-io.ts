// Reading a gateway's live state and running commands in it, over any Exec (netns, pod exec).
import { ipBatchInput, isPlainIpWord, type Command } from '../dataplane/commands.ts';
import { CONNTRACK_LIST, filtersWithEntries, parseConntrackList } from '../dataplane/conntrack.ts';
import {
  GATEWAY_SYSCTLS,
  HOOK_CHAINS,
  IPTABLES_BACKENDS,
  IPTABLES_PROGRAMS,
  OWNED_CHAINS,
  ROUTE_TABLE,
  STATE_READS,
  type GatewayState,
  type GatewaySysctl,
  type IptablesBackend,
  type NftablesState,
  type StateOf,
  type StateRead,
} from '../dataplane/model.ts';
import {
  lineProbeHolds,
  NFT_READ,
  nftablesProbe,
  nftLine,
  parseNftables,
  probeHolds,
  type NftablesProbe,
} from '../dataplane/nftables.ts';
import { ParseError, parseIpAddr, parseIpRoutes, parseIpRules, parseNatTable } from '../dataplane/parse.ts';
import { CommandError, type Exec } from '../common/exec.ts';
import { PermanentError } from '../common/errors.ts';
import { isNftLine, type NftSession } from './nft-session.ts';

/** The commands of the read script, each its own section of the output. */
export const READ_COMMANDS = {
  // no -w: iptables-save takes no lock, and 1.8.9 rejects the option
  'nat-legacy': [IPTABLES_PROGRAMS.legacy.save, '-t', 'nat'],
  'nat-nft': [IPTABLES_PROGRAMS.nft.save, '-t', 'nat'],
  'nat-nftables': NFT_READ,
  // reads its probe from the script's stdin (NftablesCache)
  'nat-revision': ['nft', '-f', '-'],
  net1: ['ip', '-j', 'addr', 'show', 'dev', 'net1'],
  rules: ['ip', '-j', 'rule', 'show'],
  routes: ['ip', '-j', 'route', 'show', 'table', String(ROUTE_TABLE)],
  sysctls: ['sysctl', '-n', ...Object.keys(GATEWAY_SYSCTLS)],
} as const;
export type ReadSection = keyof typeof READ_COMMANDS;

/** The sections each read is made of: the nat table from both iptables (natFromSaves) and nftables. */
export const READ_SECTIONS = {
  nat: ['nat-legacy', 'nat-nft', 'nat-nftables'],
  net1: ['net1'],
  rules: ['rules'],
  routes: ['routes'],
  sysctls: ['sysctls'],
} as const satisfies Record<StateRead, readonly ReadSection[]>;

const MARK = '#natops-read';

/**
 * The reads asked for in one process: a constant script (no value in it comes from a manifest)
 * that runs each read command and marks where its output, its errors and its exit status begin.
 * One exec instead of six matters where an exec is dear (pods/exec: a WebSocket and a runc exec
 * each).
 */
export function readScript(sections: readonly ReadSection[]): string {
  return sections
    .map((name) => {
      const argv = READ_COMMANDS[name].map((a) => `'${a}'`).join(' ');
      // (each mark on a line of its own, whether or not the output before it ended with one)
      return `printf '\\n${MARK} ${name}\\n'; printf '\\n${MARK} ${name}\\n' >&2; ${argv}; printf '\\n${MARK}-exit ${name} %s\\n' "$?"`;
    })
    .join('\n');
}

export interface Section {
  stdout: string;
  stderr: string;
  code: number;
}

/** The script's two streams -> each section's output, errors and exit status. */
export function splitReads<S extends ReadSection>(
  stdout: string,
  stderr: string,
  sections: readonly S[],
): Record<S, Section> {
  const parts = (text: string) => {
    const found = new Map<string, string>();
    const re = new RegExp(`^${MARK} (\\S+)\\n`, 'gm');
    const heads = [...text.matchAll(re)];
    for (const [i, m] of heads.entries())
      found.set(m[1]!, text.slice(m.index! + m[0].length, heads[i + 1]?.index ?? text.length));
    return found;
  };
  const out = parts(stdout);
  const err = parts(stderr);
  const split: Partial<Record<S, Section>> = {};
  for (const name of sections) {
    const body = out.get(name);
    const exit = body === undefined ? undefined : new RegExp(`^${MARK}-exit ${name} (\\d+)\\n?$`, 'm').exec(body);
    if (body === undefined || !exit)
      throw new ParseError(`reading the gateway (${READ_COMMANDS[name].join(' ')})`, 'its output was cut short');
    split[name] = { stdout: body.slice(0, exit.index), stderr: err.get(name) ?? '', code: Number(exit[1]) };
  }
  return split as Record<S, Section>;
}

/**
 * The whole lines with which a save says its iptables cannot be here, and nothing else: the shell
 * found no such program; libiptc found no legacy tables in the kernel (ENOENT, ENOPROTOOPT); the
 * kernel has no nf_tables (EINVAL from nfnetlink, or no nfnetlink). Any other failure (EPERM, a
 * missing library, a kill) may hide natops's chains, so it is a failure, not an absence.
 */
const NOT_INSTALLED = /^\S*sh: (?:(?:line )?\d+: )?(?:iptables-\S+|nft): (?:command )?not found$/m;
/** An nft natops cannot read a table with: a gateway on iptables is not held up by it. */
const NFT_UNUSABLE = /^.*JSON support not compiled-in$/m;
const NOT_IN_KERNEL = [
  /^.*(?:Table does not exist|iptables who\?) \(do you need to insmod\?\)$/m,
  /^.*Could not fetch rule set generation id: Invalid argument$/m,
  /^.*Failed to initialize nft: Protocol not supported$/m,
  /^.*cache initialization failed: Protocol not supported$/m,
];
const isAbsent = (s: Section) =>
  (s.code === 127 && NOT_INSTALLED.test(s.stderr)) || (s.code !== 0 && NOT_IN_KERNEL.some((re) => re.test(s.stderr)));

/** natops's chains are in both iptables (an older natops, or a hand edit, made a second copy). */
export class DualIptablesError extends PermanentError {
  constructor() {
    super(
      "natops's nat chains are in both iptables-legacy and iptables-nft, and the kernel runs both on every packet; " +
        `remove one copy by hand (\`iptables-legacy -t nat\` or \`iptables-nft -t nat\`: flush and delete ${OWNED_CHAINS.join(', ')}, ` +
        `and the jumps to them from ${HOOK_CHAINS.join(' and ')}); natops then manages the other`,
    );
  }
}

/**
 * Both iptables' saves -> the nat table and the iptables it is in: the one that holds natops's
 * chains; when neither does (a new gateway), legacy where it works here, as Kube-OVN's gateway
 * chooses, else nft. Both holding them is an error (DualIptablesError). A save that failed for a
 * reason other than absence might hide natops's chains, so it fails the read unless the other
 * iptables holds them.
 */
export function natFromSaves(saves: Record<IptablesBackend, Section>): Pick<GatewayState, 'nat' | 'iptables'> {
  const read: Pick<GatewayState, 'nat' | 'iptables'>[] = [];
  const failed: IptablesBackend[] = [];
  for (const backend of IPTABLES_BACKENDS) {
    const save = saves[backend];
    // iptables-nft-save exits 0 over a nat table made by nft itself, which it cannot show
    if (save.code !== 0 || /^# Table `nat' is incompatible/m.test(save.stdout)) failed.push(backend);
    else read.push({ nat: parseNatTable(save.stdout), iptables: backend });
  }
  const holding = read.filter((r) => OWNED_CHAINS.some((chain) => r.nat[chain] !== undefined));
  if (holding.length > 1) throw new DualIptablesError();
  if (holding.length === 1) return holding[0]!;
  // Neither holds natops's chains. A save that failed for a reason other than absence might.
  // (Neither iptables here at all: the legacy save's failure is reported.)
  const culprit = failed.find((b) => !isAbsent(saves[b])) ?? (read.length ? undefined : failed[0]);
  if (culprit !== undefined) {
    const save = saves[culprit];
    throw new CommandError('gateway', READ_COMMANDS[`nat-${culprit}`], save.code, save.stderr || save.stdout);
  }
  return read[0]!;
}

/** natops's nftables table, or undefined where there is none (or no nft, or no nf_tables in the kernel). */
function nftablesFrom(s: Section): NftablesState | undefined {
  if (s.code === 0) return parseNftables(s.stdout);
  if (
    isAbsent(s) ||
    NFT_UNUSABLE.test(s.stderr) ||
    (s.code === 1 && /^Error: No such file or directory/m.test(s.stderr))
  )
    return undefined;
  throw new CommandError('gateway', NFT_READ, s.code, s.stderr);
}

/** What iptables holds of natops's, as a whole read found it beside the table. */
type IptablesSide = Pick<GatewayState, 'nat' | 'iptables'>;

/**
 * The nftables tables natops last wrote or read, per gateway, while their revision proves them
 * current: nft 1.0.6 lists a map only whole (4 s at 100,000 forwards), so a gateway's table is
 * read whole once and then only probed (dataplane/nftables.ts nftablesProbe). A change made from
 * a stale table fails whole (its revision is swapped in the same transaction). Hand edits do not
 * change the revision: an entry is used for at most `maxAgeMs`, after which the table is read
 * whole again, so they are seen within that time (and at every resync that comes later). The
 * same goes for what iptables held beside it, which a probe through an nft session
 * (runtime/nft-session.ts) does not read again; natops's own iptables-restore forgets it.
 */
export class NftablesCache {
  /** per gateway: the table, when the table it derives from was last read whole, and iptables' side then */
  private readonly tables = new Map<
    string,
    { table: NftablesState & { revision: number }; readAt: number; iptables?: IptablesSide }
  >();
  constructor(readonly maxAgeMs = 30_000) {}

  get(key: string): (NftablesState & { revision: number }) | undefined {
    return this.entry(key)?.table;
  }

  /** When the table kept for `key` was last read whole (a write passes it on). */
  readAt(key: string): number | undefined {
    return this.entry(key)?.readAt;
  }

  /** What iptables held when the table was read whole, unless natops changed iptables since. */
  iptables(key: string): IptablesSide | undefined {
    return this.entry(key)?.iptables;
  }

  /** natops is about to change iptables: its side is read again next time. */
  forgetIptables(key: string): void {
    const e = this.tables.get(key);
    if (e) delete e.iptables;
  }

  /**
   * Keeps `table` (read whole at `readAt`, with `iptables` beside it); one not natops's forgets
   * the key. A write keeps the iptables side it was made over.
   */
  set(key: string, table: NftablesState | undefined, readAt: number, iptables = this.iptables(key)): void {
    // (entries of pods and gateways long gone go too)
    for (const k of this.tables.keys()) this.entry(k);
    if (table?.intact && table.revision !== undefined)
      this.tables.set(key, { table: { ...table, revision: table.revision }, readAt, ...(iptables && { iptables }) });
    else this.tables.delete(key);
  }

  forget(key: string): void {
    this.tables.delete(key);
  }

  private entry(key: string) {
    const e = this.tables.get(key);
    if (e && Date.now() - e.readAt <= this.maxAgeMs) return e;
    this.tables.delete(key);
    return undefined;
  }
}

/**
 * Where a handle keeps its gateway's nftables table between reads: the runtime's cache, under the
 * gateway's key, and where the runtime has one, the gateway's long-lived nft (probes and small
 * changes then start no process).
 */
export interface NftablesCacheSlot {
  cache: NftablesCache;
  key: string;
  session?: () => NftSession | undefined;
}

/** Above this size a transaction goes to `nft -f -` (a line of `nft -i` is read whole into memory). */
const SESSION_MAX_BYTES = 64 * 1024;

/** The gateway's nft session, where it has one and `payload` can go to it as one line. */
function sessionFor(slot: NftablesCacheSlot | undefined, payload: string): NftSession | undefined {
  return payload.length <= SESSION_MAX_BYTES && isNftLine(nftLine(payload).line) ? slot?.session?.() : undefined;
}

/** Runs a probe: through the session where there is one (then no process starts), else `nft -f -`. */
async function probeTable(exec: Exec, probe: NftablesProbe, session: NftSession | undefined): Promise<boolean> {
  if (session) return lineProbeHolds(probe, await session.transact(nftLine(probe.payload).line));
  const r = await exec({ argv: ['nft', '-f', '-'], stdin: probe.payload, okExitCodes: [0, 1] });
  return probeHolds(probe, r.stderr);
}

/**
 * Reads the gateway: everything, or only `reads` (and then only their fields are in the result).
 * Unknown to this function which reads a caller needs; reconcile narrows them (dataplane/diff.ts
 * readBackOf, dataplane/parts.ts PART_READS). With `slot`, natops's nftables table comes from the
 * cache while its revision holds (one probe instead of the whole table).
 */
export async function readGatewayState<R extends StateRead = StateRead>(
  exec: Exec,
  reads?: readonly R[],
  slot?: NftablesCacheSlot,
): Promise<StateOf<R>> {
  // (in STATE_READS's order, each once, whatever order the caller gave)
  const names = STATE_READS.filter((n) => !reads || (reads as readonly StateRead[]).includes(n));
  const cached = names.includes('nat') ? slot?.cache.get(slot.key) : undefined;
  // (taken now: the entry may age out while the reads run, and must not look read afresh then)
  const readAt = cached && slot?.cache.readAt(slot.key);
  const probe = cached && nftablesProbe(cached.revision);
  const session = probe && sessionFor(slot, probe.payload);
  // Through a session the probe is a line of its own beside the script, and iptables' side is the
  // one read with the table (NftablesCache): a read of nat alone then starts no process.
  const probed = session && probeTable(exec, probe, session);
  probed?.catch(() => undefined); // (awaited below, after the script: a failure of both is not unhandled)
  const iptablesKept = probed ? slot?.cache.iptables(slot.key) : undefined;
  const sections = names.flatMap((n) =>
    READ_SECTIONS[n].flatMap((section): ReadSection[] => {
      if (section === 'nat-nftables') return probe ? (session ? [] : ['nat-revision']) : [section];
      return iptablesKept && (section === 'nat-legacy' || section === 'nat-nft') ? [] : [section];
    }),
  );
  const read = sections.length ? await readSections(exec, sections, probe && !session ? probe.payload : undefined) : {};
  const section = (name: Exclude<ReadSection, `nat-${string}`>): Section => {
    const s = read[name]!;
    // A table with no route yet does not exist, and ip says so with exit code 2.
    const ok = s.code === 0 || (name === 'routes' && s.code === 2 && /FIB table does not exist/.test(s.stderr));
    if (!ok) throw new CommandError('gateway', READ_COMMANDS[name], s.code, s.stderr);
    return s;
  };
  const state: Partial<GatewayState> = {};
  for (const name of names) {
    if (name === 'nat') {
      // (a session that failed is no verdict: the table is then read whole)
      const holds = probed
        ? await probed.catch(() => false)
        : probe !== undefined && probeHolds(probe, read['nat-revision']!.stderr);
      if (holds) {
        const iptables = iptablesKept ?? natFromSaves({ legacy: read['nat-legacy']!, nft: read['nat-nft']! });
        // (read again since natops's own restore: kept with the table, on the table's terms)
        if (session && !iptablesKept && readAt !== undefined) slot?.cache.set(slot.key, cached, readAt, iptables);
        Object.assign(state, iptables);
        state.nftables = cached;
      } else {
        // no table cached, or it changed since: read it whole (and iptables' side with it)
        const whole = read['nat-nftables'] ? read : await readSections(exec, READ_SECTIONS.nat);
        const iptables = natFromSaves({ legacy: whole['nat-legacy']!, nft: whole['nat-nft']! });
        Object.assign(state, iptables);
        state.nftables = nftablesFrom(whole['nat-nftables']!);
        slot?.cache.set(slot.key, state.nftables, Date.now(), iptables);
      }
    }
    if (name === 'net1') {
      const link = parseIpAddr(section('net1').stdout, 'net1');
      state.net1Up = link.up;
      state.addresses = link.addresses;
    }
    if (name === 'rules') state.rules = parseIpRules(section('rules').stdout);
    if (name === 'routes') {
      const routes = section('routes');
      state.routes = routes.code === 0 ? parseIpRoutes(routes.stdout, ROUTE_TABLE) : [];
    }
    if (name === 'sysctls') state.sysctls = readSysctls(section('sysctls').stdout);
  }
  // (the fields of exactly the reads in R were set above)
  return state as StateOf<R>;
}

/** The read script of `sections`, one process; `stdin`, the probe its 'nat-revision' reads. */
async function readSections(
  exec: Exec,
  sections: readonly ReadSection[],
  stdin?: string,
): Promise<Partial<Record<ReadSection, Section>>> {
  const r = await exec({ argv: ['sh', '-c', readScript(sections)], ...(stdin !== undefined && { stdin }) });
  return splitReads(r.stdout, r.stderr, sections);
}

/** The programs of the iptables a gateway's nat rules are in (for a person or a bench at its shell). */
export async function gatewayIptables(exec: Exec): Promise<(typeof IPTABLES_PROGRAMS)[IptablesBackend]> {
  return IPTABLES_PROGRAMS[(await readGatewayState(exec, ['nat'])).iptables];
}

/** `sysctl -n A B` prints one value per line, in the order asked. */
function readSysctls(stdout: string): GatewayState['sysctls'] {
  const values = stdout.split('\n');
  return Object.fromEntries(
    (Object.keys(GATEWAY_SYSCTLS) as GatewaySysctl[]).map((k, i) => [k, values[i]?.trim() ?? ''] as const),
  );
}

/**
 * Runs commands in order and stops at the first failure (best-effort ones only warn). A run of
 * several conntrack deletions lists the table once and runs only the deletions that match an
 * entry: removing thousands of mappings must not start thousands of processes.
 */
export async function runCommands(
  exec: Exec,
  commands: Command[],
  warn: (m: string) => void = () => undefined,
  slot?: NftablesCacheSlot,
  opts: { ipBatch?: boolean } = {},
): Promise<void> {
  for (let i = 0; i < commands.length; i++) {
    let end = i;
    while (commands[end]?.conntrack) end++;
    let ipEnd = i;
    while (opts.ipBatch && commands[ipEnd] && batchable(commands[ipEnd]!)) ipEnd++;
    if (ipEnd - i >= 2) {
      await runIpBatch(exec, commands.slice(i, ipEnd));
      i = ipEnd - 1;
    } else if (end - i >= 2) {
      const entries = parseConntrackList((await exec({ argv: [...CONNTRACK_LIST] })).stdout);
      const batch = commands.slice(i, end);
      const present = filtersWithEntries(
        batch.map((c) => c.conntrack!),
        entries,
      );
      for (const [k, c] of batch.entries()) if (present[k]) await runOne(exec, c, warn);
      i = end - 1;
    } else if (commands[i]!.nftables) {
      await runNftables(exec, commands[i]!, slot);
    } else {
      if (slot && isRestore(commands[i]!)) slot.cache.forgetIptables(slot.key);
      await runOne(exec, commands[i]!, warn);
    }
  }
}

/**
 * An `nft -f` transaction, then the read-back of what it changed (its probe): where that holds,
 * the table it left is the cached one; otherwise (or when it failed) none is, and the next read
 * reads the table whole. Through the gateway's nft session where it has one and the change is
 * small: one line of `nft -i` is one transaction, as `nft -f` is.
 */
async function runNftables(exec: Exec, c: Command, slot: NftablesCacheSlot | undefined): Promise<void> {
  const payload = c.stdin ?? '';
  const session = sessionFor(slot, payload);
  try {
    if (!session) await exec({ argv: c.argv, stdin: payload });
    else {
      const { line } = nftLine(payload);
      const errors = await session.transact(line);
      if (errors) throw new CommandError(session.target, ['nft', '-i'], 1, errors);
    }
  } catch (e) {
    slot?.cache.forget(slot.key);
    throw e;
  }
  if (!slot) return;
  const { table, probe } = c.nftables!;
  // (kept only as long as the table it was made from: hand edits are seen within maxAgeMs of a whole read)
  const readAt = slot.cache.readAt(slot.key);
  // without a table to keep, the probe would prove nothing anyone uses: the next read reads whole
  if (!probe || !table || readAt === undefined) return slot.cache.forget(slot.key);
  const holds = await probeTable(exec, probe, sessionFor(slot, probe.payload)).catch(() => false);
  if (holds) slot.cache.set(slot.key, table, readAt);
  else slot.cache.forget(slot.key);
}

const isRestore = (c: Command) => IPTABLES_BACKENDS.some((b) => IPTABLES_PROGRAMS[b].restore === c.argv[0]);

/** An ip command `ip -batch` can run as one of its lines: no global options, plain words, success only on 0. */
const batchable = (c: Command): boolean =>
  c.argv[0] === 'ip' &&
  !c.argv[1]?.startsWith('-') &&
  c.stdin === undefined &&
  !c.background &&
  (c.okExitCodes === undefined || (c.okExitCodes.length === 1 && c.okExitCodes[0] === 0)) &&
  c.argv.slice(1).every(isPlainIpWord);

/**
 * ip commands in a row as one process (each process costs about as much as what it does). ip
 * stops at the first that fails and says which ("Command failed -:N"): reported as that command,
 * with the batch's exit code. A line ip cannot parse stops it without saying which: then the
 * error names the batch.
 */
async function runIpBatch(exec: Exec, commands: Command[]): Promise<void> {
  try {
    await exec({ argv: ['ip', '-batch', '-'], stdin: ipBatchInput(commands.map((c) => c.argv.slice(1))) });
  } catch (e) {
    const line = e instanceof CommandError ? /Command failed -:(\d+)/.exec(e.stderr) : null;
    const failed = line && commands[Number(line[1]) - 1];
    if (!failed || !(e instanceof CommandError)) throw e;
    throw new CommandError(e.target, failed.argv, e.code, e.stderr.replace(/\n?Command failed -:\d+\s*$/, ''));
  }
}

async function runOne(exec: Exec, c: Command, warn: (m: string) => void): Promise<void> {
  const run = exec({ argv: c.argv, stdin: c.stdin, okExitCodes: c.okExitCodes, background: c.background });
  if (c.background) void run.catch((e: unknown) => warn(`${(e as Error).message} (ignored)`));
  else await run;
}
