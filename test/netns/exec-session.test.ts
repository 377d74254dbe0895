// A long-lived shell in a namespace the test makes, running argv arrays one at a time: values
// arrive as themselves (the shell parses none), failures and timeouts are reported as a process's
// would be, and a process that holds one still exits when its work is done.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { CommandError, CommandTimeoutError, MissingToolError, run } from '../../common/exec.ts';
import { ExecSession, SessionClosedError } from '../../runtime/exec-session.ts';
import { useScratchNamespace } from '../helpers/lab-harness.ts';

let ns = '';
const session = (timeoutMs = 10_000) => new ExecSession(['ip', 'netns', 'exec', ns], ns, timeoutMs);

describe('an exec session', () => {
  ns = useScratchNamespace();

  it('runs in the namespace, with stdin, and reports output and exit status as a process would', async () => {
    const s = session();
    try {
      const links = await s.exec({ argv: ['ip', '-o', 'link', 'show'] });
      assert.match(links.stdout, /^1: lo: /, 'the namespace has only its loopback');
      assert.doesNotMatch(links.stdout, /\n2: /);
      assert.equal((await s.exec({ argv: ['cat'], stdin: 'from stdin\n' })).stdout, 'from stdin\n');
      const failed = await s.exec({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'], okExitCodes: [3] });
      assert.deepEqual([failed.stdout, failed.stderr, failed.code], ['out\n', 'err\n', 3]);
      await assert.rejects(s.exec({ argv: ['sh', '-c', 'echo no >&2; exit 2'] }), (e: unknown) => {
        assert.ok(e instanceof CommandError);
        assert.equal(e.code, 2);
        assert.equal(e.stderr, 'no\n');
        return true;
      });
      await assert.rejects(s.exec({ argv: [`natops-no-such-program-${process.pid}`] }), MissingToolError);
    } finally {
      s.close();
    }
  });

  it('passes each argument as itself: the shell parses no value', async () => {
    const s = session();
    const marker = `/tmp/natops-exec-session-${process.pid}`;
    try {
      const hostile = [`$(touch ${marker})`, '`id`', '"$HOME"', "'; exit 9 '", '*', '-n', ' spaced  '];
      const r = await s.exec({ argv: ['printf', '[%s]', ...hostile] });
      assert.equal(r.stdout, hostile.map((a) => `[${a}]`).join(''));
      assert.equal(existsSync(marker), false, 'nothing was run from a value');
      // a program, never the shell's builtin of that name (dash's echo reads backslashes)
      assert.equal((await s.exec({ argv: ['echo', 'a\\tb'] })).stdout, 'a\\tb\n');
      assert.throws(() => s.exec({ argv: ['echo', 'two\nlines'] }), TypeError);
    } finally {
      s.close();
    }
  });

  it('runs commands sent together one after another, each with its own result', async () => {
    const s = session();
    try {
      const results = await Promise.all(
        ['a', 'b', 'c'].map((x, i) => s.exec({ argv: ['sh', '-c', `sleep 0.0${3 - i}; echo ${x}`] })),
      );
      assert.deepEqual(
        results.map((r) => r.stdout),
        ['a\n', 'b\n', 'c\n'],
      );
    } finally {
      s.close();
    }
  });

  it('kills a command at its timeout and goes on with the next', async () => {
    const s = session(500);
    try {
      const argv = ['sleep', `30.${process.pid}`];
      await assert.rejects(s.exec({ argv }), CommandTimeoutError);
      const left = await run(['pgrep', '-f', argv.join(' ')], { okExitCodes: [0, 1] });
      assert.equal(left.stdout.trim(), '', 'the command was killed');
      assert.equal((await s.exec({ argv: ['echo', 'next'] })).stdout, 'next\n');

      // what the command started goes with it: nothing is left running, nothing writes into
      // the next command's output
      const marker = `LEFT-${process.pid}`;
      const spawner = ['sh', '-c', `sh -c 'while :; do echo ${marker}; sleep 0.05; done'; true`];
      await assert.rejects(s.exec({ argv: spawner }), CommandTimeoutError);
      const survivors = await run(['pgrep', '-f', marker], { okExitCodes: [0, 1] });
      assert.equal(survivors.stdout.trim(), '', 'what it started was killed with it');
      assert.equal((await s.exec({ argv: ['sh', '-c', 'sleep 0.3; echo after'] })).stdout, 'after\n');
    } finally {
      s.close();
    }
  });

  it('takes no command once closed', async () => {
    const s = session();
    await s.exec({ argv: ['true'] });
    s.close();
    await assert.rejects(s.exec({ argv: ['true'] }), SessionClosedError);
    assert.equal(s.started, false);
  });

  it('is started again after its shell died', async () => {
    const s = session();
    try {
      await s.exec({ argv: ['true'] });
      const pids = (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean);
      assert.equal(pids.length, 1, 'the shell is the one process in the namespace');
      await run(['kill', '-9', pids[0]!]);
      for (let i = 0; i < 50 && s.started; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(s.started, false);
      assert.equal((await s.exec({ argv: ['echo', 'again'] })).stdout, 'again\n');
    } finally {
      s.close();
    }
  });

  it('does not keep a process running once its commands are done, and leaves no files', async () => {
    const module = fileURLToPath(new URL('../../runtime/exec-session.ts', import.meta.url));
    const script = `import { ExecSession } from ${JSON.stringify(module)};
const s = new ExecSession(['ip', 'netns', 'exec', ${JSON.stringify(ns)}], 'ns', 10000);
console.log((await s.exec({ argv: ['echo', 'done'] })).stdout.trim());`;
    const tmp = mkdtempSync('/tmp/natops-t-');
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        // killed, and the test failed, if the idle session kept it running
        { timeout: 20_000, env: { ...process.env, TMPDIR: tmp } },
      );
      assert.equal(stdout.trim(), 'done');
      // (tsx keeps a cache of its own there)
      assert.deepEqual(
        readdirSync(tmp).filter((f) => f.startsWith('natops-')),
        [],
        "the session's directory went with the process",
      );
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
