// A long-lived shell in a gateway that runs the commands it is sent, one at a time: starting a
// process from Node costs 10-20 ms here (more from a Node process holding a big gateway, and
// `ip netns exec` starts two), a fork from a small shell a few. The shell never parses a value:
// each argument arrives as a line of its own and runs as `setsid "$@"`; stdin, stdout and stderr go
// through files in a private directory.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatopsError } from '../common/errors.ts';
import {
  assertArgv,
  CommandError,
  CommandTimeoutError,
  childEnv,
  DEFAULT_COMMAND_TIMEOUT_MS,
  MissingToolError,
  timedCommand,
  type ExecRequest,
  type ExecResult,
} from '../common/exec.ts';
import { holdEventLoop, startLongLived } from './long-lived.ts';

/**
 * Reads a command's number and its count of arguments, then that many lines, one argument each;
 * runs them as a program (setsid: never a builtin of the shell's, and in a process group of its
 * own, so that a timeout kills whatever it started too) with its own files as stdin, stdout and
 * stderr; says the command's pid and its exit status, each with its number.
 */
const RUNNER = `D=$1
while IFS= read -r id && IFS= read -r n; do
  set --
  while [ "$n" -gt 0 ]; do IFS= read -r a || exit 0; set -- "$@" "$a"; n=$((n - 1)); done
  setsid "$@" <"$D/$id.in" >"$D/$id.out" 2>"$D/$id.err" &
  echo "pid $id $!"
  wait "$!"
  echo "exit $id $?"
done`;

/** After killing a command, how long to wait for the shell to say it ended (a process in D state). */
const KILL_GRACE_MS = 5_000;

/**
 * The sessions' directories, removed when the process exits (a CLI run never closes its
 * sessions); those of processes killed before that go when a later session starts.
 */
const dirs = new Set<string>();
process.once('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const DIR_PREFIX = 'natops-exec-';

function removeDeadProcessesDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (pid && Number(pid) !== process.pid && !existsSync(`/proc/${pid}`))
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

interface Running {
  id: number;
  argv: readonly string[];
  pid?: number;
  /** set when it was killed at its timeout: its exit then fails the command with this */
  timedOut?: Error;
  resolve: (code: number) => void;
  reject: (e: Error) => void;
}

/** The session was closed by its owner (its namespace is gone or another): the command did not run. */
export class SessionClosedError extends NatopsError {
  constructor(readonly target: string) {
    super(
      `${target}: the gateway's session was closed (its namespace went or was made again); the command did not run`,
      {
        retryable: true,
      },
    );
  }
}

/** A command the session does not take: it runs as a process of its own (Exec's fallback). */
export const takesArgv = (argv: readonly string[]) => argv.every((a) => !/[\n\r]/.test(a));

export class ExecSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private dir: string | undefined;
  private stdout = '';
  private running: Running | undefined;
  private ids = 0;
  /** closed by its owner: it takes no more commands (one started again would go untracked) */
  private closed = false;
  /** commands wait their turn: the shell runs one at a time */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    /** what enters the gateway: `ip netns exec NS` */
    readonly enter: readonly string[],
    /** where it runs, for errors */
    readonly target: string,
    readonly timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
  ) {}

  /** Runs one command (see takesArgv) as Exec does, in turn after those sent before it. */
  exec(req: ExecRequest): Promise<ExecResult> {
    assertArgv(req.argv);
    if (this.closed) return Promise.reject(new SessionClosedError(this.target));
    if (!takesArgv(req.argv)) throw new TypeError(`not an argv the session takes: ${JSON.stringify(req.argv)}`);
    const turn = this.queue.then(() => this.runOne(req));
    this.queue = turn.catch(() => undefined);
    return timedCommand(req.argv, turn);
  }

  /** Stops the shell (and what it runs) for good; a command still running or waiting fails. */
  close(): void {
    this.closed = true;
    this.stop(new SessionClosedError(this.target));
  }

  /** Stops the shell; the next command starts another. */
  private stop(reason: Error): void {
    const child = this.child;
    const running = this.running;
    this.child = undefined;
    this.running = undefined;
    this.stdout = '';
    if (running?.pid) killQuietly(-running.pid);
    running?.reject(reason);
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
      dirs.delete(this.dir);
    }
    this.dir = undefined;
  }

  get started(): boolean {
    return this.child !== undefined;
  }

  private async runOne(req: ExecRequest): Promise<ExecResult> {
    if (this.closed) throw new SessionClosedError(this.target);
    const child = this.start();
    const dir = this.dir!;
    const id = ++this.ids;
    const file = (stream: 'in' | 'out' | 'err') => join(dir, `${id}.${stream}`);
    // (a cleaner of the temporary directory may have taken it while the session was idle)
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file('in'), req.stdin ?? '');
    const timeoutMs = req.timeoutMs ?? this.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const code = await new Promise<number>((resolve, reject) => {
      this.running = { id, argv: req.argv, resolve, reject };
      timer = setTimeout(() => {
        const running = this.running;
        const timedOut = new CommandTimeoutError(this.target, req.argv, timeoutMs);
        // the command and what it started are killed, and the shell goes on once it has reaped
        // it; with no pid heard yet, or no word of its end after the grace, the shell goes too
        if (!running?.pid) return this.stop(timedOut);
        running.timedOut = timedOut;
        killQuietly(-running.pid);
        timer = setTimeout(() => this.stop(timedOut), KILL_GRACE_MS);
      }, timeoutMs);
      this.hold(true);
      child.stdin.write(`${id}\n${req.argv.length}\n${req.argv.map((a) => `${a}\n`).join('')}`);
    }).finally(() => {
      clearTimeout(timer);
      this.running = undefined;
      this.hold(false);
    });
    const stdoutBytes = readFileSync(file('out'));
    const result = { stdout: stdoutBytes.toString(), stdoutBytes, stderr: readFileSync(file('err'), 'utf8'), code };
    for (const f of ['in', 'out', 'err'] as const) rmSync(file(f), { force: true });
    if ((req.okExitCodes ?? [0]).includes(code)) return result;
    // (setsid's words for a program it cannot find, as spawn's ENOENT)
    if (code === 127 && /^setsid: failed to execute .*: No such file or directory$/m.test(result.stderr))
      throw new MissingToolError(req.argv[0]!);
    throw new CommandError(this.target, req.argv, code, result.stderr);
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    removeDeadProcessesDirs();
    this.dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    dirs.add(this.dir);
    let stderr = '';
    const argv = [...this.enter, 'sh', '-c', RUNNER, 'sh', this.dir];
    const child = startLongLived(
      argv,
      childEnv(),
      (e) => {
        if (this.child === child) this.stop(e);
      },
      () => ({ target: this.target, argv: this.running?.argv ?? this.enter, stderr }),
    );
    this.child = child;
    child.stdout.on('data', (b: Buffer) => {
      if (this.child !== child) return;
      this.stdout += b.toString();
      this.heard();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    return child;
  }

  /** The shell's lines: the running command's pid, then its exit status. */
  private heard(): void {
    for (let nl = this.stdout.indexOf('\n'); nl >= 0; nl = this.stdout.indexOf('\n')) {
      const line = this.stdout.slice(0, nl);
      this.stdout = this.stdout.slice(nl + 1);
      // (a late word on a command that timed out names another number)
      const m = /^(pid|exit) (\d+) (\d+)$/.exec(line);
      if (!m || Number(m[2]) !== this.running?.id) continue;
      if (m[1] === 'pid') this.running.pid = Number(m[3]);
      else if (this.running.timedOut) this.running.reject(this.running.timedOut);
      else this.running.resolve(Number(m[3]));
    }
  }

  /** While a command runs the shell keeps Node running; idle, it does not. */
  private hold(on: boolean): void {
    if (this.child) holdEventLoop(this.child, on);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // it has ended already
  }
}
