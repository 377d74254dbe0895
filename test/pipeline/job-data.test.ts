// Job data written straight into Redis (the dashboard's add-job, a local user, a shared Redis)
// is checked as manifests are: a job the manifests could never have made fails for good at once,
// naming the field, and changes nothing live. Real Redis, real workers, a real lab gateway.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from 'bullmq';
import type { GatewaySpec } from '../../dataplane/model.ts';
import type { HandlerKind } from '../../dataplane/kinds.ts';
import { gatewayTarget } from '../../state/records.ts';
import { seedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('job data added to Redis by hand (real redis-server, real workers, a real lab gateway)', () => {
  let p: PipelineHarness;
  let outside: string;

  before(async () => {
    p = await PipelineHarness.create();
    outside = await mkdtemp(join(tmpdir(), 'natops-outside-'));
    const sha = await p.push(await seedObjects(), 'seed');
    assert.equal((await p.settled(sha)).get('natops/ngw')?.state, 'success');
  });
  after(async () => {
    await p?.cleanup();
    await rm(outside, { recursive: true, force: true });
  });

  /**
   * A job for ngw of its record's generation (so it is not skipped as superseded), its spec the
   * live one changed by `change`, added to the kind's queue as the dashboard's add-job would;
   * returns it once it is failed or completed.
   */
  const runJob = async (kind: HandlerKind, change: (spec: GatewaySpec) => unknown): Promise<Job> => {
    const rec = await p.running!.records.get(gatewayTarget('ngw'));
    const desired = rec?.desired;
    assert.ok(desired?.state, 'ngw has a desired spec');
    const spec = structuredClone(desired.state) as GatewaySpec;
    change(spec);
    const queue = p.running!.queues.byName[kind];
    const data = { kind, sha: desired.sha, gen: desired.gen, cause: 'push', gateway: 'ngw', spec, last: false };
    const added = await queue.add(`${kind} by hand`, data, {
      attempts: p.config.attempts,
      backoff: { type: 'exponential', delay: p.config.backoffMs },
    });
    await p.until(`job ${kind}/${added.id} to finish`, async () =>
      ['failed', 'completed'].includes(await queue.getJobState(added.id!)),
    );
    // (read once it is finished: a job read before holds the attempts made until then)
    return (await queue.getJob(added.id!))!;
  };

  it('a dnat job with a newline in an EIP fails for good, naming the field; the gateway is unchanged', async () => {
    const before = await p.lab.gatewaySave('ngw');
    const job = await runJob('dnat', (spec) => {
      spec.dnats[0]!.eip =
        '192.168.0.112/32 -j ACCEPT\nCOMMIT\n*filter\n-A INPUT -s 6.6.6.6/32 -j DROP\nCOMMIT\n*nat\n-A SHARED_DNAT -d 192.168.0.112';
    });
    assert.equal(await job.getState(), 'failed');
    assert.equal(job.attemptsMade, 1, 'not retried');
    assert.match(job.failedReason, /spec\.dnats\.0\.eip: must be an IPv4 address/);
    assert.equal(await p.lab.gatewaySave('ngw'), before);
  });

  it('a gateway job whose spec name climbs out of the lab creates no file there', async () => {
    const victim = join(outside, 'pwned');
    const job = await runJob('gateway', (spec) => {
      spec.name = `x/${'../'.repeat(16)}${victim.slice(1)}`;
    });
    assert.equal(await job.getState(), 'failed');
    assert.equal(job.attemptsMade, 1, 'not retried');
    assert.match(job.failedReason, /spec\.name: must be a valid Kubernetes name/);
    assert.equal(existsSync(victim), false, `${victim} was created`);
  });
});
