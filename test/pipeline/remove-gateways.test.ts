// `natops remove-gateways`, what the chart's pre-delete hook runs: as a real process against a
// real redis-server and lab, it removes the gateway a push made, and pauses the queues so that
// neither a resync nor a push brings it back (their jobs wait); the next serve start resumes them
// and the gateway comes back. Without --yes it refuses and touches nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QUEUE_NAMES } from '../../queue/jobs.ts';
import { Worker } from 'bullmq';
import { pauseForRemoval, RemovedMarker, removedMarkerKey, resumeAfterRemoval } from '../../queue/gateways-removed.ts';
import { bullPrefix, Queues, redisConnection } from '../../queue/queues.ts';
import { namespaceExists } from '../../runtime/netns/netns.ts';
import { SUMMARY_CONTEXT } from '../../state/statuses.ts';
import { natops } from '../helpers/cli.ts';
import { seedObjects, withPortForward, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('natops remove-gateways without --yes', () => {
  it('refuses, says what it would do, and reaches for nothing (not even Redis)', async () => {
    const r = await natops(['remove-gateways'], {
      // nothing listens there: a command that tried Redis would fail another way or hang
      env: { NATOPS_REDIS_URL: 'redis://127.0.0.1:1', NATOPS_PREFIX: 'natops-refusal', NATOPS_LAB: 'tnone' },
    });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /would pause every natops queue under prefix natops-refusal/);
    assert.match(r.stderr, /remove every gateway namespace of lab tnone/);
    assert.match(r.stderr, /Nothing was changed; run it with --yes/);
  });
});

describe('natops remove-gateways (real redis-server, git, namespaces)', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;
  const gatewayLive = () => namespaceExists(p.lab.lab.names.gateway('ngw'));
  const env = () => ({
    NATOPS_REDIS_URL: p.redis.url,
    NATOPS_PREFIX: p.config.prefix,
    NATOPS_RUNTIME: 'netns',
    NATOPS_LAB: p.lab.prefix,
  });
  const pausedQueues = async (queues: Queues = p.running!.queues) => {
    const paused = await Promise.all(QUEUE_NAMES.map((n) => queues.byName[n].isPaused()));
    return QUEUE_NAMES.filter((_, i) => paused[i]);
  };
  const marker = async (queues: Queues = p.running!.queues) => {
    const text = await queues.connection.get(removedMarkerKey(p.config.prefix));
    return text === null ? undefined : RemovedMarker.parse(JSON.parse(text));
  };

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    const sha = await p.push(seed, 'seed');
    assert.equal((await p.settled(sha)).get(SUMMARY_CONTEXT)?.state, 'success');
    assert.ok(await gatewayLive(), 'the push made the seed gateway');
  });
  after(async () => {
    await p?.cleanup();
  });

  it('removes the gateway, keeps it removed while paused, and serve resumes at its next start', async () => {
    const started = Date.now();
    const r = await natops(['remove-gateways', '--yes', '--timeout', '30'], { env: env() });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^paused every natops queue \(plan, resync, /m);
    assert.match(r.stdout, /^removed gateway ngw$/m);
    assert.match(r.stdout, /^removed 1 gateway\(s\) on netns/m);
    assert.equal(await gatewayLive(), false, "the gateway's namespace is gone");
    assert.deepEqual(await pausedQueues(), [...QUEUE_NAMES], 'every queue is paused, globally');
    const m = await marker();
    assert.deepEqual(m?.queues, [...QUEUE_NAMES]);
    assert.equal(m?.state, 'removed', 'the run is over: the next serve start may resume');
    assert.ok(m && m.at >= started && m.at <= Date.now(), JSON.stringify(m));

    // What would repair it meanwhile waits: a resync (as the scheduler or a replaced pod adds
    // one) and a delivered push.
    const resync = await p.running!.queues.byName.resync.add('resync', {});
    const sha2 = await p.push(withPortForward(seed, 9090), 'a port forward while natops is stopped');
    // (a moment for a worker that would take them: a paused queue's jobs stay 'waiting')
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await resync.getState(), 'waiting');
    assert.ok(await p.running!.queues.byName.resync.isPaused());
    const plans = await p.running!.queues.byName.plan.getJobCounts('waiting', 'active');
    assert.deepEqual(plans, { waiting: 1, active: 0 }, "the push's plan job waits");
    assert.notEqual((await p.statuses(sha2)).find((s) => s.context === SUMMARY_CONTEXT)?.state, 'success');
    assert.equal(await gatewayLive(), false, 'nothing brought the gateway back');

    // Running it again while paused: nothing to remove, and the marker keeps every queue to resume.
    const again = await natops(['remove-gateways', '--yes'], { env: env() });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^removed 0 gateway\(s\)/m);
    const latest = await marker();
    assert.deepEqual(latest?.queues, [...QUEUE_NAMES]);
    assert.ok(latest!.at >= m.at);

    // A serve start (a reinstall) resumes what the marker lists and says so once, at warn.
    await p.running!.close();
    p.config.resyncMs = 1000;
    const from = p.logRecords.length;
    await p.start();
    const said = p.logRecords
      .slice(from)
      .filter((l) => /gateways were removed at .* by remove-gateways; resumed the queues/.test(l.msg));
    assert.equal(said.length, 1, p.logs.slice(-10).join('\n'));
    assert.equal(said[0]!.level, 'warn');
    assert.ok(said[0]!.msg.includes(new Date(latest!.at).toISOString()), said[0]!.msg);
    assert.deepEqual(await pausedQueues(), []);
    assert.equal(await marker(), undefined, 'the marker is gone');

    // The push's own flow changed only the port forwards of a gateway that was gone: the resync,
    // now running, makes the gateway again at the push's generation.
    await p.settled(sha2);
    await p.until(
      'the gateway to come back with the pushed port forward',
      async () => {
        if (!(await gatewayLive())) return false;
        return /--dport 9090\b/.test(await p.lab.gatewaySave('ngw'));
      },
      30_000,
    );
  });

  it('a serve starting while a removal is under way leaves the queues paused until its time is up', async () => {
    const q = p.running!.queues;
    const { marker: m } = await pauseForRemoval(q.connection, q.byName, p.config.prefix, Date.now() + 60_000);
    assert.equal(m.state, 'removing');
    await p.running!.close();
    const from = p.logRecords.length;
    await p.start();
    assert.ok(
      p.logRecords
        .slice(from)
        .some((l) => l.level === 'warn' && /remove-gateways is removing every gateway/.test(l.msg)),
      p.logs.slice(-10).join('\n'),
    );
    assert.deepEqual(await pausedQueues(), [...QUEUE_NAMES], 'a restarted serve pod does not undo the removal');
    // once its time is up (the hook's deadline passed), a start resumes them
    const later = await resumeAfterRemoval(
      p.running!.queues.connection,
      p.running!.queues.byName,
      p.config.prefix,
      () => undefined,
      () => undefined,
      Date.now() + 61_000,
    );
    assert.equal(later?.state, 'removing');
    assert.deepEqual(await pausedQueues(), []);
    assert.equal(await marker(), undefined);
  });

  it('a removal that cannot start (a job still busy) changes nothing: the queues it paused are resumed', async () => {
    await p.until('the gateway to be live', gatewayLive, 30_000);
    await p.running!.close();
    // natops is stopped; the test's own connection looks at the queues
    const queues = new Queues(redisConnection(p.redis.url), {
      redisUrl: p.redis.url,
      prefix: p.config.prefix,
      attempts: 1,
      backoffMs: 100,
    });
    // a job in hand that does not end while remove-gateways waits
    let release: (() => void) | undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const workerConnection = redisConnection(p.redis.url);
    const worker = new Worker('resync', () => held, {
      connection: workerConnection,
      prefix: bullPrefix(p.config.prefix),
    });
    try {
      const job = await queues.byName.resync.add('resync', {});
      await p.until('the job to be active', async () => (await job.getState()) === 'active', 10_000);
      const r = await natops(['remove-gateways', '--yes', '--timeout', '1'], { env: env() });
      assert.equal(r.code, 2, r.stdout);
      assert.match(r.stderr, /jobs still active after 1 s in queue\(s\) resync \(1\)/);
      assert.match(r.stdout, /^nothing was removed; the queues it paused are resumed$/m);
      assert.deepEqual(await pausedQueues(queues), []);
      assert.equal(await marker(queues), undefined);
      assert.ok(await gatewayLive(), 'the gateway is untouched');
    } finally {
      release?.();
      await worker.close();
      await queues.close();
      // (BullMQ leaves a connection it was given open)
      queues.connection.disconnect();
      workerConnection.disconnect();
    }
  });
});
