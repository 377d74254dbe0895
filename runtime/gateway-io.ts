// Reading a gateway's live state and running commands in it, over any Exec (netns, pod exec).
import type { Command } from '../dataplane/commands.ts';
import { CONNTRACK_LIST, filtersWithEntries, parseConntrackList } from '../dataplane/conntrack.ts';
import { GATEWAY_SYSCTLS, ROUTE_TABLE, type GatewayState, type GatewaySysctl } from '../dataplane/model.ts';
import { parseIpAddr, parseIpRoutes, parseIpRules, parseNatTable } from '../dataplane/parse.ts';
import { CommandError, type Exec } from '../common/exec.ts';

export const READ_COMMANDS = {
  // no -w: iptables-save takes no lock, and 1.8.9 rejects the option
  nat: ['iptables-save', '-t', 'nat'],
  net1: ['ip', '-j', 'addr', 'show', 'dev', 'net1'],
  rules: ['ip', '-j', 'rule', 'show'],
  routes: ['ip', '-j', 'route', 'show', 'table', String(ROUTE_TABLE)],
  sysctls: ['sysctl', '-n', ...Object.keys(GATEWAY_SYSCTLS)],
} as const;

export async function readGatewayState(exec: Exec): Promise<GatewayState> {
  const [nat, net1, rules, routes, sysctls] = await Promise.all([
    exec({ argv: [...READ_COMMANDS.nat] }),
    exec({ argv: [...READ_COMMANDS.net1] }),
    exec({ argv: [...READ_COMMANDS.rules] }),
    exec({ argv: [...READ_COMMANDS.routes], okExitCodes: [0, 2] }),
    exec({ argv: [...READ_COMMANDS.sysctls] }),
  ]);
  const link = parseIpAddr(net1.stdout, 'net1');
  // A table with no route yet does not exist, and ip says so with exit code 2.
  if (routes.code !== 0 && !/FIB table does not exist/.test(routes.stderr)) {
    throw new CommandError('gateway', READ_COMMANDS.routes, routes.code, routes.stderr);
  }
  return {
    net1Up: link.up,
    sysctls: readSysctls(sysctls.stdout),
    addresses: link.addresses,
    rules: parseIpRules(rules.stdout),
    routes: routes.code === 0 ? parseIpRoutes(routes.stdout, ROUTE_TABLE) : [],
    nat: parseNatTable(nat.stdout),
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
