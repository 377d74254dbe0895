// Two workers holding jobs of two commits for one gateway: whatever order they run in, the newer
// commit's rules are what is live. Real Redis (two connections, as two processes would have),
// real namespaces.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { compileGateway } from '../../dataplane/compile.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { runHandlerJob, type JobEnv } from '../../functions/handlers/run-job.ts';
import type { HandlerJob } from '../../queue/kinds.ts';
import { redisConnection } from '../../queue/queues.ts';
import { StatusBook } from '../../queue/statuses.ts';
import { Store } from '../../queue/store.ts';
import { NetnsRuntime } from '../../runtime/netns.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, seedSpec, set } from '../helpers/manifests.ts';

describe('a job of an older commit never overwrites a newer one', () => {
  let lab: LabHarness;
  let redis: LocalRedis;
  let dir: string;
  const connections: Redis[] = [];
  let older: GatewaySpec;
  let newer: GatewaySpec;

  /** One worker's view: its own Redis connection, the shared lab. */
  const worker = (): JobEnv => {
    const c = redisConnection(redis.url);
    connections.push(c);
    return {
      clients: { runtime: new NetnsRuntime(lab.lab), network: { apply: (t) => lab.lab.up(t) } },
      store: new Store(c, 'gen-test'), statuses: new StatusBook(c, 'gen-test'), redis: c,
      lock: { ttlMs: 2000, waitMs: 20_000 }, jobUrl: (q, id) => `http://dashboard/${q}/${id}`, log: () => undefined,
    };
  };
  const job = (gen: number, spec: GatewaySpec): HandlerJob => ({
    kind: 'dnat', target: 'ngw', sha: gen.toString(16).padStart(40, '0'), gen, cause: 'push', spec, chain: 'ngw', last: true,
  });
  const liveDnat = async () => (await lab.gatewaySave('ngw')).split('\n').filter((l) => l.startsWith('-A SHARED_DNAT'));
  const wanted = (spec: GatewaySpec) => compileGateway(spec).nat.SHARED_DNAT!.map((r) => `-A SHARED_DNAT ${r}`);

  before(async () => {
    lab = await LabHarness.create();
    dir = await mkdtemp(join(tmpdir(), 'natops-gen-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
    await lab.apply(await seedObjects());
    older = await seedSpec((s) => set(s.gateway, 'spec.dnatRules.0.externalPort', 6001));
    newer = await seedSpec((s) => set(s.gateway, 'spec.dnatRules.0.externalPort', 6002));
  });
  after(async () => {
    for (const c of connections) c.disconnect();
    await redis?.stop();
    await lab?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  for (const order of ['older first', 'newer first', 'both at once'] as const) {
    it(`${order}: the newer commit's rules are live and recorded`, async () => {
      const a = worker();
      const b = worker();
      const oldGen = await a.store.nextGen();
      const gen = await a.store.nextGen();
      // The planner recorded generation `gen` (newer) after `gen - 1` (older).
      await a.store.setDesired('ngw', gen, job(gen, newer).sha, { spec: newer });
      const runOld = () => runHandlerJob(job(oldGen, older), 'old', a);
      const runNew = () => runHandlerJob(job(gen, newer), 'new', b);
      let reports;
      if (order === 'older first') reports = [await runOld(), await runNew()];
      else if (order === 'newer first') reports = [await runNew(), await runOld()].reverse();
      else reports = await Promise.all([runOld(), runNew()]);
      assert.equal(reports[0]!.superseded, job(gen, newer).sha, 'the older job says it was superseded');
      assert.equal(reports[1]!.superseded, undefined);
      assert.deepEqual(await liveDnat(), wanted(newer));
      const rec = await a.store.target('ngw');
      assert.equal(rec?.live?.gen, gen);
      assert.equal(rec?.live?.spec?.dnats[0]?.externalPort, 6002);
      const status = (await a.statuses.get(job(oldGen, older).sha)).find((s) => s.context === 'natops/ngw');
      assert.match(status!.description, /superseded by newer commit/);
    });
  }
});
