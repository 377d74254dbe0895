// The planner function: a push delivery -> the manifests at its commit -> the decision (pure,
// decide.ts) -> carried out: records, statuses, flows, then the branch's head. A commit older
// than one already planned is not applied (a late delivery must not roll back a newer one).
import { UnknownCommitError, type GitRepo } from '../../gitops/git/repo.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import type { PlanJob } from '../../queue/jobs.ts';
import { withLock } from '../../queue/lock.ts';
import type { Queues } from '../../queue/queues.ts';
import { statusText, SUMMARY_CONTEXT } from '../../queue/statuses.ts';
import type { FunctionEnv, JobContext } from '../jobs/env.ts';
import { decide, type Decision, type Flow } from './decide.ts';

export interface PlannerEnv extends FunctionEnv {
  repo: GitRepo;
  /** the tracked path inside the repository */
  path: string;
  queues: Queues;
}

export type PlanOutcome =
  | { kind: 'already-planned' | 'superseded'; head: string }
  | { kind: 'planned'; gen: number; decision: Decision };

export async function planPush(ctx: JobContext<PlanJob>, env: PlannerEnv): Promise<PlanOutcome> {
  const job = ctx.data;
  // One planner at a time across processes: generations and the head move together.
  return withLock(env.redis, env.store.leaseKey('planner'), env.lock, async (lease) => {
    const sha = job.after;
    const head = await env.store.head(job.branch);
    if (head?.sha === sha) return { kind: 'already-planned', head: head.sha };
    if (head && !(await isNewer(env.repo, job, head.sha))) {
      ctx.log(`${sha.slice(0, 7)} is older than ${head.sha.slice(0, 7)}, already planned; not applied`);
      await env.statuses.publish([{
        sha, context: SUMMARY_CONTEXT, state: 'success', description: statusText(`not applied: superseded by newer commit ${head.sha.slice(0, 7)}`), targetUrl: ctx.url,
      }]);
      return { kind: 'superseded', head: head.sha };
    }

    const validation = validateManifests(await env.repo.manifestsAt(sha, env.path, { warn: (m) => ctx.log(`warning: ${m}`) }));
    const gen = await env.store.nextGen();
    const pctx = { sha, gen, cause: 'push' as const, at: Date.now(), planUrl: ctx.url, jobUrl: env.jobUrl };
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
      ...decision.statuses,
      ...(decision.commit ? [{ sha, context: SUMMARY_CONTEXT, ...decision.commit, targetUrl: ctx.url }] : []),
    ]);
    for (const f of decision.flows) await env.queues.addFlow(f);
    // Last: a planner stopped before this point plans the commit again when its job is retried.
    await env.store.setHead(job.branch, { sha, gen });
    ctx.log(`${sha.slice(0, 7)} (generation ${gen}): ${decision.summary}`);
    return { kind: 'planned', gen, decision };
  });
}

/** Newer: a descendant of the head, or a force push that replaced it. */
async function isNewer(repo: GitRepo, job: PlanJob, headSha: string): Promise<boolean> {
  if (job.forced && job.before === headSha) return true;
  try {
    return await repo.isAncestor(headSha, job.after);
  } catch (e) {
    // The planned head was rewritten away (history rewritten, repository replaced): the pushed
    // commit, which the repository holds, is the truth now.
    if (e instanceof UnknownCommitError && e.sha === headSha) return true;
    throw e;
  }
}

export type { Flow };
