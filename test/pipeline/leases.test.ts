// Leases and records under forced interleavings, with real Redis and a real gateway:
// - a job whose lease is taken while it works stops before its next change (nothing runs),
//   fails retryably, and leaves the thief's lease alone;
// - a removal finishing while a newer commit re-adds the gateway does not forget it: record
//   updates are compare-and-set, so the removal sees the re-add and keeps the record.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { isRetryable } from '../../common/errors.ts';
import { processHandlerJob, type HandlerEnv } from '../../functions/handlers/process.ts';
import { jobContext } from '../../functions/jobs/env.ts';
import { finalize } from '../../functions/jobs/finalize.ts';
import type { HandlerJob } from '../../queue/jobs.ts';
import { LeaseLostError } from '../../state/lock.ts';
import { redisConnection } from '../../queue/queues.ts';
import { gatewayTarget, Records, type GatewayRecord } from '../../state/records.ts';
import { StatusBook } from '../../state/statuses.ts';
import { Store } from '../../state/store.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import type { GatewayRuntime } from '../../runtime/runtime.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, seedSpec } from '../helpers/manifests.ts';
import { recordPendingDnat } from '../helpers/fixtures.ts';
import { silentLogger } from '../../common/log.ts';

const PREFIX = 'lease-test';
const SHA = 'ab'.repeat(20);

describe('leases and records under forced interleavings (real Redis, real gateway)', () => {
  let lab: LabHarness;
  let redis: LocalRedis;
  let dir: string;
  const connections: Redis[] = [];
  const connect = () => {
    const c = redisConnection(redis.url);
    connections.push(c);
    return c;
  };

  before(async () => {
    lab = await LabHarness.create();
    dir = await mkdtemp(join(tmpdir(), 'natops-lease-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
    await lab.apply(await seedObjects());
  });
  after(async () => {
    for (const c of connections) c.disconnect();
    await redis?.stop();
    await lab?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('a job whose lease is stolen mid-job runs nothing more and fails retryably', async () => {
    const c = connect();
    const records = new Records(c, PREFIX);
    const store = new Store(c, PREFIX);
    const spec = await seedSpec((s) =>
      (s.gateway as { spec: { dnatRules: unknown[] } }).spec.dnatRules.push({
        eip: '192.168.0.112',
        externalPort: 6100,
        protocol: 'tcp',
        internalIp: '10.0.1.10',
        internalPort: 80,
      }),
    );
    const job: HandlerJob = { kind: 'dnat', gateway: 'ngw', sha: SHA, gen: 1, cause: 'push', spec, last: true };
    await recordPendingDnat(records, { ...job, gateway: 'ngw', spec });

    // The gateway's state is read, then held until the lease is gone.
    let reached!: () => void;
    const atRead = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const netns = new NetnsRuntime(lab.lab);
    const runtime: GatewayRuntime = {
      ...netns,
      kind: 'netns',
      ensureGateway: (s) => netns.ensureGateway(s),
      listGateways: () => netns.listGateways(),
      removeGateway: (n) => netns.removeGateway(n),
      async gateway(name) {
        const h = (await netns.gateway(name))!;
        return {
          ...h,
          readState: async () => {
            const state = await h.readState();
            reached();
            await gate;
            return state;
          },
        };
      },
    };
    const env: HandlerEnv = {
      clients: { runtime, network: { apply: async () => [] } },
      records,
      store,
      statuses: new StatusBook(c, PREFIX),
      redis: c,
      lock: { ttlMs: 5000, waitMs: 5000 },
      jobUrl: (q, id) => `${q}/${id}`,
      log: silentLogger(),
    };
    const before = await lab.gatewaySave('ngw');
    const ctx = jobContext(job, { queue: 'dnat', id: 'j1', attemptsMade: 0, attempts: 2 }, env);
    const running = processHandlerJob(ctx, env);
    await atRead;
    const key = store.leaseKey(gatewayTarget('ngw'));
    await connect().set(key, 'thief', 'PX', 60_000);
    release();

    const error = await running.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof LeaseLostError, `expected LeaseLostError, got ${String(error)}`);
    assert.equal(isRetryable(error), true);
    assert.equal(await lab.gatewaySave('ngw'), before, 'the job changed the gateway after losing its lease');
    assert.equal(await c.get(key), 'thief', "the thief's lease was released by the job that lost it");
    const rec = await records.get(gatewayTarget('ngw'));
    assert.equal(rec?.condition.ready, 'Unknown');
    assert.match(rec!.condition.message, /^dnat: attempt 1 of 2 failed: lost the lease /);
  });

  it('a removal finishing while a newer commit re-adds the gateway keeps its record', async () => {
    const c = connect();
    const records = new Records(c, 'cas-test');
    const spec = await seedSpec();
    const removing: GatewayRecord = {
      name: 'ngw',
      desired: { gen: 5, sha: SHA, cause: 'push', state: null },
      pending: ['gateway-delete'],
      observedGen: 4,
      lastApplied: { gen: 4, sha: SHA, at: 1, state: spec },
      condition: {
        ready: 'Unknown',
        reason: 'Progressing',
        message: 'removing',
        sha: SHA,
        gen: 5,
        cause: 'push',
        at: 1,
      },
    };
    await records.update(gatewayTarget('ngw'), () => removing);
    const readd = (cur: GatewayRecord | undefined): GatewayRecord => ({
      ...cur!,
      desired: { gen: 6, sha: 'cd'.repeat(20), cause: 'push', state: spec },
      pending: ['gateway-delete'],
      condition: { ...cur!.condition, gen: 6, sha: 'cd'.repeat(20), message: 'applying' },
    });
    // Between the removal's read of the record and its write, the planner re-adds the gateway.
    const other = new Records(connect(), 'cas-test');
    let interfered = false;
    const interleaved = new Proxy(c, {
      get(target, prop, receiver) {
        if (prop === 'eval' && !interfered) {
          return async (...args: Parameters<Redis['eval']>) => {
            interfered = true;
            await other.update(gatewayTarget('ngw'), readd);
            return target.eval(...args);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const job: HandlerJob = { kind: 'gateway-delete', gateway: 'ngw', sha: SHA, gen: 5, cause: 'push', last: true };
    const env = { records: new Records(interleaved, 'cas-test'), statuses: new StatusBook(c, 'cas-test') };
    await finalize(
      jobContext(
        job,
        { queue: 'gateway-delete', id: 'd5', attemptsMade: 0, attempts: 1 },
        { jobUrl: () => 'u', log: silentLogger() },
      ),
      { kind: 'done', changes: [] },
      env,
    );
    assert.equal(interfered, true);
    const rec = await records.get(gatewayTarget('ngw'));
    assert.equal(rec?.desired?.gen, 6, 'the re-added gateway was forgotten');
    assert.equal(rec?.lastApplied, undefined, 'the removal is recorded: nothing of it is live');
    assert.deepEqual(await records.gatewayNames(), ['ngw']);
  });
});
