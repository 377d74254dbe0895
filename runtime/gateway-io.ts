// Reading a gateway's live state and running commands in it, over any Exec (netns, pod exec).
import type { Command } from '../dataplane/commands.ts';
import { CONNTRACK_LIST, filtersWithEntries, parseConntrackList } from '../dataplane/conntrack.ts';
import { GATEWAY_SYSCTLS, ROUTE_TABLE, type GatewayState, type GatewaySysctl } from '../dataplane/model.ts';
import { ParseError, parseIpAddr, parseIpRoutes, parseIpRules, parseNatTable } from '../dataplane/parse.ts';
import { CommandError, type Exec } from '../common/exec.ts';

export const READ_COMMANDS = {
  // no -w: iptables-save takes no lock, and 1.8.9 rejects the option
  nat: ['iptables-save', '-t', 'nat'],
  net1: ['ip', '-j', 'addr', 'show', 'dev', 'net1'],
  rules: ['ip', '-j', 'rule', 'show'],
  routes: ['ip', '-j', 'route', 'show', 'table', String(ROUTE_TABLE)],
  sysctls: ['sysctl', '-n', ...Object.keys(GATEWAY_SYSCTLS)],
} as const;

type ReadName = keyof typeof READ_COMMANDS;
const READ_NAMES = Object.keys(READ_COMMANDS) as ReadName[];
const MARK = '#natops-read';

/**
 * Every read in one process: a constant script (no value in it comes from a manifest) that runs
 * each read command and marks where its output, its errors and its exit status begin. One exec
 * instead of five matters where an exec is dear (pods/exec: a WebSocket and a runc exec each).
 */
export const READ_SCRIPT = READ_NAMES.map((name) => {
  const argv = READ_COMMANDS[name].map((a) => `'${a}'`).join(' ');
  // (each mark on a line of its own, whether or not the output before it ended with one)
  return `printf '\\n${MARK} ${name}\\n'; printf '\\n${MARK} ${name}\\n' >&2; ${argv}; printf '\\n${MARK}-exit ${name} %s\\n' "$?"`;
}).join('\n');

interface Section {
  stdout: string;
  stderr: string;
  code: number;
}

/** The script's two streams -> each read's output, errors and exit status. */
export function splitReads(stdout: string, stderr: string): Record<ReadName, Section> {
  const parts = (text: string) => {
    const found = new Map<string, string>();
    const re = new RegExp(`^${MARK} (\\S+)\\n`, 'gm');
    const heads = [...text.matchAll(re)];
    heads.forEach((m, i) => found.set(m[1]!, text.slice(m.index! + m[0].length, heads[i + 1]?.index ?? text.length)));
    return found;
  };
  const out = parts(stdout);
  const err = parts(stderr);
  const sections = {} as Record<ReadName, Section>;
  for (const name of READ_NAMES) {
    const body = out.get(name);
    const exit = body === undefined ? undefined : new RegExp(`^${MARK}-exit ${name} (\\d+)\\n?$`, 'm').exec(body);
    if (body === undefined || !exit) throw new ParseError(`reading the gateway (${READ_COMMANDS[name].join(' ')})`, 'its output was cut short');
    sections[name] = { stdout: body.slice(0, exit.index), stderr: err.get(name) ?? '', code: Number(exit[1]) };
  }
  return sections;
}

export async function readGatewayState(exec: Exec): Promise<GatewayState> {
  const r = await exec({ argv: ['sh', '-c', READ_SCRIPT] });
  const read = splitReads(r.stdout, r.stderr);
  for (const name of READ_NAMES) {
    // A table with no route yet does not exist, and ip says so with exit code 2.
    const ok = read[name].code === 0 || (name === 'routes' && read[name].code === 2 && /FIB table does not exist/.test(read[name].stderr));
    if (!ok) throw new CommandError('gateway', READ_COMMANDS[name], read[name].code, read[name].stderr);
  }
  const link = parseIpAddr(read.net1.stdout, 'net1');
  return {
    net1Up: link.up,
    sysctls: readSysctls(read.sysctls.stdout),
    addresses: link.addresses,
    rules: parseIpRules(read.rules.stdout),
    routes: read.routes.code === 0 ? parseIpRoutes(read.routes.stdout, ROUTE_TABLE) : [],
    nat: parseNatTable(read.nat.stdout),
  };
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
