// Reading a gateway's live state and running commands in it, over any Exec (netns, pod exec).
import type { Command } from '../dataplane/commands.ts';
import { CONNTRACK_LIST, filtersWithEntries, parseConntrackList } from '../dataplane/conntrack.ts';
import { GATEWAY_SYSCTLS, ROUTE_TABLE, STATE_READS, type GatewayState, type GatewaySysctl, type StateOf, type StateRead } from '../dataplane/model.ts';
import { ParseError, parseIpAddr, parseIpRoutes, parseIpRules, parseNatTable } from '../dataplane/parse.ts';
import { CommandError, type Exec } from '../common/exec.ts';

export const READ_COMMANDS = {
  // no -w: iptables-save takes no lock, and 1.8.9 rejects the option
  nat: ['iptables-save', '-t', 'nat'],
  net1: ['ip', '-j', 'addr', 'show', 'dev', 'net1'],
  rules: ['ip', '-j', 'rule', 'show'],
  routes: ['ip', '-j', 'route', 'show', 'table', String(ROUTE_TABLE)],
  sysctls: ['sysctl', '-n', ...Object.keys(GATEWAY_SYSCTLS)],
} as const satisfies Record<StateRead, readonly string[]>;

const MARK = '#natops-read';

/**
 * The reads asked for in one process: a constant script (no value in it comes from a manifest)
 * that runs each read command and marks where its output, its errors and its exit status begin.
 * One exec instead of five matters where an exec is dear (pods/exec: a WebSocket and a runc exec
 * each).
 */
export function readScript(reads: readonly StateRead[]): string {
  return reads.map((name) => {
    const argv = READ_COMMANDS[name].map((a) => `'${a}'`).join(' ');
    // (each mark on a line of its own, whether or not the output before it ended with one)
    return `printf '\\n${MARK} ${name}\\n'; printf '\\n${MARK} ${name}\\n' >&2; ${argv}; printf '\\n${MARK}-exit ${name} %s\\n' "$?"`;
  }).join('\n');
}

interface Section {
  stdout: string;
  stderr: string;
  code: number;
}

/** The script's two streams -> each read's output, errors and exit status. */
export function splitReads(stdout: string, stderr: string): Record<StateRead, Section>;
export function splitReads<R extends StateRead>(stdout: string, stderr: string, reads: readonly R[]): Record<R, Section>;
export function splitReads(stdout: string, stderr: string, reads: readonly StateRead[] = STATE_READS): Partial<Record<StateRead, Section>> {
  const parts = (text: string) => {
    const found = new Map<string, string>();
    const re = new RegExp(`^${MARK} (\\S+)\\n`, 'gm');
    const heads = [...text.matchAll(re)];
    heads.forEach((m, i) => found.set(m[1]!, text.slice(m.index! + m[0].length, heads[i + 1]?.index ?? text.length)));
    return found;
  };
  const out = parts(stdout);
  const err = parts(stderr);
  const sections: Partial<Record<StateRead, Section>> = {};
  for (const name of reads) {
    const body = out.get(name);
    const exit = body === undefined ? undefined : new RegExp(`^${MARK}-exit ${name} (\\d+)\\n?$`, 'm').exec(body);
    if (body === undefined || !exit) throw new ParseError(`reading the gateway (${READ_COMMANDS[name].join(' ')})`, 'its output was cut short');
    sections[name] = { stdout: body.slice(0, exit.index), stderr: err.get(name) ?? '', code: Number(exit[1]) };
  }
  return sections;
}

/**
 * Reads the gateway: everything, or only `reads` (and then only their fields are in the result).
 * Unknown to this function which reads a caller needs; reconcile narrows them (dataplane/diff.ts
 * readBackOf, dataplane/parts.ts PART_READS).
 */
export async function readGatewayState<R extends StateRead = StateRead>(exec: Exec, reads?: readonly R[]): Promise<StateOf<R>> {
  // (in STATE_READS's order, each once, whatever order the caller gave)
  const names = STATE_READS.filter((n) => !reads || (reads as readonly StateRead[]).includes(n));
  const r = await exec({ argv: ['sh', '-c', readScript(names)] });
  const read = splitReads(r.stdout, r.stderr, names);
  for (const name of names) {
    // A table with no route yet does not exist, and ip says so with exit code 2.
    const ok = read[name].code === 0 || (name === 'routes' && read[name].code === 2 && /FIB table does not exist/.test(read[name].stderr));
    if (!ok) throw new CommandError('gateway', READ_COMMANDS[name], read[name].code, read[name].stderr);
  }
  const state: Partial<GatewayState> = {};
  for (const name of names) {
    const { stdout, code } = read[name];
    if (name === 'nat') state.nat = parseNatTable(stdout);
    if (name === 'net1') {
      const link = parseIpAddr(stdout, 'net1');
      state.net1Up = link.up;
      state.addresses = link.addresses;
    }
    if (name === 'rules') state.rules = parseIpRules(stdout);
    if (name === 'routes') state.routes = code === 0 ? parseIpRoutes(stdout, ROUTE_TABLE) : [];
    if (name === 'sysctls') state.sysctls = readSysctls(stdout);
  }
  // (the fields of exactly the reads in R were set above)
  return state as StateOf<R>;
}

/** `sysctl -n A B` prints one value per line, in the order asked. */
function readSysctls(stdout: string): GatewayState['sysctls'] {
  const values = stdout.split('\n');
  return Object.fromEntries((Object.keys(GATEWAY_SYSCTLS) as GatewaySysctl[]).map((k, i) => [k, values[i]?.trim() ?? ''] as const));
}

/**
 * Runs commands in order and stops at the first failure (best-effort ones only warn). A run of
 * several conntrack deletions lists the table once and runs only the deletions that match an
 * entry: removing thousands of mappings must not start thousands of processes.
 */
export async function runCommands(exec: Exec, commands: Command[], warn: (m: string) => void = () => undefined): Promise<void> {
  for (let i = 0; i < commands.length; i++) {
    let end = i;
    while (commands[end]?.conntrack) end++;
    if (end - i >= 2) {
      const entries = parseConntrackList((await exec({ argv: [...CONNTRACK_LIST] })).stdout);
      const batch = commands.slice(i, end);
      const present = filtersWithEntries(batch.map((c) => c.conntrack!), entries);
      for (const [k, c] of batch.entries()) if (present[k]) await runOne(exec, c, warn);
      i = end - 1;
    } else {
      await runOne(exec, commands[i]!, warn);
    }
  }
}

async function runOne(exec: Exec, c: Command, warn: (m: string) => void): Promise<void> {
  try {
    await exec({ argv: c.argv, stdin: c.stdin, okExitCodes: c.okExitCodes });
  } catch (e) {
    if (!c.bestEffort) throw e;
    warn(`${(e as Error).message} (ignored)`);
  }
}
