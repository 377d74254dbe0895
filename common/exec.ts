// Runs one program with an argv array: no shell ever sees a value. Typed errors carry context.
import { NatopsError } from './errors.ts';
import { spawn } from 'node:child_process';

export interface ExecRequest {
  argv: string[];
  stdin?: string;
  /** exit codes that count as success; default [0] */
  okExitCodes?: number[];
  /** killed after this long; default the runner's (DEFAULT_COMMAND_TIMEOUT_MS for run) */
  timeoutMs?: number;
  /** runs beside what follows, not waited for: an Exec that runs one command at a time passes it by */
  background?: boolean;
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
    super(
      `${target}: \`${argv.join(' ')}\` exited ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`,
    );
  }
}

/** Killed at its timeout: a hung command must not hold a gateway (and its lease) for good. */
export class CommandTimeoutError extends NatopsError {
  constructor(
    readonly target: string,
    readonly argv: readonly string[],
    readonly timeoutMs: number,
  ) {
    super(`${target}: \`${argv.join(' ')}\` did not finish within ${timeoutMs} ms and was killed`, { retryable: true });
  }
}

export class MissingToolError extends NatopsError {
  constructor(readonly tool: string) {
    super(
      `${tool} is not installed or not on PATH (the netns runtime needs iproute2, iptables, conntrack and iputils-arping; run scripts/install-deps.sh)`,
    );
  }
}

export function assertArgv(argv: readonly string[]): void {
  if (argv.length === 0) throw new TypeError('empty argv');
  for (const a of argv) {
    if (typeof a !== 'string' || a.includes('\0'))
      throw new TypeError(`invalid argument ${JSON.stringify(a)} in ${JSON.stringify(argv)}`);
  }
}

export interface CommandTiming {
  /** the program run (for `ip netns exec NS PROG …`, PROG) */
  program: string;
  seconds: number;
  ok: boolean;
}
type CommandObserver = (c: CommandTiming) => void;
const observers = new Set<CommandObserver>();

/** Every command's timing, from wherever it runs (metrics); returns the way to stop. */
export function observeCommands(observer: CommandObserver): () => void {
  observers.add(observer);
  return () => void observers.delete(observer);
}

export function programOf(argv: readonly string[]): string {
  const inner =
    (argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' && argv.length > 4 ? argv[4] : argv[0]) ?? '';
  return inner.slice(inner.lastIndexOf('/') + 1);
}

/** Reports how long `running` took once it settles; the result passes through. */
export function timedCommand<T>(argv: readonly string[], running: Promise<T>): Promise<T> {
  if (!observers.size) return running;
  const started = performance.now();
  const report = (ok: boolean) => {
    const timing = { program: programOf(argv), seconds: (performance.now() - started) / 1000, ok };
    for (const o of observers) {
      try {
        o(timing);
      } catch {
        // an observer's failure is not the command's
      }
    }
  };
  running.then(
    () => report(true),
    () => report(false),
  );
  return running;
}

/** How long a command may run unless the caller says otherwise (`NATOPS_COMMAND_TIMEOUT_MS` in serve). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
/** After SIGKILL, how long to wait for the exit before giving up on it (a process in D state). */
const KILL_GRACE_MS = 5_000;

export interface RunOptions {
  stdin?: string;
  okExitCodes?: number[];
  /** where it runs, for errors; default "host" */
  target?: string;
  /** default DEFAULT_COMMAND_TIMEOUT_MS */
  timeoutMs?: number;
  /**
   * variables added to childEnv()'s (git's GIT_ASKPASS, GIT_SSH_COMMAND): only what the caller
   * names here, so natops's own environment still never reaches the child
   */
  env?: Readonly<Record<string, string>>;
}

/**
 * What a command natops runs inherits of its environment: what programs need to run (PATH,
 * locale, time zone, HOME, TMPDIR) and git's own settings, never natops's secrets (a token or
 * password in the environment would show in every child's /proc/PID/environ).
 */
export function childEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const kept: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env))
    if (value !== undefined && (CHILD_ENV.has(name) || name.startsWith('LC_') || name.startsWith('GIT_')))
      kept[name] = value;
  return kept;
}
const CHILD_ENV = new Set(['PATH', 'HOME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'USER']);

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  assertArgv(argv);
  return timedCommand(argv, spawned(argv, opts));
}

function spawned(argv: readonly string[], opts: RunOptions): Promise<ExecResult> {
  const target = opts.target ?? 'host';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new TypeError(`invalid timeoutMs ${timeoutMs} for ${JSON.stringify(argv)}`);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...childEnv(), ...opts.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    let timedOut = false;
    let grace: NodeJS.Timeout | undefined;
    const settle = (finish: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      finish();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      // SIGKILL: a hung program may ignore anything gentler. `ip netns exec NS CMD` execs CMD, so
      // this pid is CMD itself. Closing the pipes lets 'close' fire even if a grandchild holds them.
      child.kill('SIGKILL');
      child.stdin.destroy();
      child.stdout.destroy();
      child.stderr.destroy();
      grace = setTimeout(() => settle(() => reject(new CommandTimeoutError(target, argv, timeoutMs))), KILL_GRACE_MS);
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) =>
      settle(() => reject(e.code === 'ENOENT' ? new MissingToolError(argv[0]!) : e)),
    );
    child.on('close', (code, signal) =>
      settle(() => {
        if (timedOut) return reject(new CommandTimeoutError(target, argv, timeoutMs));
        const bytes = Buffer.concat(out);
        const result = {
          stdout: bytes.toString(),
          stdoutBytes: bytes,
          stderr: Buffer.concat(err).toString(),
          code: code ?? 128,
        };
        if (signal) result.stderr += `\nkilled by ${signal}`;
        if ((opts.okExitCodes ?? [0]).includes(result.code)) resolve(result);
        else reject(new CommandError(target, argv, result.code, result.stderr));
      }),
    );
    child.stdin.on('error', () => undefined); // a program that exits without reading stdin
    child.stdin.end(opts.stdin ?? '');
  });
}
