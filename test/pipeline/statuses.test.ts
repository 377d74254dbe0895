// Commit statuses as readers see them (real Redis): what one publish writes appears at once, so
// nobody reads a summary computed from half of a plan's statuses. A keep-live run once settled on
// "all 1 succeeded" while the planner was still writing the statuses of three removals.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { redisConnection } from '../../queue/queues.ts';
import { StatusBook, SUMMARY_CONTEXT, type StatusEvent } from '../../state/statuses.ts';
import { LocalRedis } from '../../server/redis-server.ts';

const SHA = 'a'.repeat(40);
const OLDER = 'b'.repeat(40);

describe('publishing commit statuses', () => {
  let dir: string;
  let redis: LocalRedis;
  let c: Redis;
  let n = 0;
  const book = () => new StatusBook(c, `st${n++}`);
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-statuses-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
    c = redisConnection(redis.url);
  });
  after(async () => {
    c?.disconnect();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const summaries = async (b: StatusBook, sha: string) =>
    (await b.history(sha)).filter((s) => s.context === SUMMARY_CONTEXT).map((s) => `${s.state}: ${s.description}`);

  it("one publish changes a commit's summary once: never success while a status of the same publish is pending", async () => {
    const b = book();
    const plan: StatusEvent[] = [
      { sha: SHA, context: 'natops/ngw', state: 'success', description: 'no change' },
      { sha: SHA, context: 'natops/network', state: 'pending', description: 'removing' },
      { sha: SHA, context: 'natops/planner', state: 'pending', description: 'removing' },
      { sha: OLDER, context: 'natops/network', state: 'success', description: 'not applied: superseded' },
    ];
    await b.publish(plan);
    assert.deepEqual(await summaries(b, SHA), ['pending: 1 of 3 done']);
    assert.deepEqual(await summaries(b, OLDER), ['success: all 1 succeeded']);
    assert.deepEqual(
      (await b.history(SHA)).map((s) => s.context),
      ['natops/ngw', 'natops/network', 'natops/planner', SUMMARY_CONTEXT],
      'every status in order, then the summary',
    );
    // a later publish recomputes it from everything the commit has
    await b.publish([
      { sha: SHA, context: 'natops/network', state: 'success', description: 'removed' },
      { sha: SHA, context: 'natops/planner', state: 'success', description: 'removed' },
    ]);
    assert.deepEqual(await summaries(b, SHA), ['pending: 1 of 3 done', 'success: all 3 succeeded']);
  });

  it('a summary given in the publish (a refused commit) stands unless a status follows it', async () => {
    const b = book();
    await b.publish([
      { sha: SHA, context: 'natops/ngw', state: 'success', description: 'no change' },
      { sha: SHA, context: SUMMARY_CONTEXT, state: 'failure', description: 'refused' },
    ]);
    assert.deepEqual(
      (await b.get(SHA)).map((s) => `${s.context} ${s.state}: ${s.description}`),
      ['natops failure: refused', 'natops/ngw success: no change'],
    );
    await b.publish([
      { sha: SHA, context: SUMMARY_CONTEXT, state: 'failure', description: 'refused' },
      { sha: SHA, context: 'natops/ngw', state: 'failure', description: 'failed' },
    ]);
    assert.equal((await b.get(SHA))[0]!.description, '1 of 1 failed: natops/ngw');
  });
});
