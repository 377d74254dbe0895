// A long-lived `nft -i` in a gateway: each line it reads is one transaction, all or nothing, and
// it keeps its cache between them (refetched when the ruleset's generation changes). A change or
// a probe then costs about a millisecond instead of starting a process (10-20 ms here, more from
// a Node process holding a big gateway) that loads nft's cache afresh.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { PermanentError } from '../common/errors.ts';
import { CommandTimeoutError, childEnv, timedCommand } from '../common/exec.ts';
import { holdEventLoop, startLongLived } from './long-lived.ts';

/** A line nft rejects in its parser, never reaching the kernel: where a reply ends. */
const END = 'natops-end';

/**
 * Whether `line` is one line to nft -i: no line break, no comment that would hide the END after
 * it, no backslash (a line ending in one goes on on the next), no other control character.
 */
export const isNftLine = (line: string): boolean => !/[\\#\u0000-\u001f\u007f]/.test(line);

/** A line the session cannot carry (isNftLine): callers send such payloads to `nft -f -` instead. */
export class NftLineError extends PermanentError {
  constructor(readonly line: string) {
    super(`not one nft line: ${JSON.stringify(line.slice(0, 200))}`);
  }
}

/**
 * nft -i keeps every line in its history (libedit): a session is started anew after this many,
 * and its HOME is a path that cannot hold a history file (nft would read and write one there).
 */
const LINES_PER_PROCESS = 1000;
const NO_HOME = '/dev/null/natops-nft-session';

interface Pending {
  seq: number;
  resolve: (stderr: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One `nft -i` started by `argv` (in the gateway: `ip netns exec NS nft -i`). `transact(line)`
 * answers with what nft printed to stderr for that line: empty when it was committed. Lines are
 * answered in order; after each, an END line that nft cannot parse marks where its errors stop.
 * The process holds no reference on the event loop while idle, so a CLI run still exits.
 */
export class NftSession {
  private child: ChildProcessWithoutNullStreams | undefined;
  private stderr = '';
  private seq = 0;
  private readonly pending: Pending[] = [];
  private lines = 0;
  /** closed by its owner: it takes no more lines (one started again would go untracked) */
  private closed = false;

  constructor(
    readonly argv: readonly string[],
    /** where it runs, for errors */
    readonly target: string,
    readonly timeoutMs: number,
  ) {}

  /** Runs one line (commands joined by `; `) as one transaction; resolves with its errors. */
  transact(line: string): Promise<string> {
    if (!isNftLine(line)) return Promise.reject(new NftLineError(line));
    if (this.closed) return Promise.reject(new Error(`${this.target}: the gateway's nft session was closed`));
    if (this.lines >= LINES_PER_PROCESS && !this.pending.length) this.stop(new Error('restarted'));
    const child = this.started();
    this.lines++;
    const seq = ++this.seq;
    const answer = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stop(new CommandTimeoutError(this.target, [...this.argv, line.slice(0, 200)], this.timeoutMs));
      }, this.timeoutMs);
      this.pending.push({ seq, resolve, reject, timer });
    });
    if (this.pending.length === 1) this.hold(true);
    child.stdin.write(`${line}\n${END} ${seq}\n`);
    return timedCommand(this.argv, answer);
  }

  /** Stops the process for good; what is still waiting fails. */
  close(): void {
    this.closed = true;
    this.stop(new Error(`${this.target}: the gateway's nft session was closed`));
  }

  /** Stops the process; what is still waiting fails with `reason`; the next line starts another. */
  private stop(reason: Error): void {
    const child = this.child;
    this.child = undefined;
    this.stderr = '';
    this.lines = 0;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(reason);
    }
    if (child && child.exitCode === null) child.kill('SIGKILL');
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  private started(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = startLongLived(
      this.argv,
      { ...childEnv(), HOME: NO_HOME },
      (e) => {
        if (this.child === child) this.stop(e);
      },
      () => ({ target: this.target, argv: this.argv, stderr: this.stderr }),
    );
    this.child = child;
    child.stdout.resume();
    child.stderr.on('data', (b: Buffer) => {
      if (this.child !== child) return;
      this.stderr += b.toString();
      this.answer();
    });
    return child;
  }

  /** Resolves each waiting line whose END has been echoed: its errors are what came before. */
  private answer(): void {
    for (;;) {
      const p = this.pending[0];
      if (!p) return;
      // nft prints "Error: syntax error, ...", the line, then a line of carets under it
      const echo = this.stderr.indexOf(`\n${END} ${p.seq}\n`);
      const carets = echo < 0 ? -1 : this.stderr.indexOf('\n', echo + END.length + 3);
      if (carets < 0 || this.stderr.indexOf('\n', carets + 1) < 0) return;
      const errorStart = this.stderr.lastIndexOf('Error: ', echo);
      const reply = this.stderr.slice(0, Math.max(0, errorStart));
      this.stderr = this.stderr.slice(this.stderr.indexOf('\n', carets + 1) + 1);
      this.pending.shift();
      clearTimeout(p.timer);
      p.resolve(reply);
      if (!this.pending.length) this.hold(false);
    }
  }

  /** While a line waits for its answer the process keeps Node running; idle, it does not. */
  private hold(on: boolean): void {
    if (this.child) holdEventLoop(this.child, on);
  }
}
