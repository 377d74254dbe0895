// Commit statuses: one per gateway (`natops/<gateway>`), one for the networks and a summary
// (`natops`) per commit. They are derived, never set by hand: a record's condition (see
// records.ts) or the planner's verdict on a whole commit becomes a status event, and
// StatusBook.publish writes the events to Redis (read by `natops status` and the dashboard),
// marking the commit for GitHub in the same call when natops talks to GitHub. The summary is recomputed in the
// same Lua call that writes a gateway's status, so concurrent workers cannot leave it stale.
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { isZeroSha } from '../common/sha.ts';
import type { Condition, Target } from './records.ts';

export const SUMMARY_CONTEXT = 'natops';
export const NETWORK_CONTEXT = 'natops:networks';
/** A pull request's preview, on its head commit: about the pull request, not what is live, so never in the summary. */
export const PREVIEW_CONTEXT = 'natops/preview';
export const gatewayContext = (gateway: string) => `natops/${gateway}`;
export const targetContext = (t: Target) => (t.kind === 'gateway' ? gatewayContext(t.name) : NETWORK_CONTEXT);

export const StatusState = z.enum(['pending', 'success', 'failure', 'error']);
export type StatusState = z.infer<typeof StatusState>;

export const CommitStatus = z.object({
  context: z.string(),
  state: StatusState,
  /** at most 140 characters */
  description: z.string().max(140),
  targetUrl: z.string().optional(),
  updatedAt: z.number(),
});
export type CommitStatus = z.infer<typeof CommitStatus>;

/** A status to write on a commit. */
export interface StatusEvent {
  sha: string;
  context: string;
  state: StatusState;
  description: string;
  targetUrl?: string;
}

/** A status description: at most 140 characters, as GitHub allows. */
export function statusText(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= 140 ? one : `${one.slice(0, 139)}…`;
}

const STATE_OF: Record<Condition['ready'], StatusState> = { True: 'success', False: 'failure', Unknown: 'pending' };

/** A record's condition as the status of the commit it is about. */
export function conditionStatus(t: Target, c: Condition): StatusEvent {
  return {
    sha: c.sha,
    context: targetContext(t),
    state: STATE_OF[c.ready],
    description: statusText(c.message),
    ...(c.url ? { targetUrl: c.url } : {}),
  };
}

/** An older commit's work that a newer one replaced (or removed, `by` unknown) before it was done. */
export function supersededStatus(
  sha: string,
  context: string,
  by: string | undefined,
  targetUrl?: string,
): StatusEvent {
  const description = by
    ? `not applied: superseded by newer commit ${by.slice(0, 7)}`
    : 'not applied: removed by a newer commit';
  return { sha, context, state: 'success', description, ...(targetUrl ? { targetUrl } : {}) };
}

/** What identifies a status as GitHub shows it: an identical one is not written again. */
export function statusFingerprint(s: Pick<CommitStatus, 'state' | 'description' | 'targetUrl'>): string {
  return JSON.stringify([s.state, s.description, s.targetUrl ?? null]);
}

/** How many status writes per commit the history keeps (GitHub keeps every status of a commit). */
const HISTORY_LIMIT = 500;

// KEYS: statuses of the commit, the commits index, the commit's history, the GitHub flag, the
// commit's version, the commits GitHub is behind on. ARGV: summary context, now, sha, history
// limit, preview context, summary link, then (context, status json) per status, in order.
// All of one publish's statuses of a commit in one call, the summary computed once after them:
// a reader never sees a summary of half a plan (success while the other statuses are still to come).
// With GitHub on, the same call marks the commit for it (a job is made from the mark, by any
// process that talks to GitHub): a status written is never one GitHub misses.
const SET_AND_SUMMARIZE = `
local summarize, planned = false, false
for i = 7, #ARGV, 2 do
  local context, json = ARGV[i], ARGV[i + 1]
  redis.call('hset', KEYS[1], context, json)
  redis.call('rpush', KEYS[3], json)
  -- a pull request's head is not a planned commit: no entry in the commits index
  if context ~= ARGV[5] then planned = true end
  -- a summary given stands, unless a status of a gateway or the networks follows it
  if context == ARGV[1] then summarize = false elseif context ~= ARGV[5] then summarize = true end
end
redis.call('ltrim', KEYS[3], -tonumber(ARGV[4]), -1)
if redis.call('exists', KEYS[4]) == 1 then
  redis.call('incr', KEYS[5])
  redis.call('expire', KEYS[5], 2592000)
  redis.call('sadd', KEYS[6], ARGV[3])
end
if planned then redis.call('zadd', KEYS[2], 'NX', ARGV[2], ARGV[3]) end
if not summarize then return false end
local all = redis.call('hgetall', KEYS[1])
local total, pending, failed, names = 0, 0, 0, {}
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] and all[i] ~= ARGV[5] then
    local s = cjson.decode(all[i + 1])
    total = total + 1
    if s.state == 'pending' then pending = pending + 1
    elseif s.state == 'failure' or s.state == 'error' then
      failed = failed + 1
      table.insert(names, all[i])
    end
  end
end
local state, text
if pending > 0 then
  state, text = 'pending', (total - pending) .. ' of ' .. total .. ' done' .. (failed > 0 and (', failed: ' .. table.concat(names, ' ')) or '')
elseif failed > 0 then
  state, text = 'failure', failed .. ' of ' .. total .. ' failed: ' .. table.concat(names, ' ')
else
  state, text = 'success', 'all ' .. total .. ' succeeded'
end
local summary = cjson.encode({ context = ARGV[1], state = state, description = string.sub(text, 1, 140), targetUrl = (ARGV[6] ~= '' and ARGV[6]) or nil, updatedAt = tonumber(ARGV[2]) })
redis.call('hset', KEYS[1], ARGV[1], summary)
redis.call('rpush', KEYS[3], summary)
redis.call('ltrim', KEYS[3], -tonumber(ARGV[4]), -1)
return summary
`;

// KEYS: the commits GitHub is behind on, the commit's version. ARGV: sha, the version a job was made for.
const SETTLE_DIRTY = `
if redis.call('get', KEYS[2]) == ARGV[2] then return redis.call('srem', KEYS[1], ARGV[1]) end
return 0
`;

export class StatusBook {
  /**
   * `commitUrl`: the page of a commit (the dashboard's), the summary's link. Only what natops
   * computes itself needs it; every other status carries its job's link.
   */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly commitUrl: (sha: string) => string = () => '',
  ) {}

  private key(sha: string) {
    return `${this.prefix}:status:${sha}`;
  }
  private historyKey(sha: string) {
    return `${this.prefix}:status-history:${sha}`;
  }

  /**
   * Writes status events in order, each commit's in one atomic call; after a gateway's or the
   * networks', the commit's summary follows, computed once from all of them.
   */
  async publish(events: readonly StatusEvent[]): Promise<void> {
    // Every status checked before any is written; then one call per commit, in order.
    const now = Date.now();
    const byCommit = new Map<string, string[]>();
    for (const e of events) {
      // A removal of a gateway no commit ever described (the resync's orphans) is about no commit.
      if (isZeroSha(e.sha)) continue;
      const status = CommitStatus.parse({
        context: e.context,
        state: e.state,
        description: statusText(e.description),
        ...(e.targetUrl ? { targetUrl: e.targetUrl } : {}),
        updatedAt: now,
      });
      let pairs = byCommit.get(e.sha);
      if (!pairs) byCommit.set(e.sha, (pairs = []));
      pairs.push(status.context, JSON.stringify(status));
    }
    for (const [sha, pairs] of byCommit) {
      await this.redis.eval(
        SET_AND_SUMMARIZE,
        6,
        this.key(sha),
        `${this.prefix}:commits`,
        this.historyKey(sha),
        this.gitHubKey,
        this.versionKey(sha),
        this.dirtyKey,
        SUMMARY_CONTEXT,
        String(now),
        sha,
        String(HISTORY_LIMIT),
        PREVIEW_CONTEXT,
        this.commitUrl(sha),
        ...pairs,
      );
    }
  }

  // ---- what GitHub is behind on ----------------------------------------------------------------

  private get gitHubKey() {
    return `${this.prefix}:sys:github`;
  }
  private get dirtyKey() {
    return `${this.prefix}:status-dirty`;
  }
  private versionKey(sha: string) {
    return `${this.prefix}:status-version:${sha}`;
  }

  /** From now on every status write marks its commit for GitHub (set by the process that serves the webhook). */
  async trackForGitHub(on: boolean): Promise<void> {
    if (on) await this.redis.set(this.gitHubKey, '1');
    else await this.redis.del(this.gitHubKey, this.dirtyKey);
  }

  /** Commits whose statuses changed since GitHub was last told, each with its version now. */
  async dirty(limit = 100): Promise<{ sha: string; version: string }[]> {
    const shas = await this.redis.srandmember(this.dirtyKey, limit);
    const out: { sha: string; version: string }[] = [];
    for (const sha of shas) out.push({ sha, version: (await this.redis.get(this.versionKey(sha))) ?? '0' });
    return out;
  }

  /** Unmarks the commit, unless a status was written after `version` (then its mark stays for the next job). */
  async settleDirty(sha: string, version: string): Promise<void> {
    await this.redis.eval(SETTLE_DIRTY, 2, this.dirtyKey, this.versionKey(sha), sha, version);
  }

  async get(sha: string): Promise<CommitStatus[]> {
    const all = await this.redis.hgetall(this.key(sha));
    return Object.values(all)
      .map((v) => CommitStatus.parse(JSON.parse(v)))
      .sort((a, b) =>
        a.context === SUMMARY_CONTEXT ? -1 : b.context === SUMMARY_CONTEXT ? 1 : a.context.localeCompare(b.context),
      );
  }

  /** Every status the commit was given, oldest first (the newest HISTORY_LIMIT): a state held for a moment is still seen. */
  async history(sha: string): Promise<CommitStatus[]> {
    return (await this.redis.lrange(this.historyKey(sha), 0, -1)).map((v) => CommitStatus.parse(JSON.parse(v)));
  }

  // ---- what GitHub was told (github/, functions/github/) ----------------------------------------

  private postedKey(sha: string) {
    return `${this.prefix}:status-posted:${sha}`;
  }

  /** The fingerprint of the status last written to GitHub, per context of the commit. */
  async posted(sha: string): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.postedKey(sha))));
  }

  /** Kept as long as the statuses GitHub shows matter: a month. */
  async markPosted(sha: string, context: string, fingerprint: string): Promise<void> {
    await this.redis
      .multi()
      .hset(this.postedKey(sha), context, fingerprint)
      .expire(this.postedKey(sha), 30 * 24 * 3600)
      .exec();
  }

  /** Commits with statuses, newest first. */
  async commits(limit = 20): Promise<{ sha: string; at: number }[]> {
    const flat = await this.redis.zrevrange(`${this.prefix}:commits`, 0, limit - 1, 'WITHSCORES');
    const out: { sha: string; at: number }[] = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ sha: flat[i]!, at: Number(flat[i + 1]) });
    return out;
  }
}
