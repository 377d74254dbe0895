// Starts a real redis-server (Debian's) on a free local port: the local default when no Redis
// is configured, and what tests use. Append-only file with fsync on every write, so a restart
// (or a kill) loses no queued job.
//
// One redis-server per data directory: the one started is recorded (pid, port) in the directory,
// and a natops that died without stopping it (SIGKILL) finds it there on its next start and uses
// it, instead of starting a second redis-server on the same append-only file.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readlink, realpath } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { errorMessage, NatopsError } from '../common/errors.ts';
import { MissingToolError } from '../common/exec.ts';
import { writeFileAtomic } from '../common/fs.ts';
import { processName, processStart } from './data-dir.ts';

export class RedisStartError extends NatopsError {}

/** In the data directory: which redis-server serves it. */
export const REDIS_RECORD = 'natops-redis.json';

interface RedisRecord {
  pid: number;
  port: number;
}

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
  /** the redis-server this object controls: started here, or found running and reused */
  private serverPid: number | undefined;
  private log = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.serverPid;
  }

  /**
   * The redis-server of `dir`: the recorded one if it still runs there (then on its own port,
   * whatever `port` says), else a new one on `port` (default: a free one).
   */
  static async start(dir: string, port?: number): Promise<LocalRedis> {
    await mkdir(dir, { recursive: true });
    const live = await recordedServer(dir);
    if (live) {
      const r = new LocalRedis(dir, live.port);
      r.serverPid = live.pid;
      return r;
    }
    const r = new LocalRedis(dir, port ?? (await freePort()));
    await r.restart();
    return r;
  }

  /** (Re)starts on the same port and data directory; nothing to do if its redis-server runs. */
  async restart(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const live = await recordedServer(this.dir);
    if (live && live.pid === this.serverPid && live.port === this.port) return;
    if (live)
      throw new RedisStartError(
        `redis-server pid ${live.pid} already serves ${this.dir} on port ${live.port}; not starting a second one`,
      );
    this.log = '';
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    child.stdout!.on('data', (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-4000);
    });
    child.stderr!.on('data', (b: Buffer) => {
      this.log = (this.log + b.toString()).slice(-4000);
    });
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new MissingToolError('redis-server') : e),
      );
      child.once('exit', (code) => reject(new RedisStartError(`redis-server exited with ${code}:\n${this.log}`)));
    });
    failed.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([ping(this.url), failed]);
      if (ok) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new RedisStartError(`redis-server on port ${this.port} did not answer:\n${this.log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.serverPid = child.pid!;
    const record: RedisRecord = { pid: this.serverPid, port: this.port };
    await writeFileAtomic(join(this.dir, REDIS_RECORD), `${JSON.stringify(record)}\n`).catch((e: unknown) => {
      // Unrecorded, the next start could not find it and would start a second one.
      child.kill('SIGKILL');
      throw new RedisStartError(`cannot record redis-server in ${this.dir}: ${errorMessage(e)}`, { cause: e });
    });
  }

  /** Stops it: SIGTERM (a clean shutdown) or SIGKILL (a crash). A reused redis-server is stopped too. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (child) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await exited;
      return;
    }
    // Not our child: signal it by pid, once sure that pid is still this directory's redis-server.
    const pid = this.serverPid;
    if (pid === undefined || !(await servesDir(pid, this.dir))) return;
    const started = await processStart(pid);
    process.kill(pid, signal);
    const deadline = Date.now() + 30_000;
    while ((await processStart(pid)) === started && started !== undefined) {
      if (Date.now() > deadline)
        throw new RedisStartError(`redis-server pid ${pid} did not exit within 30 s of ${signal}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** True when `pid` is a running redis-server whose working directory (redis chdirs to --dir) is `dir`. */
async function servesDir(pid: number, dir: string): Promise<boolean> {
  if ((await processName(pid)) !== 'redis-server') return false;
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  return cwd !== undefined && cwd === (await realpath(dir));
}

function parseRecord(text: string): RedisRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<RedisRecord>;
    const ok =
      Number.isSafeInteger(r.pid) && r.pid! > 0 && Number.isSafeInteger(r.port) && r.port! > 0 && r.port! < 65536;
    return ok ? { pid: r.pid!, port: r.port! } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The recorded redis-server of `dir` if it still runs there and answers on the recorded port as
 * that process; undefined when the record is missing or stale (process gone, pid now another
 * program, or a redis-server of another directory). One that runs on `dir` but cannot be
 * confirmed is an error: starting a second one on its append-only file is what this prevents.
 */
async function recordedServer(dir: string): Promise<RedisRecord | undefined> {
  const text = await readFile(join(dir, REDIS_RECORD), 'utf8').catch(() => undefined);
  const rec = text === undefined ? undefined : parseRecord(text);
  if (!rec || !(await servesDir(rec.pid, dir))) return undefined;
  const want = await realpath(dir);
  const url = `redis://127.0.0.1:${rec.port}`;
  // It may be busy (a natops killed right after starting it, a large append-only file loading).
  const deadline = Date.now() + 30_000;
  let seen = 'no answer';
  for (;;) {
    const who = await identify(url);
    if (who && who.pid === rec.pid && who.dir === want) return rec;
    if (who) seen = `port ${rec.port} is answered by pid ${who.pid} on ${who.dir}`;
    if (!(await servesDir(rec.pid, dir))) return undefined;
    if (Date.now() > deadline) {
      throw new RedisStartError(
        `redis-server pid ${rec.pid} runs on ${dir} but does not answer as itself on port ${rec.port} (${seen}); stop it, then start natops again`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One short connection that never retries: what a probe needs; undefined when it fails. */
async function probe<T>(url: string, ask: (c: Redis) => Promise<T>): Promise<T | undefined> {
  const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await ask(c);
  } catch {
    return undefined;
  } finally {
    c.disconnect();
  }
}

const ping = async (url: string) => (await probe(url, (c) => c.ping())) === 'PONG';

/** The pid and data directory of the redis-server answering at `url` (INFO, CONFIG GET dir). */
function identify(url: string): Promise<{ pid: number; dir: string } | undefined> {
  return probe(url, async (c) => {
    const pid = Number(/^process_id:(\d+)/m.exec(await c.info('server'))?.[1]);
    const [, dir] = (await c.config('GET', 'dir')) as string[];
    return Number.isSafeInteger(pid) && dir ? { pid, dir } : undefined;
  });
}
