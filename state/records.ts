// Status as data: one record per gateway and one for the networks, in the manner of a Flux
// object's status. The planner sets what is desired; every job's outcome is recorded by one
// finalize step; commit statuses are derived from those outcomes. Every update is a
// compare-and-set on the record's version, so two writers can never interleave a
// read-then-write (a removal racing a re-add cannot drop a gateway).
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { errorMessage, PermanentError } from '../common/errors.ts';
import { HANDLER_KINDS } from '../dataplane/kinds.ts';
import { NetworkModelSchema } from '../dataplane/network.ts';
import { Sha } from '../common/sha-schema.ts';
import { GatewaySpecSchema } from '../dataplane/model.ts';

export const Ready = z.enum(['True', 'False', 'Unknown']);
export type Ready = z.infer<typeof Ready>;

/** Why a record's condition is what it is (Flux's typed reasons). */
export const Reason = z.enum([
  /** jobs of the desired generation are queued or running */
  'Progressing',
  /** the resync found drift and queued repair jobs */
  'Repairing',
  /** the desired generation is live */
  'Applied',
  /** a newer commit asked for exactly what is live */
  'UpToDate',
  /** the newest commit's manifest for it does not validate: it keeps what it had */
  'Invalid',
  /** a job failed for good (retries used up, or an error no retry can fix) */
  'Failed',
]);
export type Reason = z.infer<typeof Reason>;

export const Cause = z.enum(['push', 'catch-up', 'repair']);
export type Cause = z.infer<typeof Cause>;

export const Condition = z.object({
  ready: Ready,
  reason: Reason,
  /** for people: "live: 2 EIPs, ...", "dnat failed: ...", a validation problem with file:line */
  message: z.string(),
  /**
   * what a commit status on GitHub says instead of `message`, when the message holds an error's
   * text (a command's stderr, an API's answer) that only natops's own pages should show
   */
  publicMessage: z.string().optional(),
  /** the commit and generation the condition is about */
  sha: Sha,
  gen: z.number().int().nonnegative(),
  cause: Cause,
  /** the job, or the plan, that set it (a dashboard link) */
  url: z.string().optional(),
  at: z.number(),
});
export type Condition = z.infer<typeof Condition>;

const Kind = z.enum(HANDLER_KINDS);

/**
 * The records' format. 2: the networks are the neutral model (dataplane/network.ts). A record
 * without the field was written by natops 0.1 (format 1) and is migrated as it is read; one
 * from a newer natops is refused with a clear error, never misread.
 */
export const RECORD_SCHEMA = 2;

function recordSchema<S extends z.ZodType>(state: S) {
  return z.object({
    /** what the newest planned generation wants */
    desired: z.object({ gen: z.number().int().positive(), sha: Sha, cause: Cause, state }).optional(),
    /**
     * Handler kinds whose jobs were planned and have not all completed since the last applied
     * generation: they may have changed the target, so the next plan runs them again.
     */
    pending: z.array(Kind),
    lastAttempted: z.object({ gen: z.number(), sha: Sha, kind: Kind, at: z.number() }).optional(),
    lastApplied: z.object({ gen: z.number(), sha: Sha, at: z.number(), state }).optional(),
    /** the jobs of the flow(s) planned for it last (the resync looks for ones that failed outside any worker) */
    jobs: z.array(z.object({ queue: Kind, id: z.string() })).optional(),
    /** the newest generation a job outcome was recorded for */
    observedGen: z.number().int().nonnegative(),
    condition: Condition,
  });
}

/** A gateway's record; a desired state of null means "remove it". */
export const GatewayRecord = recordSchema(GatewaySpecSchema.nullable()).extend({ name: z.string() });
export type GatewayRecord = z.infer<typeof GatewayRecord>;

export const NetworkRecord = recordSchema(NetworkModelSchema);
export type NetworkRecord = z.infer<typeof NetworkRecord>;

export type Target = { kind: 'gateway'; name: string } | { kind: 'networks' };
export const NETWORKS = { kind: 'networks' } as const;
export const gatewayTarget = (name: string) => ({ kind: 'gateway', name }) as const;

export interface RecordSnapshot {
  gateways: ReadonlyMap<string, GatewayRecord>;
  networks: NetworkRecord | undefined;
  /** each record's version when read ('' for absent), by record key: what writeAll checks */
  versions?: ReadonlyMap<string, string>;
}

export type RecordWrite =
  | { target: { kind: 'gateway'; name: string }; record: GatewayRecord | undefined }
  | { target: { kind: 'networks' }; record: NetworkRecord };

type RecordOf<T extends Target> = T extends { kind: 'gateway' } ? GatewayRecord : NetworkRecord;

/** Returned by an update function to leave the record as it is. */
export const KEEP = Symbol('keep');

// KEYS: record, index. ARGV: expected version ('' = absent), new json ('' = delete), index member.
const COMPARE_AND_SET = `
local v = redis.call('hget', KEYS[1], 'v')
if (v or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('del', KEYS[1])
  if ARGV[3] ~= '' then redis.call('srem', KEYS[2], ARGV[3]) end
else
  redis.call('hset', KEYS[1], 'v', tostring((tonumber(v) or 0) + 1), 'json', ARGV[2])
  if ARGV[3] ~= '' then redis.call('sadd', KEYS[2], ARGV[3]) end
end
return 1
`;

// KEYS: index, then the records. ARGV: per record, expected version, json ('' = delete), index member.
const WRITE_ALL = `
for i = 2, #KEYS do
  local v = redis.call('hget', KEYS[i], 'v')
  if (v or '') ~= ARGV[(i - 2) * 3 + 1] then return 0 end
end
for i = 2, #KEYS do
  local base = (i - 2) * 3
  local json, member = ARGV[base + 2], ARGV[base + 3]
  if json == '' then
    redis.call('del', KEYS[i])
    if member ~= '' then redis.call('srem', KEYS[1], member) end
  else
    local v = redis.call('hget', KEYS[i], 'v')
    redis.call('hset', KEYS[i], 'v', tostring((tonumber(v) or 0) + 1), 'json', json)
    if member ~= '' then redis.call('sadd', KEYS[1], member) end
  end
end
return 1
`;

/** A stored record natops cannot read: corrupt, or written by a newer natops. No retry helps. */
export class RecordError extends PermanentError {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`record ${key} cannot be read: ${detail}`);
  }
}

/** A stored record, from this natops or an older one (migrated as it parses). */
export function parseRecord<T extends Target>(t: T, key: string, json: string): RecordOf<T> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new RecordError(key, `not JSON (${errorMessage(e)})`);
  }
  const format = value !== null && typeof value === 'object' && 'schema' in value ? value.schema : 1;
  if (typeof format !== 'number' || format > RECORD_SCHEMA)
    throw new RecordError(
      key,
      `written by a newer natops (record format ${String(format)}; this one reads up to ${RECORD_SCHEMA})`,
    );
  // (the format field is not part of the record: the schema drops it)
  const parsed = t.kind === 'gateway' ? GatewayRecord.safeParse(value) : NetworkRecord.safeParse(value);
  if (!parsed.success)
    throw new RecordError(
      key,
      parsed.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`).join('; '),
    );
  return parsed.data as RecordOf<T>;
}

export class Records {
  constructor(
    readonly redis: Redis,
    readonly prefix: string,
  ) {}

  // Gateways live under their own key space, apart from natops's own keys (a gateway may be
  // called "planner" or "network").
  private key(t: Target): string {
    return t.kind === 'gateway' ? `${this.prefix}:gw:${t.name}` : `${this.prefix}:sys:networks`;
  }
  private get index(): string {
    return `${this.prefix}:sys:gateways`;
  }

  private parse<T extends Target>(t: T, json: string): RecordOf<T> {
    return parseRecord(t, this.key(t), json);
  }

  /** The stored form: always the current format. */
  private serialize(w: RecordWrite): string {
    const rec = w.target.kind === 'gateway' ? GatewayRecord.parse(w.record) : NetworkRecord.parse(w.record);
    return JSON.stringify({ ...rec, schema: RECORD_SCHEMA });
  }

  async get<T extends Target>(t: T): Promise<RecordOf<T> | undefined> {
    const json = await this.redis.hget(this.key(t), 'json');
    return json ? this.parse(t, json) : undefined;
  }

  async gatewayNames(): Promise<string[]> {
    return (await this.redis.smembers(this.index)).sort();
  }

  /** Every record, with the versions writeAll checks. */
  async snapshot(): Promise<RecordSnapshot> {
    const gateways = new Map<string, GatewayRecord>();
    const versions = new Map<string, string>();
    const read = async <T extends Target>(t: T) => {
      const [v, json] = await this.redis.hmget(this.key(t), 'v', 'json');
      versions.set(this.key(t), v ?? '');
      return json ? this.parse(t, json) : undefined;
    };
    for (const name of await this.gatewayNames()) {
      const rec = await read(gatewayTarget(name));
      if (rec) gateways.set(name, rec);
    }
    return { gateways, networks: await read(NETWORKS), versions };
  }

  /**
   * Writes several records at once, only if none changed since `snap` was read (else nothing is
   * written and false comes back: read again and decide again).
   */
  async writeAll(writes: readonly RecordWrite[], snap: RecordSnapshot): Promise<boolean> {
    if (!writes.length) return true;
    const keys = writes.map((w) => this.key(w.target));
    // Two writes of one record would both pass the version check and the last would win silently.
    const twice = keys.find((k, i) => keys.indexOf(k) !== i);
    if (twice) throw new TypeError(`record ${twice} written twice in one decision`);
    const args = writes.flatMap((w, i) => [
      snap.versions?.get(keys[i]!) ?? '',
      w.record === undefined ? '' : this.serialize(w),
      w.target.kind === 'gateway' ? w.target.name : '',
    ]);
    return (await this.redis.eval(WRITE_ALL, keys.length + 1, this.index, ...keys, ...args)) === 1;
  }

  /**
   * Read, compute, write if nobody wrote in between, else again. `fn` returns the new record,
   * undefined to delete it, or KEEP. Returns the record as written (or kept).
   */
  async update<T extends Target>(
    t: T,
    fn: (current: RecordOf<T> | undefined) => RecordOf<T> | undefined | typeof KEEP,
  ): Promise<RecordOf<T> | undefined> {
    const member = t.kind === 'gateway' ? t.name : '';
    for (let attempt = 0; ; attempt++) {
      const [v, json] = await this.redis.hmget(this.key(t), 'v', 'json');
      const current = json ? this.parse(t, json) : undefined;
      const next = fn(current);
      if (next === KEEP) return current;
      const body = next === undefined ? '' : this.serialize({ target: t, record: next } as RecordWrite);
      if (next === undefined && current === undefined) return undefined;
      const ok = await this.redis.eval(COMPARE_AND_SET, 2, this.key(t), this.index, v ?? '', body, member);
      if (ok === 1) return next;
      if (attempt > 1000) throw new Error(`record ${this.key(t)} changed under every update attempt`);
    }
  }
}
