// One commit's manifests + what was last made live -> the work to do (pure). Invalid gateways
// are left as they are; gateways gone from Git are removed; unchanged ones get no jobs.
import type { GatewaySpec } from '../dataplane/model.ts';
import { changedParts } from '../dataplane/parts.ts';
import { labTopology, type LabTopology } from '../lab/topology.ts';
import { PART_KIND, type HandlerKind } from '../queue/kinds.ts';
import { formatIssue, sortIssues, type ManifestIssue } from './manifests/issues.ts';
import type { ValidationResult } from './manifests/validate.ts';

export interface GatewayWork {
  name: string;
  spec: GatewaySpec;
  /** handler kinds to run, in order */
  kinds: HandlerKind[];
}

export interface CommitPlan {
  /** the ConfigMap says enable-vpc-nat-gw: 'false': gateways are left as they are */
  disabled: boolean;
  /** problems that stop the whole commit (a file that does not parse: which gateways it holds is unknown) */
  refused: ManifestIssue[];
  /** the networks to reconcile, when they changed and validated */
  network: LabTopology | undefined;
  /** problems with Vpc, Subnet or ConfigMap: the networks are left as they are */
  networkIssues: ManifestIssue[];
  changed: GatewayWork[];
  unchanged: string[];
  invalid: { name: string; issues: ManifestIssue[] }[];
  removed: string[];
}

export interface LiveRecord {
  /** each gateway's spec when it was last made live */
  gateways: ReadonlyMap<string, GatewaySpec>;
  /** every gateway natops has planned, live or not yet (a removal must reach those too) */
  known: ReadonlySet<string>;
  network: LabTopology | undefined;
}

const GATEWAY_ID = /^VpcNatGateway\/(.+)$/;

export function planCommit({ desired, issues }: ValidationResult, live: LiveRecord): CommitPlan {
  const sorted = sortIssues(issues);
  // A document natops could not even name: refusing everything is the only safe answer, or a
  // gateway inside it would look deleted and be pruned.
  const refused = sorted.filter((i) => i.resource === '-' || i.field === '(yaml)');
  const plan: CommitPlan = { disabled: !desired.enabled, refused, network: undefined, networkIssues: [], changed: [], unchanged: [], invalid: [], removed: [] };
  if (refused.length || plan.disabled) return plan;

  const invalid = new Map<string, ManifestIssue[]>();
  for (const issue of sorted) {
    const gw = GATEWAY_ID.exec(issue.resource)?.[1];
    if (gw !== undefined) invalid.set(gw, [...(invalid.get(gw) ?? []), issue]);
    else plan.networkIssues.push(issue);
  }
  plan.invalid = [...invalid].map(([name, list]) => ({ name, issues: list }));

  const gateways = desired.gateways;
  let networkChanged = false;
  if (plan.networkIssues.length === 0) {
    const topology = labTopology({ ...desired, gateways });
    networkChanged = JSON.stringify(topology) !== JSON.stringify(live.network);
    if (networkChanged) plan.network = topology;
  }

  for (const [name, spec] of [...gateways].sort(([a], [b]) => a.localeCompare(b))) {
    const { gateway, parts } = changedParts(live.gateways.get(name), spec);
    if (!gateway && parts.length === 0) {
      plan.unchanged.push(name);
      continue;
    }
    const kinds: HandlerKind[] = [...(networkChanged ? ['vpc' as const] : []), ...(gateway ? ['gateway' as const] : []), ...parts.map((p) => PART_KIND[p])];
    plan.changed.push({ name, spec, kinds });
  }
  // A gateway whose manifest is broken is still in Git: it stays, untouched.
  plan.removed = [...new Set([...live.known, ...live.gateways.keys()])].filter((name) => !gateways.has(name) && !invalid.has(name)).sort();
  return plan;
}

/** A status description: at most 140 characters, as GitHub allows. */
export function statusText(text: string): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length <= 140 ? one : `${one.slice(0, 139)}…`;
}

export function issueSummary(issues: readonly ManifestIssue[]): string {
  const first = issues[0];
  if (!first) return '';
  const more = issues.length > 1 ? ` (+${issues.length - 1} more)` : '';
  return `${statusText(formatIssue(first)).slice(0, 140 - more.length)}${more}`;
}
