// The planner function: a delivery (or the catch-up) -> the branch's head -> its manifests ->
// the decision (pure, decide.ts) -> carried out: records, statuses, flows, then the planned head.
// What decides is the branch's head when planning, not the commit a delivery names: a late or
// repeated delivery of an older commit never rolls back a newer one, and a head that does not
// descend from the planned commit (a force-push, a reset) is the new truth, said so in statuses.
import { ZERO_SHA } from '../../common/sha.ts';
import { GitSourceError, UnknownCommitError, type GitSource } from '../../gitops/git/source.ts';
import { manifestsToValidate } from '../../gitops/git/validated.ts';
import type { ManifestCache } from '../../gitops/manifests/cache.ts';
import type { ManifestRules } from '../../gitops/manifests/validate.ts';
import type { PlanJob } from '../../queue/jobs.ts';
import { EipAllocations } from '../../state/eip-allocations.ts';
import { withLock } from '../../state/lock.ts';
import type { Queues } from '../../queue/queues.ts';
import { statusText, SUMMARY_CONTEXT, type StatusEvent } from '../../state/statuses.ts';
import type { FunctionEnv, JobContext } from '../jobs/env.ts';
import { heldAddresses, validatedAllocating } from './allocate.ts';
import { decide, type Decision } from './decide.ts';

export interface PlannerEnv extends FunctionEnv {
  /** where manifests are read: the local repository or GitHub */
  repo: GitSource;
  /** the tracked path inside the repository */
  path: string;
  queues: Queues;
  /** what one manifest file may hold */
  /** the operator's limits and workload policy */
  limits: ManifestRules;
  /** the files of the commits planned last, read once (by blob) */
  manifestCache?: ManifestCache;
}

export type PlanOutcome =
  | { kind: 'already-planned' | 'superseded'; head: string }
  | { kind: 'planned'; gen: number; decision: Decision };

/** Whether `newer` descends from (or is) `older`; a commit the repository lost does not. */
async function descends(repo: GitSource, older: string, newer: string): Promise<boolean> {
  try {
    return await repo.isAncestor(older, newer);
  } catch (e) {
    if (e instanceof UnknownCommitError) return false;
    throw e;
  }
}

export async function planPush(ctx: JobContext<PlanJob>, env: PlannerEnv): Promise<PlanOutcome> {
  const job = ctx.data;
  // One planner at a time across processes: generations and the head move together.
  return withLock(env.redis, env.store.leaseKey('planner'), env.lock, async (lease) => {
    // A repository without the branch (deleted, or a mirror not fetched yet): the delivery's commit.
    const [planned, branchHead] = await Promise.all([env.store.head(job.branch), env.repo.branchHead(job.branch)]);
    const sha = branchHead ?? job.after;
    const statuses: StatusEvent[] = [];
    // A mirror that has not fetched the delivered commit yet: try again, rather than call it old.
    if (branchHead && sha !== job.after && !(await env.repo.hasCommit(job.after))) {
      throw new GitSourceError(env.repo.name, `commit ${job.after} is not in the repository (yet)`);
    }
    if (sha !== job.after && job.after !== planned?.sha) {
      const why = (await descends(env.repo, job.after, sha))
        ? `superseded by newer commit ${sha.slice(0, 7)}`
        : `the branch is at ${sha.slice(0, 7)} now (history rewritten)`;
      ctx.log.info(`${job.after.slice(0, 7)} is not the branch's head: ${why}; not applied`);
      statuses.push({
        sha: job.after,
        context: SUMMARY_CONTEXT,
        state: 'success',
        description: statusText(`not applied: ${why}`),
        targetUrl: ctx.url,
      });
    }
    if (planned?.sha === sha) {
      await env.statuses.publish(statuses);
      return { kind: 'already-planned', head: sha };
    }
    if (
      !branchHead &&
      planned &&
      !(await descends(env.repo, planned.sha, sha)) &&
      !(job.forced && job.before === planned.sha)
    ) {
      ctx.log.info(`${sha.slice(0, 7)} is older than ${planned.sha.slice(0, 7)}, already planned; not applied`);
      await env.statuses.publish([
        {
          sha,
          context: SUMMARY_CONTEXT,
          state: 'success',
          description: statusText(`not applied: superseded by newer commit ${planned.sha.slice(0, 7)}`),
          targetUrl: ctx.url,
        },
      ]);
      return { kind: 'superseded', head: planned.sha };
    }
    // (each a git run: at once, as the push waits for its rules)
    // (a commit over the per-commit limits is refused like an invalid one: recorded, so the
    // catch-up does not plan it again every minute)
    // (EIPs without v4ip get their addresses here, before compile and the decision see them)
    const [rewritten, validation] = await Promise.all([
      planned ? descends(env.repo, planned.sha, sha).then((d) => !d) : false,
      Promise.all([
        manifestsToValidate(env.repo, sha, env.path, { ...env.limits, cache: env.manifestCache }, (m) =>
          ctx.log.warn(m),
        ),
        env.records.snapshot(),
      ]).then(([validate, snap]) =>
        validatedAllocating(validate, new EipAllocations(env.redis, env.store.prefix), heldAddresses(snap)),
      ),
    ]);
    const notes = [
      ...(job.cause === 'catch-up' ? ['caught up with the branch'] : []),
      ...(planned && rewritten ? [`history rewritten: ${planned.sha.slice(0, 7)} is not in it`] : []),
    ];

    // For the commit's check run on GitHub: its annotations point at these lines.
    if (validation.issues.length) await env.store.setCommitIssues(sha, validation.issues);
    const gen = await env.store.nextGen();
    const pctx = {
      sha,
      gen,
      cause: job.cause,
      at: Date.now(),
      planUrl: ctx.url,
      jobUrl: env.jobUrl,
      ...(notes.length ? { note: notes.join('; ') } : {}),
    };
    // Decide on a snapshot of the records; a job that finalized meanwhile changes them, and
    // then the decision is made again on what is there now.
    let decision: Decision;
    for (;;) {
      const snap = await env.records.snapshot();
      decision = decide(validation, snap, pctx);
      await lease.check();
      if (await env.records.writeAll(decision.writes, snap)) break;
    }
    // Statuses before the flows, which may finish at once: a pending status written after a
    // success would stick.
    await env.statuses.publish([
      ...statuses,
      ...decision.statuses,
      ...(decision.commit ? [{ sha, context: SUMMARY_CONTEXT, ...decision.commit, targetUrl: ctx.url }] : []),
    ]);
    for (const f of decision.flows) await env.queues.addFlow(f);
    // Last: a planner stopped before this point plans the commit again when its job is retried.
    // A planner that lost its lease meanwhile must not move the head back under a newer one.
    await lease.check();
    await env.store.setHead(job.branch, { sha, gen });
    ctx.log.info(
      { gen },
      `${sha.slice(0, 7)} (generation ${gen}${notes.length ? `; ${notes.join('; ')}` : ''}): ${decision.summary}`,
    );
    return { kind: 'planned', gen, decision };
  });
}

export interface CatchUpEnv extends Pick<FunctionEnv, 'store' | 'log'> {
  repo: GitSource;
  queues: Queues;
  branch: string;
}

/**
 * The safety net behind deliveries (run at start and by every resync): when the tracked branch's
 * head is not the commit planned last, it is planned as if it had been delivered. Returns the
 * commit queued, if any.
 */
export async function catchUp(env: CatchUpEnv): Promise<string | undefined> {
  const head = await env.repo.branchHead(env.branch);
  const planned = await env.store.head(env.branch);
  if (!head || head === planned?.sha) return undefined;
  env.log.info(
    { commit: head },
    `catch-up: ${env.branch} is at ${head.slice(0, 7)}, planned last: ${planned ? planned.sha.slice(0, 7) : 'nothing'}; planning it`,
  );
  // Once per (head, planned generation): the same head after a rollback is planned again. A
  // catch-up of that id that failed for good is kept by BullMQ (and would block the id): retried.
  const delivery = `catch-up-${head}-${planned?.gen ?? 0}`;
  const previous = await env.queues.byName.plan.getJob(`delivery-${delivery}`);
  if (previous && (await previous.getState()) === 'failed') await previous.remove();
  await env.queues.addPlan({
    delivery,
    repository: env.repo.name,
    branch: env.branch,
    before: planned?.sha ?? ZERO_SHA,
    after: head,
    forced: false,
    receivedAt: Date.now(),
    cause: 'catch-up',
  });
  return head;
}
