// BullMQ wiring: one queue per job kind under one key prefix, and the flows that chain a
// gateway's jobs in the order docs/architecture.md gives (vpc -> gateway -> init -> eip, routes -> fip,
// DNAT, SNAT). In a flow a parent runs after its children, so a flow is nested last-first.
import { FlowProducer, Queue, type ConnectionOptions, type FlowJob, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import {
  jobData,
  QUEUE_NAMES,
  type GitHubSyncJob,
  type HandlerJob,
  type PlanJob,
  type PreviewJob,
  type QueueName,
} from './jobs.ts';

export interface QueueSettings {
  redisUrl: string;
  /** prefix of every key natops and BullMQ write */
  prefix: string;
  attempts: number;
  backoffMs: number;
  /** failed jobs each queue keeps (besides for 30 days at most): NATOPS_FAILED_JOBS_KEEP */
  failedJobsKeep?: number;
}

/** Failed jobs kept per queue when not configured (NATOPS_FAILED_JOBS_KEEP's default). */
export const FAILED_JOBS_KEEP = 1000;

/** BullMQ needs connections that retry forever (workers block on Redis). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export const bullPrefix = (prefix: string) => `${prefix}:bull`;

export function jobOptions(s: QueueSettings): JobsOptions {
  return {
    attempts: s.attempts,
    backoff: { type: 'exponential', delay: s.backoffMs },
    removeOnComplete: { age: 7 * 24 * 3600, count: 5000 },
    // Counted too: a failure storm (every handler failing five times) must not keep every spec.
    removeOnFail: { age: 30 * 24 * 3600, count: s.failedJobsKeep ?? FAILED_JOBS_KEEP },
  };
}

/**
 * GitHub writes outlive an outage: retried for about a day, at most ten minutes apart
 * (the workers' `capped` backoff). A rate limit does not count as an attempt (RetryLaterError).
 */
export const GITHUB_ATTEMPTS = 150;
export const GITHUB_MAX_BACKOFF_MS = 10 * 60_000;

/**
 * The `capped` backoff: exponential from `baseMs`, never more than GITHUB_MAX_BACKOFF_MS, and
 * spread by up to a fifth so the jobs an outage held back do not all come back at once.
 */
export function cappedBackoff(attemptsMade: number, baseMs: number, random = Math.random): number {
  const delay = Math.min(GITHUB_MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(delay * (0.8 + 0.2 * random()));
}

/** The deduplication id of a pull request's re-renders: at most one waits at a time. */
export const rerenderId = (number: number) => `rerender-${number}`;

export class Queues {
  readonly byName: Record<QueueName, Queue>;
  readonly flows: FlowProducer;

  constructor(
    readonly connection: Redis,
    readonly settings: QueueSettings,
    log: (line: string) => void = () => undefined,
  ) {
    const opts = { connection: connection as ConnectionOptions, prefix: bullPrefix(settings.prefix) };
    this.byName = Object.fromEntries(
      QUEUE_NAMES.map((n) => [n, new Queue(n, { ...opts, defaultJobOptions: jobOptions(settings) })]),
    ) as Record<QueueName, Queue>;
    this.flows = new FlowProducer(opts);
    // Redis going away is reported once by the shared connection; these would repeat it.
    for (const q of Object.values(this.byName)) q.on('error', () => undefined);
    this.flows.on('error', (e) => log(`flows: ${e.message}`));
  }

  /** Adds a delivery's plan job; the delivery id is the job id, so a repeated delivery adds nothing. */
  async addPlan(job: PlanJob): Promise<void> {
    await this.byName.plan.add('plan', jobData(job), { jobId: `delivery-${job.delivery}` });
  }

  /**
   * A pull request's preview job: a delivery's once (its id is the job id). A re-render of one
   * pull request is one job however often asked: while one waits, asking again adds nothing (it
   * reads what is newest when it runs); while one runs, one more follows it.
   */
  async addPreview(job: PreviewJob): Promise<void> {
    const rerender = job.action === 'rerender';
    const jobId = rerender
      ? `rerender-${job.number}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`
      : `delivery-${job.delivery}`;
    // A delivery whose job failed for good is kept by BullMQ and would block its id: a
    // redelivery of it must run again.
    const previous = rerender ? undefined : await this.byName.preview.getJob(jobId);
    if (previous && (await previous.getState()) === 'failed') await previous.remove();
    await this.byName.preview.add(job.action, jobData(job), {
      jobId,
      attempts: GITHUB_ATTEMPTS,
      backoff: { type: 'capped' },
      ...(rerender ? { deduplication: { id: rerenderId(job.number), keepLastIfActive: true } } : {}),
    });
  }

  /**
   * Asks for the commit's statuses to be written to GitHub. One job per version of them (the
   * commit's count of status writes); each writes whatever is newest then, so a job that waits
   * behind a rate limit or an outage loses nothing and one that finds nothing new costs no request.
   */
  async addGitHubSync(job: GitHubSyncJob, version: string): Promise<void> {
    await this.byName.github.add('statuses', jobData(job), {
      jobId: `statuses-${job.sha}-${version}`,
      attempts: GITHUB_ATTEMPTS,
      backoff: { type: 'capped' },
    });
  }

  /** Adds jobs that run one after the other, as one flow (job ids `${idPrefix}.${kind}`). */
  async addFlow(flow: { idPrefix: string; jobs: readonly HandlerJob[] }): Promise<void> {
    let node: FlowJob | undefined;
    for (const data of flow.jobs) {
      node = {
        name: `${data.kind} ${data.gateway ?? 'networks'}`,
        queueName: data.kind,
        data: jobData(data),
        prefix: bullPrefix(this.settings.prefix),
        opts: { ...jobOptions(this.settings), jobId: `${flow.idPrefix}.${data.kind}`, failParentOnFailure: true },
        ...(node ? { children: [node] } : {}),
      };
    }
    if (!node) throw new TypeError('empty flow');
    await this.flows.add(node);
  }

  async close(): Promise<void> {
    await Promise.all([...Object.values(this.byName).map((q) => q.close()), this.flows.close()]);
  }
}
