// The planner's decision, pure: (a commit's validated manifests, the records) -> one outcome:
// the records to write, the flows to enqueue and the commit statuses that follow from them.
// The resync's repairs are built by the same functions. Nothing here touches Redis or Git.
//
// What a gateway needs is measured against what was last *applied* plus every kind whose jobs
// were planned since and have not all completed ("pending"): those may have changed the
// gateway, and a newer commit supersedes them, so it runs them again. That way a revert
// pushed before the change it reverts has run is not lost, in any interleaving.
import { FULL_GATEWAY, KIND_ORDER, PART_KIND, type HandlerKind } from '../../dataplane/kinds.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { changedParts } from '../../dataplane/parts.ts';
import { formatIssue, refusesCommit, sortIssues, type ManifestIssue } from '../../gitops/manifests/issues.ts';
import type { ValidationResult } from '../../gitops/manifests/validate.ts';
import { allocatedNote } from '../../gitops/manifests/eip-allocation.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import type { NetworkModel } from '../../dataplane/network.ts';
import type { HandlerJob } from '../../queue/jobs.ts';
import {
  gatewayTarget,
  NETWORKS,
  type Cause,
  type Condition,
  type GatewayRecord,
  type RecordSnapshot,
  type RecordWrite,
} from '../../state/records.ts';
import {
  conditionStatus,
  gatewayContext,
  NETWORK_CONTEXT,
  statusText,
  supersededStatus,
  type StatusEvent,
} from '../../state/statuses.ts';

export interface PlanContext {
  sha: string;
  gen: number;
  cause: Cause;
  at: number;
  /** the plan job's page */
  planUrl: string;
  /** a job's page */
  jobUrl: (queue: string, id: string) => string;
  /** said with every condition of this plan: "caught up with the branch", "history rewritten: ..." */
  note?: string;
}

export interface Flow {
  /** the gateway it builds; undefined for a lone networks flow */
  gateway: string | undefined;
  /** job ids are `${idPrefix}.${kind}` */
  idPrefix: string;
  jobs: HandlerJob[];
}

export interface Decision {
  /** a verdict on the whole commit, when it is not the sum of its gateways' (refused, disabled, empty) */
  commit?: { state: 'success' | 'failure'; description: string };
  writes: RecordWrite[];
  flows: Flow[];
  /** derived from the writes (and the older commits they supersede) */
  statuses: StatusEvent[];
  /** one line for the log */
  summary: string;
}

export function issueSummary(issues: readonly ManifestIssue[]): string {
  const first = issues[0];
  if (!first) return '';
  const more = issues.length > 1 ? ` (+${issues.length - 1} more)` : '';
  return `${statusText(formatIssue(first)).slice(0, 140 - more.length)}${more}`;
}

const GATEWAY_ID = /^VpcNatGateway\/(.+)$/;

const ordered = (kinds: Iterable<HandlerKind>): HandlerKind[] => {
  const set = new Set(kinds);
  return [...KIND_ORDER, 'gateway-delete' as const].filter((k) => set.has(k));
};

const condition = (
  ctx: PlanContext,
  c: Pick<Condition, 'ready' | 'reason' | 'message'> & { url?: string },
): Condition => ({
  ...c,
  message: statusText(ctx.note ? `${c.message} (${ctx.note})` : c.message),
  sha: ctx.sha,
  gen: ctx.gen,
  cause: ctx.cause,
  at: ctx.at,
  url: c.url ?? ctx.planUrl,
});

const emptyRecord = (name: string, c: Condition): GatewayRecord => ({
  name,
  pending: [],
  observedGen: 0,
  condition: c,
});

/** The jobs of one flow, in order; the last one's success makes the generation applied. */
export function buildFlow(
  gateway: string | undefined,
  kinds: readonly HandlerKind[],
  ctx: Pick<PlanContext, 'sha' | 'gen' | 'cause'>,
  want: { spec?: GatewaySpec; network?: NetworkModel },
  idPrefix: string,
): Flow {
  const jobs = kinds.map(
    (kind, i): HandlerJob => ({
      kind,
      sha: ctx.sha,
      gen: ctx.gen,
      cause: ctx.cause,
      last: i === kinds.length - 1,
      ...(gateway === undefined ? {} : { gateway }),
      ...(kind === 'vpc' ? { network: want.network } : kind === 'gateway-delete' ? {} : { spec: want.spec }),
    }),
  );
  return { gateway, idPrefix, jobs };
}

/** The queue and id of each job of a flow. */
export const jobRefs = (f: Flow) => f.jobs.map((j) => ({ queue: j.kind, id: `${f.idPrefix}.${j.kind}` }));

const flowUrl = (f: Flow, ctx: Pick<PlanContext, 'jobUrl'>) => {
  const last = f.jobs.at(-1)!;
  return ctx.jobUrl(last.kind, `${f.idPrefix}.${last.kind}`);
};

/** Kinds an in-flight generation may have run: a recreated or removed gateway needs all of them again. */
function pendingKinds(rec: GatewayRecord | undefined): HandlerKind[] {
  const p = rec?.pending ?? [];
  return p.includes('gateway') || p.includes('gateway-delete') ? [...FULL_GATEWAY] : p.filter((k) => k !== 'vpc');
}

/**
 * A record whose jobs were still at work for an older commit (a push's, or a repair's, which
 * showed that commit pending again): that commit's status says it was superseded.
 */
function supersededStatuses(
  rec: { condition: Condition } | undefined,
  ctx: PlanContext,
  context: string,
): StatusEvent[] {
  const c = rec?.condition;
  if (c?.ready !== 'Unknown' || c.sha === ctx.sha) return [];
  return [supersededStatus(c.sha, context, ctx.sha, ctx.planUrl)];
}

export function decide(v: ValidationResult, snap: RecordSnapshot, ctx: PlanContext): Decision {
  const issues = sortIssues(v.issues);
  const refused = issues.filter(refusesCommit);
  if (refused.length)
    return {
      commit: { state: 'failure', description: issueSummary(refused) },
      writes: [],
      flows: [],
      statuses: [],
      summary: `refused: ${issueSummary(refused)}`,
    };
  const { desired } = v;
  if (!desired.enabled) {
    const description = "enable-vpc-nat-gw is 'false' in ovn-vpc-nat-gw-config: gateways left as they are";
    return { commit: { state: 'success', description }, writes: [], flows: [], statuses: [], summary: description };
  }

  const invalid = new Map<string, ManifestIssue[]>();
  const networkIssues: ManifestIssue[] = [];
  for (const issue of issues) {
    const gw = issue.gateway ?? GATEWAY_ID.exec(issue.resource)?.[1];
    if (gw !== undefined) invalid.set(gw, [...(invalid.get(gw) ?? []), issue]);
    else networkIssues.push(issue);
  }
  // An invalid gateway keeps what it had, its networks included: its EIPs' next hops stay.
  const kept = new Map<string, GatewaySpec>();
  for (const name of invalid.keys()) {
    const rec = snap.gateways.get(name);
    const spec = rec?.desired?.state ?? rec?.lastApplied?.state;
    if (spec) kept.set(name, spec);
  }

  const writes: RecordWrite[] = [];
  const flows: Flow[] = [];
  const statuses: StatusEvent[] = [];
  const lines: string[] = [];
  const write = (w: RecordWrite) => {
    writes.push(w);
    const rec = w.record;
    if (rec && rec.condition.sha === ctx.sha && rec.condition.gen === ctx.gen)
      statuses.push(conditionStatus(w.target, rec.condition));
  };

  // The networks: from the valid gateways and the kept ones, unless a Vpc, Subnet or the ConfigMap is broken.
  const netRec = snap.networks;
  let network: NetworkModel | undefined;
  if (networkIssues.length) {
    const base = netRec ?? { pending: [], observedGen: 0 };
    write({
      target: NETWORKS,
      record: {
        ...base,
        condition: condition(ctx, { ready: 'False', reason: 'Invalid', message: issueSummary(networkIssues) }),
      },
    });
    lines.push('networks: invalid');
  } else {
    const model = networkModel({ ...desired, gateways: new Map([...kept, ...desired.gateways]) });
    if (JSON.stringify(model) !== JSON.stringify(netRec?.desired?.state) || netRec?.pending.length) network = model;
  }

  const gatewayFlows: Flow[] = [];
  for (const [name, spec] of [...desired.gateways].sort(([a], [b]) => a.localeCompare(b))) {
    // A gateway with any problem (one filed under it, such as a missing ConfigMap, or a second
    // definition of its name) is invalid as a whole: it keeps what it had.
    if (invalid.has(name)) continue;
    const rec = snap.gateways.get(name);
    const { gateway, parts } = changedParts(rec?.lastApplied?.state ?? undefined, spec);
    const kinds = ordered([...(gateway ? FULL_GATEWAY : parts.map((p) => PART_KIND[p])), ...pendingKinds(rec)]);
    if (!kinds.length) {
      const c = condition(ctx, { ready: 'True', reason: 'UpToDate', message: 'no change' });
      write({
        target: gatewayTarget(name),
        record: { ...rec!, desired: { gen: ctx.gen, sha: ctx.sha, cause: ctx.cause, state: spec }, condition: c },
      });
      continue;
    }
    const flow = buildFlow(name, network ? ['vpc', ...kinds] : kinds, ctx, { spec, network }, `g${ctx.gen}.${name}`);
    gatewayFlows.push(flow);
    statuses.push(...supersededStatuses(rec, ctx, gatewayContext(name)));
    const c = condition(ctx, {
      ready: 'Unknown',
      reason: 'Progressing',
      message: `applying: ${flow.jobs.map((j) => j.kind).join(', ')}${allocatedNote(spec)}`,
      url: flowUrl(flow, ctx),
    });
    write({
      target: gatewayTarget(name),
      record: {
        ...(rec ?? emptyRecord(name, c)),
        desired: { gen: ctx.gen, sha: ctx.sha, cause: ctx.cause, state: spec },
        pending: kinds,
        jobs: jobRefs(flow),
        condition: c,
      },
    });
    lines.push(`${name}: ${flow.jobs.map((j) => j.kind).join(' -> ')}`);
  }

  for (const [name, list] of invalid) {
    const rec = snap.gateways.get(name);
    const c = condition(ctx, { ready: 'False', reason: 'Invalid', message: issueSummary(list) });
    write({ target: gatewayTarget(name), record: { ...(rec ?? emptyRecord(name, c)), condition: c } });
    lines.push(`${name}: invalid`);
  }

  // Gone from Git (and not merely broken): removed. A gateway that was never valid has nothing live.
  for (const [name, rec] of snap.gateways) {
    if (desired.gateways.has(name) || invalid.has(name)) continue;
    if (!rec.desired) {
      writes.push({ target: gatewayTarget(name), record: undefined });
      continue;
    }
    const flow = buildFlow(name, ['gateway-delete'], ctx, {}, `g${ctx.gen}.${name}`);
    gatewayFlows.push(flow);
    statuses.push(...supersededStatuses(rec, ctx, gatewayContext(name)));
    const c = condition(ctx, { ready: 'Unknown', reason: 'Progressing', message: 'removing', url: flowUrl(flow, ctx) });
    write({
      target: gatewayTarget(name),
      record: {
        ...rec,
        desired: { gen: ctx.gen, sha: ctx.sha, cause: ctx.cause, state: null },
        pending: ['gateway-delete'],
        jobs: jobRefs(flow),
        condition: c,
      },
    });
    lines.push(`${name}: removed`);
  }

  if (network) {
    // The networks run first in every changed gateway's flow, or alone when no gateway changed.
    const lone = gatewayFlows.some((f) => f.jobs[0]?.kind === 'vpc')
      ? undefined
      : buildFlow(undefined, ['vpc'], ctx, { network }, `g${ctx.gen}.networks`);
    const url = lone ? flowUrl(lone, ctx) : ctx.planUrl;
    statuses.push(...supersededStatuses(netRec, ctx, NETWORK_CONTEXT));
    const c = condition(ctx, { ready: 'Unknown', reason: 'Progressing', message: 'applying the networks', url });
    write({
      target: NETWORKS,
      record: {
        ...(netRec ?? { observedGen: 0 }),
        desired: { gen: ctx.gen, sha: ctx.sha, cause: ctx.cause, state: network },
        pending: ['vpc'],
        jobs: [...gatewayFlows, ...(lone ? [lone] : [])].flatMap(jobRefs).filter((j) => j.queue === 'vpc'),
        condition: c,
      },
    });
    if (lone) gatewayFlows.push(lone);
    lines.push('networks');
  }
  flows.push(...gatewayFlows);

  const commit = statuses.some((s) => s.sha === ctx.sha)
    ? undefined
    : { state: 'success' as const, description: 'no gateways; nothing to do' };
  return { commit, writes, flows, statuses, summary: lines.join('; ') || 'no change' };
}

/** What the resync found, for decideRepairs to decide on. */
export interface RepairFindings {
  /** settled gateways that differ from what their record wants */
  drifted: readonly { name: string; what: string[] }[];
  /**
   * gateways natops runs that no record holds. Never removed for that: a missing record may be
   * one Redis lost (a restart without persistence, FLUSHALL, eviction, a new prefix).
   */
  unrecorded: readonly string[];
  /** whether a commit of the tracked branch was planned: without one the records may be lost */
  planned: boolean;
  /** the most removals one resync starts; the rest wait for the next run */
  maxRemovals: number;
}

export interface Repairs extends Pick<Decision, 'writes' | 'flows' | 'statuses'> {
  /** the repairs started (removals among them), with what differed */
  repaired: { name: string; what: string[] }[];
  /** gateways left as they are although no record wants them (none holds them, or their removal waits), and why */
  held: { target: string; why: string }[];
  /** every removal held back because natops's records look lost: to be said loudly */
  alarm?: string;
  /** removals held back by the cap, and gateways no record holds: to be said */
  warnings: string[];
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
const names = (list: readonly string[]) => `${list.slice(0, 10).join(', ')}${list.length > 10 ? ', ...' : ''}`;

/**
 * The resync's repairs, with the same flows a push gets: each drifted gateway runs its whole
 * flow again at its desired generation (a newer push still supersedes it). A removal comes only
 * from a record whose planned commit no longer holds the gateway (desired state null), never
 * from a missing record; none at all while the records look lost (no planned commit, or no
 * record while gateways run), and at most `maxRemovals` per run.
 */
export function decideRepairs(
  snap: RecordSnapshot,
  found: RepairFindings,
  ctx: Pick<PlanContext, 'at' | 'jobUrl'>,
): Repairs {
  const writes: RecordWrite[] = [];
  const flows: Flow[] = [];
  const statuses: StatusEvent[] = [];
  const repaired: Repairs['repaired'] = [];
  const held: Repairs['held'] = [];
  const warnings: string[] = [];

  const lost = [
    ...(found.planned ? [] : ['no commit of the tracked branch is planned']),
    ...(snap.gateways.size === 0 && found.unrecorded.length
      ? [`natops's records are empty but ${plural(found.unrecorded.length, 'gateway')} run`]
      : []),
  ];
  let removals = 0;
  let lostHeld = 0;
  const cap: string[] = [];
  for (const { name, what } of found.drifted) {
    const rec = snap.gateways.get(name);
    const want = rec?.desired;
    if (!rec || !want) continue;
    if (want.state === null) {
      if (lost.length) {
        lostHeld++;
        held.push({ target: name, why: `removal held back: ${lost.join('; ')}` });
        continue;
      }
      if (removals >= found.maxRemovals) {
        cap.push(name);
        held.push({
          target: name,
          why: `removal held back: at most ${plural(found.maxRemovals, 'removal')} per resync; the next run takes it`,
        });
        continue;
      }
      removals++;
    }
    const kinds = want.state ? [...FULL_GATEWAY] : ['gateway-delete' as const];
    const at = { sha: want.sha, gen: want.gen, cause: 'repair' as const };
    const flow = buildFlow(name, kinds, at, { spec: want.state ?? undefined }, `r${want.gen}.${name}.${ctx.at}`);
    flows.push(flow);
    const c: Condition = {
      ready: 'Unknown',
      reason: 'Repairing',
      message: statusText(`repairing: ${what.join('; ')}`),
      ...at,
      at: ctx.at,
      url: flowUrl(flow, ctx),
    };
    writes.push({
      target: gatewayTarget(name),
      record: { ...rec, pending: ordered([...rec.pending, ...kinds]), jobs: jobRefs(flow), condition: c },
    });
    statuses.push(conditionStatus(gatewayTarget(name), c));
    repaired.push({ name, what });
  }
  // (no alarm for a natops that has planned nothing and runs nothing yet)
  const alarm =
    lost.length && (lostHeld || found.unrecorded.length)
      ? `${lost.join('; ')} (did Redis lose natops's data?): removing nothing until the branch is planned again from Git`
      : undefined;
  if (cap.length)
    warnings.push(
      `${plural(cap.length, 'removal')} held back: at most ${found.maxRemovals} per resync (${names(cap)}); the next run takes the next`,
    );
  if (found.unrecorded.length) {
    for (const name of found.unrecorded)
      held.push({
        target: name,
        why: 'not removed: no record holds it (lost from Redis?); natops removes a gateway only when a planned commit no longer holds it',
      });
    warnings.push(
      `${plural(found.unrecorded.length, 'gateway')} run that no record holds (${names(found.unrecorded)}): not removed; a planned commit that holds them adopts them, or remove them by hand`,
    );
  }
  return { writes, flows, statuses, repaired, held, warnings, ...(alarm ? { alarm } : {}) };
}
