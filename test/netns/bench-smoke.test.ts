// bench/apply at small sizes: it runs, prints its tables, and natops loses no connection
// through an unchanged port forward while another rule changes. bench/apply-cli too: its three
// ways end with the same rules (it checks each run), a new gateway answers, and it prints its
// table. bench/one-rule-steps times every step it names; bench/plan-scale reads one file of a
// one-file change (it checks each run). Each writes its figures, beside their baselines, to a temp file
// (never over bench/results/).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseResults } from '../../bench/render.ts';
import { ROOT } from '../helpers/cli.ts';
import { requireNetnsPrerequisites } from '../helpers/lab-harness.ts';

let dir = '';
before(async () => (dir = await mkdtemp(join(tmpdir(), 'natops-bench-smoke-'))));
after(() => rm(dir, { recursive: true, force: true }));

/** Runs a benchmark to its end, its figures to a temp file; its output, exit code and figures' names. */
async function bench(
  file: string,
  args: string[],
): Promise<{ code: unknown; stdout: string; stderr: string; figures: () => Promise<string[]> }> {
  const out = join(dir, `${file.replace(/\W/g, '-')}.json`);
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args, '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise((resolve) => child.on('close', resolve));
  const figures = async () => parseResults(await readFile(out, 'utf8'), out).figures.map((f) => f.name);
  return { code, stdout, stderr, figures };
}

describe('bench/apply (small sizes)', () => {
  it('compares both methods and natops drops no connection', async () => {
    requireNetnsPrerequisites();
    const { code, stdout, stderr, figures } = await bench('bench/apply.ts', [
      '--sizes',
      '50',
      '--reps',
      '1',
      '--churn',
      '10',
      '--churn-naive',
      '2',
      '--churn-rules',
      '50',
      '--change-size',
      '100',
      '--remove-size',
      '50',
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^\| 50 \| [\d.]+ m?s \| [\d.]+ m?s \| [\d.]+x \|$/m);
    assert.match(stdout, /^\| flush the chain, re-add every rule one command at a time \(Kube-OVN 1\.7\) \| /m);
    const natops = /^\| natops \(one transaction per change\) \| 10 \| (\d+) \| (\d+) \| .+ \|$/m.exec(stdout);
    assert.ok(natops, stdout);
    assert.ok(Number(natops[1]) > 0, 'connections went through during the changes');
    assert.equal(Number(natops[2]), 0, 'no connection failed during natops changes');
    // 1 size, 2 ways to change one rule, 1 removal, ok and failed under churn
    assert.equal((await figures()).length, 6);
  });

  it('bench/apply-cli: natops apply as a process, one command per rule and a bare iptables-restore all add every rule', async () => {
    requireNetnsPrerequisites();
    const { code, stdout, stderr, figures } = await bench('bench/apply-cli.ts', [
      '--forwards',
      '50',
      '--reps',
      '1',
      '--naive-reps',
      '1',
      '--change-forwards',
      '50',
      '--change-reps',
      '1',
      '--new-reps',
      '1',
      '--nft-forwards',
      '50',
      '--nft-reps',
      '1',
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^\| `natops apply DIR` .* \| [\d.]+ m?s \| 1\.0x \|$/m);
    assert.match(
      stdout,
      /^\| one bare `iptables-restore --noflush` of the same rules \(the floor\) \| [\d.]+ m?s \| [\d.]+x slower \|$/m,
    );
    // a new gateway answers through its port forward (the bench fails if it never does)
    assert.match(stdout, /^\| a new gateway: first answer \| [\d.]+ m?s \| natops apply exits [\d.]+ m?s \|/m);
    // the nftables change is checked by the bench itself (it fails when the element is not changed)
    assert.match(stdout, /^\| natops apply, one forward of 50 on nftables \| [\d.]+ m?s \|/m);
    // adding: 2 baselines; one changed: 2; a new gateway: 2; one changed on nftables: 2
    assert.equal((await figures()).length, 8);
  });

  it('bench/pipeline-rate: one worker process and two get through every job of a push (dry-run runtime)', async () => {
    const { code, stdout, stderr, figures } = await bench('bench/pipeline-rate.ts', [
      '--gateways',
      '10',
      '--reps',
      '1',
      '--concurrency',
      '4',
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /2 processes vs 1: natops [\d.]+x, BullMQ alone [\d.]+x/);
    assert.ok((await figures()).length >= 4);
  });

  it('bench/plan-scale: validates and plans many gateways, and a one-file change reads one file', async () => {
    requireNetnsPrerequisites();
    const { code, stdout, stderr, figures } = await bench('bench/plan-scale.ts', [
      '--gateways',
      '40',
      '--files',
      '4',
      '--reps',
      '1',
      '--push-reps',
      '2',
    ]);
    assert.equal(code, 0, stderr);
    assert.match(
      stdout,
      /^\| one file changed, read and validated \| [\d.]+ m?s \| without the cache \| [\d.]+ m?s \|$/m,
    );
    assert.equal((await figures()).length, 3);
  });

  it('bench/one-rule-steps: every step runs and is timed', async () => {
    requireNetnsPrerequisites();
    const { code, stdout, stderr, figures } = await bench('bench/one-rule-steps.ts', ['--rules', '50', '--reps', '1']);
    assert.equal(code, 0, stderr);
    const rows = stdout.split('\n').filter((l) => /^\| .* \| [\d.]+ m?s \|$/.test(l));
    assert.equal(rows.length, 11, stdout);
    assert.match(stdout, /^\| natops: reconcile the gateway with one rule changed \| /m);
    assert.equal((await figures()).length, 10, 'every step but the floor, which is their baseline');
  });
});
