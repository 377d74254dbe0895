// The dry-run runtime: every gateway starts empty and commands are recorded, not run.
import type { Command } from '../dataplane/commands.ts';
import { compileGateway, emptyGatewayState } from '../dataplane/compile.ts';
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
    return { handle: this.handle(spec), created: true };
  }

  /** Reads as empty until commands "ran", then as the spec's state: what a dry run assumes. */
  private handle(spec: GatewaySpec): GatewayHandle {
    let applied = false;
    return {
      name: spec.name,
      location: 'dry run',
      readState: async () => (applied ? compileGateway(spec) : emptyGatewayState()),
      runCommands: async (commands) => {
        this.recorded.push({ gateway: spec.name, commands });
        applied = true;
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
