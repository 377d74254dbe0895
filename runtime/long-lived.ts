// A child process that stays (runtime/exec-session.ts, runtime/nft-session.ts): its pipes, its end
// reported once as natops's typed errors, and no hold on Node's event loop unless asked for.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandError, MissingToolError } from '../common/exec.ts';

/** What an end is reported as: where it ran, what it ran, what it said. */
export interface EndContext {
  target: string;
  argv: readonly string[];
  stderr: string;
}

/**
 * Starts `argv` with pipes, idle (holdEventLoop). `ended` hears its end once: it could not start
 * (a missing program is a MissingToolError), or it exited (a CommandError from `context()`).
 */
export function startLongLived(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  ended: (e: Error) => void,
  context: () => EndContext,
): ChildProcessWithoutNullStreams {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env });
  child.on('error', (e: NodeJS.ErrnoException) => ended(e.code === 'ENOENT' ? new MissingToolError(argv[0]!) : e));
  child.on('close', (code, signal) => {
    const c = context();
    ended(new CommandError(c.target, c.argv, code ?? 128, `${c.stderr}${signal ? `\nkilled by ${signal}` : ''}`));
  });
  child.stdin.on('error', () => undefined);
  holdEventLoop(child, false);
  return child;
}

/** While the child works for someone it keeps Node running; idle, it does not (a CLI run still exits). */
export function holdEventLoop(child: ChildProcessWithoutNullStreams, on: boolean): void {
  for (const h of [child, child.stdin, child.stdout, child.stderr] as { ref(): void; unref(): void }[])
    on ? h.ref() : h.unref();
}
