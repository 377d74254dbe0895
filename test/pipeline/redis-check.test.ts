// The start-up check of the Redis natops uses, against real redis-servers started with the
// settings that lose records: no persistence, snapshots only, an evicting maxmemory-policy, and a
// user that may not run CONFIG. natops's own redis-server passes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { freePort, LocalRedis } from '../../server/redis-server.ts';
import { checkRedis, redisFindings } from '../../state/redis-check.ts';

describe('the Redis check (real redis-servers)', () => {
  let dir: string;
  const servers: ChildProcess[] = [];
  const clients: Redis[] = [];
  let own: LocalRedis | undefined;

  /** A redis-server with `args`, and a client of it. */
  async function redisWith(args: string[]): Promise<{ url: string; client: Redis }> {
    const port = await freePort();
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no', ...args],
      { stdio: 'ignore' },
    );
    servers.push(child);
    const url = `redis://127.0.0.1:${port}`;
    const client = connect(url);
    for (let i = 0; ; i++) {
      if ((await client.ping().catch(() => undefined)) === 'PONG') break;
      if (i > 100) throw new Error(`redis-server ${args.join(' ')} did not answer`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { url, client };
  }
  const connect = (url: string) => {
    const c = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-redis-check-'));
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    for (const s of servers) s.kill('SIGKILL');
    await own?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('no persistence and an evicting policy: a warning for each, naming the setting and the risk', async () => {
    const { client } = await redisWith(['--appendonly', 'no', '--save', '', '--maxmemory-policy', 'allkeys-lru']);
    const findings = await checkRedis(client);
    assert.deepEqual(
      findings.map((f) => [f.level, f.setting]),
      [
        ['warn', 'appendonly'],
        ['warn', 'maxmemory-policy'],
      ],
    );
    assert.match(findings[0]!.message, /keeps nothing on disk \(appendonly no, save ""\): a restart loses every/);
    assert.match(findings[1]!.message, /may evict natops's records and jobs under memory pressure/);
    assert.match(findings[1]!.message, /maxmemory-policy allkeys-lru/);
  });

  it('snapshots only: the writes since the last one are at risk', async () => {
    const { client } = await redisWith([
      '--appendonly',
      'no',
      '--save',
      '3600 1',
      '--maxmemory-policy',
      'noeviction',
      '--maxmemory',
      '100mb',
    ]);
    const findings = await checkRedis(client);
    assert.deepEqual(
      findings.map((f) => f.setting),
      ['appendonly'],
    );
    assert.match(findings[0]!.message, /snapshots only \(appendonly no, save "3600 1"\)/);
  });

  it("natops's own redis-server (append-only, noeviction) passes; a user without CONFIG is told it cannot be checked", async () => {
    own = await LocalRedis.start(join(dir, 'own'));
    const admin = connect(own.url);
    assert.deepEqual(await checkRedis(admin), []);
    await admin.call('ACL', 'SETUSER', 'natops', 'on', '>secret', '~*', '&*', '+@all', '-config');
    const limited = connect(`redis://natops:secret@127.0.0.1:${new URL(own.url).port}`);
    const findings = await checkRedis(limited);
    assert.deepEqual(
      findings.map((f) => [f.level, f.setting]),
      [['warn', 'CONFIG']],
    );
    assert.match(findings[0]!.message, /CONFIG GET is not allowed \(NOPERM/);
    assert.match(findings[0]!.message, /appendonly yes and maxmemory-policy noeviction/);
  });

  it('a setting the server does not report is not taken for a safe one', () => {
    assert.deepEqual(
      redisFindings({ values: { save: '' } }).map((f) => f.setting),
      ['appendonly', 'maxmemory-policy'],
    );
  });
});
