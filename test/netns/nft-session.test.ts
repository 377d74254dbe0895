// A long-lived `nft -i` in a namespace the test makes: each line one transaction, answered in
// order with its errors, and a process that holds one still exits when its work is done.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { NftLineError, NftSession } from '../../runtime/nft-session.ts';
import { useScratchNamespace } from '../helpers/lab-harness.ts';

let ns = '';
const session = () => new NftSession(['ip', 'netns', 'exec', ns, 'nft', '-i'], ns, 10_000);
const elements = async () =>
  (await run(['ip', 'netns', 'exec', ns, 'nft', 'list', 'set', 'ip', 'natops', 'marks'])).stdout.match(
    /elements = \{ ([^}]*) \}/,
  )?.[1] ?? '';

describe('an nft session', () => {
  ns = useScratchNamespace();

  it('commits a line whole, or not at all, and answers with its errors', async () => {
    const s = session();
    try {
      assert.equal(await s.transact('add table ip natops; add set ip natops marks { type mark; }'), '');
      assert.equal(await s.transact('add element ip natops marks { 1, 2 }'), '');
      // the second command fails in the kernel: the first is not committed either
      const failed = await s.transact('delete element ip natops marks { 1 }; delete element ip natops marks { 7 }');
      assert.match(
        failed,
        /^Error: Could not process rule: No such file or directory\ndelete element .*\{ 7 \}\n *\^+\n$/,
      );
      assert.equal(await elements(), '0x00000001, 0x00000002');
      // a line nft cannot parse is its error, and the session goes on
      assert.match(await s.transact('delete elemnt ip natops marks { 1 }'), /^Error: syntax error/);
      // lines in flight are answered in order, each with its own errors
      const answers = await Promise.all([
        s.transact('delete element ip natops marks { 2 }'),
        s.transact('delete element ip natops marks { 2 }'),
        s.transact('add element ip natops marks { 3 }'),
      ]);
      assert.equal(answers[0], '');
      assert.match(answers[1]!, /No such file or directory/);
      assert.equal(answers[2], '');
      assert.equal(await elements(), '0x00000001, 0x00000003');
    } finally {
      s.close();
    }
  });

  it('refuses a line that would be two, end in a comment, or go on on the next', async () => {
    const s = session();
    await assert.rejects(s.transact('add element ip natops marks { 4 }\nflush ruleset'), NftLineError);
    await assert.rejects(s.transact('add element ip natops marks { 4 } # x'), NftLineError);
    await assert.rejects(s.transact('add element ip natops marks { 4 } \\'), NftLineError);
    assert.equal(s.running, false, 'nothing was started');
  });

  it('keeps no history: a new process after many lines', async () => {
    const s = session();
    try {
      const pids = async () => (await run(['ip', 'netns', 'pids', ns])).stdout.trim();
      assert.equal(await s.transact('add element ip natops marks { 8 }'), '');
      const first = await pids();
      for (let i = 0; i < 1000; i++) await s.transact(`delete element ip natops marks { ${i + 100} }`);
      assert.notEqual(await pids(), first, 'another nft after 1,000 lines');
      assert.match(await elements(), /0x00000008/, 'and the table is as it was');
    } finally {
      s.close();
    }
  });

  it('is started again after its process died', async () => {
    const s = session();
    try {
      assert.equal(await s.transact('add element ip natops marks { 5 }'), '');
      const pids = (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean);
      assert.equal(pids.length, 1, 'one nft runs in the namespace');
      await run(['kill', '-9', pids[0]!]);
      for (let i = 0; i < 50 && s.running; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(s.running, false);
      assert.equal(await s.transact('delete element ip natops marks { 5 }'), '');
    } finally {
      s.close();
    }
  });

  it('does not keep a process running once its lines are answered', async () => {
    const module = fileURLToPath(new URL('../../runtime/nft-session.ts', import.meta.url));
    const script = `import { NftSession } from ${JSON.stringify(module)};
const s = new NftSession(['ip', 'netns', 'exec', ${JSON.stringify(ns)}, 'nft', '-i'], 'ns', 10000);
console.log(JSON.stringify(await s.transact('add element ip natops marks { 6 }')));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        // killed, and the test failed, if the idle session kept it running
        timeout: 20_000,
      },
    );
    assert.equal(stdout.trim(), '""');
    // nft -i, at the end of its input, writes its history to $HOME: the session gives it none
    for (let i = 0; i < 50 && (await run(['ip', 'netns', 'pids', ns])).stdout.trim(); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(existsSync(`${homedir()}/.nft.history`), false);
    assert.match(await elements(), /0x00000006/);
  });
});
