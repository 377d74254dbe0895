// A job BullMQ fails without ever calling natops's processor: its workers die mid-job until it
// has stalled more often than allowed ("job stalled more than allowable limit"). The failure
// is still recorded (the gateway's record says ready=false, its commit status fails), and the
// next resync repairs the gateway. Real Redis, BullMQ, worker processes, namespaces, packets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { QueueEvents } from 'bullmq';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { bullPrefix } from '../../queue/queues.ts';
import { gatewayTarget } from '../../state/records.ts';
import { push as pushItem, seedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('a job failed by BullMQ outside any processor (stalled past the limit)', () => {
  let p: PipelineHarness;
  let events: QueueEvents | undefined;
  const children: ChildProcess[] = [];

  before(async () => {
    // Planning 3000 forwards keeps the event loop busy for a while: the lease must outlast it.
    p = await PipelineHarness.create({ lockMs: 3000 });
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await events?.close();
    await p?.cleanup();
  });

  it('is recorded as a failure of its gateway, and the next resync repairs the gateway', async () => {
    const seed = await seedObjects();
    const first = await p.push(seed, 'seed');
    assert.equal((await p.settled(first)).get('natops/ngw')?.state, 'success');
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });

    // Handlers only in worker processes from now on; this process plans.
    await p.running!.close();
    await p.start(['plan']);
    events = new QueueEvents('dnat', {
      connection: { host: '127.0.0.1', port: p.redis.port, password: new URL(p.redis.url).password },
      prefix: bullPrefix(p.config.prefix),
    });
    events.on('error', () => undefined);
    await events.waitUntilReady();
    const actives: string[] = [];
    const failed: { jobId: string; failedReason: string }[] = [];
    events.on('active', ({ jobId }) => actives.push(jobId));
    events.on('failed', (e) => failed.push(e));

    // Enough forwards that the DNAT job takes a while: long enough to kill its worker mid-job.
    for (let i = 0; i < 3000; i++)
      pushItem(seed.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: 30000 + i,
        protocol: 'tcp',
        internalIp: '10.0.1.10',
        internalPort: 80,
      });
    const sha = await p.push(seed, '3000 port forwards');
    // maxStalledCount is 2: the third stall fails the job.
    for (let kill = 1; kill <= 3; kill++) {
      const worker = p.startWorkerProcess(HANDLER_KINDS);
      children.push(worker);
      await p.until(`the DNAT job to start (run ${kill})`, async () => actives.length >= kill, 60_000);
      worker.kill('SIGKILL');
    }
    children.push(p.startWorkerProcess(HANDLER_KINDS));
    const failure = await p.until('BullMQ to fail the job', async () => failed[0], 60_000);
    assert.match(failure.failedReason, /stalled more than allowable limit/);

    // The resync records what no processor saw, then repairs the gateway.
    await p.running!.close();
    p.config.resyncMs = 1000;
    await p.start();
    // (from the history: the repair that follows in the same resync replaces it within milliseconds)
    const status = await p.until(
      'the failure status',
      async () =>
        (await p.running!.statuses.history(sha)).find((s) => s.context === 'natops/ngw' && s.state === 'failure'),
      60_000,
    );
    assert.match(status.description, /^dnat failed: job stalled more than allowable limit/);
    const repaired = await p.until(
      'the repair',
      async () => {
        const rec = await p.running!.records.get(gatewayTarget('ngw'));
        return rec?.condition.ready === 'True' && rec.lastApplied?.sha === sha ? rec : undefined;
      },
      90_000,
    );
    assert.equal(repaired.condition.reason, 'Applied');
    assert.ok(
      (await p.running!.store.repairs()).some((r) => r.target === 'ngw' && r.sha === sha),
      'the resync recorded its repair',
    );
    assert.equal((await p.statuses(sha)).find((s) => s.context === 'natops/ngw')?.state, 'success');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 32999), 'web 192.168.0.50');
  });
});
