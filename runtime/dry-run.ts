// The dry-run runtime: every gateway starts empty and commands are recorded, not run.
import type { Command } from '../dataplane/commands.ts';
import { emptyGatewayState } from '../dataplane/compile.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import type { GatewayHandle, GatewayRuntime } from './runtime.ts';

export interface RecordedCommands {
  gateway: string;
  commands: Command[];
}

export class DryRunRuntime implements GatewayRuntime {
  readonly kind = 'dry-run' as const;
  readonly recorded: RecordedCommands[] = [];

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    return { handle: this.handle(spec.name), created: true };
  }

  private handle(name: string): GatewayHandle {
    return {
      name,
      location: 'dry run',
      readState: async () => emptyGatewayState(),
      runCommands: async (commands) => {
        this.recorded.push({ gateway: name, commands });
      },
    };
  }

  async gateway(): Promise<GatewayHandle | undefined> {
    return undefined;
  }
  async listGateways(): Promise<string[]> {
    return [];
  }
  async removeGateway(): Promise<boolean> {
    return false;
  }
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
