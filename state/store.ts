// natops's own keys in Redis, next to BullMQ's and the records': the generation counter, the
// leases, the tracked branch's head, deliveries seen, repairs done.
import type { ChainableCommander, Redis } from 'ioredis';
import { z } from 'zod';
import type { BlobCache } from '../gitops/github/source.ts';
import { ManifestIssueSchema, type ManifestIssue } from '../gitops/manifests/issues.ts';
import type { Target } from './records.ts';

const Head = z.object({ sha: z.string(), gen: z.number() });
export type Head = z.infer<typeof Head>;

export const Repair = z.object({
  at: z.number(),
  target: z.string(),
  sha: z.string(),
  gen: z.number(),
  what: z.array(z.string()),
});
export type Repair = z.infer<typeof Repair>;

export const DeliveryRecord = z.object({
  id: z.string(),
  event: z.string(),
  at: z.number(),
  outcome: z.string(),
  ref: z.string().optional(),
  after: z.string().optional(),
});
export type DeliveryRecord = z.infer<typeof DeliveryRecord>;

const HISTORY = 200;
/** How long a delivery id is remembered: a week, longer than GitHub offers redelivery. */
const DELIVERY_MEMORY_S = 7 * 24 * 3600;

/** The tracked branch's blobs: a file unchanged between commits is fetched once a month. */
const BLOB_TTL_S = 30 * 24 * 3600;
/** A pull request's blobs (anyone's, on a public repository): kept an hour, for its re-renders. */
export const PR_BLOB_TTL_S = 3600;
/** At most this many bytes of pull requests' blobs are cached per hour (so at most twice this is held). */
export const PR_BLOB_BYTES_PER_HOUR = 64 * 1024 * 1024;

// KEYS: the blob's key, the bytes cached this window. ARGV: the bytes, their size, the cap, the TTL.
// The window starts with its first write and lasts the TTL, so every blob it let in is gone by
// the end of the next one.
const SAVE_CAPPED = `
redis.call('set', KEYS[2], 0, 'EX', ARGV[4], 'NX')
if tonumber(redis.call('get', KEYS[2])) + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return 0 end
redis.call('incrby', KEYS[2], ARGV[2])
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[4])
return 1
`;

/** More problems than anyone reads in a check run (GitHub takes 50 annotations per request). */
const MAX_ISSUES = 1000;

export const CheckRunRecord = z.object({ id: z.number(), annotated: z.number(), fingerprint: z.string() });
export type CheckRunRecord = z.infer<typeof CheckRunRecord>;

/** Runs a MULTI; ioredis hands back per-command errors instead of throwing them: throw the first. */
async function execAll(m: ChainableCommander): Promise<void> {
  for (const [error] of (await m.exec()) ?? []) if (error) throw error;
}

export class Store {
  /** `prBlobBytesPerHour`: the cap on pull requests' cached blobs (a test makes it small) */
  constructor(
    readonly redis: Redis,
    readonly prefix: string,
    private readonly prBlobBytesPerHour = PR_BLOB_BYTES_PER_HOUR,
  ) {}

  // natops's own keys live under `sys:`; gateway records and leases under `gw:` and
  // `gw-lease:`, so no gateway name can collide with them.
  private key(...parts: string[]): string {
    return [this.prefix, 'sys', ...parts].join(':');
  }

  /** The lease of a gateway, of the networks, or of the planner: one job at a time holds it. */
  leaseKey(t: Target | 'planner'): string {
    if (t === 'planner') return this.key('lease', 'planner');
    return t.kind === 'gateway' ? `${this.prefix}:gw-lease:${t.name}` : this.key('lease', 'networks');
  }

  /** A new generation number; every planned commit (and every removal the resync starts) gets one, increasing. */
  nextGen(): Promise<number> {
    return this.redis.incr(this.key('gen'));
  }

  // ---- the tracked branch ------------------------------------------------------------------------

  async head(branch: string): Promise<Head | undefined> {
    const v = await this.redis.get(this.key('head', branch));
    return v ? Head.parse(JSON.parse(v)) : undefined;
  }

  async setHead(branch: string, head: Head): Promise<void> {
    await this.redis.set(this.key('head', branch), JSON.stringify(head));
  }

  /** The lease on what GitHub is told about one commit (its statuses and check run). */
  commitLeaseKey(sha: string): string {
    return this.key('lease', 'commit', sha);
  }

  // ---- what GitHub holds ---------------------------------------------------------------------------

  /** A blob's bytes by id (content-addressed, so never stale), kept a month. */
  async blob(sha: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.key('blob', sha))) ?? undefined;
  }

  async saveBlob(sha: string, bytes: Buffer): Promise<void> {
    await this.redis.set(this.key('blob', sha), bytes, 'EX', BLOB_TTL_S);
  }

  /** A blob read for a pull request, if still cached (an hour). */
  async prBlob(sha: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.key('pr-blob', sha))) ?? undefined;
  }

  /** Caches a pull request's blob for an hour, unless this hour's bytes are spent; whether it was. */
  async savePrBlob(sha: string, bytes: Buffer): Promise<boolean> {
    const saved = await this.redis.eval(
      SAVE_CAPPED,
      2,
      this.key('pr-blob', sha),
      this.key('pr-blob-bytes'),
      bytes,
      String(bytes.length),
      String(this.prBlobBytesPerHour),
      String(PR_BLOB_TTL_S),
    );
    return saved === 1;
  }

  /** The blob cache of the tracked branch's commits: a month. */
  trackedBlobs(): BlobCache {
    return { get: (sha) => this.blob(sha), set: (sha, bytes) => this.saveBlob(sha, bytes) };
  }

  /**
   * The blob cache of pull requests: what the branch's cache holds (a head shares most files
   * with its base), else an hour's, byte-capped cache. A pull request's own blobs never go in the
   * month-long one: on a public repository anyone can open one.
   */
  pullRequestBlobs(): BlobCache {
    return {
      get: async (sha) => (await this.blob(sha)) ?? (await this.prBlob(sha)),
      set: async (sha, bytes) => void (await this.savePrBlob(sha, bytes)),
    };
  }

  /** The manifest problems of a commit, for its check run's annotations (a week). */
  async setCommitIssues(sha: string, issues: readonly ManifestIssue[]): Promise<void> {
    await this.redis.set(this.key('issues', sha), JSON.stringify(issues.slice(0, MAX_ISSUES)), 'EX', 7 * 24 * 3600);
  }

  async commitIssues(sha: string): Promise<ManifestIssue[]> {
    const v = await this.redis.get(this.key('issues', sha));
    return v ? z.array(ManifestIssueSchema).parse(JSON.parse(v)) : [];
  }

  /** The check run natops made for a commit, and how many annotations it holds. */
  async checkRun(sha: string): Promise<CheckRunRecord | undefined> {
    const v = await this.redis.get(this.key('check', sha));
    return v ? CheckRunRecord.parse(JSON.parse(v)) : undefined;
  }

  async setCheckRun(sha: string, r: CheckRunRecord): Promise<void> {
    await this.redis.set(this.key('check', sha), JSON.stringify(r), 'EX', 30 * 24 * 3600);
  }

  // ---- deliveries and repairs --------------------------------------------------------------------

  async seenDelivery(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key('delivery', id))) === 1;
  }

  /** Whether natops already asked GitHub to redeliver this delivery (asked once: four days, past GitHub's three). */
  async claimRedelivery(guid: string): Promise<boolean> {
    return (await this.redis.set(this.key('redelivered', guid), '1', 'EX', 4 * 24 * 3600, 'NX')) === 'OK';
  }

  /** Lists a delivery for people; `seen`: also remembers its id for a week (longer than GitHub offers redelivery), in the same write. */
  async recordDelivery(d: DeliveryRecord, opts: { seen?: boolean } = {}): Promise<void> {
    const write = this.redis.multi();
    if (opts.seen) write.set(this.key('delivery', d.id), '1', 'EX', DELIVERY_MEMORY_S);
    await execAll(write.lpush(this.key('deliveries'), JSON.stringify(d)).ltrim(this.key('deliveries'), 0, HISTORY - 1));
  }

  async deliveries(): Promise<DeliveryRecord[]> {
    return (await this.redis.lrange(this.key('deliveries'), 0, -1)).map((s) => DeliveryRecord.parse(JSON.parse(s)));
  }

  async recordRepair(r: Repair): Promise<void> {
    await execAll(
      this.redis
        .multi()
        .lpush(this.key('repairs'), JSON.stringify(r))
        .ltrim(this.key('repairs'), 0, HISTORY - 1),
    );
  }

  async repairs(): Promise<Repair[]> {
    return (await this.redis.lrange(this.key('repairs'), 0, -1)).map((s) => Repair.parse(JSON.parse(s)));
  }
}
