// run(): every command has a timeout, and a command that outlives it is killed, not abandoned.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isRetryable } from '../../common/errors.ts';
import { CommandError, CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS, run } from '../../common/exec.ts';

/** Pids of processes whose argv is exactly this (the test's own sleeps, by a marker argument). */
async function pidsRunning(argv: string[]): Promise<number[]> {
  const r = await run(['pgrep', '-x', '-f', argv.join(' ')], { okExitCodes: [0, 1] });
  return r.stdout.split(/\s+/).filter(Boolean).map(Number);
}

describe('run', () => {
  it('kills a command at its timeout and rejects with a retryable CommandTimeoutError', async () => {
    // A unique duration marks this test's sleep among whatever else runs on the machine.
    const argv = ['sleep', `30.${process.pid}1`];
    const started = Date.now();
    const pending = run(argv, { timeoutMs: 300, target: 'host' });
    await new Promise((r) => setTimeout(r, 100));
    const [pid] = await pidsRunning(argv);
    assert.ok(pid, 'the sleep was running before the timeout');

    const e = await pending.then(
      () => assert.fail('a 30 s sleep finished within 300 ms'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof CommandTimeoutError, `expected CommandTimeoutError, got ${String(e)}`);
    assert.deepEqual([e.target, e.argv, e.timeoutMs], ['host', argv, 300]);
    assert.match(e.message, /sleep 30\.\d+` did not finish within 300 ms/);
    assert.ok(isRetryable(e));
    assert.ok(Date.now() - started < 10_000, 'rejected long before the sleep would have ended');
    assert.equal(existsSync(`/proc/${pid}`), false, `the sleep (pid ${pid}) is gone`);
  });

  it('settles even when a grandchild keeps the output pipes open', async () => {
    const marker = `30.${process.pid}2`;
    const e = await run(['sh', '-c', `sleep ${marker} & wait`], { timeoutMs: 300 }).catch((x: unknown) => x);
    assert.ok(e instanceof CommandTimeoutError);
    // Only the direct child is killed (natops's commands do not fork); remove the orphan.
    for (const pid of await pidsRunning(['sleep', marker])) process.kill(pid, 'SIGKILL');
  });

  it('has a default timeout and leaves fast commands and exit codes as they were', async () => {
    assert.equal(DEFAULT_COMMAND_TIMEOUT_MS, 60_000);
    assert.equal((await run(['cat'], { stdin: 'hi', timeoutMs: 5000 })).stdout, 'hi');
    await assert.rejects(run(['false'], { timeoutMs: 5000 }), CommandError);
    assert.equal((await run(['false'], { okExitCodes: [1] })).code, 1);
  });

  it('refuses a timeout that is not a positive number', () => {
    for (const t of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      assert.throws(() => run(['true'], { timeoutMs: t }), TypeError);
  });
});

describe("the commands' environment", () => {
  it('passes no secret of natops to a command: only PATH, locale, time zone, HOME, TMPDIR and git settings', async () => {
    const set = {
      NATOPS_DASHBOARD_PASSWORD: 'pw-in-env',
      NATOPS_GITHUB_TOKEN: 'ghp_secret',
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      GIT_AUTHOR_NAME: 'natops test',
    };
    const before = { ...process.env };
    Object.assign(process.env, set);
    try {
      const { stdout } = await run(['env']);
      const names = stdout.split('\n').flatMap((l) => (l ? [l.slice(0, l.indexOf('='))] : []));
      for (const secret of ['NATOPS_DASHBOARD_PASSWORD', 'NATOPS_GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY'])
        assert.ok(!names.includes(secret), `${secret} reached the command`);
      assert.ok(names.includes('PATH'), 'PATH is passed');
      assert.ok(names.includes('GIT_AUTHOR_NAME'), "git's own settings are passed");
      assert.doesNotMatch(stdout, /pw-in-env|ghp_secret|aws-secret/);
    } finally {
      for (const k of Object.keys(set)) if (!(k in before)) delete process.env[k];
    }
  });
});
