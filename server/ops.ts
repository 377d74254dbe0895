// What an operator's probes and scraper ask: /healthz (the process answers), /readyz (it can do
// its work: Redis answers, its workers run, its runtime answers) and /metrics (Prometheus).
import express, { type Router } from 'express';
import type { Registry } from 'prom-client';
import { errorMessage } from '../common/errors.ts';
import { within } from '../common/time.ts';
import type { GatewayRuntime } from '../runtime/runtime.ts';

/** How long one readiness check may take before it counts as failed. */
const CHECK_TIMEOUT_MS = 2000;

export interface Readiness {
  ready: boolean;
  /** each check: "ok", or why not */
  checks: { redis: string; workers: string; runtime: string };
}

export interface ReadinessSources {
  redis: { ping(): Promise<unknown> };
  workers: { running(): boolean };
  runtime: Pick<GatewayRuntime, 'listGateways'>;
  /** its queues run handlers (a worker for plan or github only never touches a gateway) */
  usesRuntime: boolean;
}

const check = (what: () => Promise<unknown>): Promise<string> =>
  within(
    CHECK_TIMEOUT_MS,
    what().then(
      () => 'ok',
      (e: unknown) => errorMessage(e),
    ),
    () => `no answer within ${CHECK_TIMEOUT_MS} ms`,
  );

/** How long an answer of /readyz is reused: a probe storm costs one check a second, not one each. */
const READY_CACHE_MS = 1000;

/** The readiness checks, run at most once per READY_CACHE_MS (concurrent asks share one run). */
export function cachedReadiness(s: ReadinessSources, now: () => number = Date.now): () => Promise<Readiness> {
  let last: { at: number; answer: Promise<Readiness> } | undefined;
  return () => {
    if (!last || now() - last.at >= READY_CACHE_MS) last = { at: now(), answer: readiness(s) };
    return last.answer;
  };
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
