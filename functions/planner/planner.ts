// The planner function: a push delivery -> the manifests at its commit -> validation -> the jobs
// for what changed since the state last made live, plus the commit's first statuses. A commit
// older than one already planned is not applied (a late delivery must not roll back a newer one).
import type { GatewaySpec } from '../dataplane/model.ts';
import { issueSummary, planCommit, statusText, type CommitPlan, type GatewayWork } from '../gitops/commit-plan.ts';
import type { GitRepo } from '../gitops/git/repo.ts';
import { validateManifests } from '../gitops/manifests/validate.ts';
import type { LabTopology } from '../lab/topology.ts';
import type { HandlerJob, PlanJob } from '../queue/kinds.ts';
import { withLock } from '../queue/lock.ts';
import type { FunctionEnv } from './env.ts';
import type { Queues } from '../queue/queues.ts';
import { gatewayContext, NETWORK_CONTEXT, SUMMARY_CONTEXT } from '../queue/statuses.ts';
import { NETWORK, type Store } from '../queue/store.ts';

export interface PlannerEnv extends FunctionEnv {
  repo: GitRepo;
  /** the tracked path inside the repository */
  path: string;
  queues: Queues;
}

export type PlanOutcome =
  | { kind: 'already-planned' | 'superseded'; head: string }
  | { kind: 'planned'; gen: number; plan: CommitPlan };

export async function planPush(job: PlanJob, planJobId: string, env: PlannerEnv): Promise<PlanOutcome> {
  // One planner at a time across processes: generations and the head move together.
  return withLock(env.redis, env.store.lockKey('planner'), env.lock, async () => {
    const sha = job.after;
    const head = await env.store.head(job.branch);
    if (head?.sha === sha) return { kind: 'already-planned', head: head.sha };
    if (head && !(await isNewer(env.repo, job, head.sha))) {
      env.log(`plan ${sha.slice(0, 7)}: older than ${head.sha.slice(0, 7)}, already planned; not applied`);
      await env.statuses.set(sha, {
        context: SUMMARY_CONTEXT, state: 'success', description: statusText(`not applied: superseded by newer commit ${head.sha.slice(0, 7)}`), targetUrl: env.jobUrl('plan', planJobId),
      });
      return { kind: 'superseded', head: head.sha };
    }

    const files = await env.repo.manifestsAt(sha, env.path);
    const plan = planCommit(validateManifests(files), await liveRecord(env.store));
    const gen = await env.store.nextGen();
    await record(plan, gen, job, planJobId, env);
    // Last: a planner stopped before this point plans the commit again when its job is retried.
    await env.store.setHead(job.branch, { sha, gen });
    env.log(`plan ${sha.slice(0, 7)} (generation ${gen}): ${describePlan(plan)}`);
    return { kind: 'planned', gen, plan };
  });
}

/** Newer: a descendant of the head, or a force push that replaced it. */
async function isNewer(repo: GitRepo, job: PlanJob, headSha: string): Promise<boolean> {
  if (await repo.isAncestor(headSha, job.after)) return true;
  return job.forced && job.before === headSha;
}

async function liveRecord(store: Store): Promise<{ gateways: Map<string, GatewaySpec>; known: Set<string>; network: LabTopology | undefined }> {
  const gateways = new Map<string, GatewaySpec>();
  const known = new Set<string>();
  let network: LabTopology | undefined;
  for (const target of await store.targets()) {
    const rec = await store.target(target);
    if (!rec) continue;
    if (target === NETWORK) {
      network = rec.live?.network;
      continue;
    }
    if (rec.spec) known.add(target);
    if (rec.live?.spec) gateways.set(target, rec.live.spec);
  }
  return { gateways, known, network };
}

function describePlan(p: CommitPlan): string {
  if (p.refused.length) return `refused: ${issueSummary(p.refused)}`;
  if (p.disabled) return 'enable-vpc-nat-gw is false: nothing to do';
  const parts = [
    ...p.changed.map((c) => `${c.name}: ${c.kinds.join(' -> ')}`),
    ...p.removed.map((n) => `${n}: removed`),
    ...p.invalid.map((i) => `${i.name}: invalid`),
  ];
  if (p.network && !p.changed.length) parts.push('networks');
  return parts.join('; ') || 'no change';
}

async function record(plan: CommitPlan, gen: number, job: PlanJob, planJobId: string, env: PlannerEnv): Promise<void> {
  const { store, statuses } = env;
  const sha = job.after;
  const planUrl = env.jobUrl('plan', planJobId);
  if (plan.refused.length) {
    await statuses.set(sha, { context: SUMMARY_CONTEXT, state: 'failure', description: issueSummary(plan.refused), targetUrl: planUrl });
    return;
  }
  if (plan.disabled) {
    await statuses.set(sha, { context: SUMMARY_CONTEXT, state: 'success', description: "enable-vpc-nat-gw is 'false' in ovn-vpc-nat-gw-config: gateways left as they are", targetUrl: planUrl });
    return;
  }
  if (plan.network) await store.setDesired(NETWORK, gen, sha, { network: plan.network });
  const base = { sha, gen, cause: 'push' as const };
  const chains: { name: string; jobs: HandlerJob[] }[] = plan.changed.map((w: GatewayWork) => ({
    name: w.name,
    jobs: w.kinds.map((kind, i) => ({
      ...base, kind, chain: w.name, last: i === w.kinds.length - 1,
      ...(kind === 'vpc' ? { target: NETWORK, network: plan.network } : { target: w.name, spec: w.spec }),
    })),
  }));
  for (const name of plan.removed) chains.push({ name, jobs: [{ ...base, kind: 'gateway-delete', target: name, chain: name, last: true }] });
  if (plan.network && plan.changed.length === 0) {
    chains.push({ name: NETWORK, jobs: [{ ...base, kind: 'vpc', target: NETWORK, network: plan.network, last: true }] });
  }

  // Desired generations first, so a job of an older commit still queued sees it is superseded.
  for (const w of plan.changed) await store.setDesired(w.name, gen, sha, { spec: w.spec });
  for (const name of plan.removed) await store.setDesired(name, gen, sha, {});
  if (!chains.length && !plan.invalid.length && !plan.networkIssues.length && !plan.unchanged.length) {
    await statuses.set(sha, { context: SUMMARY_CONTEXT, state: 'success', description: 'no gateways; nothing to do', targetUrl: planUrl });
  }
  // Pending statuses first: a settled status written before them would make the summary say
  // "all done" for a moment; and before the jobs, which may finish at once.
  for (const c of chains) {
    const context = c.name === NETWORK ? NETWORK_CONTEXT : gatewayContext(c.name);
    const root = env.queues.chainRoot(c.jobs, `g${gen}.${c.name}`);
    await statuses.set(sha, {
      context, state: 'pending', description: statusText(`applying: ${c.jobs.map((j) => j.kind).join(', ')}`), targetUrl: env.jobUrl(root.queue, root.id),
    });
  }
  if (plan.networkIssues.length) {
    await statuses.set(sha, { context: NETWORK_CONTEXT, state: 'failure', description: issueSummary(plan.networkIssues), targetUrl: planUrl });
  }
  for (const { name, issues } of plan.invalid) {
    await statuses.set(sha, { context: gatewayContext(name), state: 'failure', description: issueSummary(issues), targetUrl: planUrl });
  }
  for (const name of plan.unchanged) {
    await statuses.set(sha, { context: gatewayContext(name), state: 'success', description: 'no change', targetUrl: planUrl });
  }

  for (const c of chains) await env.queues.addChain(c.jobs, `g${gen}.${c.name}`);
}
