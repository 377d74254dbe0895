// One redis-server per data directory: a natops that dies without stopping its Redis (SIGKILL)
// leaves it running, and the next start must use that one, not start a second on the same
// append-only file. It is private: a password only natops knows, and files only its user reads.
// Real redis-server processes, found through /proc.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, LocalRedis, REDIS_PASSWORD_FILE, REDIS_RECORD, RedisStartError } from '../../server/redis-server.ts';

/** pids of the redis-server processes whose working directory (redis chdirs to --dir) is `dir`. */
async function redisServersOn(dir: string): Promise<number[]> {
  const real = await realpath(dir);
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const comm = await readFile(`/proc/${name}/comm`, 'utf8').catch(() => '');
    if (comm.trim() !== 'redis-server') continue;
    const cwd = await readlink(`/proc/${name}/cwd`).catch(() => '');
    const state = (await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')).split(') ')[1]?.[0];
    if (cwd === real && state !== 'Z') pids.push(Number(name));
  }
  return pids.sort();
}

async function withClient<T>(url: string, f: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await f(c);
  } finally {
    c.disconnect();
  }
}

/** The permission bits of `path`, as an octal string ("700"): what an assertion message should show. */
const modeOf = async (path: string) => ((await stat(path)).mode & 0o7777).toString(8);

/** What a local user who knows the port but not the password gets: the error of a plain GET. */
async function withoutPassword(port: number): Promise<string> {
  const c = new Redis(`redis://127.0.0.1:${port}`, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => undefined);
  try {
    return `answered ${await c.get('anything')}`;
  } catch (e) {
    return (e as Error).message;
  } finally {
    c.disconnect();
  }
}

describe('LocalRedis: one redis-server per data directory (real redis-server)', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'natops-redis-'));
  });
  // Every redis-server this file started runs in a directory under `root`: kill those, by pid.
  after(async () => {
    if (!root) return;
    for (const sub of await readdir(root).catch(() => [])) {
      for (const pid of await redisServersOn(join(root, sub)).catch(() => [])) process.kill(pid, 'SIGKILL');
    }
    await rm(root, { recursive: true, force: true });
  });

  it('requires its password: a local connection without it is refused (NOAUTH); its URL carries it', async () => {
    const dir = join(root, 'auth');
    const r = await LocalRedis.start(dir);
    try {
      assert.match(await withoutPassword(r.port), /^NOAUTH/);
      const password = (await readFile(join(dir, REDIS_PASSWORD_FILE), 'utf8')).trim();
      assert.match(password, /^[0-9a-f]{64}$/);
      assert.equal(new URL(r.url).password, password);
      await withClient(r.url, (c) => c.set('k', 'v'));
      assert.equal(await withClient(r.url, (c) => c.get('k')), 'v');
    } finally {
      await r.stop();
    }
  });

  it('keeps its files private under a umask of 022: its directory 0700 (even an existing 0755 one), AOF and password 0600', async () => {
    const dir = join(root, 'modes');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const umask = process.umask(0o022);
    let r: LocalRedis | undefined;
    try {
      r = await LocalRedis.start(dir);
      await withClient(r.url, (c) => c.set('private', 'manifest'));
      await withClient(r.url, (c) => c.bgrewriteaof());
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(await modeOf(dir), '700');
      assert.equal(await modeOf(join(dir, REDIS_PASSWORD_FILE)), '600');
      const aof = join(dir, 'appendonlydir');
      assert.equal(await modeOf(aof), '700');
      const files = await readdir(aof);
      assert.ok(files.length >= 2, `AOF files in ${aof}: ${files.join(', ')}`);
      for (const f of files) assert.equal(await modeOf(join(aof, f)), '600', f);
      assert.equal(process.umask(0o022), 0o022, "natops's own umask is left as it was");
    } finally {
      process.umask(umask);
      await r?.stop();
    }
  });

  it('a port another process answers on: start fails, and the password is never sent to it', async () => {
    const dir = join(root, 'impostor');
    // Answers every command as a Redis that says yes to anything would, and keeps what it is sent.
    let heard = '';
    const info = '# Server\r\nprocess_id:1\r\n';
    const impostor = createServer((s) =>
      s.on('data', (b: Buffer) => {
        heard += b.toString();
        s.write(/info/i.test(b.toString()) ? `$${info.length}\r\n${info}\r\n` : '+PONG\r\n');
      }),
    );
    const port = await freePort();
    await new Promise<void>((res) => impostor.listen(port, '127.0.0.1', res));
    // A redis-server slow to start (as on a loaded machine): the impostor has all the time to answer first.
    const bin = join(root, 'slow-bin');
    await mkdir(bin, { recursive: true });
    const real = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
    await writeFile(join(bin, 'redis-server'), `#!/bin/sh\nsleep 1\nexec ${real} "$@"\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      await assert.rejects(LocalRedis.start(dir, port), RedisStartError);
      const password = (await readFile(join(dir, REDIS_PASSWORD_FILE), 'utf8')).trim();
      assert.ok(!heard.includes(password), 'the impostor never got the password');
    } finally {
      process.env.PATH = path;
      impostor.close();
    }
    assert.deepEqual(await redisServersOn(dir), []);
  });

  it('an orphaned redis-server from before passwords is reused and given the password', async () => {
    const dir = join(root, 'legacy');
    await mkdir(dir, { mode: 0o700 });
    const port = await freePort();
    const legacy = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''],
      { stdio: 'ignore', detached: true },
    );
    legacy.unref();
    for (let i = 0; (await withoutPassword(port)) !== 'answered null'; i++) {
      assert.ok(i < 100, 'the legacy redis-server answers');
      await new Promise((res) => setTimeout(res, 50));
    }
    await writeFile(join(dir, REDIS_RECORD), JSON.stringify({ pid: legacy.pid, port }));
    const r = await LocalRedis.start(dir);
    assert.equal(r.pid, legacy.pid);
    assert.match(await withoutPassword(port), /^NOAUTH/);
    assert.equal(await withClient(r.url, (c) => c.ping()), 'PONG');
    await r.stop();
    assert.deepEqual(await redisServersOn(dir), []);
  });

  it('reuses the redis-server an owner that died left running, with its keys; stop() then stops it', async () => {
    const dir = join(root, 'reuse');
    const first = await LocalRedis.start(dir);
    const [pid, ...others] = await redisServersOn(dir);
    assert.ok(pid && others.length === 0, `one redis-server on ${dir}`);
    await withClient(first.url, (c) => c.set('kept', 'yes'));
    // The owner dies without stopping it: nothing is called on `first` again.

    const password = await readFile(join(dir, REDIS_PASSWORD_FILE), 'utf8');
    const second = await LocalRedis.start(dir);
    assert.deepEqual(await redisServersOn(dir), [pid], 'the running redis-server is reused, no second one');
    assert.equal(second.pid, pid);
    assert.equal(second.url, first.url);
    assert.equal(await readFile(join(dir, REDIS_PASSWORD_FILE), 'utf8'), password, 'the password file is reused');
    assert.equal(await withClient(second.url, (c) => c.get('kept')), 'yes');

    // A natops that stops normally stops the Redis it reused.
    await second.stop();
    assert.deepEqual(await redisServersOn(dir), []);
  });

  it('a natops process killed with SIGKILL: its orphaned redis-server keeps serving, and the next start reuses it', async () => {
    const dir = join(root, 'sigkill');
    // The owner in a process of its own, as `natops serve` is: it starts Redis, writes, and is killed.
    const owner = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        [
          `import { LocalRedis } from ${JSON.stringify(new URL('../../server/redis-server.ts', import.meta.url).pathname)};`,
          'import { Redis } from "ioredis";',
          `const r = await LocalRedis.start(${JSON.stringify(dir)});`,
          'const c = new Redis(r.url); await c.set("kept", "orphan"); c.disconnect();',
          'process.stdout.write("ready\\n"); setInterval(() => undefined, 1000);',
        ].join('\n'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      owner.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
      owner.once('exit', (code) => reject(new Error(`the owner exited with ${code} before starting Redis`)));
    });
    const [pid] = await redisServersOn(dir);
    owner.kill('SIGKILL');
    await new Promise((r) => owner.once('exit', r));

    const again = await LocalRedis.start(dir);
    assert.equal(again.pid, pid);
    // Its stdout now goes nowhere: it must survive logging (an AOF rewrite logs several lines).
    await withClient(again.url, (c) => c.bgrewriteaof());
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await withClient(again.url, (c) => c.get('kept')), 'orphan');
    assert.deepEqual(await redisServersOn(dir), [pid]);
    await again.stop();
    assert.deepEqual(await redisServersOn(dir), []);
  });

  it('starts a fresh redis-server when the record is stale (pid dead, or not a redis-server), keeping the data', async () => {
    const dir = join(root, 'stale');
    const first = await LocalRedis.start(dir);
    await withClient(first.url, (c) => c.set('kept', 'aof'));
    const [oldPid] = await redisServersOn(dir);
    await first.stop('SIGKILL');
    assert.deepEqual(await redisServersOn(dir), []);

    const second = await LocalRedis.start(dir);
    const now = await redisServersOn(dir);
    assert.equal(now.length, 1);
    assert.notEqual(now[0], oldPid);
    assert.equal(second.pid, now[0]);
    assert.equal(await withClient(second.url, (c) => c.get('kept')), 'aof', 'the append-only file was loaded');
    await second.stop();

    // A record naming a live process that is not a redis-server (the pid was reused): not trusted.
    const record = (await readdir(dir)).find((f) => f.endsWith('.json'));
    assert.ok(record, `a record in ${dir}`);
    await writeFile(join(dir, record), JSON.stringify({ pid: process.pid, port: second.port }));
    const third = await LocalRedis.start(dir);
    assert.deepEqual(await redisServersOn(dir), [third.pid!]);
    assert.notEqual(third.pid, process.pid);
    await third.stop();
    assert.deepEqual(await redisServersOn(dir), []);
  });

  it('restart() after a crash brings it back on the same port and data; restart() while it runs does not start a second', async () => {
    const dir = join(root, 'restart');
    const r = await LocalRedis.start(dir);
    await withClient(r.url, (c) => c.set('kept', 'restart'));
    await r.stop('SIGKILL');
    await r.restart();
    assert.equal(await withClient(r.url, (c) => c.get('kept')), 'restart');
    const [pid] = await redisServersOn(dir);
    await r.restart();
    assert.deepEqual(await redisServersOn(dir), [pid]);
    await r.stop();
    assert.deepEqual(await redisServersOn(dir), []);
  });
});

describe('natops serve and its data directory (real processes)', () => {
  let dir: string;
  const children: import('node:child_process').ChildProcess[] = [];
  const BIN = new URL('../../bin/natops.js', import.meta.url).pathname;

  /** `natops serve` on `data` (default `dir`); resolves once it says where it listens, or with its exit code and output. */
  const serveOn = (repo: string, data = dir) =>
    new Promise<{ child: import('node:child_process').ChildProcess; exit?: number; output: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'serve', '--repo', repo, '--listen', '127.0.0.1:0'], {
        env: {
          ...process.env,
          NATOPS_DATA_DIR: data,
          NATOPS_RESYNC_MS: '0',
          NATOPS_LAB: `d${process.pid.toString(16).slice(-7)}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let output = '';
      const seen = (b: Buffer) => {
        output += b.toString();
        // `output` stays live: what it prints later (its shutdown) is seen too.
        if (/webhook http:\/\//.test(output))
          resolve({
            child,
            get output() {
              return output;
            },
          });
      };
      child.stdout!.on('data', seen);
      child.stderr!.on('data', seen);
      child.on('exit', (code) => resolve({ child, exit: code ?? 1, output }));
    });

  /** What the running serve of `data` recorded for `natops status`, once it has. */
  async function serveRecord(data: string, pid: number): Promise<{ url: string; redisUrl: string }> {
    for (let i = 0; ; i++) {
      const text = await readFile(join(data, 'serve.json'), 'utf8').catch(() => '');
      const rec = text ? (JSON.parse(text) as { url: string; redisUrl: string; pid: number }) : undefined;
      if (rec?.pid === pid) return rec;
      assert.ok(i < 100, `serve.json in ${data} names pid ${pid}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** What /readyz says of Redis: natops working with its Redis. */
  const redisCheck = async (url: string) =>
    ((await (await fetch(`${url}/readyz`)).json()) as { checks: { redis: string } }).checks.redis;

  const stopped = async (child: import('node:child_process').ChildProcess, signal: NodeJS.Signals) => {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-serve-dir-'));
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const sub of ['redis', 'private/redis'])
      for (const pid of await redisServersOn(join(dir, sub)).catch(() => [])) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps its data private: the data dir 0700 even when it was 0755, the password file and serve.json 0600; no password, no Redis; never shown', async () => {
    const data = join(dir, 'private');
    await mkdir(data, { mode: 0o755 });
    await chmod(data, 0o755);
    // A serve.json left by a crash, readable by all: rewritten private, not kept as it was.
    await writeFile(join(data, 'serve.json'), '{}', { mode: 0o644 });
    await chmod(join(data, 'serve.json'), 0o644);
    // Started under the usual umask (the child inherits it at spawn).
    const umask = process.umask(0o022);
    const starting = serveOn(join(dir, 'repo.git'), data);
    process.umask(umask);
    const serve = await starting;
    assert.equal(serve.exit, undefined, serve.output);
    const rec = await serveRecord(data, serve.child.pid!);
    assert.equal(await modeOf(data), '700');
    assert.equal(await modeOf(join(data, 'redis')), '700');
    assert.equal(await modeOf(join(data, 'redis', REDIS_PASSWORD_FILE)), '600');
    assert.equal(await modeOf(join(data, 'serve.json')), '600');

    const password = (await readFile(join(data, 'redis', REDIS_PASSWORD_FILE), 'utf8')).trim();
    const redisUrl = new URL(rec.redisUrl);
    assert.equal(redisUrl.password, password, 'serve.json carries the URL natops uses, password included');
    assert.match(await withoutPassword(Number(redisUrl.port)), /^NOAUTH/);
    assert.equal(await redisCheck(rec.url), 'ok', 'while natops itself works with its Redis');
    await stopped(serve.child, 'SIGTERM');
    assert.ok(!serve.output.includes(password), `its output never shows the password:\n${serve.output}`);
  });

  it('a second serve on the same directory refuses; after a SIGKILL the next one reuses the orphaned redis-server', async () => {
    const repo = join(dir, 'repo.git');
    const first = await serveOn(repo);
    assert.equal(first.exit, undefined, first.output);
    const redis = await redisServersOn(join(dir, 'redis'));
    assert.equal(redis.length, 1);
    const firstRecord = await serveRecord(dir, first.child.pid!);
    const password = await readFile(join(dir, 'redis', REDIS_PASSWORD_FILE), 'utf8');

    const second = await serveOn(repo);
    assert.equal(second.exit, 2, second.output);
    assert.match(second.output, new RegExp(`another natops serve \\(pid ${first.child.pid}\\) is using ${dir}`));

    await stopped(first.child, 'SIGKILL');
    assert.deepEqual(await redisServersOn(join(dir, 'redis')), redis, 'the orphaned redis-server is still there');
    const third = await serveOn(repo);
    assert.equal(third.exit, undefined, third.output);
    assert.deepEqual(
      await redisServersOn(join(dir, 'redis')),
      redis,
      'one redis-server on the directory, the same one',
    );
    // The orphan requires the password it was started with: the file is reused, not made again.
    assert.equal(await readFile(join(dir, 'redis', REDIS_PASSWORD_FILE), 'utf8'), password);
    const thirdRecord = await serveRecord(dir, third.child.pid!);
    assert.equal(thirdRecord.redisUrl, firstRecord.redisUrl);
    assert.equal(await redisCheck(thirdRecord.url), 'ok');
    await stopped(third.child, 'SIGTERM');
    assert.deepEqual(await redisServersOn(join(dir, 'redis')), [], 'a normal stop stops the reused redis-server too');

    // A clean stop and a new start: a new redis-server, the same password.
    const fourth = await serveOn(repo);
    assert.equal(fourth.exit, undefined, fourth.output);
    assert.equal(await readFile(join(dir, 'redis', REDIS_PASSWORD_FILE), 'utf8'), password);
    assert.equal(await redisCheck((await serveRecord(dir, fourth.child.pid!)).url), 'ok');
    await stopped(fourth.child, 'SIGTERM');
  });
});
