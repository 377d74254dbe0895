// What an operator's probes and scraper ask: /healthz (the process answers), /readyz (it can do
// its work: Redis answers, its workers run, its runtime answers) and /metrics (Prometheus).
// /readyz tells why not only to a local client: the reasons name hosts and ports (Redis's, the
// Kubernetes API's); others read ok or fail, and the reasons go to the log.
import express, { type Request, type Router } from 'express';
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

/** Where a not-ready answer's reasons are logged: once each time they change, and when ready again. */
export interface OpsLog {
  warn(msg: string): void;
  info(msg: string): void;
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** The client is this machine (the socket's peer; X-Forwarded-For is not believed). */
export const isLocal = (req: Request): boolean => LOOPBACK.test(req.socket.remoteAddress ?? '');

/** Each check as ok or fail, without its reason. */
const bare = (r: Readiness): Readiness => ({
  ready: r.ready,
  checks: {
    redis: r.checks.redis.startsWith('ok') ? 'ok' : 'fail',
    workers: r.checks.workers.startsWith('ok') ? 'ok' : 'fail',
    runtime: r.checks.runtime.startsWith('ok') ? 'ok' : 'fail',
  },
});

export function opsRouter(env: {
  ready: () => Promise<Readiness>;
  metrics: Registry;
  log?: OpsLog;
  /** whether a request may read the reasons (default: from this machine) */
  local?: (req: Request) => boolean;
}): Router {
  const router = express.Router();
  const local = env.local ?? isLocal;
  let logged = '';
  router.get('/healthz', (_req, res) => void res.json({ ok: true }));
  router.get('/readyz', async (req, res) => {
    const r = await env.ready();
    const reasons = r.ready ? '' : JSON.stringify(r.checks);
    if (reasons !== logged) {
      if (r.ready) env.log?.info('ready again');
      else env.log?.warn(`not ready: ${reasons}`);
      logged = reasons;
    }
    res.status(r.ready ? 200 : 503).json(local(req) ? r : bare(r));
  });
  router.get('/metrics', async (_req, res) => {
    res.type(env.metrics.contentType).send(await env.metrics.metrics());
  });
  return router;
}
