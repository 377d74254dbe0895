// KEDA scales each handler Deployment on the lists its ScaledObject names. Those names come from
// the chart (helm template, split mode with KEDA); this test enqueues jobs through natops's own
// Queues on a real redis-server and reads what KEDA's redis scaler reads (LLEN of each list):
// the wait list counts jobs ready to run, the active list the jobs being worked on, and a flow's
// later jobs count for their kind only once the job before them is done.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { type ConnectionOptions, Worker } from 'bullmq';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import type { HandlerKind } from '../../dataplane/kinds.ts';
import type { HandlerJob } from '../../queue/jobs.ts';
import { bullPrefix, Queues, redisConnection } from '../../queue/queues.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { renderChart } from '../helpers/helm.ts';

const PREFIX = 'kedatest';
const SHA = 'a'.repeat(40);
const job = (kind: HandlerKind, last = false): HandlerJob => ({
  kind,
  sha: SHA,
  gen: 1,
  cause: 'push',
  last,
  ...(kind === 'vpc' ? {} : { gateway: 'ngw' }),
});

describe('the lists KEDA watches are the ones BullMQ fills', () => {
  let dir: string;
  let redis: LocalRedis;
  let conn: Redis;
  let queues: Queues;
  /** each handler kind's lists, as the rendered ScaledObjects name them */
  const watched = new Map<string, { wait: string; active: string }>();

  before(async () => {
    const objs = await renderChart({ mode: 'split', keda: { enabled: true }, prefix: PREFIX });
    for (const o of objs.filter((x) => x.kind === 'ScaledObject')) {
      const so = new ScaledObject(o as unknown as ConstructorParameters<typeof ScaledObject>[0]);
      so.validate();
      const lists = so.spec.triggers.map((t) => String(t.metadata.listName));
      const kind = so.metadata?.labels?.['natops.io/handler'];
      assert.ok(kind);
      const wait = lists.find((l) => l.endsWith(':wait'));
      const active = lists.find((l) => l.endsWith(':active'));
      assert.ok(wait && active, `${kind}: ${lists.join(', ')}`);
      watched.set(kind, { wait, active });
    }
    dir = await mkdtemp(join(tmpdir(), 'natops-keda-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
    conn = redisConnection(redis.url);
    queues = new Queues(conn, { redisUrl: redis.url, prefix: PREFIX, attempts: 1, backoffMs: 100 });
  });
  after(async () => {
    await queues?.close();
    conn?.disconnect();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const llen = (key: string) => conn.llen(key);

  it("names <prefix>:bull:<kind>:wait and :active, natops's queue keys", () => {
    assert.equal(watched.size, 9);
    for (const [kind, lists] of watched) {
      assert.equal(lists.wait, `${bullPrefix(PREFIX)}:${kind}:wait`);
      assert.equal(lists.active, `${bullPrefix(PREFIX)}:${kind}:active`);
    }
  });

  it('counts the jobs added to a queue, as lists (what the redis scaler reads)', async () => {
    const dnat = watched.get('dnat')!;
    assert.equal(await llen(dnat.wait), 0);
    for (let i = 0; i < 3; i++) await queues.byName.dnat.add('dnat ngw', { ...job('dnat'), i }, { jobId: `dnat-${i}` });
    assert.equal(await conn.type(dnat.wait), 'list');
    assert.equal(await llen(dnat.wait), 3);
    assert.equal(await llen(dnat.wait), await queues.byName.dnat.getWaitingCount());
    assert.equal(await llen(watched.get('snat')!.wait), 0, "another kind's list is untouched");
    await queues.byName.dnat.obliterate({ force: true });
  });

  it("a flow: only the job that can run counts; the next kind's counts once it is done, the running one as active", async () => {
    await queues.addFlow({ idPrefix: 'g1.ngw', jobs: [job('vpc'), job('gateway'), job('gateway-init', true)] });
    assert.equal(await llen(watched.get('vpc')!.wait), 1);
    assert.equal(await llen(watched.get('gateway')!.wait), 0, 'waits for its child: not counted');
    assert.equal(await llen(watched.get('gateway-init')!.wait), 0);

    // a vpc worker takes the job: it leaves the wait list for the active list
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const workerConn = redisConnection(redis.url);
    const worker = new Worker(
      'vpc',
      async () => {
        started();
        await held;
      },
      { connection: workerConn as ConnectionOptions, prefix: bullPrefix(PREFIX) },
    );
    try {
      await running;
      assert.equal(await llen(watched.get('vpc')!.wait), 0);
      assert.equal(await llen(watched.get('vpc')!.active), 1);
      release();
      const deadline = Date.now() + 10_000;
      while ((await llen(watched.get('gateway')!.wait)) === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await llen(watched.get('gateway')!.wait), 1, 'the gateway job is ready to run now');
      assert.equal(await llen(watched.get('vpc')!.active), 0);
      assert.equal(await llen(watched.get('gateway-init')!.wait), 0);
    } finally {
      release();
      await worker.close(true);
      workerConn.disconnect();
    }
  });
});
