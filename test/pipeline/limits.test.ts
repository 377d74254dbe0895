// A push over the per-commit limits (NATOPS_MANIFEST_MAX_FILES, NATOPS_MANIFEST_MAX_TOTAL_BYTES)
// is refused once, from the tree, like an invalid commit: a failure status naming the setting,
// the head recorded (the catch-up does not plan it again), nothing planned, the live gateway left
// as it was. Real Redis, Git and namespaces.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { seedObjects, toFiles, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('per-commit manifest limits in the loop', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;
  let planned: string;

  before(async () => {
    // the seed is four files of a few hundred bytes
    p = await PipelineHarness.create({ manifestMaxFiles: 5, manifestMaxTotalBytes: 100_000 });
    seed = await seedObjects();
    planned = await p.push(seed, 'seed');
    assert.equal((await p.settled(planned)).get('natops')?.state, 'success');
  });
  after(async () => {
    await p?.cleanup();
  });

  const refused = async (files: { path: string; text: string }[], what: string, message: RegExp) => {
    const sha = await p.push(files, what);
    const statuses = await p.settled(sha);
    const summary = statuses.get('natops')!;
    assert.equal(summary.state, 'failure');
    assert.match(summary.description, message);
    assert.deepEqual([...statuses.keys()], ['natops'], 'no gateway planned');
    assert.deepEqual(
      (await p.running!.store.commitIssues(sha)).map((i) => i.field),
      ['(commit)'],
      "the check run's annotation",
    );
    assert.equal((await p.running!.store.head('main'))?.sha, sha, 'the refused head is recorded as planned');
    const record = await p.running!.records.get({ kind: 'gateway', name: 'ngw' });
    assert.equal(record?.lastApplied?.sha, planned, 'the live gateway is as it was');
  };

  it('more manifest files than NATOPS_MANIFEST_MAX_FILES: a failure naming it, nothing planned', async () => {
    const files = [...toFiles(seed), { path: 'notes/a.yaml', text: '# a\n' }, { path: 'notes/b.yml', text: '# b\n' }];
    await refused(
      files,
      'two more files',
      /commit [0-9a-f]{7}: 6 manifest files, more than NATOPS_MANIFEST_MAX_FILES \(5\); none was read$/,
    );
  });

  it('more bytes than NATOPS_MANIFEST_MAX_TOTAL_BYTES: the same, naming that setting', async () => {
    const big = { path: 'notes/long.yaml', text: '# a comment\n'.repeat(10_000) };
    await refused(
      [...toFiles(seed), big],
      'a long comment',
      /commit [0-9a-f]{7}: \d+ bytes of manifests, more than NATOPS_MANIFEST_MAX_TOTAL_BYTES \(100000\); none was read$/,
    );
  });

  it('back within the limits, the next push is planned', async () => {
    const sha = await p.push(seed, 'back to the seed');
    assert.equal((await p.settled(sha)).get('natops')?.state, 'success');
  });
});
