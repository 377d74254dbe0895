// Pull-request previews in Redis: which event each pull request's preview follows (a newer one
// supersedes an older one still being computed), what each open pull request changes (to tell
// two that change the same gateway about each other), and what the dashboard lists.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Sha } from '../common/sha-schema.ts';

export const PreviewRecord = z.object({
  number: z.number(),
  title: z.string(),
  url: z.string(),
  headLabel: z.string(),
  baseRef: z.string(),
  head: Sha,
  /** the base branch's tip when the event came */
  base: Sha,
  /** where the head left the base: what the preview plans the head against */
  from: Sha.optional(),
  updatedAt: z.number(),
  state: z.enum(['computing', 'ready', 'invalid', 'closed']),
  merged: z.boolean().optional(),
  /** the base branch it moved to, when it stopped targeting the tracked branch */
  retargeted: z.string().optional(),
  /** gateways the pull request changes */
  gateways: z.array(z.string()),
  /** the other pull requests its comment says change the same gateways */
  overlaps: z.array(z.number()),
  /** one line for the dashboard */
  summary: z.string(),
  commentId: z.number().optional(),
  at: z.number(),
});
export type PreviewRecord = z.infer<typeof PreviewRecord>;

// KEYS: the wanted event. ARGV: its json, its updatedAt. Newer (or the same) events win.
const CLAIM = `
local cur = redis.call('get', KEYS[1])
if cur and tonumber(cjson.decode(cur).updatedAt) > tonumber(ARGV[2]) then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'EX', 30 * 24 * 3600)
return 1
`;

/** The event a preview follows; a close is one too, so no older event reopens the preview. */
const Wanted = z.object({ head: Sha, base: Sha, updatedAt: z.number(), closed: z.boolean() });
export type WantedPreview = z.infer<typeof Wanted>;

export class PreviewBook {
  constructor(
    private readonly redis: Redis,
    /** natops's key prefix (the EIP allocations a preview reads live under it too) */
    readonly prefix: string,
  ) {}

  private key(...parts: (string | number)[]) {
    return [this.prefix, 'preview', ...parts].join(':');
  }

  /** Takes the event as the one the preview follows, unless a newer event of the pull request came first. */
  async claim(number: number, w: WantedPreview): Promise<boolean> {
    return (await this.redis.eval(CLAIM, 1, this.key(number, 'wanted'), JSON.stringify(w), String(w.updatedAt))) === 1;
  }

  /** The event the preview follows now. */
  async wanted(number: number): Promise<WantedPreview | undefined> {
    const v = await this.redis.get(this.key(number, 'wanted'));
    return v ? Wanted.parse(JSON.parse(v)) : undefined;
  }

  /** Whether `w` is still the event the preview follows (a newer push may have come meanwhile). */
  async isWanted(number: number, w: WantedPreview): Promise<boolean> {
    const cur = await this.wanted(number);
    return (
      cur !== undefined &&
      cur.head === w.head &&
      cur.base === w.base &&
      cur.updatedAt === w.updatedAt &&
      cur.closed === w.closed
    );
  }

  async get(number: number): Promise<PreviewRecord | undefined> {
    const v = await this.redis.get(this.key(number));
    return v ? PreviewRecord.parse(JSON.parse(v)) : undefined;
  }

  /** Writes the record; an open pull request is among those checked for overlaps, a closed one leaves them. */
  async set(r: PreviewRecord): Promise<void> {
    const m = this.redis
      .multi()
      .set(this.key(r.number), JSON.stringify(r), 'EX', 90 * 24 * 3600)
      .zadd(this.key('index'), r.at, String(r.number));
    if (r.state === 'closed') m.srem(this.key('open'), String(r.number));
    else m.sadd(this.key('open'), String(r.number));
    await m.exec();
  }

  /** The open pull requests' records. */
  async open(): Promise<PreviewRecord[]> {
    return (await this.records(await this.redis.smembers(this.key('open')))).sort((a, b) => a.number - b.number);
  }

  /** The newest previews, for the dashboard. */
  async recent(limit = 30): Promise<PreviewRecord[]> {
    return this.records(await this.redis.zrevrange(this.key('index'), 0, limit - 1));
  }

  private async records(numbers: string[]): Promise<PreviewRecord[]> {
    const out: PreviewRecord[] = [];
    for (const n of numbers) {
      const r = await this.get(Number(n));
      if (r) out.push(r);
    }
    return out;
  }

  leaseKey(number: number): string {
    return this.key(number, 'lease');
  }
}
