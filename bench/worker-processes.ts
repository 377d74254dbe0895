// Worker processes a bench starts, steers and stops. Each is a Node program that writes "ready" on
// stdout once it takes jobs, and answers a command line on stdin ("pause", "resume") with the
// command's past ("paused", "resumed") once done; its stderr (its log) goes to a file of its own.
// Every one started is in `running` until it exits, for the bench's clean-up.
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface WorkerProcess {
  child: ChildProcess;
  log: string;
  /** Sends `command` and resolves when the process says it is done. */
  tell(command: 'pause' | 'resume'): Promise<void>;
}

interface Program {
  path: string;
  args: readonly string[];
  nodeArgs?: readonly string[];
  env?: Record<string, string>;
}

export class WorkerProcesses {
  readonly running = new Set<ChildProcess>();

  /**
   * `count` processes of `node [nodeArgs] --import tsx program ...args` (with `env` added to this
   * process's environment), once each is ready; `logFile(i)` gets the i-th one's stderr.
   */
  async start(count: number, program: Program, logFile: (i: number) => string): Promise<WorkerProcess[]> {
    return Promise.all(Array.from({ length: count }, (_, i) => this.startOne(program, logFile(i))));
  }

  private startOne(
    program: { path: string; args: readonly string[]; nodeArgs?: readonly string[] },
    log: string,
  ): Promise<WorkerProcess> {
    const child = spawn(
      process.execPath,
      [...(program.nodeArgs ?? []), '--import', 'tsx', program.path, ...program.args],
      {
        stdio: ['pipe', 'pipe', openSync(log, 'a')],
      },
    );
    this.running.add(child);
    const ended = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) => {
        this.running.delete(child);
        reject(
          new Error(`worker process ${log} ended (${code ?? signal}):\n${readFileSync(log, 'utf8').slice(-2000)}`),
        );
      }),
    );
    ended.catch(() => undefined);
    // each line the process writes settles the oldest wait for it
    const waiting: { line: string; done: () => void }[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const i = waiting.findIndex((w) => w.line === line);
      if (i >= 0) waiting.splice(i, 1)[0]!.done();
    });
    const expect = (line: string) => Promise.race([new Promise<void>((done) => waiting.push({ line, done })), ended]);
    const tell = async (command: 'pause' | 'resume') => {
      const answered = expect(command === 'pause' ? 'paused' : 'resumed');
      child.stdin!.write(`${command}\n`);
      await answered;
    };
    return expect('ready').then(() => ({ child, log, tell }));
  }

  /** SIGTERM, as a supervisor stops `natops worker` (the jobs in hand finish); SIGKILL after 30 s. */
  async stop(list: readonly WorkerProcess[]): Promise<void> {
    await Promise.all(
      list.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Every one still running, at once: for a clean-up that cannot wait (also from an 'exit' handler). */
  killAll(): void {
    for (const c of this.running) c.kill('SIGKILL');
  }
}
