// Starts a real redis-server (Debian's) on a free local port: the local default when no Redis
// is configured, and what tests use. Append-only file with fsync on every write, so a restart
// (or a kill) loses no queued job.
//
// One redis-server per data directory: the one started is recorded (pid, port) in the directory,
// and a natops that died without stopping it (SIGKILL) finds it there on its next start and uses
// it, instead of starting a second redis-server on the same append-only file.
//
// It is natops's alone: whoever can write its jobs is root on the gateways. It requires a
// password rather than listening on a unix socket, because the URL natops hands around (BullMQ,
// ioredis, serve.json for `natops status`, `natops worker --redis`) then stays a plain redis://
// URL that carries it. The password is made once and kept 0600 in the directory, so a
// redis-server left running is reused with it; redis-server reads it on stdin, not argv, which
// every local user can read in /proc. Its directory is 0700 and its files 0600 (the AOF holds
// private manifests). natops sends the password only to its own child: the one that holds the
// listening socket, found in /proc, not whoever answers first on a port that was free a moment ago.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { errorMessage, NatopsError } from '../common/errors.ts';
import { childEnv, MissingToolError } from '../common/exec.ts';
import { writeFileAtomic } from '../common/fs.ts';
import { createExclusive, makePrivateDir, processName, processStart } from './data-dir.ts';

export class RedisStartError extends NatopsError {}

/** In the data directory: which redis-server serves it. */
export const REDIS_RECORD = 'natops-redis.json';
/** In the data directory: the password its redis-server requires (0600, made once). */
export const REDIS_PASSWORD_FILE = 'natops-redis-password';

const localUrl = (port: number, password?: string) =>
  `redis://${password === undefined ? '' : `:${password}@`}127.0.0.1:${port}`;

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
    private readonly password: string,
  ) {}

  /** With the password: for connections, never for logs (common/redact.ts). */
  get url(): string {
    return localUrl(this.port, this.password);
  }

  get pid(): number | undefined {
    return this.serverPid;
  }

  /**
   * The redis-server of `dir`: the recorded one if it still runs there (then on its own port,
   * whatever `port` says), else a new one on `port` (default: a free one).
   */
  static async start(dir: string, port?: number): Promise<LocalRedis> {
    await makePrivateDir(dir);
    const password = await redisPassword(dir);
    const live = await recordedServer(dir, password);
    if (live) {
      const r = new LocalRedis(dir, live.port, password);
      r.serverPid = live.pid;
      return r;
    }
    const r = new LocalRedis(dir, port ?? (await freePort()), password);
    await r.restart();
    return r;
  }

  /** (Re)starts on the same port and data directory; nothing to do if its redis-server runs. */
  async restart(): Promise<void> {
    await makePrivateDir(this.dir);
    const live = await recordedServer(this.dir, this.password);
    if (live && live.pid === this.serverPid && live.port === this.port) return;
    if (live)
      throw new RedisStartError(
        `redis-server pid ${live.pid} already serves ${this.dir} on port ${live.port}; not starting a second one`,
      );
    this.log = '';
    const child = spawnPrivate(
      'redis-server',
      [
        '-', // the configuration on stdin first: the password, which argv would show to everyone
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
      { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() },
    );
    this.child = child;
    child.stdin!.on('error', () => undefined); // it exited first: reported by 'exit' below
    child.stdin!.end(`requirepass ${this.password}\n`);
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
    const want = await realpath(this.dir);
    const pid = child.pid;
    // Our child, listening and answering as itself; not merely something answering on the port.
    const ours = async () => {
      if (pid === undefined || !(await listensOn(pid, this.port))) return false;
      const who = await identify(this.url);
      return who?.pid === pid && who.dir === want;
    };
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([ours(), failed]);
      if (ok) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new RedisStartError(`redis-server on port ${this.port} did not answer as itself:\n${this.log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.serverPid = pid!;
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

/**
 * spawn() under umask 077, so that what redis-server creates (the AOF and its rewrites) is its
 * user's alone. Node has no umask per child; spawn() is synchronous, so no other JavaScript runs
 * while the process's umask is changed (a file operation already running in libuv's threads
 * would create its file 0600: stricter, never looser).
 */
function spawnPrivate(cmd: string, args: string[], opts: SpawnOptions): ChildProcess {
  const before = process.umask(0o077);
  try {
    return spawn(cmd, args, opts);
  } finally {
    process.umask(before);
  }
}

/**
 * The password of `dir`'s redis-server: made once (random), then read back on every start, so a
 * redis-server left running is reused with it. Kept 0600, even when made otherwise.
 */
async function redisPassword(dir: string): Promise<string> {
  const file = join(dir, REDIS_PASSWORD_FILE);
  let password: string;
  try {
    await createExclusive(file, `${randomBytes(32).toString('hex')}\n`, 0o600);
    await chmod(file, 0o600);
    password = (await readFile(file, 'utf8')).trim();
  } catch (e) {
    throw new RedisStartError(`cannot make or read ${file}: ${errorMessage(e)}`, { cause: e });
  }
  // It goes into a URL and a configuration line as is: only characters both take unquoted.
  if (!/^[A-Za-z0-9._~-]{16,}$/.test(password))
    throw new RedisStartError(
      `${file} holds no usable password (16 or more of A-Z a-z 0-9 . _ ~ -); remove it to have a new one made`,
    );
  return password;
}

/**
 * True when process `pid` holds a socket listening on TCP `port` (in its network namespace). Whoever
 * listens there is sent the password, so this is asked before connecting, of /proc, not of the
 * socket: an answer on the port proves nothing about who gave it.
 */
async function listensOn(pid: number, port: number): Promise<boolean> {
  const table = await readFile(`/proc/${pid}/net/tcp`, 'utf8').catch(() => '');
  const sockets = new Set<string>();
  // "sl local_address rem_address st ... inode": local "ADDR:PORT" in hex; st 0A is LISTEN.
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === '0A' && Number.parseInt(f[1]?.split(':')[1] ?? '', 16) === port) sockets.add(`socket:[${f[9]}]`);
  }
  if (!sockets.size) return false;
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    if (sockets.has(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) return true;
  }
  return false;
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
async function recordedServer(dir: string, password: string): Promise<RedisRecord | undefined> {
  const text = await readFile(join(dir, REDIS_RECORD), 'utf8').catch(() => undefined);
  const rec = text === undefined ? undefined : parseRecord(text);
  if (!rec || !(await servesDir(rec.pid, dir))) return undefined;
  const want = await realpath(dir);
  const url = localUrl(rec.port, password);
  // It may be busy (a natops killed right after starting it, a large append-only file loading).
  const deadline = Date.now() + 30_000;
  let seen = `no answer with the password in ${join(dir, REDIS_PASSWORD_FILE)}`;
  for (;;) {
    const listening = await listensOn(rec.pid, rec.port);
    // One started before natops used passwords has none: it gets this one (one that has refuses, NOAUTH).
    if (listening) await probe(localUrl(rec.port), (c) => c.config('SET', 'requirepass', password));
    const who = listening ? await identify(url) : undefined;
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

/** The pid and data directory of the redis-server answering at `url` (INFO, CONFIG GET dir). */
function identify(url: string): Promise<{ pid: number; dir: string } | undefined> {
  return probe(url, async (c) => {
    const pid = Number(/^process_id:(\d+)/m.exec(await c.info('server'))?.[1]);
    const [, dir] = (await c.config('GET', 'dir')) as string[];
    return Number.isSafeInteger(pid) && dir ? { pid, dir } : undefined;
  });
}
