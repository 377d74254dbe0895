// Starts a real redis-server (Debian's) on a free local port: the local default when no Redis
// is configured, and what tests use. Append-only file with fsync on every write, so a restart
// (or a kill) loses no queued job.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { NatopsError } from '../common/errors.ts';
import { MissingToolError } from '../runtime/exec.ts';

export class RedisStartError extends NatopsError {}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export class LocalRedis {
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(readonly dir: string, readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(dir: string, port?: number): Promise<LocalRedis> {
    const r = new LocalRedis(dir, port ?? (await freePort()));
    await r.restart();
    return r;
  }

  /** (Re)starts on the same port and data directory. */
  async restart(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--protected-mode', 'yes',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => { this.log = (this.log + b.toString()).slice(-4000); });
    child.stderr!.on('data', (b: Buffer) => { this.log = (this.log + b.toString()).slice(-4000); });
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new MissingToolError('redis-server') : e));
      child.once('exit', (code) => reject(new RedisStartError(`redis-server exited with ${code}:\n${this.log}`)));
    });
    failed.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([ping(this.url), failed]);
      if (ok) return;
      if (Date.now() > deadline) throw new RedisStartError(`redis-server on port ${this.port} did not answer:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops it: SIGTERM (a clean shutdown) or SIGKILL (a crash). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }
}

async function ping(url: string): Promise<boolean> {
  const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}
