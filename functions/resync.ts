// The resync function, run by a job scheduler. First the catch-up (the branch's head planned
// if no delivery brought it), then three things, in order:
// 1. bookkeeping: a record whose jobs BullMQ failed where no processor saw it (a job that
//    stalled more often than allowed), or whose jobs are gone, gets its failure recorded, as a
//    processor would have;
// 2. drift: every settled gateway is read and compared with what its record wants; a missing
//    namespace, a hand-edited rule or a failed generation gets a repair flow (built by the
//    planner's own decideRepairs); a gateway that cannot be read is reported and skipped;
// 3. removals: only a record whose planned commit no longer holds its gateway removes it (a
//    removal that failed, repaired like drift). A gateway with no record is never removed: the
//    record may be one Redis lost. With no planned commit, or no record while gateways run,
//    nothing is removed, said loudly; and at most `maxRemovals` per run.
// Every repair is recorded (`natops status`, the dashboard), and so is every gateway held back.
import { z } from 'zod';
import { errorMessage } from '../common/errors.ts';
import { compileGateway } from '../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet } from '../dataplane/diff.ts';
import { ruleDiff } from '../dataplane/plan-text.ts';
import { ZERO_SHA } from '../common/sha.ts';
import { HandlerJob, readJobData } from '../queue/jobs.ts';
import { withLock } from '../state/lock.ts';
import type { Queues } from '../queue/queues.ts';
import type { Head } from '../state/store.ts';
import { NETWORKS, type GatewayRecord, type RecordSnapshot } from '../state/records.ts';
import { fenced } from './handlers/fence.ts';
import type { HandlerEnv } from './handlers/process.ts';
import { jobContext, type JobContext } from './jobs/env.ts';
import { finalize } from './jobs/finalize.ts';
import { decideRepairs } from './planner/decide.ts';

export interface ResyncEnv extends HandlerEnv {
  queues: Queues;
  /** the tracked branch (without a planned head for it, the records may be lost: nothing is removed) */
  branch: string;
  /** the most gateways one resync removes (DEFAULT_MAX_REMOVALS); the rest wait for the next run */
  maxRemovals?: number;
  /** plans the branch's head if it is ahead of what was planned (absent: no repository here) */
  catchUp?: () => Promise<string | undefined>;
}

export interface ResyncReport {
  checked: number;
  repairs: { target: string; what: string[] }[];
  /** gateways that could not be read this time */
  unreadable: { target: string; error: string }[];
  /** gateways this run did not remove although no record wants them (none holds them, or the removal waits), and why */
  held: { target: string; why: string }[];
}

/**
 * Removals the resync starts are rare (a planned removal that failed and is tried again); many
 * at once mean something is wrong, so one a run unless configured otherwise.
 */
export const DEFAULT_MAX_REMOVALS = 1;

/**
 * A record in progress is left to its jobs for this long before the resync looks at them (the
 * planner writes records just before it adds their jobs).
 */
const settleMs = (env: ResyncEnv) => Math.max(5000, 2 * env.lock.ttlMs);

/**
 * A resync asked for by an event about one gateway (its pod was replaced) rather than the
 * schedule: it checks that gateway only. A gateway in progress is skipped by every resync; one
 * asked for is looked at again once its jobs are done, or a pod replaced under a running repair
 * would wait for the schedule.
 */
export const ResyncRequest = z.object({
  gateway: z.string().optional(),
  reason: z.string().optional(),
  /** how many times this request found its gateway unreadable (a replaced pod still starting) */
  unreadable: z.number().int().nonnegative().optional(),
});
export type ResyncRequest = z.infer<typeof ResyncRequest>;
/** how soon a resync asked for a gateway in progress looks again */
const RECHECK_MS = 1000;
/**
 * How often a resync asked for a gateway it could not read looks again, every RECHECK_MS: a
 * replaced pod may answer pods/exec only some seconds after it is Ready (the old one of its
 * name still stopping); the schedule covers a gateway that stays unreadable.
 */
const UNREADABLE_RECHECKS = 30;

export async function resync(ctx: JobContext<unknown>, env: ResyncEnv): Promise<ResyncReport> {
  const { records, clients } = env;
  const report: ResyncReport = { checked: 0, repairs: [], unreadable: [], held: [] };
  const now = Date.now();

  // A push whose delivery never arrived is planned now; its jobs, not the repairs below, fix it.
  // A failure here (git unreadable for a moment) must not stop the rest of the resync.
  const caughtUp = await env
    .catchUp?.()
    .catch((e: unknown) => void ctx.log.warn(`catch-up failed: ${errorMessage(e)}`));
  if (caughtUp) ctx.log.info(`the branch is at ${caughtUp.slice(0, 7)}, not planned yet: planning it`);
  await recordLostFailures(env, now);

  const request = ResyncRequest.safeParse(ctx.data);
  const asked = request.success ? request.data : {};
  const snap = await records.snapshot();
  const drifted: { name: string; what: string[] }[] = [];
  for (const [name, rec] of snap.gateways) {
    if (rec.desired && rec.condition.ready === 'Unknown' && asked.gateway === name) {
      ctx.log.info(`${name} is in progress (${rec.condition.reason}); looking again in ${RECHECK_MS} ms`);
      await env.queues.byName.resync.add('resync', asked, { delay: RECHECK_MS });
    }
    // a resync asked for one gateway looks at that one only; the schedule covers the rest
    if (!rec.desired || rec.condition.ready === 'Unknown' || (asked.gateway !== undefined && asked.gateway !== name))
      continue;
    report.checked++;
    try {
      const what = await driftOf(rec, env);
      if (what.length) drifted.push({ name, what });
    } catch (e) {
      report.unreadable.push({ target: name, error: errorMessage(e) });
      ctx.log.warn(`${name}: could not be read: ${errorMessage(e)}`);
      const tries = (asked.unreadable ?? 0) + 1;
      if (asked.gateway === name && tries <= UNREADABLE_RECHECKS)
        await env.queues.byName.resync.add('resync', { ...asked, unreadable: tries }, { delay: RECHECK_MS });
    }
  }
  // Gateways no record holds are reported, never removed: a missing record may be a lost one.
  const unrecorded =
    asked.gateway !== undefined
      ? []
      : (await clients.runtime.listGateways()).filter((name) => !snap.gateways.has(name));
  const head = await env.store.head(env.branch);
  const decision = decideRepairs(
    snap,
    { drifted, unrecorded, planned: head !== undefined, maxRemovals: env.maxRemovals ?? DEFAULT_MAX_REMOVALS },
    { at: now, jobUrl: env.jobUrl },
  );
  if (decision.alarm) ctx.log.error(`resync: ${decision.alarm}`);
  for (const line of decision.warnings) ctx.log.warn(`resync: ${line}`);
  // A push planned meanwhile changed the records: it decides; the next resync looks again.
  if (decision.writes.length && (await records.writeAll(decision.writes, snap))) {
    await env.statuses.publish(decision.statuses);
    for (const f of decision.flows) await env.queues.addFlow(f);
    for (const { name, what } of decision.repaired)
      await repaired(name, what, snap.gateways.get(name)!.desired!, report, ctx, env);
  }
  await heldBack(decision.held, snap, head, report, env);

  // The networks: their handler is idempotent and says what it had to change.
  if (asked.gateway === undefined && snap.networks?.desired && snap.networks.condition.ready !== 'Unknown') {
    report.checked++;
    const done = await withLock(env.redis, env.store.leaseKey(NETWORKS), env.lock, async (lease) => {
      // What the record says now, not at the snapshot: a push may have moved the networks on.
      const net = await records.get(NETWORKS);
      if (!net?.desired || net.condition.ready === 'Unknown' || net.desired.gen !== snap.networks!.desired!.gen)
        return undefined;
      const changed = await fenced(clients, lease).network.apply(net.desired.state);
      // A generation that failed (or never completed) is live now: recorded as a vpc job would.
      if (net.condition.reason === 'Failed' || net.pending.length || net.lastApplied?.gen !== net.desired.gen) {
        const job: HandlerJob = {
          kind: 'vpc',
          sha: net.desired.sha,
          gen: net.desired.gen,
          cause: 'repair',
          network: net.desired.state,
          last: true,
        };
        await finalize(
          jobContext(job, { queue: 'vpc', id: ctx.id, attemptsMade: 0, attempts: 1 }, env),
          { kind: 'done', changes: changed },
          env,
        );
      }
      return { changed, at: net.desired };
    });
    if (done?.changed.length) await repaired('networks', done.changed, done.at, report, ctx, env);
  }
  return report;
}

async function repaired(
  target: string,
  what: string[],
  at: { sha: string; gen: number },
  report: ResyncReport,
  ctx: JobContext<unknown>,
  env: ResyncEnv,
): Promise<void> {
  report.repairs.push({ target, what });
  await env.store.recordRepair({ at: Date.now(), target, sha: at.sha, gen: at.gen, what });
  // (the resync's own job fields, and the repaired gateway's commit and generation over them)
  ctx.log.warn(
    { gateway: target, commit: at.sha, gen: at.gen, repair: true },
    `resync: ${target} drifted from ${at.sha.slice(0, 7)}: ${what.join('; ')}`,
  );
}

/**
 * Gateways left alone although no planned commit wants them: in the report, and in the list of
 * repairs (`natops status`, the dashboard) once, not again at every run while nothing changes.
 */
async function heldBack(
  held: readonly { target: string; why: string }[],
  snap: RecordSnapshot,
  head: Head | undefined,
  report: ResyncReport,
  env: ResyncEnv,
): Promise<void> {
  if (!held.length) return;
  report.held.push(...held);
  const shown = await env.store.repairs();
  for (const { target, why } of held) {
    const last = shown.find((r) => r.target === target);
    if (last?.what.length === 1 && last.what[0] === why) continue;
    const at = snap.gateways.get(target)?.desired ?? head ?? { sha: ZERO_SHA, gen: 0 };
    await env.store.recordRepair({ at: Date.now(), target, sha: at.sha, gen: at.gen, what: [why] });
  }
}

/** What differs between the gateway and its record's desire (empty: nothing). */
async function driftOf(rec: GatewayRecord, env: ResyncEnv): Promise<string[]> {
  const want = rec.desired!.state;
  if (want === null) return [`gateway ${rec.name} is still there after its removal failed`];
  const handle = await env.clients.runtime.gateway(rec.name);
  if (!handle) return [`gateway ${rec.name} is missing`];
  const changes = diffStates(await handle.readState(), compileGateway(want));
  if (!isEmptyChangeSet(changes)) return ruleDiff(changes);
  if (rec.condition.reason === 'Failed') return [`its last generation failed: ${rec.condition.message}`];
  return [];
}

/**
 * Records still in progress whose flow has a job BullMQ failed outside any processor (or a job
 * that is gone: never added, the process died first): the failure is recorded through finalize,
 * as the processor would have.
 */
async function recordLostFailures(env: ResyncEnv, now: number): Promise<void> {
  const snap = await env.records.snapshot();
  const inProgress = [...snap.gateways.values(), ...(snap.networks ? [snap.networks] : [])].filter(
    (r) => r.condition.ready === 'Unknown' && now - r.condition.at > settleMs(env) && r.desired && r.jobs?.length,
  );
  for (const rec of inProgress) {
    const jobs = await Promise.all(
      rec.jobs!.map(async (ref) => {
        const job = await env.queues.byName[ref.queue].getJob(ref.id);
        return { ref, job, state: job ? await job.getState() : 'missing' };
      }),
    );
    // A job still to run means the flow is alive (a completed child may have been cleaned up).
    const alive = jobs.some((j) => !['failed', 'completed', 'missing'].includes(j.state));
    for (const { ref, job, state } of jobs) {
      if (state !== 'failed' && (state !== 'missing' || alive)) continue;
      // read as a worker reads it (readJobData: the format check and the manifests' rules)
      const parsed = job ? readJobData(HandlerJob, job.data) : undefined;
      // A job that is gone (or unreadable) is rebuilt from the record: finalize needs its kind, commit and generation.
      const data: HandlerJob = parsed?.ok
        ? parsed.data
        : {
            kind: ref.queue,
            sha: rec.desired!.sha,
            gen: rec.desired!.gen,
            cause: rec.desired!.cause,
            last: false,
            ...('name' in rec ? { gateway: rec.name } : {}),
          };
      const reason = job
        ? job.failedReason || 'failed'
        : `its job ${ref.queue}/${ref.id} is gone (never added, or removed)`;
      const ctx = jobContext(
        data,
        {
          queue: ref.queue,
          id: ref.id,
          attemptsMade: (job?.opts.attempts ?? 1) - 1,
          attempts: job?.opts.attempts ?? 1,
        },
        env,
      );
      env.log.warn(
        { queue: ref.queue, job: ref.id },
        `resync: job ${ref.queue}/${ref.id} failed outside any worker (${reason}); recording it`,
      );
      await finalize(ctx, { error: new Error(reason) }, env);
      break;
    }
  }
}
