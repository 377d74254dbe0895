// What every function gets injected: natops's records, the statuses, Redis for leases, links
// into the dashboard, and a log. Each function adds its own clients on top.
import type { Redis } from 'ioredis';
import type { LockOptions } from '../queue/lock.ts';
import type { StatusBook } from '../queue/statuses.ts';
import type { Store } from '../queue/store.ts';

export interface FunctionEnv {
  store: Store;
  statuses: StatusBook;
  redis: Redis;
  lock: LockOptions;
  /** a job's page in the dashboard */
  jobUrl: (queue: string, jobId: string) => string;
  log: (line: string) => void;
}
