// The dry-run runtime: nothing runs on the machine. Every gateway exists and starts empty; the
// commands natops sends it are recorded, and followed on the state this process holds for it, so
// that reading it back answers what they would have made (what a dry run assumes). A part's job
// thus converges in any process, whichever ran the gateway's other jobs: each worker process holds
// its own view, and each part compares only its own fields.
import { PermanentError } from '../common/errors.ts';
import type { Command } from '../dataplane/commands.ts';
import { emptyGatewayState } from '../dataplane/compile.ts';
import {
  GATEWAY_SYSCTLS,
  IPTABLES_PROGRAMS,
  type GatewaySpec,
  type GatewayState,
  type GatewaySysctl,
  type NatChain,
} from '../dataplane/model.ts';
import type { GatewayHandle, GatewayRuntime } from './runtime.ts';

export interface RecordedCommands {
  gateway: string;
  commands: Command[];
}

/** A command the dry run cannot follow: natops sent something dataplane/commands.ts does not make. */
export class DryRunCommandError extends PermanentError {}

export class DryRunRuntime implements GatewayRuntime {
  readonly kind = 'dry-run' as const;
  /** every change run, in order: what `natops apply --runtime dry-run` prints (kept for the process's life) */
  readonly recorded: RecordedCommands[] = [];
  /** each gateway as the commands run on it in this process left it */
  private readonly states = new Map<string, GatewayState>();

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    return { handle: this.handle(spec.name), created: !this.states.has(spec.name) };
  }

  async gateway(name: string): Promise<GatewayHandle | undefined> {
    return this.handle(name);
  }

  private handle(name: string): GatewayHandle {
    return {
      name,
      location: 'dry run',
      // A copy, since the reconciler keeps what it read beside what the commands change; with
      // nftables named even when there is none, as a gateway's nat read does: a reading is laid
      // over the one before it.
      readState: async () => ({
        nftables: undefined,
        ...structuredClone(this.states.get(name) ?? emptyGatewayState()),
      }),
      runCommands: async (commands) => {
        this.recorded.push({ gateway: name, commands });
        const state = this.states.get(name) ?? emptyGatewayState();
        for (const c of commands) follow(state, c);
        this.states.set(name, state);
      },
    };
  }

  async listGateways(): Promise<string[]> {
    return [];
  }
  async removeGateway(name: string): Promise<boolean> {
    return this.states.delete(name);
  }
}

const RESTORE_PROGRAMS: readonly string[] = Object.values(IPTABLES_PROGRAMS).map((p) => p.restore);

/** Carries out on `s` one command of those dataplane/commands.ts makes, as the gateway would (side effects aside). */
function follow(s: GatewayState, c: Command): void {
  const a = c.argv;
  const cannot = () => new DryRunCommandError(`the dry run cannot follow \`${a.join(' ')}\``);
  if (RESTORE_PROGRAMS.includes(a[0]!)) {
    s.nat = restored(s.nat, c.stdin ?? '');
    return;
  }
  switch (a[0]) {
    case 'conntrack':
    case 'arping':
      return;
    case 'sysctl': {
      const [key, value] = (a.at(-1) ?? '').split('=');
      if (!key || value === undefined || !(key in GATEWAY_SYSCTLS)) throw cannot();
      s.sysctls[key as GatewaySysctl] = value;
      return;
    }
    case 'nft': {
      // the command carries the table it leaves; none: it removes the table
      const table = c.nftables?.table;
      if (table) s.nftables = structuredClone(table);
      else delete s.nftables;
      return;
    }
    case 'ip':
      if (!followIp(s, a.slice(1))) throw cannot();
      return;
    default:
      throw cannot();
  }
}

/** `ip link|addr|route|rule ...` as commands.ts words them; false for any other. */
function followIp(s: GatewayState, a: readonly string[]): boolean {
  const [object, verb] = a;
  const at = (word: string) => a[a.indexOf(word) + 1] ?? '';
  if (object === 'link' && a.join(' ') === 'link set net1 up') s.net1Up = true;
  else if (object === 'addr' && (verb === 'replace' || verb === 'del')) {
    const address = { cidr: a[2]!, dev: at('dev') };
    s.addresses = s.addresses.filter((x) => x.cidr !== address.cidr || x.dev !== address.dev);
    if (verb === 'replace') s.addresses.push(address);
  } else if (object === 'route' && (verb === 'replace' || verb === 'del')) {
    const route = { dst: a[2]!, via: at('via'), dev: at('dev'), table: Number(at('table')) };
    // replace swaps the route to the same destination in the same table; del takes that very route
    s.routes = s.routes.filter((r) =>
      verb === 'replace'
        ? r.dst !== route.dst || r.table !== route.table
        : r.dst !== route.dst || r.table !== route.table || r.via !== route.via || r.dev !== route.dev,
    );
    if (verb === 'replace') s.routes.push(route);
  } else if (object === 'rule' && (verb === 'add' || verb === 'del')) {
    const rule = { iif: at('iif'), table: Number(at('table')) };
    if (verb === 'add') s.rules.push(rule);
    else {
      const i = s.rules.findIndex((r) => r.iif === rule.iif && r.table === rule.table);
      if (i >= 0) s.rules.splice(i, 1);
    }
  } else return false;
  return true;
}

/** The nat chains after an `iptables-restore --noflush` of `payload`: all of it, or (an error) none. */
function restored(nat: GatewayState['nat'], payload: string): GatewayState['nat'] {
  const after = structuredClone(nat);
  const fail = (line: string) => new DryRunCommandError(`the dry run cannot follow the restore line ${line}`);
  for (const line of payload.split('\n')) {
    if (line === '' || line === '*nat' || line === 'COMMIT') continue;
    // declaring a chain creates it, or empties it (--noflush)
    const declared = /^:(\S+) - \[0:0\]$/.exec(line);
    if (declared) {
      after[declared[1] as NatChain] = [];
      continue;
    }
    const op = /^-([DIA]) (\S+) (.*)$/.exec(line);
    const rules = op ? after[op[2] as NatChain] : undefined;
    if (!op || !rules) throw fail(line);
    const rest = op[3]!;
    if (op[1] === 'A') rules.push(rest);
    else if (op[1] === 'D') {
      const i = rules.indexOf(rest);
      if (i < 0) throw fail(line);
      rules.splice(i, 1);
    } else {
      const position = /^(\d+) (.*)$/.exec(rest);
      if (!position || Number(position[1]) > rules.length + 1) throw fail(line);
      rules.splice(Number(position[1]) - 1, 0, position[2]!);
    }
  }
  return after;
}

/** Shell-style quoting for showing an argv to a person; never executed. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export function formatCommands(commands: Command[]): string {
  return commands
    .map((c) => (c.stdin !== undefined ? `${formatArgv(c.argv)} <<'EOF'\n${c.stdin}EOF` : formatArgv(c.argv)))
    .join('\n');
}
