// What a running natops counts, with prom-client, served at /metrics by serve and worker. One
// registry per process part (not prom-client's global one): a test may run several in a process.
// Counters and histograms are fed where things happen (the webhook, the workers, the lease,
// commands). Queue depths and gateways by state are the whole deployment's, read from Redis when
// scraped: only `serve` exports them (a worker's /metrics would repeat them), and a scrape while
// Redis is gone answers without them rather than hang. What they read is reused for a few seconds,
// so scrapes (anonymous ones included) cost Redis one read per gauge in that time, not one each.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { observeCommands } from '../common/exec.ts';
import { within } from '../common/time.ts';
import type { DeliveryResult } from './webhook.ts';
import { QUEUE_NAMES, type QueueName } from '../queue/jobs.ts';
import type { Queues } from '../queue/queues.ts';
import type { Records } from '../state/records.ts';

/** job states worth a gauge: waiting to run, running, delayed for a retry, failed for good */
const DEPTH_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'] as const;

export type JobResult = 'completed' | 'failed' | 'retrying' | 'waiting';

export interface Metrics {
  registry: Registry;
  webhook(result: DeliveryResult, seconds: number): void;
  plan(seconds: number): void;
  job(kind: string, result: JobResult, seconds: number): void;
  repairs(count: number): void;
  convergenceFailure(): void;
  leaseWait(seconds: number, result: 'taken' | 'timeout'): void;
  /** stops feeding the registry from process-wide sources (commands) */
  close(): void;
}

/** How long a scrape waits for Redis before it answers without the gauges read from it. */
const COLLECT_TIMEOUT_MS = 1000;
/** How long what the gauges read from Redis is reused (about 80 commands per read). */
const REDIS_GAUGES_CACHE_MS = 5000;

/** `read`, run at most once per `ms` (scrapes meanwhile share its answer, a timeout's too). */
function reused<T>(ms: number, now: () => number, read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    if (!last || now() - last.at >= ms) last = { at: now(), value: read() };
    return last.value;
  };
}

export interface MetricSources {
  queues: Queues;
  records: Records;
  workerQueues: readonly QueueName[];
  /** export the deployment-wide gauges read from Redis (queue depths, gateways by state) */
  deployment: boolean;
  /** the clock of the gauges' cache (tests) */
  now?: () => number;
}

export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'natops_' });
  const webhookSeconds = new Histogram({
    name: 'natops_webhook_answer_seconds',
    help: "time from a delivery's arrival to the webhook's answer",
    labelNames: ['result'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'natops_webhook_deliveries_total',
    help: 'webhook deliveries by what became of them',
    labelNames: ['result'],
    registers: [registry],
  });
  const planSeconds = new Histogram({
    name: 'natops_plan_duration_seconds',
    help: 'time to plan one push (read, validate, decide, enqueue)',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const jobSeconds = new Histogram({
    name: 'natops_job_duration_seconds',
    help: 'time a job ran, by kind and result',
    labelNames: ['kind', 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const repairs = new Counter({
    name: 'natops_repairs_total',
    help: 'repairs the resync started (gateways or networks found drifted)',
    registers: [registry],
  });
  const convergence = new Counter({
    name: 'natops_convergence_failures_total',
    help: 'job attempts after which a gateway still differed from its spec',
    registers: [registry],
  });
  const leaseSeconds = new Histogram({
    name: 'natops_lease_wait_seconds',
    help: "time spent waiting for a lease (a gateway's, the networks', the planner's, …): taken, or given up",
    labelNames: ['result'],
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    registers: [registry],
  });
  const commandSeconds = new Histogram({
    name: 'natops_command_duration_seconds',
    help: 'commands run in gateways and the lab, by program and result',
    labelNames: ['program', 'result'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [registry],
  });
  if (sources.deployment) {
    const now = sources.now ?? Date.now;
    const depths = reused(REDIS_GAUGES_CACHE_MS, now, () =>
      within(
        COLLECT_TIMEOUT_MS,
        Promise.all(QUEUE_NAMES.map((name) => sources.queues.byName[name].getJobCounts(...DEPTH_STATES))),
        () => undefined,
      ).catch(() => undefined),
    );
    const snapshot = reused(REDIS_GAUGES_CACHE_MS, now, () =>
      within(COLLECT_TIMEOUT_MS, sources.records.snapshot(), () => undefined).catch(() => undefined),
    );
    new Gauge({
      name: 'natops_queue_jobs',
      help: "jobs per queue and state (the whole deployment's)",
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        const counts = await depths();
        this.reset();
        counts?.forEach((c, i) => {
          for (const state of DEPTH_STATES) this.set({ queue: QUEUE_NAMES[i]!, state }, c[state] ?? 0);
        });
      },
    });
    new Gauge({
      name: 'natops_gateways',
      help: 'gateways by the reason of their condition (Applied, Progressing, Failed, …)',
      labelNames: ['reason'],
      registers: [registry],
      async collect() {
        const snap = await snapshot();
        this.reset();
        for (const rec of snap?.gateways.values() ?? []) this.inc({ reason: rec.condition.reason });
      },
    });
  }
  const workers = new Gauge({
    name: 'natops_worker_queues',
    help: 'queues this process works on',
    labelNames: ['queue'],
    registers: [registry],
  });
  for (const q of sources.workerQueues) workers.set({ queue: q }, 1);
  const stopCommands = observeCommands((c) =>
    commandSeconds.observe({ program: c.program, result: c.ok ? 'ok' : 'failed' }, c.seconds),
  );

  return {
    registry,
    webhook(result, seconds) {
      deliveries.inc({ result });
      webhookSeconds.observe({ result }, seconds);
    },
    plan: (seconds) => planSeconds.observe(seconds),
    job: (kind, result, seconds) => jobSeconds.observe({ kind, result }, seconds),
    repairs: (count) => repairs.inc(count),
    convergenceFailure: () => convergence.inc(),
    leaseWait: (seconds, result) => leaseSeconds.observe({ result }, seconds),
    close: stopCommands,
  };
}
