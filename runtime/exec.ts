// Runs one program with an argv array: no shell ever sees a value. Typed errors carry context.
import { NatopsError } from '../common/errors.ts';
import { spawn } from 'node:child_process';

export interface ExecRequest {
  argv: string[];
  stdin?: string;
  /** exit codes that count as success; default [0] */
  okExitCodes?: number[];
}

export interface ExecResult {
  stdout: string;
  /** stdout as bytes, for output that is not text or whose byte offsets matter */
  stdoutBytes?: Buffer;
  stderr: string;
  code: number;
}

/** Runs a command somewhere (a gateway namespace, a pod): how the dataplane reaches a gateway. */
export type Exec = (req: ExecRequest) => Promise<ExecResult>;

export class CommandError extends NatopsError {
  constructor(
    /** where it ran: "natops-gw-ngw", "host" */
    readonly target: string,
    readonly argv: readonly string[],
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`${target}: \`${argv.join(' ')}\` exited ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`);
  }
}

export class MissingToolError extends NatopsError {
  constructor(readonly tool: string) {
    super(`${tool} is not installed or not on PATH (the netns runtime needs iproute2, iptables, conntrack and iputils-arping; run scripts/install-deps.sh)`);
  }
}

export function assertArgv(argv: readonly string[]): void {
  if (argv.length === 0) throw new TypeError('empty argv');
  for (const a of argv) {
    if (typeof a !== 'string' || a.includes('\0')) throw new TypeError(`invalid argument ${JSON.stringify(a)} in ${JSON.stringify(argv)}`);
  }
}

export function run(argv: readonly string[], opts: { stdin?: string; okExitCodes?: number[]; target?: string } = {}): Promise<ExecResult> {
  assertArgv(argv);
  const target = opts.target ?? 'host';
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new MissingToolError(argv[0]!) : e));
    child.on('close', (code, signal) => {
      const bytes = Buffer.concat(out);
      const result = { stdout: bytes.toString(), stdoutBytes: bytes, stderr: Buffer.concat(err).toString(), code: code ?? 128 };
      if (signal) result.stderr += `\nkilled by ${signal}`;
      if ((opts.okExitCodes ?? [0]).includes(result.code)) resolve(result);
      else reject(new CommandError(target, argv, result.code, result.stderr));
    });
    child.stdin.on('error', () => undefined); // a program that exits without reading stdin
    child.stdin.end(opts.stdin ?? '');
  });
}
