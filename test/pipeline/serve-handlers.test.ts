// `natops serve --handlers`: the process that takes the webhook runs workers for the queues named
// only, so in a split install (the chart's `split` mode) the handler queues are left to their own
// `natops worker` Deployments. Real redis-server, real process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { natops } from '../helpers/cli.ts';

const BIN = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));

describe('natops serve --handlers', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-serve-handlers-'));
    await run(['git', 'init', '--quiet', '--bare', join(dir, 'gitops.git')]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('works the queues named and no other', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--handlers', 'plan,resync,github,preview'], {
      env: {
        ...process.env,
        NATOPS_DATA_DIR: join(dir, 'data'),
        NATOPS_REPO: join(dir, 'gitops.git'),
        NATOPS_LISTEN: '127.0.0.1:0',
        NATOPS_WEBHOOK_SECRET: 'test-secret',
        NATOPS_RESYNC_MS: '0',
        NATOPS_LAB: `t${process.pid.toString(16).padStart(8, '0').slice(-8)}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      for (let i = 0; i < 300 && !/ on redis:\/\//.test(out); i++) await new Promise((r) => setTimeout(r, 100));
      const line = out.split('\n').find((l) => / on redis:\/\//.test(l));
      assert.ok(line, `no start-up line in:\n${out}`);
      const queues = /"msg":"([^"]*?) on redis:/.exec(line)?.[1]?.split(', ');
      assert.deepEqual(queues, ['plan', 'resync', 'github', 'preview']);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('an unknown queue name is refused by name, before anything starts', async () => {
    const r = await natops(['serve', '--handlers', 'plan,dnatt'], { env: { NATOPS_DATA_DIR: join(dir, 'data2') } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown handler kind\(s\) dnatt; choose from /);
  });
});
