// BullMQ workers for a chosen set of queues: one table of processors by queue, each given the
// same job context. Whether a failure is retried is the error's own `retryable`; close() lets
// the jobs in hand finish, as SIGTERM should. Each job's start and end (finished, retrying,
// failed for good, waiting for a rate limit) is one log line with the job's fields, and a metric.
import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { errorMessage, isRetryable, RetryLaterError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { within } from '../common/time.ts';

/** How long the workers' Redis connection may take to say whether it is up, at shutdown. */
const REDIS_CHECK_MS = 1000;
import { ConvergenceError } from '../runtime/reconcile.ts';
import type { Metrics } from './metrics.ts';
import type { GitHub } from '../gitops/github/client.ts';
import { publishCommit } from '../functions/github/publish.ts';
import { previewPullRequest } from '../functions/preview/pull-request.ts';
import type { GitSource } from '../gitops/git/source.ts';
import type { PreviewBook } from '../state/previews.ts';
import { processHandlerJob } from '../functions/handlers/process.ts';
import { jobContext, jobFields, type JobContext } from '../functions/jobs/env.ts';
import type { JobOutcome } from '../functions/jobs/finalize.ts';
import type { ResyncReport } from '../functions/resync.ts';
import { planPush, type PlannerEnv } from '../functions/planner/planner.ts';
import { resync, type ResyncEnv } from '../functions/resync.ts';
import { GitHubSyncJob, HandlerJob, PlanJob, PreviewJob, readJobData, type QueueName } from '../queue/jobs.ts';
import { bullPrefix, cappedBackoff } from '../queue/queues.ts';
import { failedPublicly, PREVIEW_CONTEXT, statusText, SUMMARY_CONTEXT } from '../state/statuses.ts';
import type { z } from 'zod';

export interface WorkerSettings {
  connection: Redis;
  prefix: string;
  concurrency: number;
  lockMs: number;
  /** the first retry's delay (every later one doubles it) */
  backoffMs: number;
  metrics?: Metrics | undefined;
}

export type WorkerEnv = PlannerEnv &
  ResyncEnv & {
    /** absent: natops does not talk to GitHub, and no job asks it to */
    github?: GitHub | undefined;
    previews: PreviewBook;
    /** where previews read commits (GitHub's API, whatever the planner reads) */
    previewSource?: GitSource | undefined;
  };

interface Processor {
  concurrency: 'one' | 'many';
  /** `log` is the job's logger, carrying its fields */
  run(job: Job, env: WorkerEnv, log: Logger): Promise<unknown>;
  /** what the job did, for its "finished" line */
  summary?(result: unknown): string;
  /** what a finished job of this queue adds to the metrics besides its duration */
  observe?(result: unknown, seconds: number, metrics: Metrics): void;
}

/** Job data that does not parse is a bug in whoever added the job: no retry will fix it. */
function parse<T>(schema: z.ZodType<T>, job: Job): T {
  const read = readJobData(schema, job.data);
  if (!read.ok) throw new UnrecoverableError(`bad job data: ${read.message}`);
  return read.data;
}

/** How long a stopping worker waits for the jobs it fetched while stopping to be back in their queues. */
const BOUNCE_WAIT_MS = 2000;
/**
 * A job handed back at shutdown waits this long before any worker may take it: a fetch of the
 * stopping process still under way would otherwise take it again at once, and leave it to the
 * stalled-job check when the process exits.
 */
const HAND_BACK_DELAY_MS = 1000;

const contextOf = <D>(data: D, job: Job, queue: QueueName, env: WorkerEnv, log: Logger): JobContext<D> =>
  jobContext(data, { queue, id: job.id!, attemptsMade: job.attemptsMade, attempts: job.opts.attempts ?? 1, log }, env);

const handler: Processor = {
  concurrency: 'many',
  run: (job, env, log) => {
    const data = parse(HandlerJob, job);
    return processHandlerJob(contextOf(data, job, data.kind, env, log), env);
  },
  summary(result) {
    const outcome = result as JobOutcome;
    if (outcome.kind === 'superseded') return `${outcome.why}; skipped`;
    return outcome.kind === 'done' && outcome.changes.length ? outcome.changes.join('; ') : 'no change';
  },
};

export const PROCESSORS: Record<QueueName, Processor> = {
  plan: {
    concurrency: 'one',
    observe: (_result, seconds, metrics) => metrics.plan(seconds),
    async run(job, env, log) {
      const data = parse(PlanJob, job);
      const ctx = contextOf(data, job, 'plan', env, log);
      try {
        return await planPush(ctx, env);
      } catch (e) {
        // A rate limit is a wait, not a failed attempt (the worker puts the job back).
        if (e instanceof RetryLaterError) throw e;
        if (ctx.lastAttempt || !isRetryable(e)) {
          await env.statuses.publish([
            {
              sha: data.after,
              context: SUMMARY_CONTEXT,
              state: 'error',
              description: statusText(`planning failed: ${errorMessage(e)}`),
              publicDescription: failedPublicly('planning'),
              targetUrl: ctx.url,
            },
          ]);
        }
        throw e;
      }
    },
  },
  resync: {
    concurrency: 'one',
    run: (job, env, log) => resync(contextOf(job.data, job, 'resync', env, log), env),
    observe: (result, _seconds, metrics) => metrics.repairs((result as ResyncReport).repairs.length),
    summary(result) {
      const r = result as ResyncReport;
      return `${r.checked} checked, ${r.repairs.length} repaired${r.unreadable.length ? `, ${r.unreadable.length} unreadable` : ''}`;
    },
  },
  github: {
    concurrency: 'many',
    run(job, env, log) {
      const data = parse(GitHubSyncJob, job);
      if (!env.github) throw new UnrecoverableError('GitHub is not configured in this process (NATOPS_GITHUB_*)');
      return publishCommit(contextOf(data, job, 'github', env, log), { ...env, github: env.github });
    },
  },
  preview: {
    concurrency: 'many',
    async run(job, env, log) {
      const data = parse(PreviewJob, job);
      if (!env.github || !env.previewSource)
        throw new UnrecoverableError('GitHub is not configured in this process (NATOPS_GITHUB_*)');
      const ctx = contextOf(data, job, 'preview', env, log);
      try {
        return await previewPullRequest(ctx, { ...env, github: env.github, source: env.previewSource });
      } catch (e) {
        if (e instanceof RetryLaterError) throw e;
        // The head's preview status must not stay pending when no attempt will follow.
        if (data.action === 'preview' && (ctx.lastAttempt || !isRetryable(e))) {
          await env.statuses.publish([
            {
              sha: data.head,
              context: PREVIEW_CONTEXT,
              state: 'error',
              description: statusText(`preview failed: ${errorMessage(e)}`),
              publicDescription: failedPublicly('preview'),
              targetUrl: ctx.url,
            },
          ]);
        }
        throw e;
      }
    },
  },
  vpc: handler,
  gateway: handler,
  'gateway-init': handler,
  'gateway-delete': handler,
  eip: handler,
  fip: handler,
  dnat: handler,
  snat: handler,
  'subnet-route': handler,
};

export interface Shutdown {
  /** the jobs in hand outlasted the deadline */
  late: boolean;
  /** the jobs handed back to their queues (queue/id) */
  handedBack: string[];
}

export interface Workers {
  workers: Worker[];
  /** every worker is running (none closed or closing) */
  running(): boolean;
  /**
   * Takes no new job and lets the jobs in hand finish, then stops. Past `deadlineMs` the jobs
   * still in hand go back to their queues (no attempt spent; any worker may take them a second
   * later), and the workers stop without waiting for them; their keys (queue/id) are returned.
   */
  close(deadlineMs: number): Promise<Shutdown>;
}

export function startWorkers(queues: readonly QueueName[], env: WorkerEnv, s: WorkerSettings): Workers {
  const inHand = new Map<string, { job: Job; token: string | undefined }>();
  const opts = {
    connection: s.connection as ConnectionOptions,
    prefix: bullPrefix(s.prefix),
    lockDuration: s.lockMs,
    stalledInterval: s.lockMs,
    maxStalledCount: 2,
  };
  /** jobs handed back at a shutdown out of time: their processors run on, unlistened to */
  const abandoned = new Set<string>();
  /** jobs fetched while stopping, on their way back to the queue */
  const bouncing = new Set<Promise<unknown>>();
  let idle: (() => void) | undefined;
  const workers = queues.map((name) => {
    const p = PROCESSORS[name];
    return new Worker(
      name,
      async (job: Job, token?: string) => {
        const key = `${name}/${job.id}`;
        // A fetch already under way when the worker paused: straight back to the queue, untouched.
        if (closing) {
          const back = job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS, token);
          bouncing.add(back);
          await back.finally(() => bouncing.delete(back));
          throw new DelayedError('handed back: the worker is stopping');
        }
        inHand.set(key, { job, token });
        try {
          const result = await processJob(name, p, job, token, () => abandoned.has(key));
          if (abandoned.has(key)) throw new DelayedError('handed back at shutdown');
          return result;
        } catch (e) {
          // handed back: BullMQ must not record an outcome for a job that is no longer this worker's
          throw abandoned.has(key) ? new DelayedError('handed back at shutdown') : e;
        } finally {
          inHand.delete(key);
          if (!inHand.size) idle?.();
        }
      },
      {
        ...opts,
        concurrency: p.concurrency === 'one' ? 1 : s.concurrency,
        settings: {
          backoffStrategy: (attemptsMade: number, type?: string) =>
            type === 'capped' ? cappedBackoff(attemptsMade, s.backoffMs) : s.backoffMs,
        },
      },
    );
  });
  let closing = false;
  return {
    workers,
    running: () => !closing && workers.every((w) => w.isRunning()),
    async close(deadlineMs) {
      closing = true;
      // No new jobs (pause without waiting: BullMQ's own wait needs Redis, and its close()
      // cannot be told to stop waiting once called); then the jobs in hand, until the deadline.
      for (const w of workers)
        w.pause(true).catch((e: unknown) =>
          env.log.warn({ queue: w.name }, `pausing worker ${w.name}: ${errorMessage(e)}`),
        );
      const finished = inHand.size ? new Promise<void>((r) => (idle = r)) : Promise.resolve();
      const late = await within(
        deadlineMs,
        finished.then(() => false),
        () => true,
      );
      /** `force`: without waiting for the jobs in hand (they are handed back) */
      const closeWorkers = (force: boolean) =>
        Promise.all(
          workers.map((w) =>
            w
              .close(force)
              .catch((e: unknown) => env.log.warn({ queue: w.name }, `closing worker ${w.name}: ${errorMessage(e)}`)),
          ),
        );
      const handedBack: string[] = [];
      // With Redis gone, BullMQ's close waits for it to come back and cannot be told to stop
      // (helm uninstall removes Redis and natops together): nothing is left to hand back then.
      const statuses = await within(
        REDIS_CHECK_MS,
        Promise.all(workers.map((w) => w.getBackend().client.then((c) => c.status))),
        () => ['unknown'],
      );
      if (statuses.some((status) => status !== 'ready')) {
        void closeWorkers(true);
        return { late, handedBack };
      }
      if (late) {
        await closeWorkers(true);
        for (const [key, { job, token }] of inHand) {
          abandoned.add(key);
          // (a job whose lock is gone already is for the stalled-job check to hand back)
          const moved = await job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS, token).then(
            () => true,
            (e: unknown) => void env.log.warn({ job: job.id }, `could not hand ${key} back: ${errorMessage(e)}`),
          );
          if (moved) handedBack.push(key);
        }
      } else {
        await closeWorkers(false);
      }
      await within(BOUNCE_WAIT_MS, Promise.allSettled([...bouncing]), () => undefined);
      return { late, handedBack };
    },
  };

  async function processJob(
    name: QueueName,
    p: Processor,
    job: Job,
    token: string | undefined,
    handedBack: () => boolean,
  ): Promise<unknown> {
    const attempt = job.attemptsMade + 1;
    const attempts = job.opts.attempts ?? 1;
    const fields = jobFields(name, job.id!, job.data, attempt);
    const log = env.log.child(fields);
    const kind = fields.kind;
    const started = performance.now();
    const durationMs = () => Math.round(performance.now() - started);
    /** the line and the metric of how the job ended; never the cause of another failure */
    const report = (write: () => void) => {
      try {
        write();
      } catch (e) {
        env.log.error(`reporting job ${name}/${job.id}: ${errorMessage(e)}`);
      }
    };
    log.info(`started (attempt ${attempt} of ${attempts})`);
    let result: unknown;
    try {
      result = await p.run(job, env, log);
    } catch (e) {
      if (handedBack()) {
        report(() =>
          log.info({ durationMs: durationMs() }, `ended after it was handed back at shutdown: ${errorMessage(e)}`),
        );
        throw e;
      }
      // A rate limit: back to the queue until it lifts, without spending an attempt.
      if (e instanceof RetryLaterError) {
        report(() => {
          log.info({ durationMs: durationMs(), retryAt: new Date(e.retryAt).toISOString() }, `${e.message}; waiting`);
          s.metrics?.job(kind, 'waiting', durationMs() / 1000);
        });
        await job.moveToDelayed(e.retryAt, token);
        throw new DelayedError(e.message);
      }
      const retried = isRetryable(e) && !(e instanceof UnrecoverableError) && attempt < attempts;
      report(() => {
        if (e instanceof ConvergenceError) s.metrics?.convergenceFailure();
        if (retried)
          log.warn(
            { durationMs: durationMs(), err: errorMessage(e) },
            `failed (attempt ${attempt} of ${attempts}), will retry: ${errorMessage(e)}`,
          );
        else
          log.error(
            { durationMs: durationMs(), err: errorMessage(e) },
            `failed for good (attempt ${attempt} of ${attempts}): ${errorMessage(e)}`,
          );
        s.metrics?.job(kind, retried ? 'retrying' : 'failed', durationMs() / 1000);
      });
      throw isRetryable(e) || e instanceof UnrecoverableError ? e : new UnrecoverableError(errorMessage(e));
    }
    report(() => {
      if (handedBack()) return log.info({ durationMs: durationMs() }, 'finished after it was handed back at shutdown');
      log.info({ durationMs: durationMs() }, `finished${p.summary ? `: ${p.summary(result)}` : ''}`);
      s.metrics?.job(kind, 'completed', durationMs() / 1000);
      if (s.metrics) p.observe?.(result, durationMs() / 1000, s.metrics);
    });
    return result;
  }
}
