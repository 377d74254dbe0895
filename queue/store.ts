// natops's own records in Redis, next to BullMQ's: per gateway the generation planned last and
// the spec last made live, the tracked branch's head, deliveries seen, repairs done.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { GatewaySpec } from '../dataplane/model.ts';
import type { LabTopology } from '../lab/topology.ts';
import { GatewaySpecSchema, NetworkSchema } from './kinds.ts';

/** The target name of the networks (the vpc handler's records). */
export const NETWORK = 'network';

const LiveEntry = z.object({ sha: z.string(), gen: z.number(), at: z.number() });
const Head = z.object({ sha: z.string(), gen: z.number() });
export type Head = z.infer<typeof Head>;

export const Repair = z.object({ at: z.number(), target: z.string(), sha: z.string(), gen: z.number(), what: z.array(z.string()) });
export type Repair = z.infer<typeof Repair>;

export const DeliveryRecord = z.object({
  id: z.string(), event: z.string(), at: z.number(), outcome: z.string(), ref: z.string().optional(), after: z.string().optional(),
});
export type DeliveryRecord = z.infer<typeof DeliveryRecord>;

export interface TargetRecord {
  /** the newest generation planned for it, and that commit */
  gen: number;
  sha: string;
  /** what the newest generation wants; absent when it is to be removed */
  spec?: GatewaySpec;
  network?: LabTopology;
  /** its jobs are queued or running (cleared when they end, either way) */
  pending: boolean;
  live?: { sha: string; gen: number; at: number; spec?: GatewaySpec; network?: LabTopology };
}

const HISTORY = 200;

export class Store {
  constructor(readonly redis: Redis, readonly prefix: string) {}

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  /** The lease key of a target, or of the planner: one job at a time holds it. */
  lockKey(name: string): string {
    return this.key('lock', name);
  }

  // ---- generations and targets -------------------------------------------------------------------

  /** A new generation number; every planned commit gets one, increasing. */
  nextGen(): Promise<number> {
    return this.redis.incr(this.key('gen'));
  }

  /** Records what generation `gen` (commit `sha`) wants for a target; `desired` undefined: remove it. */
  async setDesired(target: string, gen: number, sha: string, desired: { spec?: GatewaySpec; network?: LabTopology }): Promise<void> {
    const fields: Record<string, string> = { gen: String(gen), sha, pending: '1' };
    if (desired.spec) fields.spec = JSON.stringify(desired.spec);
    if (desired.network) fields.network = JSON.stringify(desired.network);
    await this.redis.multi()
      .hdel(this.key('target', target), 'spec', 'network')
      .hset(this.key('target', target), fields)
      .sadd(this.key('targets'), target)
      .exec();
  }

  async target(target: string): Promise<TargetRecord | undefined> {
    const h = await this.redis.hgetall(this.key('target', target));
    if (!h.gen || !h.sha) return undefined;
    const rec: TargetRecord = { gen: Number(h.gen), sha: h.sha, pending: h.pending === '1' };
    if (h.spec) rec.spec = GatewaySpecSchema.parse(JSON.parse(h.spec));
    if (h.network) rec.network = NetworkSchema.parse(JSON.parse(h.network));
    if (h.live) {
      const live = LiveEntry.parse(JSON.parse(h.live));
      rec.live = {
        ...live,
        ...(h.liveSpec ? { spec: GatewaySpecSchema.parse(JSON.parse(h.liveSpec)) } : {}),
        ...(h.liveNetwork ? { network: NetworkSchema.parse(JSON.parse(h.liveNetwork)) } : {}),
      };
    }
    return rec;
  }

  async targets(): Promise<string[]> {
    return (await this.redis.smembers(this.key('targets'))).sort();
  }

  /** The current generation of a target (0 if none). */
  async currentGen(target: string): Promise<number> {
    return Number((await this.redis.hget(this.key('target', target), 'gen')) ?? 0);
  }

  /** What `gen` made live. Called under the target's lock, so a newer live record cannot be overwritten. */
  async setLive(target: string, gen: number, sha: string, live: { spec?: GatewaySpec; network?: LabTopology }): Promise<void> {
    const k = this.key('target', target);
    const m = this.redis.multi().hset(k, 'live', JSON.stringify({ sha, gen, at: Date.now() })).hdel(k, 'liveSpec', 'liveNetwork');
    if ((await this.currentGen(target)) === gen) m.hdel(k, 'pending');
    if (live.spec) m.hset(k, 'liveSpec', JSON.stringify(live.spec));
    if (live.network) m.hset(k, 'liveNetwork', JSON.stringify(live.network));
    await m.exec();
  }

  /** Repair jobs were queued for it. */
  async markPending(target: string): Promise<void> {
    await this.redis.hset(this.key('target', target), 'pending', '1');
  }

  /** The jobs of generation `gen` ended without making it live (they failed for good). */
  async settle(target: string, gen: number): Promise<void> {
    if ((await this.currentGen(target)) === gen) await this.redis.hdel(this.key('target', target), 'pending');
  }

  /** A removed target is forgotten once its removal ran (unless a newer generation wants it again). */
  async forget(target: string, gen: number): Promise<void> {
    if ((await this.currentGen(target)) !== gen) return;
    await this.redis.multi().del(this.key('target', target)).srem(this.key('targets'), target).exec();
  }

  // ---- the tracked branch ------------------------------------------------------------------------

  async head(branch: string): Promise<Head | undefined> {
    const v = await this.redis.get(this.key('head', branch));
    return v ? Head.parse(JSON.parse(v)) : undefined;
  }

  async setHead(branch: string, head: Head): Promise<void> {
    await this.redis.set(this.key('head', branch), JSON.stringify(head));
  }

  // ---- deliveries and repairs --------------------------------------------------------------------

  async seenDelivery(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key('delivery', id))) === 1;
  }

  /** Remembers a delivery id for a week, longer than GitHub offers redelivery. */
  async markDelivery(id: string): Promise<void> {
    await this.redis.set(this.key('delivery', id), '1', 'EX', 7 * 24 * 3600);
  }

  async recordDelivery(d: DeliveryRecord): Promise<void> {
    await this.redis.multi().lpush(this.key('deliveries'), JSON.stringify(d)).ltrim(this.key('deliveries'), 0, HISTORY - 1).exec();
  }

  async deliveries(): Promise<DeliveryRecord[]> {
    return (await this.redis.lrange(this.key('deliveries'), 0, -1)).map((s) => DeliveryRecord.parse(JSON.parse(s)));
  }

  async recordRepair(r: Repair): Promise<void> {
    await this.redis.multi().lpush(this.key('repairs'), JSON.stringify(r)).ltrim(this.key('repairs'), 0, HISTORY - 1).exec();
  }

  async repairs(): Promise<Repair[]> {
    return (await this.redis.lrange(this.key('repairs'), 0, -1)).map((s) => Repair.parse(JSON.parse(s)));
  }
}
