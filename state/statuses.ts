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
  publicDescription: z.string().max(140).optional(),
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
  /** what GitHub shows instead of `description` (which then holds an error's text) */
  publicDescription?: string;
  targetUrl?: string;
}

/** What GitHub is told of a failure whose error text stays on natops's own pages. */
export const failedPublicly = (what: string) => `${what} failed; the error is on natops's dashboard`;

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
    ...(c.publicMessage ? { publicDescription: statusText(c.publicMessage) } : {}),
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

/** How long a commit's statuses and history are kept after their last write, by default (NATOPS_STATUS_KEEP_DAYS). */
export const STATUS_KEEP_DAYS = 90;
/** How many commits the index keeps, by default (NATOPS_COMMITS_KEEP). */
export const COMMITS_KEEP = 1000;
/** Failed contexts named in a summary at most (it is cut to 140 characters anyway). */
const NAMED_FAILURES = 30;

// KEYS: statuses of the commit, the commits index, the commit's history, the GitHub flag, the
// commit's version, the commits GitHub is behind on, the commit's counts, its failed contexts.
// ARGV: summary context, now, sha, history limit, preview context, summary link, seconds to keep,
// commits to keep, then (context, state, status json) per status, in order.
// All of one publish's statuses of a commit in one call, the summary computed once after them:
// a reader never sees a summary of half a plan (success while the other statuses are still to come).
// The summary comes from running counts (total, pending, failed, and the failed contexts by name),
// changed by each write, not from decoding every status of the commit: one write costs the same
// with 5 gateways as with 5,000.
// With GitHub on, the same call marks the commit for it (a job is made from the mark, by any
// process that talks to GitHub): a status written is never one GitHub misses.
const SET_AND_SUMMARIZE = `
local summaryContext, previewContext = ARGV[1], ARGV[5]
local counted = function(context) return context ~= summaryContext and context ~= previewContext end
local failing = function(state) return state == 'failure' or state == 'error' end
-- counts missing (statuses written before natops kept them): made once from the statuses
if redis.call('exists', KEYS[7]) == 0 then
  redis.call('del', KEYS[8])
  local total, pending, failed = 0, 0, 0
  local all = redis.call('hgetall', KEYS[1])
  for i = 1, #all, 2 do
    if counted(all[i]) then
      local state = cjson.decode(all[i + 1]).state
      total = total + 1
      if state == 'pending' then pending = pending + 1
      elseif failing(state) then failed = failed + 1; redis.call('zadd', KEYS[8], 0, all[i]) end
    end
  end
  redis.call('hset', KEYS[7], 'total', total, 'pending', pending, 'failed', failed)
end
local summarize, planned = false, false
for i = 9, #ARGV, 3 do
  local context, state, json = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if counted(context) then
    local before = redis.call('hget', KEYS[1], context)
    if before then
      local was = cjson.decode(before).state
      if was == 'pending' then redis.call('hincrby', KEYS[7], 'pending', -1)
      elseif failing(was) then redis.call('hincrby', KEYS[7], 'failed', -1); redis.call('zrem', KEYS[8], context) end
    else
      redis.call('hincrby', KEYS[7], 'total', 1)
    end
    if state == 'pending' then redis.call('hincrby', KEYS[7], 'pending', 1)
    elseif failing(state) then redis.call('hincrby', KEYS[7], 'failed', 1); redis.call('zadd', KEYS[8], 0, context) end
  end
  redis.call('hset', KEYS[1], context, json)
  redis.call('rpush', KEYS[3], json)
  -- a pull request's head is not a planned commit: no entry in the commits index
  if context ~= previewContext then planned = true end
  -- a summary given stands, unless a status of a gateway or the networks follows it
  if context == summaryContext then summarize = false elseif context ~= previewContext then summarize = true end
end
redis.call('ltrim', KEYS[3], -tonumber(ARGV[4]), -1)
if redis.call('exists', KEYS[4]) == 1 then
  redis.call('incr', KEYS[5])
  redis.call('expire', KEYS[5], 2592000)
  redis.call('sadd', KEYS[6], ARGV[3])
end
-- kept ARGV[7] seconds after the last write; the index keeps the newest ARGV[8] commits
for _, key in ipairs({ KEYS[1], KEYS[3], KEYS[7], KEYS[8] }) do redis.call('expire', key, ARGV[7]) end
if planned then
  redis.call('zadd', KEYS[2], 'NX', ARGV[2], ARGV[3])
  redis.call('zremrangebyrank', KEYS[2], 0, -tonumber(ARGV[8]) - 1)
end
if not summarize then return false end
local counts = redis.call('hmget', KEYS[7], 'total', 'pending', 'failed')
local total, pending, failed = tonumber(counts[1]), tonumber(counts[2]), tonumber(counts[3])
local names = failed > 0 and table.concat(redis.call('zrange', KEYS[8], 0, ${NAMED_FAILURES - 1}), ' ') or ''
local state, text
if pending > 0 then
  state, text = 'pending', (total - pending) .. ' of ' .. total .. ' done' .. (failed > 0 and (', failed: ' .. names) or '')
elseif failed > 0 then
  state, text = 'failure', failed .. ' of ' .. total .. ' failed: ' .. names
else
  state, text = 'success', 'all ' .. total .. ' succeeded'
end
local summary = cjson.encode({ context = summaryContext, state = state, description = string.sub(text, 1, 140), targetUrl = (ARGV[6] ~= '' and ARGV[6]) or nil, updatedAt = tonumber(ARGV[2]) })
redis.call('hset', KEYS[1], summaryContext, summary)
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
    private readonly keep: { days: number; commits: number } = { days: STATUS_KEEP_DAYS, commits: COMMITS_KEEP },
  ) {}

  private key(sha: string) {
    return `${this.prefix}:status:${sha}`;
  }
  private historyKey(sha: string) {
    return `${this.prefix}:status-history:${sha}`;
  }
  private countKey(sha: string) {
    return `${this.prefix}:status-count:${sha}`;
  }
  private failedKey(sha: string) {
    return `${this.prefix}:status-failed:${sha}`;
  }

  /**
   * Writes status events in order, each commit's in one atomic call; after a gateway's or the
   * networks', the commit's summary follows, computed once from all of them.
   */
  async publish(events: readonly StatusEvent[]): Promise<void> {
    // Every status checked before any is written; then one call per commit, in order.
    const now = Date.now();
    /** (context, state, json) per status */
    const byCommit = new Map<string, string[]>();
    for (const e of events) {
      // A removal of a gateway no commit ever described (the resync's orphans) is about no commit.
      if (isZeroSha(e.sha)) continue;
      const status = CommitStatus.parse({
        context: e.context,
        state: e.state,
        description: statusText(e.description),
        ...(e.publicDescription ? { publicDescription: statusText(e.publicDescription) } : {}),
        ...(e.targetUrl ? { targetUrl: e.targetUrl } : {}),
        updatedAt: now,
      });
      let triples = byCommit.get(e.sha);
      if (!triples) byCommit.set(e.sha, (triples = []));
      triples.push(status.context, status.state, JSON.stringify(status));
    }
    for (const [sha, triples] of byCommit) {
      await this.redis.eval(
        SET_AND_SUMMARIZE,
        8,
        this.key(sha),
        `${this.prefix}:commits`,
        this.historyKey(sha),
        this.gitHubKey,
        this.versionKey(sha),
        this.dirtyKey,
        this.countKey(sha),
        this.failedKey(sha),
        SUMMARY_CONTEXT,
        String(now),
        sha,
        String(HISTORY_LIMIT),
        PREVIEW_CONTEXT,
        this.commitUrl(sha),
        String(this.keep.days * 24 * 3600),
        String(this.keep.commits),
        ...triples,
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
