// One redis-server per data directory: a natops that dies without stopping its Redis (SIGKILL)
// leaves it running, and the next start must use that one, not start a second on the same
// append-only file. Real redis-server processes, found through /proc.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { LocalRedis } from '../../server/redis-server.ts';

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

  it('reuses the redis-server an owner that died left running, with its keys; stop() then stops it', async () => {
    const dir = join(root, 'reuse');
    const first = await LocalRedis.start(dir);
    const [pid, ...others] = await redisServersOn(dir);
    assert.ok(pid && others.length === 0, `one redis-server on ${dir}`);
    await withClient(first.url, (c) => c.set('kept', 'yes'));
    // The owner dies without stopping it: nothing is called on `first` again.

    const second = await LocalRedis.start(dir);
    assert.deepEqual(await redisServersOn(dir), [pid], 'the running redis-server is reused, no second one');
    assert.equal(second.pid, pid);
    assert.equal(second.url, first.url);
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

  /** `natops serve` on `dir`; resolves once it says where it listens, or with its exit code and output. */
  const serveOn = (repo: string) =>
    new Promise<{ child: import('node:child_process').ChildProcess; exit?: number; output: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'serve', '--repo', repo, '--listen', '127.0.0.1:0'], {
        env: {
          ...process.env,
          NATOPS_DATA_DIR: dir,
          NATOPS_RESYNC_MS: '0',
          NATOPS_LAB: `d${process.pid.toString(16).slice(-7)}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let output = '';
      const seen = (b: Buffer) => {
        output += b.toString();
        if (/webhook http:\/\//.test(output)) resolve({ child, output });
      };
      child.stdout!.on('data', seen);
      child.stderr!.on('data', seen);
      child.on('exit', (code) => resolve({ child, exit: code ?? 1, output }));
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-serve-dir-'));
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const pid of await redisServersOn(join(dir, 'redis')).catch(() => [])) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('a second serve on the same directory refuses; after a SIGKILL the next one reuses the orphaned redis-server', async () => {
    const repo = join(dir, 'repo.git');
    const first = await serveOn(repo);
    assert.equal(first.exit, undefined, first.output);
    const redis = await redisServersOn(join(dir, 'redis'));
    assert.equal(redis.length, 1);

    const second = await serveOn(repo);
    assert.equal(second.exit, 2, second.output);
    assert.match(second.output, new RegExp(`another natops serve \\(pid ${first.child.pid}\\) is using ${dir}`));

    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    assert.deepEqual(await redisServersOn(join(dir, 'redis')), redis, 'the orphaned redis-server is still there');
    const third = await serveOn(repo);
    assert.equal(third.exit, undefined, third.output);
    assert.deepEqual(
      await redisServersOn(join(dir, 'redis')),
      redis,
      'one redis-server on the directory, the same one',
    );
    third.child.kill('SIGTERM');
    await new Promise((r) => third.child.once('exit', r));
    assert.deepEqual(await redisServersOn(join(dir, 'redis')), [], 'a normal stop stops the reused redis-server too');
  });
});
