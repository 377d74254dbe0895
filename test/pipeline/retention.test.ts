// What natops keeps in Redis is bounded (real Redis): commit statuses and their history expire
// (NATOPS_STATUS_KEEP_DAYS), the commits index keeps the newest NATOPS_COMMITS_KEEP, failed jobs
// are kept by count too (NATOPS_FAILED_JOBS_KEEP), a pull request's re-renders collapse into one
// job, and a pull request's blobs stay out of the month-long blob cache. The summary, now made from
// running counts, says what it said when every status was decoded on every write.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullPrefix, Queues, redisConnection } from '../../queue/queues.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import {
  type CommitStatus,
  StatusBook,
  SUMMARY_CONTEXT,
  PREVIEW_CONTEXT,
  type StatusState,
} from '../../state/statuses.ts';
import { PR_BLOB_TTL_S, Store } from '../../state/store.ts';

const sha = (i: number) => i.toString(16).padStart(40, '0');
const DAY = 24 * 3600;

describe('bounded Redis (real Redis)', () => {
  let dir: string;
  let redis: LocalRedis;
  let c: Redis;
  let n = 0;
  const prefix = () => `ret${n++}`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-retention-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
    c = redisConnection(redis.url);
  });
  after(async () => {
    c?.disconnect();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a commit's statuses, history and counts expire NATOPS_STATUS_KEEP_DAYS after their last write", async () => {
    const p = prefix();
    const book = new StatusBook(c, p, () => '', { days: 3, commits: 10 });
    await book.publish([{ sha: sha(1), context: 'natops/a', state: 'failure', description: 'broken' }]);
    for (const key of ['status', 'status-history', 'status-count', 'status-failed']) {
      const ttl = await c.ttl(`${p}:${key}:${sha(1)}`);
      assert.ok(ttl > 3 * DAY - 60 && ttl <= 3 * DAY, `${key}: TTL ${ttl}`);
    }
    // a later write keeps them another three days
    await c.expire(`${p}:status:${sha(1)}`, 10);
    await book.publish([{ sha: sha(1), context: 'natops/a', state: 'success', description: 'fixed' }]);
    assert.ok((await c.ttl(`${p}:status:${sha(1)}`)) > 3 * DAY - 60);
    assert.equal((await book.get(sha(1)))[0]!.description, 'all 1 succeeded');
  });

  it('the commits index keeps the newest NATOPS_COMMITS_KEEP commits: N+1 commits, the oldest goes', async () => {
    const p = prefix();
    const keep = 5;
    const book = new StatusBook(c, p, () => '', { days: 90, commits: keep });
    for (let i = 1; i <= keep; i++) {
      await book.publish([{ sha: sha(i), context: 'natops/a', state: 'success', description: `c${i}` }]);
      await new Promise((r) => setTimeout(r, 2)); // (ordered by first write)
    }
    assert.equal(await c.zcard(`${p}:commits`), keep);
    await book.publish([{ sha: sha(keep + 1), context: 'natops/a', state: 'success', description: 'newest' }]);
    assert.equal(await c.zcard(`${p}:commits`), keep);
    assert.deepEqual(
      (await book.commits(100)).map((x) => x.sha),
      [6, 5, 4, 3, 2].map(sha),
    );
    // a pull request's head is not in the index, so it trims nothing
    await book.publish([{ sha: sha(99), context: PREVIEW_CONTEXT, state: 'success', description: 'previewed' }]);
    assert.equal(await c.zcard(`${p}:commits`), keep);
  });

  it('the summary from running counts says what one made from every status said, over random writes', async () => {
    const p = prefix();
    const book = new StatusBook(c, p);
    const states: StatusState[] = ['pending', 'success', 'failure', 'error'];
    let seed = 7;
    const random = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    /** What the summary was before: every status of the commit, decoded. */
    const expected = (all: Map<string, StatusState>): string => {
      const counted = [...all].filter(([ctx]) => ctx !== SUMMARY_CONTEXT && ctx !== PREVIEW_CONTEXT);
      const pending = counted.filter(([, s]) => s === 'pending').length;
      const failed = counted.filter(([, s]) => s === 'failure' || s === 'error').map(([ctx]) => ctx);
      const names = failed.sort().join(' ');
      const total = counted.length;
      const text = pending
        ? `pending: ${total - pending} of ${total} done${failed.length ? `, failed: ${names}` : ''}`
        : failed.length
          ? `failure: ${failed.length} of ${total} failed: ${names}`
          : `success: all ${total} succeeded`;
      return text.slice(0, 140 + text.indexOf(': ') + 2);
    };
    for (let commit = 1; commit <= 4; commit++) {
      const all = new Map<string, StatusState>();
      for (let round = 0; round < 40; round++) {
        const batch = Array.from({ length: 1 + random(4) }, () => ({
          sha: sha(commit),
          context: random(10) === 0 ? PREVIEW_CONTEXT : `natops/gw${random(12)}`,
          state: states[random(4)]!,
          description: `round ${round}`,
        }));
        await book.publish(batch);
        for (const b of batch) all.set(b.context, b.state);
        if (batch.every((b) => b.context === PREVIEW_CONTEXT)) continue;
        const summary = (await book.get(sha(commit))).find((s) => s.context === SUMMARY_CONTEXT)!;
        assert.equal(`${summary.state}: ${summary.description}`, expected(all), `commit ${commit} round ${round}`);
      }
    }
  });

  it('a commit written before the counts existed is counted from its statuses once', async () => {
    const p = prefix();
    const book = new StatusBook(c, p);
    await book.publish([
      { sha: sha(1), context: 'natops/a', state: 'failure', description: 'x' },
      { sha: sha(1), context: 'natops/b', state: 'pending', description: 'y' },
      { sha: sha(1), context: 'natops/c', state: 'success', description: 'z' },
    ]);
    // as an older natops left it: statuses, no counts
    await c.del(`${p}:status-count:${sha(1)}`, `${p}:status-failed:${sha(1)}`);
    await book.publish([{ sha: sha(1), context: 'natops/b', state: 'success', description: 'done' }]);
    const summary = (await book.get(sha(1)))[0]!;
    assert.deepEqual([summary.context, summary.state, summary.description], [
      SUMMARY_CONTEXT,
      'failure',
      '1 of 3 failed: natops/a',
    ] satisfies [string, CommitStatus['state'], string]);
  });

  it('failed jobs are kept by count (NATOPS_FAILED_JOBS_KEEP) as well as by age', async () => {
    const p = prefix();
    const connection = redisConnection(redis.url);
    const queues = new Queues(connection, {
      redisUrl: redis.url,
      prefix: p,
      attempts: 1,
      backoffMs: 10,
      failedJobsKeep: 2,
    });
    const forWorker = connection.duplicate();
    const worker = new Worker(
      'resync',
      async () => {
        throw new UnrecoverableError('always fails');
      },
      { connection: forWorker as ConnectionOptions, prefix: bullPrefix(p) },
    );
    try {
      assert.deepEqual(queues.byName.resync.defaultJobOptions.removeOnFail, { age: 30 * DAY, count: 2 });
      const failed = new Promise<void>((resolve) => {
        let seen = 0;
        worker.on('failed', () => ++seen === 4 && resolve());
      });
      for (let i = 0; i < 4; i++) await queues.byName.resync.add('resync', {});
      await failed;
      assert.equal(await queues.byName.resync.getFailedCount(), 2);
    } finally {
      await worker.close();
      await queues.close();
      await forWorker.quit();
      await connection.quit();
    }
  });

  it("a pull request's re-renders collapse: one waits however often asked, and one more follows a running one", async () => {
    const p = prefix();
    const connection = redisConnection(redis.url);
    const queues = new Queues(connection, { redisUrl: redis.url, prefix: p, attempts: 1, backoffMs: 10 });
    let release: () => void = () => undefined;
    const ran: number[] = [];
    let worker: Worker | undefined;
    const forWorker = connection.duplicate();
    try {
      for (let i = 0; i < 5; i++) await queues.addPreview({ action: 'rerender', number: 7 });
      await queues.addPreview({ action: 'rerender', number: 8 });
      assert.deepEqual(
        (await queues.byName.preview.getWaiting()).map((j: Job) => (j.data as { number: number }).number).sort(),
        [7, 8],
      );
      const held = new Promise<void>((r) => (release = r));
      const started = new Promise<void>((resolve) => {
        worker = new Worker(
          'preview',
          async (job: Job) => {
            ran.push((job.data as { number: number }).number);
            resolve();
            if (ran.length === 1) await held;
          },
          { connection: forWorker as ConnectionOptions, prefix: bullPrefix(p), concurrency: 1 },
        );
      });
      await started;
      // #7 runs: asked again three times meanwhile, it runs once more after
      for (let i = 0; i < 3; i++) await queues.addPreview({ action: 'rerender', number: ran[0]! });
      release();
      for (let i = 0; i < 100 && ran.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(ran.length, 3, JSON.stringify(ran));
      assert.equal(ran.filter((x) => x === ran[0]).length, 2);
    } finally {
      release();
      await worker?.close();
      await queues.close();
      await forWorker.quit();
      await connection.quit();
    }
  });

  it("a pull request's blobs: never in the month-long cache; an hour in their own, within a byte cap per hour", async () => {
    const p = prefix();
    const store = new Store(c, p, 10);
    const tracked = store.trackedBlobs();
    const prs = store.pullRequestBlobs();
    await tracked.set('b1', Buffer.from('branch'));
    const monthTtl = await c.ttl(`${p}:sys:blob:b1`);
    assert.ok(monthTtl > 29 * DAY, `branch blob TTL ${monthTtl}`);
    // the branch's blobs serve pull requests too
    assert.deepEqual(await prs.get('b1'), Buffer.from('branch'));
    await prs.set('h1', Buffer.from('head-1'));
    assert.equal(await c.exists(`${p}:sys:blob:h1`), 0, 'not in the month-long cache');
    assert.equal(await tracked.get('h1'), undefined);
    assert.deepEqual(await prs.get('h1'), Buffer.from('head-1'));
    const ttl = await c.ttl(`${p}:sys:pr-blob:h1`);
    assert.ok(ttl > 0 && ttl <= PR_BLOB_TTL_S, `pull request blob TTL ${ttl}`);
    // 6 of the 10 bytes spent this hour: 5 more are not cached, 4 are
    assert.equal(await store.savePrBlob('h2', Buffer.from('12345')), false);
    assert.equal(await prs.get('h2'), undefined);
    assert.equal(await store.savePrBlob('h3', Buffer.from('1234')), true);
    assert.ok((await c.ttl(`${p}:sys:pr-blob-bytes`)) <= PR_BLOB_TTL_S);
  });
});
