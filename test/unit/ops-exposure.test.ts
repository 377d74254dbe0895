// What an anonymous client gets from the ops endpoints: /readyz's reasons only for a local
// client (others read ok/fail, the log has the reasons), and scrapes of /metrics that reuse the
// gauges read from Redis for a few seconds instead of asking Redis each time.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import { Registry } from 'prom-client';
import type { Queues } from '../../queue/queues.ts';
import type { Records, RecordSnapshot } from '../../state/records.ts';
import { createMetrics } from '../../server/metrics.ts';
import { opsRouter, type Readiness } from '../../server/ops.ts';

const NOT_READY: Readiness = {
  ready: false,
  checks: { redis: 'connect ECONNREFUSED 10.1.2.3:6379', workers: 'ok', runtime: 'ok' },
};

async function readyz(local: boolean, answer: Readiness = NOT_READY) {
  const logged: string[] = [];
  const app = express();
  app.use(
    opsRouter({
      ready: async () => answer,
      metrics: new Registry(),
      log: { warn: (m: string) => void logged.push(m), info: (m: string) => void logged.push(m) },
      local: () => local,
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`);
    return { status: res.status, body: (await res.json()) as Readiness, logged };
  } finally {
    server.close();
  }
}

describe('/readyz', () => {
  it('tells a client that is not local only ok or fail per check; the reason goes to the log', async () => {
    const r = await readyz(false);
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, { ready: false, checks: { redis: 'fail', workers: 'ok', runtime: 'ok' } });
    assert.match(r.logged.join('\n'), /connect ECONNREFUSED 10\.1\.2\.3:6379/);
  });

  it('tells a local client the reasons', async () => {
    const r = await readyz(true);
    assert.equal(r.status, 503);
    assert.deepEqual(r.body, NOT_READY);
  });
});

describe('/metrics', () => {
  it('reads the queue depths and the records from Redis at most once in a few seconds', async () => {
    let counts = 0;
    let snapshots = 0;
    let now = 0;
    const queue = {
      getJobCounts: async () => {
        counts++;
        return { waiting: 1 };
      },
    };
    const queues = { byName: new Proxy({}, { get: () => queue }) } as unknown as Queues;
    const records = {
      snapshot: async (): Promise<RecordSnapshot> => {
        snapshots++;
        return { gateways: new Map(), networks: undefined };
      },
    } as unknown as Records;
    const m = createMetrics({ queues, records, workerQueues: [], deployment: true, now: () => now });
    try {
      await Promise.all([m.registry.metrics(), m.registry.metrics(), m.registry.metrics()]);
      const perScrape = counts;
      assert.ok(perScrape > 0);
      assert.equal(snapshots, 1);
      now = 4999;
      assert.match(await m.registry.metrics(), /natops_queue_jobs\{queue="dnat",state="waiting"\} 1/);
      assert.equal(counts, perScrape, 'read again within the cache time');
      assert.equal(snapshots, 1);
      now = 5000;
      await m.registry.metrics();
      assert.equal(counts, 2 * perScrape);
      assert.equal(snapshots, 2);
    } finally {
      m.close();
    }
  });
});
