// One job at a time per gateway (and for the networks), across every worker process: a Redis
// lease with a random token, renewed while held, released only by its holder. BullMQ's open
// source edition has no per-group concurrency, so this small lease does that one thing.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { NatopsError } from '../common/errors.ts';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export class LockTimeoutError extends NatopsError {
  constructor(readonly target: string, waitedMs: number) {
    super(`${target} is busy with another job (waited ${waitedMs} ms); will retry`);
  }
}

export interface LockOptions {
  /** lease length; a holder that dies frees the target after this long */
  ttlMs: number;
  /** how long to wait for a busy target before giving up (the job then retries) */
  waitMs: number;
}

export async function withLock<T>(redis: Redis, key: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const token = randomUUID();
  const started = Date.now();
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    if ((await redis.set(key, token, 'PX', opts.ttlMs, 'NX')) === 'OK') break;
    if (Date.now() - started > opts.waitMs) throw new LockTimeoutError(key, Date.now() - started);
    await new Promise((r) => setTimeout(r, pause));
  }
  const renew = setInterval(() => {
    redis.eval(RENEW, 1, key, token, String(opts.ttlMs)).catch(() => undefined);
  }, Math.max(50, Math.floor(opts.ttlMs / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  }
}
