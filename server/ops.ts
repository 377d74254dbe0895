// What an operator's probes and scraper ask: /healthz (the process answers), /readyz (it can do
// its work: Redis answers, its workers run, its runtime answers) and /metrics (Prometheus).
import express, { type Router } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { errorMessage } from '../common/errors.ts';
import type { GatewayRuntime } from '../runtime/runtime.ts';

/** How long one readiness check may take before it counts as failed. */
const CHECK_TIMEOUT_MS = 2000;

export interface Readiness {
  ready: boolean;
  /** each check: "ok", or why not */
  checks: { redis: string; workers: string; runtime: string };
}

export interface ReadinessSources {
  redis: Pick<Redis, 'ping'>;
  workers: { running(): boolean };
  runtime: Pick<GatewayRuntime, 'listGateways'>;
  /** its queues run handlers (a worker for plan or github only never touches a gateway) */
  usesRuntime: boolean;
}

async function check(what: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((r) => (timer = setTimeout(() => r(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS)));
  try {
    return await Promise.race([what().then(() => 'ok', (e: unknown) => errorMessage(e)), late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function readiness(s: ReadinessSources): Promise<Readiness> {
  const [redis, runtime] = await Promise.all([
    check(() => s.redis.ping()),
    // listing the gateways is the least a handler does: the namespaces, or the Deployments (API and RBAC)
    s.usesRuntime ? check(() => s.runtime.listGateways()) : Promise.resolve('ok (not used here)'),
  ]);
  const workers = s.workers.running() ? 'ok' : 'stopping or stopped';
  return { ready: [redis, workers, runtime].every((c) => c.startsWith('ok')), checks: { redis, workers, runtime } };
}

export function opsRouter(env: { ready: () => Promise<Readiness>; metrics: Registry }): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => void res.json({ ok: true }));
  router.get('/readyz', async (_req, res) => {
    const r = await env.ready();
    res.status(r.ready ? 200 : 503).json(r);
  });
  router.get('/metrics', async (_req, res) => {
    res.type(env.metrics.contentType).send(await env.metrics.metrics());
  });
  return router;
}
