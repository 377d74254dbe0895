// BullMQ workers for a chosen set of queues: each takes a job, checks its data, calls the
// function for its kind, and classifies failures (a bad job or manifest does not retry; the
// rest retries with backoff). close() lets the jobs in hand finish, as SIGTERM should.
import { UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import { ZodError } from 'zod';
import { planPush, type PlannerEnv } from '../functions/planner.ts';
import { BadJobError } from '../functions/handlers/handlers.ts';
import { reportFailure, runHandlerJob, type JobEnv } from '../functions/handlers/run-job.ts';
import { resync, type ResyncEnv } from '../functions/resync.ts';
import { ManifestValidationError } from '../gitops/manifests/issues.ts';
import { HandlerJob, isHandlerKind, PlanJob, type QueueName } from '../queue/kinds.ts';
import { SUMMARY_CONTEXT } from '../queue/statuses.ts';
import { statusText } from '../gitops/commit-plan.ts';
import { bullPrefix } from '../queue/queues.ts';
import type { Redis } from 'ioredis';

export interface WorkerSettings {
  connection: Redis;
  prefix: string;
  concurrency: number;
  lockMs: number;
}

function permanent(e: unknown): boolean {
  return e instanceof BadJobError || e instanceof ZodError || e instanceof ManifestValidationError;
}

/** Rethrows so BullMQ retries, or as UnrecoverableError when retrying cannot help. */
function rethrow(e: unknown): never {
  if (permanent(e)) throw new UnrecoverableError(e instanceof Error ? e.message : String(e));
  throw e;
}

const isFinalAttempt = (job: Job, e: unknown) => permanent(e) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);

export function startWorkers(queues: readonly QueueName[], env: PlannerEnv & ResyncEnv & JobEnv, s: WorkerSettings): Worker[] {
  const opts = {
    connection: s.connection as ConnectionOptions,
    prefix: bullPrefix(s.prefix),
    lockDuration: s.lockMs,
    stalledInterval: s.lockMs,
    maxStalledCount: 2,
  };
  return queues.map((name) => {
    if (name === 'plan') {
      return new Worker(name, async (job: Job) => {
        const parsed = PlanJob.safeParse(job.data);
        if (!parsed.success) return rethrow(parsed.error);
        try {
          return await planPush(parsed.data, job.id!, env);
        } catch (e) {
          const reason = e instanceof Error ? e.message : String(e);
          env.log(`plan ${job.id} failed (attempt ${job.attemptsMade + 1}): ${reason}`);
          if (isFinalAttempt(job, e)) {
            await env.statuses.set(parsed.data.after, { context: SUMMARY_CONTEXT, state: 'error', description: statusText(`planning failed: ${reason}`), targetUrl: env.jobUrl('plan', job.id!) });
          }
          return rethrow(e);
        }
      }, { ...opts, concurrency: 1 });
    }
    if (name === 'resync') {
      return new Worker(name, async (job: Job) => resync(env, job.id!.replace(/[^A-Za-z0-9-]/g, '-')), { ...opts, concurrency: 1 });
    }
    if (!isHandlerKind(name)) throw new TypeError(`no handler for queue ${name}`);
    return new Worker(name, async (job: Job) => {
      let data: HandlerJob | undefined;
      try {
        data = HandlerJob.parse(job.data);
        return await runHandlerJob(data, job.id!, env);
      } catch (e) {
        if (data && isFinalAttempt(job, e)) await reportFailure(data, job.id!, e, env);
        return rethrow(e);
      }
    }, { ...opts, concurrency: s.concurrency });
  });
}
