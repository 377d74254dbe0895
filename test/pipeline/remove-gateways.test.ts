// `natops remove-gateways`, what the chart's pre-delete hook runs: as a real process against a
// real redis-server and lab, it removes the gateway a push made, and pauses the queues so that
// neither a resync nor a push brings it back (their jobs wait); the next serve start resumes them
// and the gateway comes back. Without --yes it refuses and touches nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QUEUE_NAMES } from '../../queue/jobs.ts';
import { RemovedMarker, removedMarkerKey } from '../../queue/gateways-removed.ts';
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
  const pausedQueues = async () => {
    const paused = await Promise.all(QUEUE_NAMES.map((n) => p.running!.queues.byName[n].isPaused()));
    return QUEUE_NAMES.filter((_, i) => paused[i]);
  };
  const marker = async () => {
    const text = await p.running!.queues.connection.get(removedMarkerKey(p.config.prefix));
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
    assert.ok(m && m.at >= started && m.at <= Date.now(), JSON.stringify(m));

    // What would repair it meanwhile waits: a resync (as the scheduler or a replaced pod adds
    // one) and a delivered push.
    const resync = await p.running!.queues.byName.resync.add('resync', {});
    const sha2 = await p.push(withPortForward(seed, 9090), 'a port forward while natops is stopped');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await resync.getState(), 'waiting');
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
});
