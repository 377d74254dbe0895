// Retries: a transient failure is retried with exponential backoff and then reported; a job with
// bad data fails at once. A real redis-server and real BullMQ workers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Job } from 'bullmq';
import type { HandlerJob } from '../../queue/jobs.ts';
import { gatewayTarget } from '../../state/records.ts';
import { seedSpec } from '../helpers/manifests.ts';
import { recordPendingDnat } from '../helpers/fixtures.ts';
import { branchPush, startApp, type TestApp } from '../helpers/app.ts';

describe('retries (real redis-server, real workers)', () => {
  let t: TestApp;

  before(async () => {
    // A lab that does not exist: every gateway in it is missing, the failure a retry can outlast.
    t = await startApp({ attempts: 4, backoffMs: 150, lab: `r${randomBytes(4).toString('hex')}` }, ['dnat', 'plan']);
  });
  after(() => t?.close());

  const settled = async (job: Job) => {
    for (let i = 0; i < 200; i++) {
      const state = await job.getState();
      if (state === 'failed' || state === 'completed') return (await t.app.queues.byName.dnat.getJob(job.id!))!;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`job ${job.id} did not finish`);
  };

  it('a transient failure is retried with exponential backoff, then its gateway gets a failure status', async () => {
    const spec = { ...(await seedSpec()), name: 'absent' };
    const sha = 'ab'.repeat(20);
    const data: HandlerJob = { kind: 'dnat', gateway: 'absent', sha, gen: 1, cause: 'push', spec, last: true };
    await recordPendingDnat(t.app.records, { ...data, gateway: 'absent', spec });
    const added = await t.app.queues.byName.dnat.add('dnat absent', data, {
      attempts: 4,
      backoff: { type: 'exponential', delay: 150 },
    });
    const job = await settled(added);
    assert.equal(await job.getState(), 'failed');
    assert.equal(job.attemptsMade, 4);
    assert.match(job.failedReason, /gateway absent does not exist/);
    // 150, 300, 600 ms between the attempts: at least their sum passed
    assert.ok(
      job.finishedOn! - job.timestamp >= 150 + 300 + 600,
      `finished ${job.finishedOn! - job.timestamp} ms after it was added`,
    );
    const status = (await t.app.statuses.get(sha)).find((s) => s.context === 'natops/absent');
    assert.equal(status?.state, 'failure');
    assert.match(status!.description, /^dnat failed: gateway absent does not exist/);
    const rec = await t.app.records.get(gatewayTarget('absent'));
    assert.deepEqual([rec?.condition.ready, rec?.condition.reason, rec?.observedGen], ['False', 'Failed', 1]);
    assert.deepEqual(rec?.pending, ['dnat'], 'the failed kind is run again by the next plan');
  });

  it('a commit the planner cannot read is retried, then the commit gets an error status', async () => {
    // GitHub's example push names a commit this (empty) repository does not have.
    const push = branchPush();
    assert.equal((await t.deliver('push', push)).status, 202);
    let summary: Awaited<ReturnType<typeof t.app.statuses.get>>[number] | undefined;
    for (let i = 0; i < 100 && !summary; i++) {
      summary = (await t.app.statuses.get(String(push.after))).find((s) => s.context === 'natops');
      if (!summary) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(summary?.state, 'error');
    assert.match(summary!.description, /^planning failed: .*not in the repository/);
    // (the status is written by the last attempt, before BullMQ moves its job to failed)
    let [job] = await t.app.queues.byName.plan.getJobs(['failed']);
    for (let i = 0; i < 100 && !job; i++) {
      await new Promise((r) => setTimeout(r, 50));
      [job] = await t.app.queues.byName.plan.getJobs(['failed']);
    }
    assert.equal(job?.attemptsMade, 4);
  });

  it('a job with bad data fails once, without retries', async () => {
    const added = await t.app.queues.byName.dnat.add(
      'bad',
      { kind: 'dnat', target: 'x', gen: 'one' },
      { attempts: 4, backoff: { type: 'exponential', delay: 150 } },
    );
    const job = await settled(added);
    assert.equal(await job.getState(), 'failed');
    assert.equal(job.attemptsMade, 1);
  });
});
