// What natops needs of the Redis that holds its records and queues: that it keeps them across a
// restart (persistence) and never evicts them (maxmemory-policy noeviction). Records lost mean
// natops no longer knows what it runs (it then removes nothing until it has planned the branch
// again); jobs lost mean pushes half applied. checkRedis asks the server once, at start, and
// says what can lose data; the caller logs the findings.
import type { Redis } from 'ioredis';
import { errorMessage } from '../common/errors.ts';

export interface RedisFinding {
  /** warn: this Redis can lose natops's data as it is set up (or natops cannot tell) */
  level: 'warn';
  /** the setting it is about: appendonly, maxmemory-policy, or CONFIG when it cannot be read */
  setting: 'appendonly' | 'maxmemory-policy' | 'CONFIG';
  message: string;
}

/** The settings checkRedis reads, by name. */
export const CHECKED_SETTINGS = ['appendonly', 'save', 'maxmemory-policy', 'maxmemory'] as const;
type Setting = (typeof CHECKED_SETTINGS)[number];

/**
 * The settings as CONFIG GET gave them (one a server does not know is absent), or why it could
 * not (CONFIG renamed away, or not allowed to this user).
 */
export type RedisSettings = { values: Readonly<Partial<Record<Setting, string>>> } | { denied: string };

const ASK = 'make sure it runs with appendonly yes and maxmemory-policy noeviction';

/** What in `settings` can lose natops's data; empty when nothing. Pure. */
export function redisFindings(settings: RedisSettings): RedisFinding[] {
  if ('denied' in settings)
    return [
      {
        level: 'warn',
        setting: 'CONFIG',
        message: `cannot check Redis's persistence and eviction: CONFIG GET is not allowed (${settings.denied}); ${ASK}, or a restart or eviction loses natops's records and queued jobs`,
      },
    ];
  const v = settings.values;
  const findings: RedisFinding[] = [];
  const warn = (setting: RedisFinding['setting'], message: string) =>
    findings.push({ level: 'warn', setting, message });
  const save = v.save?.trim();
  if (v.appendonly === undefined)
    warn(
      'appendonly',
      `Redis does not report appendonly: cannot tell whether a restart keeps natops's records; ${ASK}`,
    );
  else if (v.appendonly !== 'yes' && save)
    warn(
      'appendonly',
      `Redis persists by snapshots only (appendonly ${v.appendonly}, save "${save}"): a crash or restart loses what natops wrote since the last snapshot (records, queued jobs); set appendonly yes`,
    );
  else if (v.appendonly !== 'yes')
    warn(
      'appendonly',
      `Redis keeps nothing on disk (appendonly ${v.appendonly}, save ""): a restart loses every natops record and queued job; set appendonly yes`,
    );
  const policy = v['maxmemory-policy'];
  if (policy !== 'noeviction') {
    const limit =
      v.maxmemory === undefined || v.maxmemory === '0'
        ? 'no maxmemory now, but one set later makes it evict'
        : `maxmemory ${v.maxmemory}`;
    warn(
      'maxmemory-policy',
      `Redis may evict natops's records and jobs under memory pressure (maxmemory-policy ${policy ?? 'not reported'}; ${limit}); set maxmemory-policy noeviction`,
    );
  }
  return findings;
}

/**
 * Reads the settings (one round trip) and says what can lose natops's data. A reply error
 * (CONFIG not allowed) is a finding; a connection failure is thrown as it came.
 */
export async function checkRedis(redis: Redis): Promise<RedisFinding[]> {
  const batch = redis.pipeline();
  for (const name of CHECKED_SETTINGS) batch.config('GET', name);
  const replies = (await batch.exec()) ?? [];
  const values: Partial<Record<Setting, string>> = {};
  for (const [i, name] of CHECKED_SETTINGS.entries()) {
    const [error, reply] = replies[i] ?? [new Error('no reply')];
    if (error) return redisFindings({ denied: errorMessage(error) });
    // CONFIG GET answers [name, value], or [] for a setting the server does not have
    const value = Array.isArray(reply) ? reply[1] : undefined;
    if (typeof value === 'string') values[name] = value;
  }
  return redisFindings({ values });
}
