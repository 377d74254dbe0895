// /readyz's checks: what each says, a check that hangs counts as failed after its limit, and
// answers are reused for a second (a probe storm costs one check a second).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cachedReadiness, readiness } from '../../server/ops.ts';

const sources = (
  over: { ping?: () => Promise<string>; list?: () => Promise<string[]>; running?: boolean; usesRuntime?: boolean } = {},
) => ({
  redis: { ping: over.ping ?? (async () => 'PONG') },
  workers: { running: () => over.running ?? true },
  runtime: { listGateways: over.list ?? (async () => []) },
  usesRuntime: over.usesRuntime ?? true,
});

describe('readiness', () => {
  it('ready only when Redis, the workers and the runtime all answer; each failure says why', async () => {
    assert.deepEqual(await readiness(sources()), {
      ready: true,
      checks: { redis: 'ok', workers: 'ok', runtime: 'ok' },
    });
    const down = await readiness(
      sources({
        ping: async () => {
          throw new Error('connect ECONNREFUSED');
        },
        running: false,
      }),
    );
    assert.deepEqual(down, {
      ready: false,
      checks: { redis: 'connect ECONNREFUSED', workers: 'stopping or stopped', runtime: 'ok' },
    });
    const noApi = await readiness(
      sources({
        list: async () => {
          throw new Error('deployments is forbidden');
        },
      }),
    );
    assert.equal(noApi.ready, false);
    assert.equal(noApi.checks.runtime, 'deployments is forbidden');
    // a process whose queues never touch a gateway does not need its runtime
    const planner = await readiness(
      sources({
        list: async () => {
          throw new Error('no cluster');
        },
        usesRuntime: false,
      }),
    );
    assert.equal(planner.ready, true);
  });

  it('a check that never answers fails after its limit instead of hanging the probe', async () => {
    const r = await readiness(sources({ ping: () => new Promise<string>(() => undefined) }));
    assert.equal(r.ready, false);
    assert.match(r.checks.redis, /no answer within \d+ ms/);
  });

  it('answers are reused for a second, then checked again', async () => {
    let pings = 0;
    let now = 0;
    const ready = cachedReadiness(sources({ ping: async () => String(++pings) }), () => now);
    await Promise.all([ready(), ready(), ready()]);
    now = 999;
    await ready();
    assert.equal(pings, 1);
    now = 1000;
    await ready();
    assert.equal(pings, 2);
  });
});
