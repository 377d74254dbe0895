// A pull request's NAT changes, planned from the manifests alone: the head commit's against the
// base commit's, gateway by gateway, in words per category and as the exact rule diff. Pure; the
// result is plain data (no Maps or classes), stored as JSON and rendered again later.
import { compileGateway } from '../dataplane/compile.ts';
import type { GatewaySpec, GatewayState } from '../dataplane/model.ts';
import { placementOf } from '../dataplane/parts.ts';
import { planGateways } from '../dataplane/gateway-plan.ts';
import { ruleDiff, type GatewayAction } from '../dataplane/plan-text.ts';
import { refusesCommit, sortIssues, type ManifestIssue } from '../gitops/manifests/issues.ts';
import type { StaticRoute } from '../dataplane/network.ts';
import { findingsOf, type Finding } from './findings.ts';
import type { Proof } from './probes.ts';
import type { ValidationResult, VpcInfo } from '../gitops/manifests/validate.ts';

/** `invalid`: the head's manifest of it has problems, so natops leaves the live one as it is. */
export type PreviewAction = GatewayAction | 'invalid';
export const PREVIEW_ACTIONS: readonly PreviewAction[] = ['create', 'update', 'delete', 'invalid', 'unchanged'];

export const CATEGORIES = ['eips', 'floatingIps', 'portForwards', 'snats', 'routes'] as const;
export type Category = (typeof CATEGORIES)[number];
export const CATEGORY_NAMES: Record<Category, { one: string; many: string }> = {
  eips: { one: 'EIP', many: 'EIPs' },
  floatingIps: { one: 'floating IP', many: 'floating IPs' },
  portForwards: { one: 'port forward', many: 'port forwards' },
  snats: { one: 'SNAT', many: 'SNATs' },
  routes: { one: 'route', many: 'routes' },
};

/** A port forward's fields, for summarizing runs of them as ranges (preview/ranges.ts). */
export interface ForwardFields {
  protocol: string;
  eip: string;
  externalPort: number;
  internalIp: string;
  internalPort: number;
  shared: boolean;
}

/** One entry of a category that differs; `before` is absent when added, `after` when removed. */
export interface EntryChange {
  change: 'added' | 'changed' | 'removed';
  before?: string;
  after?: string;
  /** a port forward's fields as it is at head (added, changed) or was (removed) */
  forward?: ForwardFields;
}

export interface Counts {
  added: number;
  changed: number;
  removed: number;
}

export interface GatewayPreview {
  name: string;
  action: PreviewAction;
  /** how the gateway stood at base: valid (so live), invalid there, or not in the manifests */
  base: 'valid' | 'invalid' | 'absent';
  /** what makes natops recreate the gateway (its pod restarts, every rule is rebuilt); empty when it stays */
  recreate: string[];
  changes: Record<Category, EntryChange[]>;
  /** ruleDiff of planGateways' change set, the base compiled as the current state */
  ruleDiff: string[];
  /** the head's problems filed under this gateway (only when invalid) */
  issues: ManifestIssue[];
}

/** A Vpc's static routes (its router's, applied with the networks rather than by a gateway). */
export interface VpcPreview {
  name: string;
  action: PreviewAction;
  staticRoutes: EntryChange[];
  /** the head's problems filed under this Vpc */
  issues: ManifestIssue[];
}

export interface Preview {
  /** as the caller named them (branch, tag or commit id) */
  refs?: { base: string; head: string };
  head: {
    /** a problem makes the whole commit unreadable (refusesCommit): nothing at all would be applied */
    refused: boolean;
    /** enable-vpc-nat-gw: false makes natops leave every gateway as it is */
    enabled: boolean;
    /**
     * A Vpc, Subnet or the ConfigMap has a problem: the networks (VPC static routes) are left as
     * they are, while the valid gateways still apply.
     */
    networksInvalid: boolean;
    /** every problem, by file and position */
    issues: ManifestIssue[];
  };
  /** the base's own state, which the head is compared with */
  base: { refused: boolean; enabled: boolean; issueCount: number };
  /** empty when the head is refused or disabled: nothing would change */
  gateways: GatewayPreview[];
  vpcs: VpcPreview[];
  totals: {
    actions: Record<PreviewAction, number>;
    /** over every gateway; `routes` includes the VPC static routes */
    changes: Record<Category, Counts>;
  };
  /** what a reviewer would want pointed out, each at its line of the head (preview/findings.ts) */
  findings: Finding[];
  /** real packets through a throwaway lab of each side (`natops preview --prove`), when asked for */
  proof?: Proof;
}

const GATEWAY_RESOURCE = /^VpcNatGateway\/(.+)$/;
const VPC_RESOURCE = /^Vpc\/(.+)$/;

/** Problems per gateway name, as the planner files them (functions/planner/decide.ts). */
function issuesByName(issues: readonly ManifestIssue[], pattern: RegExp): Map<string, ManifestIssue[]> {
  const by = new Map<string, ManifestIssue[]>();
  for (const issue of issues) {
    const name = pattern.exec(issue.resource)?.[1];
    if (name !== undefined) by.set(name, [...(by.get(name) ?? []), issue]);
  }
  return by;
}

/**
 * An entry as compared: `key` says which one it is, `text` what it is. `pair`, when given, names
 * what stays when one field moves: a removed and an added entry with the same pair are one change.
 */
interface Keyed {
  key: string;
  text: string;
  pair?: string;
  forward?: ForwardFields;
}

/**
 * Same key, other text: changed. A removed and an added entry with the same `pair` (a port forward
 * moved to another external port, its backend the same) are one change too, not a removal and an
 * unrelated addition: the nearest (by external port) removed and added entries of a pair are
 * matched first, which reads "8888 -> 8080" for a moved forward among thousands of new ones.
 */
export function diffEntries(before: readonly Keyed[], after: readonly Keyed[]): EntryChange[] {
  const was = new Map(before.map((e) => [e.key, e]));
  const now = new Map(after.map((e) => [e.key, e]));
  const byPair = (entries: Iterable<Keyed>, other: Map<string, Keyed>) => {
    const out = new Map<string, Keyed[]>();
    for (const e of entries) {
      if (other.has(e.key) || e.pair === undefined) continue;
      const list = out.get(e.pair);
      if (list) list.push(e);
      else out.set(e.pair, [e]);
    }
    return out;
  };
  const addedByPair = byPair(now.values(), was);
  const movedTo = new Map<Keyed, Keyed>();
  const port = (e: Keyed) => e.forward?.externalPort ?? 0;
  for (const [pair, removed] of byPair(was.values(), now)) {
    const added = addedByPair.get(pair) ?? [];
    // every candidate match, nearest first; each entry is matched at most once. Thousands moved
    // at once (too many candidates to list) are matched in port order instead.
    const candidates =
      removed.length * added.length > 100_000
        ? zipByPort(removed, added, port)
        : removed
            .flatMap((r) => added.map((a) => ({ r, a, d: Math.abs(port(a) - port(r)) })))
            .sort((x, y) => x.d - y.d);
    const used = new Set<Keyed>();
    for (const { r, a } of candidates) {
      if (used.has(r) || used.has(a)) continue;
      used.add(r).add(a);
      movedTo.set(a, r);
    }
  }
  const out: EntryChange[] = [];
  const moved = new Set(movedTo.values());
  for (const [key, e] of now) {
    const old = was.get(key) ?? movedTo.get(e);
    if (old === undefined) out.push({ change: 'added', after: e.text, ...fields(e) });
    else if (old.text !== e.text) out.push({ change: 'changed', before: old.text, after: e.text, ...fields(e) });
  }
  for (const [key, e] of was)
    if (!now.has(key) && !moved.has(e)) out.push({ change: 'removed', before: e.text, ...fields(e) });
  return out;
}

/** The i-th lowest port removed with the i-th lowest port added. */
function zipByPort(removed: Keyed[], added: Keyed[], port: (e: Keyed) => number) {
  const r = [...removed].sort((x, y) => port(x) - port(y));
  const a = [...added].sort((x, y) => port(x) - port(y));
  return r.slice(0, a.length).map((x, i) => ({ r: x, a: a[i]!, d: 0 }));
}

const fields = (e: Keyed): { forward?: ForwardFields } => (e.forward ? { forward: e.forward } : {});

function entriesOf(spec: GatewaySpec | undefined, state: GatewayState | undefined): Record<Category, Keyed[]> {
  if (!spec || !state) return { eips: [], floatingIps: [], portForwards: [], snats: [], routes: [] };
  return {
    eips: spec.eips.map((e) => ({
      key: e.cidr.split('/')[0]!,
      text: `${e.allocatedFor ? `${e.allocatedFor}: ` : ''}${e.cidr} via ${e.gateway}${e.allocatedFor ? ' (allocated)' : ''}`,
    })),
    floatingIps: spec.floatingIps.map((f) => ({ key: f.eip, text: `${f.eip} -> ${f.internalIp}` })),
    // a shared port's backends are one entry each (several share its eip, protocol and port)
    portForwards: spec.dnats.map((d) => ({
      key: `${d.eip} ${d.protocol} ${d.externalPort}${d.shared ? ` ${d.internalIp}:${d.internalPort}` : ''}`,
      text: `${d.protocol} ${d.eip}:${d.externalPort} -> ${d.internalIp}:${d.internalPort}${d.shared ? ' (shared)' : ''}`,
      // an exclusive forward whose external port moved, its backend the same, is a change
      ...(d.shared ? {} : { pair: `${d.eip} ${d.protocol} -> ${d.internalIp}:${d.internalPort}` }),
      forward: {
        protocol: d.protocol,
        eip: d.eip,
        externalPort: d.externalPort,
        internalIp: d.internalIp,
        internalPort: d.internalPort,
        shared: d.shared === true,
      },
    })),
    snats: spec.snats.map((s) => ({ key: s.internalCidr, text: `${s.internalCidr} -> ${s.eip}` })),
    // what compileGateway makes: the default route via the EIPs' next hop, one per VPC subnet
    routes: state.routes.map((r) => ({ key: `${r.dst} table ${r.table}`, text: `${r.dst} via ${r.via} dev ${r.dev}` })),
  };
}

const staticRouteEntries = (routes: readonly StaticRoute[] | undefined): Keyed[] =>
  (routes ?? []).map((r) => ({ key: `${r.policy} ${r.cidr}`, text: `${r.cidr} via ${r.nextHopIP} (${r.policy})` }));

/** What differs in where the gateway sits and what its pod runs (placementOf): each recreates it. */
function placementChanges(from: GatewaySpec, to: GatewaySpec): string[] {
  if (placementOf(from) === placementOf(to)) return [];
  const out: string[] = [];
  const said = (a: unknown) => JSON.stringify(a ?? null);
  const field = (what: string, a: unknown, b: unknown, text = (v: unknown) => String(v ?? 'none')) => {
    if (said(a) !== said(b)) out.push(`${what} ${text(a)} -> ${text(b)}`);
  };
  const subnet = (v: unknown) => {
    const s = v as GatewaySpec['subnet'];
    return `${s.name} (${s.cidr}, gateway ${s.gateway})`;
  };
  field('VPC', from.vpc, to.vpc);
  field('subnet', from.subnet, to.subnet, subnet);
  field('lanIp', from.lanIp, to.lanIp);
  field('image', from.workload.image, to.workload.image);
  field('nic', from.workload.nic, to.workload.nic);
  field('node selector', from.workload.nodeSelector, to.workload.nodeSelector, said);
  field('tolerations', from.workload.tolerations, to.workload.tolerations, said);
  field('affinity', from.workload.affinity, to.workload.affinity, said);
  return out.length ? out : ['placement changed'];
}

const noCounts = (): Counts => ({ added: 0, changed: 0, removed: 0 });

export function countChanges(entries: readonly EntryChange[]): Counts {
  const c = noCounts();
  for (const e of entries) c[e.change]++;
  return c;
}

const noEntries = (): Record<Category, EntryChange[]> => ({
  eips: [],
  floatingIps: [],
  portForwards: [],
  snats: [],
  routes: [],
});

/**
 * The head's manifests planned against the base's, both as validateManifests gave them. Nothing
 * live is read: the base's valid gateways, compiled, stand for what is live.
 */
export function previewChanges(
  base: ValidationResult,
  head: ValidationResult,
  refs?: { base: string; head: string },
): Preview {
  const headIssues = sortIssues(head.issues);
  const refused = headIssues.some(refusesCommit);
  const enabled = head.desired.enabled;
  const gatewayIssues = issuesByName(headIssues, GATEWAY_RESOURCE);
  const networksInvalid = headIssues.some((i) => !GATEWAY_RESOURCE.test(i.resource));
  const baseInvalid = issuesByName(base.issues, GATEWAY_RESOURCE);

  // A gateway with any problem at base is not known to be live: it is compared as absent.
  const baseSpecs = new Map([...base.desired.gateways].filter(([name]) => !baseInvalid.has(name)));
  const gateways: GatewayPreview[] = [];
  const vpcs: VpcPreview[] = [];

  // A refused head is read no further (a gateway in its unreadable file would look deleted), and a
  // disabled one changes nothing: the planner stops at both.
  if (!refused && enabled) {
    const current = new Map<string, GatewayState>();
    for (const [name, spec] of baseSpecs) if (!gatewayIssues.has(name)) current.set(name, compileGateway(spec));
    const desired = new Map([...head.desired.gateways].filter(([name]) => !gatewayIssues.has(name)));
    const baseState = (name: string) => (baseSpecs.has(name) ? 'valid' : baseInvalid.has(name) ? 'invalid' : 'absent');

    for (const plan of planGateways(current, desired)) {
      const from = baseSpecs.get(plan.name);
      const to = desired.get(plan.name);
      const before = entriesOf(from, current.get(plan.name));
      const after = entriesOf(to, to && compileGateway(to));
      const changes = noEntries();
      for (const c of CATEGORIES) changes[c] = diffEntries(before[c], after[c]);
      const recreate = from && to ? placementChanges(from, to) : [];
      gateways.push({
        name: plan.name,
        // a new pod with the same rules is still a change a reviewer must see
        action: plan.action === 'unchanged' && recreate.length ? 'update' : plan.action,
        base: baseState(plan.name),
        recreate,
        changes,
        ruleDiff: ruleDiff(plan.changes),
        issues: [],
      });
    }
    for (const [name, issues] of gatewayIssues) {
      gateways.push({
        name,
        action: 'invalid',
        base: baseState(name),
        recreate: [],
        changes: noEntries(),
        ruleDiff: [],
        issues,
      });
    }
    gateways.sort((a, b) => a.name.localeCompare(b.name));

    const vpcIssues = issuesByName(headIssues, VPC_RESOURCE);
    const names = [...new Set([...base.desired.vpcs.keys(), ...head.desired.vpcs.keys(), ...vpcIssues.keys()])].sort();
    for (const name of names)
      vpcs.push(
        vpcPreview(
          name,
          base.desired.vpcs.get(name),
          head.desired.vpcs.get(name),
          vpcIssues.get(name) ?? [],
          networksInvalid,
        ),
      );
  }

  const actions = Object.fromEntries(PREVIEW_ACTIONS.map((a) => [a, 0])) as Record<PreviewAction, number>;
  const changes = Object.fromEntries(CATEGORIES.map((c) => [c, noCounts()])) as Record<Category, Counts>;
  const add = (into: Counts, from: Counts) => {
    into.added += from.added;
    into.changed += from.changed;
    into.removed += from.removed;
  };
  for (const g of gateways) {
    actions[g.action]++;
    for (const c of CATEGORIES) add(changes[c], countChanges(g.changes[c]));
  }
  for (const v of vpcs) add(changes.routes, countChanges(v.staticRoutes));

  return {
    ...(refs ? { refs: { ...refs } } : {}),
    head: { refused, enabled, networksInvalid, issues: headIssues },
    base: { refused: base.issues.some(refusesCommit), enabled: base.desired.enabled, issueCount: base.issues.length },
    gateways,
    vpcs,
    totals: { actions, changes },
    findings: findingsOf(
      base,
      head,
      gateways.filter((g) => g.action === 'create' || g.action === 'update').map((g) => g.name),
    ),
  };
}

function vpcPreview(
  name: string,
  from: VpcInfo | undefined,
  to: VpcInfo | undefined,
  issues: ManifestIssue[],
  networksInvalid: boolean,
): VpcPreview {
  const staticRoutes = diffEntries(staticRouteEntries(from?.staticRoutes), staticRouteEntries(to?.staticRoutes));
  // With a problem in any Vpc, Subnet or the ConfigMap the networks stay as they are.
  if (networksInvalid && (staticRoutes.length || issues.length))
    return { name, action: 'invalid', staticRoutes: [], issues };
  const action: PreviewAction = !from ? 'create' : !to ? 'delete' : staticRoutes.length ? 'update' : 'unchanged';
  return { name, action, staticRoutes, issues };
}

/** Whether a gateway has anything to show beyond its summary row (an invalid one's problems are listed with the others). */
export const hasDetail = (g: GatewayPreview): boolean =>
  g.recreate.length > 0 || g.ruleDiff.length > 0 || CATEGORIES.some((c) => g.changes[c].length > 0);

/** Removals and changes first, for what they do to live traffic, by category; then additions. */
const RISK_ORDER: readonly Category[] = ['portForwards', 'floatingIps', 'snats', 'eips', 'routes'];

export interface OrderedChange {
  category: Category;
  entry: EntryChange;
}

/** A gateway's changes in the order a reviewer reads them: what breaks live traffic first. */
export function riskFirst(g: GatewayPreview): { risky: OrderedChange[]; added: OrderedChange[] } {
  const risky: OrderedChange[] = [];
  const added: OrderedChange[] = [];
  for (const category of RISK_ORDER)
    for (const entry of g.changes[category]) (entry.change === 'added' ? added : risky).push({ category, entry });
  // within the risky ones, removals before changes: a removal is what stops answering
  risky.sort((a, b) => Number(a.entry.change !== 'removed') - Number(b.entry.change !== 'removed'));
  return { risky, added };
}
