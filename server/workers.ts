// BullMQ workers for a chosen set of queues: one table of processors by queue, each given the
// same job context. Whether a failure is retried is the error's own `retryable`; close() lets
// the jobs in hand finish, as SIGTERM should.
import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { errorMessage, isRetryable, RetryLaterError } from '../common/errors.ts';
import type { GitHub } from '../github/client.ts';
import { publishCommit } from '../functions/github/publish.ts';
import { previewPullRequest } from '../functions/preview/pull-request.ts';
import type { GitSource } from '../gitops/git/source.ts';
import type { PreviewBook } from '../queue/previews.ts';
import { processHandlerJob } from '../functions/handlers/process.ts';
import { jobContext, type JobContext } from '../functions/jobs/env.ts';
import { planPush, type PlannerEnv } from '../functions/planner/planner.ts';
import { resync, type ResyncEnv } from '../functions/resync.ts';
import { GitHubSyncJob, HandlerJob, PlanJob, PreviewJob, readJobData, type QueueName } from '../queue/jobs.ts';
import { bullPrefix, cappedBackoff } from '../queue/queues.ts';
import { PREVIEW_CONTEXT, statusText, SUMMARY_CONTEXT } from '../queue/statuses.ts';
import type { z } from 'zod';

export interface WorkerSettings {
  connection: Redis;
  prefix: string;
  concurrency: number;
  lockMs: number;
  /** the first retry's delay (every later one doubles it) */
  backoffMs: number;
}

export type WorkerEnv = PlannerEnv & ResyncEnv & {
  /** absent: natops does not talk to GitHub, and no job asks it to */
  github?: GitHub | undefined;
  previews: PreviewBook;
  /** where previews read commits (GitHub's API, whatever the planner reads) */
  previewSource?: GitSource | undefined;
};

interface Processor {
  concurrency: 'one' | 'many';
  run(job: Job, env: WorkerEnv): Promise<unknown>;
}

/** Job data that does not parse is a bug in whoever added the job: no retry will fix it. */
function parse<T>(schema: z.ZodType<T>, job: Job): T {
  const read = readJobData(schema, job.data);
  if (!read.ok) throw new UnrecoverableError(`bad job data: ${read.message}`);
  return read.data;
}

const contextOf = <D>(data: D, job: Job, queue: QueueName, env: WorkerEnv, subject?: string): JobContext<D> =>
  jobContext(data, { queue, id: job.id!, attemptsMade: job.attemptsMade, attempts: job.opts.attempts ?? 1, subject }, env);

const handler: Processor = {
  concurrency: 'many',
  run: (job, env) => {
    const data = parse(HandlerJob, job);
    return processHandlerJob(contextOf(data, job, data.kind, env, `${data.gateway ?? 'networks'}@${data.sha.slice(0, 7)}`), env);
  },
};

export const PROCESSORS: Record<QueueName, Processor> = {
  plan: {
    concurrency: 'one',
    async run(job, env) {
      const data = parse(PlanJob, job);
      const ctx = contextOf(data, job, 'plan', env, `@${data.after.slice(0, 7)}`);
      try {
        return await planPush(ctx, env);
      } catch (e) {
        // A rate limit is a wait, not a failed attempt (the worker puts the job back).
        if (e instanceof RetryLaterError) throw e;
        ctx.log(`failed (attempt ${ctx.attempt} of ${ctx.attempts}): ${errorMessage(e)}`);
        if (ctx.lastAttempt || !isRetryable(e)) {
          await env.statuses.publish([{ sha: data.after, context: SUMMARY_CONTEXT, state: 'error', description: statusText(`planning failed: ${errorMessage(e)}`), targetUrl: ctx.url }]);
        }
        throw e;
      }
    },
  },
  resync: { concurrency: 'one', run: (job, env) => resync(contextOf(job.data, job, 'resync', env), env) },
  github: {
    concurrency: 'many',
    run(job, env) {
      const data = parse(GitHubSyncJob, job);
      if (!env.github) throw new UnrecoverableError('GitHub is not configured in this process (NATOPS_GITHUB_*)');
      return publishCommit(contextOf(data, job, 'github', env, `@${data.sha.slice(0, 7)}`), { ...env, github: env.github });
    },
  },
  preview: {
    concurrency: 'many',
    async run(job, env) {
      const data = parse(PreviewJob, job);
      if (!env.github || !env.previewSource) throw new UnrecoverableError('GitHub is not configured in this process (NATOPS_GITHUB_*)');
      const ctx = contextOf(data, job, 'preview', env, `#${data.number}`);
      try {
        return await previewPullRequest(ctx, { ...env, github: env.github, source: env.previewSource });
      } catch (e) {
        if (e instanceof RetryLaterError) throw e;
        ctx.log(`failed (attempt ${ctx.attempt} of ${ctx.attempts}): ${errorMessage(e)}`);
        // The head's preview status must not stay pending when no attempt will follow.
        if (data.action === 'preview' && (ctx.lastAttempt || !isRetryable(e))) {
          await env.statuses.publish([{ sha: data.head, context: PREVIEW_CONTEXT, state: 'error', description: statusText(`preview failed: ${errorMessage(e)}`), targetUrl: ctx.url }]);
        }
        throw e;
      }
    },
  },
  vpc: handler, gateway: handler, 'gateway-init': handler, 'gateway-delete': handler, eip: handler, fip: handler, dnat: handler, snat: handler, 'subnet-route': handler,
};

export function startWorkers(queues: readonly QueueName[], env: WorkerEnv, s: WorkerSettings): Worker[] {
  const opts = {
    connection: s.connection as ConnectionOptions,
    prefix: bullPrefix(s.prefix),
    lockDuration: s.lockMs,
    stalledInterval: s.lockMs,
    maxStalledCount: 2,
  };
  return queues.map((name) => {
    const p = PROCESSORS[name];
    return new Worker(name, async (job: Job, token?: string) => {
      try {
        return await p.run(job, env);
      } catch (e) {
        // A rate limit: back to the queue until it lifts, without spending an attempt.
        if (e instanceof RetryLaterError) {
          env.log(`[${name} ${job.id}] ${e.message}; waiting`);
          await job.moveToDelayed(e.retryAt, token);
          throw new DelayedError(e.message);
        }
        throw isRetryable(e) || e instanceof UnrecoverableError ? e : new UnrecoverableError(errorMessage(e));
      }
    }, {
      ...opts,
      concurrency: p.concurrency === 'one' ? 1 : s.concurrency,
      settings: { backoffStrategy: (attemptsMade: number, type?: string) => (type === 'capped' ? cappedBackoff(attemptsMade, s.backoffMs) : s.backoffMs) },
    });
  });
}
