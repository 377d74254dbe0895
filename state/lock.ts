// One job at a time per gateway (and for the networks, and for the planner), across every
// worker process: a Redis lease with a random token, renewed while held, released only by its
// holder. BullMQ's open source edition has no per-group concurrency, so this small lease does
// that one thing. A lease can be lost (a process paused past its length, Redis restarted):
// `check()` asks Redis in one round trip whether it is still ours and extends it, and is called
// right before every change, so a job that lost its lease stops before it changes anything.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { NatopsError } from '../common/errors.ts';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export class LockTimeoutError extends NatopsError {
  constructor(
    readonly key: string,
    waitedMs: number,
  ) {
    super(`${key} is busy with another job (waited ${waitedMs} ms); will retry`);
  }
}

/** The lease expired or was taken: the job stops before its next change and is tried again. */
export class LeaseLostError extends NatopsError {
  constructor(readonly key: string) {
    super(`lost the lease ${key} (another job may hold it now); stopped before changing anything more, will retry`);
  }
}

export interface LockOptions {
  /** lease length; a holder that dies frees the target after this long */
  ttlMs: number;
  /** how long to wait for a busy target before giving up (the job then retries) */
  waitMs: number;
  /** told how long each wait for a lease took, and whether it ended with the lease (metrics) */
  waited?: (ms: number, taken: boolean) => void;
}

export interface Lease {
  readonly key: string;
  /** Throws LeaseLostError unless the lease is still ours; extends it when it is. */
  check(): Promise<void>;
}

export async function withLock<T>(
  redis: Redis,
  key: string,
  opts: LockOptions,
  fn: (lease: Lease) => Promise<T>,
): Promise<T> {
  const token = randomUUID();
  const started = Date.now();
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    if ((await redis.set(key, token, 'PX', opts.ttlMs, 'NX')) === 'OK') break;
    if (Date.now() - started > opts.waitMs) {
      opts.waited?.(Date.now() - started, false);
      throw new LockTimeoutError(key, Date.now() - started);
    }
    await new Promise((r) => setTimeout(r, pause));
  }
  opts.waited?.(Date.now() - started, true);
  let lost = false;
  const renewOnce = async () => (await redis.eval(RENEW, 1, key, token, String(opts.ttlMs))) === 1;
  const renew = setInterval(
    () => {
      renewOnce().then(
        (ok) => (lost ||= !ok),
        () => undefined,
      );
    },
    Math.max(50, Math.floor(opts.ttlMs / 3)),
  );
  const lease: Lease = {
    key,
    async check() {
      if (lost || !(await renewOnce())) {
        lost = true;
        throw new LeaseLostError(key);
      }
    },
  };
  try {
    return await fn(lease);
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  }
}
