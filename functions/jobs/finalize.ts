// The one place a handler job's outcome is recorded: the record of its gateway (or the
// networks) and, derived from it, the commit's status. Called by the processor on success and
// on every failure, and by the resync for a job that failed where no processor saw it (BullMQ
// failing a job that stalled too often). `settle` is the pure transition; finalize writes it.
import { errorMessage, isRetryable } from '../../common/errors.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { allocatedNote } from '../../gitops/manifests/eip-allocation.ts';
import { jobTarget, type HandlerJob } from '../../queue/jobs.ts';
import { KEEP, type Condition, type GatewayRecord, type NetworkRecord, type Target } from '../../state/records.ts';
import {
  conditionStatus,
  statusText,
  supersededStatus,
  targetContext,
  type StatusEvent,
  failedPublicly,
} from '../../state/statuses.ts';
import type { FunctionEnv, JobContext } from './env.ts';

export type JobOutcome =
  | { kind: 'done'; changes: string[] }
  | ({ kind: 'superseded' } & Supersession)
  | { kind: 'failed'; message: string; final: boolean };

export interface SettleMeta {
  at: number;
  url: string;
  attempt: number;
  attempts: number;
}

type AnyRecord = GatewayRecord | NetworkRecord;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function liveSummary(spec: GatewaySpec): string {
  return `${[
    plural(spec.eips.length, 'EIP'),
    plural(spec.floatingIps.length, 'floating IP'),
    // a shared port's backends are one port forward (Kube-OVN's DNAT identity: eip, protocol, port)
    plural(new Set(spec.dnats.map((d) => `${d.eip} ${d.protocol} ${d.externalPort}`)).size, 'port forward'),
    plural(spec.snats.length, 'SNAT'),
  ].join(', ')}${allocatedNote(spec)}`;
}

/** Why a job is not run: the newer commit that replaced it, or no commit wants its gateway any more. */
export interface Supersession {
  by?: string;
  why: string;
}

/**
 * A job is superseded unless its generation is the one its record wants now: an older one was
 * replaced by a newer plan, a newer one (an orphan removal) lost to a plan that wants the gateway,
 * and a record with no desire (never valid, or gone) wants no job at all.
 */
export function supersededBy(rec: AnyRecord | undefined, job: Pick<HandlerJob, 'gen'>): Supersession | undefined {
  if (!rec) return { why: 'no longer wanted: removed by a newer commit' };
  if (!rec.desired)
    return {
      by: rec.condition.sha,
      why: `no longer wanted: its manifest is invalid since ${rec.condition.sha.slice(0, 7)}`,
    };
  return rec.desired.gen === job.gen
    ? undefined
    : { by: rec.desired.sha, why: `superseded by ${rec.desired.sha.slice(0, 7)}` };
}

/**
 * The record after `outcome` of `job` for target `t`, and the statuses that follow. A job that is
 * not of the record's desired generation can still record what it made live, never the
 * condition; nor does any job replace a condition about a newer generation (a newer commit that
 * is invalid keeps saying so while an older flow finishes).
 */
export function settle<R extends AnyRecord>(
  t: Target,
  rec: R | undefined,
  job: HandlerJob,
  outcome: JobOutcome,
  m: SettleMeta,
): { record: R | undefined | typeof KEEP; statuses: StatusEvent[] } {
  const context = targetContext(t);
  const keep = { record: KEEP as typeof KEEP, statuses: [] as StatusEvent[] };
  // Its gateway removed since: the commit's status must not stay pending (a repair says nothing).
  if (!rec)
    return outcome.kind === 'done' || (outcome.kind === 'failed' && !outcome.final) || job.cause === 'repair'
      ? keep
      : { ...keep, statuses: [supersededStatus(job.sha, context, undefined, m.url)] };
  const ours = rec.desired?.gen === job.gen;
  const conditionIsNewer = rec.condition.gen > job.gen;
  const cond = (c: Pick<Condition, 'ready' | 'reason' | 'message' | 'publicMessage'>): Condition => ({
    ...c,
    message: statusText(c.message),
    sha: job.sha,
    gen: job.gen,
    cause: job.cause,
    url: m.url,
    at: m.at,
  });
  const withCondition = (c: Condition, extra: Partial<AnyRecord> = {}) => ({
    record: {
      ...rec,
      ...extra,
      ...(conditionIsNewer ? {} : { condition: c }),
      observedGen: Math.max(rec.observedGen, job.gen),
    } as R,
    statuses: [conditionStatus(t, c)],
  });
  // An older generation of the same commit (a plan retried, a rollback and forward) says nothing:
  // the newer generation's outcome is that commit's status.
  const sameCommit = job.sha === rec.desired?.sha;
  const silent = job.cause === 'repair' || sameCommit;
  const notOurs = () => ({
    record: KEEP as typeof KEEP,
    statuses: silent ? [] : [supersededStatus(job.sha, context, rec.desired?.sha ?? rec.condition.sha, m.url)],
  });
  const attempted = { lastAttempted: { gen: job.gen, sha: job.sha, kind: job.kind, at: m.at } };

  switch (outcome.kind) {
    case 'superseded':
      return notOurs();
    case 'failed': {
      if (!ours) return outcome.final ? notOurs() : keep;
      if (!outcome.final) {
        const retry = `${job.kind}: attempt ${m.attempt} of ${m.attempts} failed: ${outcome.message}; retrying`;
        return withCondition(
          cond({
            ready: 'Unknown',
            reason: rec.condition.reason === 'Repairing' ? 'Repairing' : 'Progressing',
            message: retry,
            publicMessage: `${job.kind}: attempt ${m.attempt} of ${m.attempts} failed; retrying`,
          }),
          attempted,
        );
      }
      return withCondition(
        cond({
          ready: 'False',
          reason: 'Failed',
          message: `${job.kind} failed: ${outcome.message}`,
          publicMessage: failedPublicly(job.kind),
        }),
        attempted,
      );
    }
    case 'done': {
      const isNetworks = t.kind === 'networks';
      // For the networks every vpc job completes their generation; for a gateway, its flow's last job.
      if (!isNetworks && !job.last) return { record: { ...rec, ...attempted }, statuses: [] };
      if (job.kind === 'gateway-delete') {
        if (ours)
          return {
            record: undefined,
            statuses: [{ sha: job.sha, context, state: 'success', description: 'removed', targetUrl: m.url }],
          };
        // Removed under an older generation: nothing of it is live, unless a newer one already rebuilt it.
        const stillLive = rec.lastApplied && rec.lastApplied.gen > job.gen;
        return { record: { ...rec, ...attempted, ...(stillLive ? {} : { lastApplied: undefined }) }, statuses: [] };
      }
      const state = isNetworks ? job.network : job.spec;
      const lastApplied =
        (rec.lastApplied?.gen ?? 0) <= job.gen ? { gen: job.gen, sha: job.sha, at: m.at, state } : rec.lastApplied;
      const message = isNetworks ? 'networks live' : `live: ${liveSummary(job.spec!)}`;
      if (!ours) {
        return {
          record: { ...rec, ...attempted, lastApplied } as R,
          statuses: silent ? [] : [{ sha: job.sha, context, state: 'success', description: message, targetUrl: m.url }],
        };
      }
      return withCondition(cond({ ready: 'True', reason: 'Applied', message }), {
        ...attempted,
        lastApplied,
        pending: [],
        jobs: [],
      } as Partial<AnyRecord>);
    }
  }
}

export interface FinalizeEnv extends Pick<FunctionEnv, 'records' | 'statuses'> {}

/** Records `outcome` (or the error) of a handler job, and publishes the statuses derived from it. */
export async function finalize(
  ctx: JobContext<HandlerJob>,
  result: JobOutcome | { error: unknown },
  env: FinalizeEnv,
): Promise<void> {
  const job = ctx.data;
  const outcome: JobOutcome =
    'error' in result
      ? { kind: 'failed', message: errorMessage(result.error), final: ctx.lastAttempt || !isRetryable(result.error) }
      : result;
  const meta: SettleMeta = { at: Date.now(), url: ctx.url, attempt: ctx.attempt, attempts: ctx.attempts };
  const targets: Target[] = [jobTarget(job)];
  // A vpc job's failure is its gateway's flow's too (and a final one fails that flow): the
  // gateway's record says so.
  if (job.kind === 'vpc' && job.gateway !== undefined && outcome.kind === 'failed')
    targets.push({ kind: 'gateway', name: job.gateway });
  for (const t of targets) {
    let statuses: StatusEvent[] = [];
    await env.records.update(t, (cur: AnyRecord | undefined) => {
      const s = settle(t, cur, job, outcome, meta);
      statuses = s.statuses;
      return s.record;
    });
    await env.statuses.publish(statuses);
  }
}
