// A long-lived `nft -i` in a gateway: each line it reads is one transaction, all or nothing, and
// it keeps its cache between them (refetched when the ruleset's generation changes). A change or
// a probe then costs about a millisecond instead of starting a process (10-20 ms here, more from
// a Node process holding a big gateway) that loads nft's cache afresh.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError, CommandTimeoutError, childEnv, MissingToolError, timedCommand } from '../common/exec.ts';

/** A line nft rejects in its parser, never reaching the kernel: where a reply ends. */
const END = 'natops-end';

/** A line the session cannot carry: it would be two lines, or a comment would hide its end. */
export class NftLineError extends TypeError {
  constructor(readonly line: string) {
    super(`not one nft line: ${JSON.stringify(line.slice(0, 200))}`);
  }
}

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

  constructor(
    readonly argv: readonly string[],
    /** where it runs, for errors */
    readonly target: string,
    readonly timeoutMs: number,
  ) {}

  /** Runs one line (commands joined by `; `) as one transaction; resolves with its errors. */
  transact(line: string): Promise<string> {
    if (/[\n\r#]/.test(line)) throw new NftLineError(line);
    const child = this.started();
    const seq = ++this.seq;
    const answer = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close(new CommandTimeoutError(this.target, [...this.argv, line], this.timeoutMs));
      }, this.timeoutMs);
      this.pending.push({ seq, resolve, reject, timer });
    });
    if (this.pending.length === 1) this.hold(true);
    child.stdin.write(`${line}\n${END} ${seq}\n`);
    return timedCommand(this.argv, answer);
  }

  /** Stops the process; what is still waiting fails with `reason`. */
  close(reason: Error = new Error(`${this.target}: nft session closed`)): void {
    const child = this.child;
    this.child = undefined;
    this.stderr = '';
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
    const child = spawn(this.argv[0]!, this.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
    this.child = child;
    child.stdout.resume();
    child.stderr.on('data', (b: Buffer) => {
      if (this.child !== child) return;
      this.stderr += b.toString();
      this.answer();
    });
    const gone = (e: Error) => {
      if (this.child === child) this.close(e);
    };
    child.on('error', (e: NodeJS.ErrnoException) =>
      gone(e.code === 'ENOENT' ? new MissingToolError(this.argv[0]!) : e),
    );
    child.on('close', (code, signal) =>
      gone(
        new CommandError(this.target, this.argv, code ?? 128, `${this.stderr}${signal ? `\nkilled by ${signal}` : ''}`),
      ),
    );
    child.stdin.on('error', () => undefined);
    this.hold(false);
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
    const c = this.child;
    if (!c) return;
    for (const h of [c, c.stdin, c.stdout, c.stderr] as { ref(): void; unref(): void }[]) on ? h.ref() : h.unref();
  }
}
