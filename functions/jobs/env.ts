// What every function gets injected, and the one context every job processor gets.
import type { Redis } from 'ioredis';
import type { JobFields, Logger } from '../../common/log.ts';
import type { QueueName } from '../../queue/jobs.ts';
import type { LockOptions } from '../../state/lock.ts';
import type { Records } from '../../state/records.ts';
import type { StatusBook } from '../../state/statuses.ts';
import type { Store } from '../../state/store.ts';

export interface FunctionEnv {
  records: Records;
  store: Store;
  statuses: StatusBook;
  redis: Redis;
  lock: LockOptions;
  /** a job's page in the dashboard */
  jobUrl: (queue: string, jobId: string) => string;
  log: Logger;
}

/** One job as its processor sees it. */
export interface JobContext<D> {
  data: D;
  queue: QueueName;
  id: string;
  /** 1 for the first try */
  attempt: number;
  attempts: number;
  /** no retry follows a failure of this attempt */
  lastAttempt: boolean;
  /** the job's page */
  url: string;
  /** the process's log; every line carries the job's fields (JobFields) */
  log: Logger;
}

/** The job's fields, from whichever of them its data has. */
export function jobFields(
  queue: QueueName,
  id: string,
  data: unknown,
  attempt: number,
): JobFields & Required<Pick<JobFields, 'queue' | 'job' | 'kind' | 'attempt'>> {
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const str = (k: string) => (typeof d[k] === 'string' ? d[k] : undefined);
  const fields: ReturnType<typeof jobFields> = { queue, job: id, kind: str('kind') ?? queue, attempt };
  const commit = str('sha') ?? str('after') ?? str('head');
  if (commit) fields.commit = commit;
  const gateway = str('gateway');
  if (gateway) fields.gateway = gateway;
  if (typeof d.gen === 'number') fields.gen = d.gen;
  if (typeof d.number === 'number') fields.pullRequest = d.number;
  const cause = str('cause');
  if (cause) fields.cause = cause;
  return fields;
}

/** `meta.log`: the job's logger when the caller made it already (else one is made from env.log). */
export function jobContext<D>(
  data: D,
  meta: { queue: QueueName; id: string; attemptsMade: number; attempts: number; log?: Logger },
  env: Pick<FunctionEnv, 'jobUrl' | 'log'>,
): JobContext<D> {
  const attempt = meta.attemptsMade + 1;
  return {
    data,
    queue: meta.queue,
    id: meta.id,
    attempt,
    attempts: meta.attempts,
    lastAttempt: attempt >= meta.attempts,
    url: env.jobUrl(meta.queue, meta.id),
    log: meta.log ?? env.log.child(jobFields(meta.queue, meta.id, data, attempt)),
  };
}
