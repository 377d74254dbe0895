// What every function gets injected, and the one context every job processor gets.
import type { Redis } from 'ioredis';
import type { QueueName } from '../../queue/jobs.ts';
import type { LockOptions } from '../../queue/lock.ts';
import type { Records } from '../../queue/records.ts';
import type { StatusBook } from '../../queue/statuses.ts';
import type { Store } from '../../queue/store.ts';

export type Log = (line: string) => void;

export interface FunctionEnv {
  records: Records;
  store: Store;
  statuses: StatusBook;
  redis: Redis;
  lock: LockOptions;
  /** a job's page in the dashboard */
  jobUrl: (queue: string, jobId: string) => string;
  log: Log;
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
  /** the process's log, each line prefixed with the job, its gateway and commit */
  log: Log;
}

export function jobContext<D>(data: D, meta: { queue: QueueName; id: string; attemptsMade: number; attempts: number; subject?: string }, env: Pick<FunctionEnv, 'jobUrl' | 'log'>): JobContext<D> {
  const attempt = meta.attemptsMade + 1;
  const prefix = `[${meta.queue} ${meta.id}${meta.subject ? ` ${meta.subject}` : ''}]`;
  return {
    data, queue: meta.queue, id: meta.id, attempt, attempts: meta.attempts, lastAttempt: attempt >= meta.attempts,
    url: env.jobUrl(meta.queue, meta.id), log: (line) => env.log(`${prefix} ${line}`),
  };
}
