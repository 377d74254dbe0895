// What a VPC router must change to match its Vpc's static routes (pure). The lab builds from
// dataplane/network.ts's model; nothing here is the lab's own description of the networks.
import { networkAddress, parseCidr } from '../../common/ipv4.ts';
import type { StaticRoute } from '../../dataplane/network.ts';

// ---- a VPC router's static routes ------------------------------------------------------------------

/** policySrc routes live in tables 1001+ with rules from this priority on; the lab owns [1000, 2000). */
export const SOURCE_ROUTE_BASE = 1000;
const MANAGED_END = SOURCE_ROUTE_BASE * 2;

/** One route natops keeps in a VPC router: in the main table (policyDst) or a source-route table. */
export interface RouterRoute {
  /** 'main' or a source-route table's number */
  table: string;
  /** canonical CIDR: "0.0.0.0/0", "10.0.1.6/32" */
  dst: string;
  via: string;
  /** the static route it stands for, as the manifests write it */
  label: string;
}

/** One policy rule: `ip rule add pref P from CIDR table T [suppress_prefixlength N]`. */
export interface RouterRule {
  pref: number;
  from: string;
  table: string;
  suppressPrefixLength?: number;
}

/**
 * What a Vpc's static routes become in its router: policyDst ones in the main table; each
 * policySrc one a table of its own (1001, 1002, ... in manifest order) holding a default route,
 * consulted after the main table minus its default route (OVN consults source routes after
 * destination and connected ones). A repeated destination or source keeps the last next hop.
 */
export function routerRouting(staticRoutes: readonly StaticRoute[]): { routes: RouterRoute[]; rules: RouterRule[] } {
  const routes = new Map<string, RouterRoute>();
  const rules = new Map<string, RouterRule>();
  let srcIndex = 0;
  for (const r of staticRoutes) {
    const cidr = canonicalCidr(r.cidr);
    if (r.policy === 'policyDst') {
      routes.set(`main ${cidr}`, {
        table: 'main',
        dst: cidr,
        via: r.nextHopIP,
        label: `route ${cidr} via ${r.nextHopIP}`,
      });
    } else {
      const pref = SOURCE_ROUTE_BASE + 1 + srcIndex++;
      const table = String(pref);
      routes.set(`${table} 0.0.0.0/0`, {
        table,
        dst: '0.0.0.0/0',
        via: r.nextHopIP,
        label: `source route ${cidr} via ${r.nextHopIP} (table ${table})`,
      });
      for (const rule of [
        { pref: SOURCE_ROUTE_BASE, from: cidr, table: 'main', suppressPrefixLength: 0 },
        { pref, from: cidr, table },
      ])
        rules.set(ruleArgs(rule).join(' '), rule);
    }
  }
  return { routes: [...routes.values()], rules: [...rules.values()] };
}

/** The arguments after `ip rule add|del` that make this rule. */
export function ruleArgs(r: RouterRule): string[] {
  return [
    'pref',
    String(r.pref),
    'from',
    r.from,
    'table',
    r.table,
    ...(r.suppressPrefixLength === undefined ? [] : ['suppress_prefixlength', String(r.suppressPrefixLength)]),
  ];
}

/** A route as `ip -j route show table all` prints it (the fields natops reads). */
export interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  table?: string;
  protocol?: string;
  metric?: number;
  nexthops?: unknown[];
}

/** A rule as `ip -j rule show` prints it (the fields natops reads). */
export interface IpRule {
  priority: number;
  src?: string;
  srclen?: number;
  table?: string;
  suppress_prefixlen?: number;
  [other: string]: unknown;
}

/** The `ip` commands (argv after `ip`) that turn the router's routes and rules into `want`, and what they do. */
export interface RoutingChange {
  args: string[];
  what: string;
}

/**
 * Compares a router's routes and rules with what its static routes make and returns only the
 * changes: missing routes added and changed next hops replaced in place (`ip route replace`,
 * never a flush), then missing rules added, then extra rules and extra routes deleted. The lab
 * owns the main table's `proto static` routes, the tables 1001-1999 and the rules at priorities
 * 1000-1999; nothing else is touched.
 */
export function diffRouting(
  want: { routes: RouterRoute[]; rules: RouterRule[] },
  haveRoutes: readonly IpRoute[],
  haveRules: readonly IpRule[],
): RoutingChange[] {
  const owned = haveRoutes.filter((r) => {
    if (r.table === undefined || r.table === 'main') return r.protocol === 'static';
    const t = Number(r.table);
    return Number.isInteger(t) && t > SOURCE_ROUTE_BASE && t < MANAGED_END;
  });
  const routeKey = (table: string, dst: string, metric: number, type: string) => `${table} ${dst} ${metric} ${type}`;
  const have = new Map(
    owned.map((r) => [routeKey(r.table ?? 'main', ipDst(r.dst), r.metric ?? 0, r.type ?? 'unicast'), r]),
  );
  const wantKeys = new Set(want.routes.map((r) => routeKey(r.table, r.dst, 0, 'unicast')));
  const routeIn = (table: string) => (table === 'main' ? [] : ['table', table]);

  const adds: RoutingChange[] = [];
  for (const r of want.routes) {
    const h = have.get(routeKey(r.table, r.dst, 0, 'unicast'));
    if (h && h.gateway === r.via && h.protocol === 'static' && h.nexthops === undefined) continue;
    adds.push({
      args: ['route', 'replace', r.dst, 'via', r.via, ...routeIn(r.table), 'proto', 'static'],
      what: h?.gateway !== undefined && h.gateway !== r.via ? `${r.label} (was via ${h.gateway})` : r.label,
    });
  }

  // A rule with selectors natops never sets (fwmark, iif, ...) is left alone: `ip rule del` could
  // not tell it from natops's own rule at the same priority.
  const ownedRules = haveRules
    .filter((r) => r.priority >= SOURCE_ROUTE_BASE && r.priority < MANAGED_END)
    .flatMap((r) => ipRuleKey(r) ?? []);
  const haveRuleKeys = new Set(ownedRules);
  const wantRuleKeys = new Set(want.rules.map((r) => ruleArgs(r).join(' ')));
  for (const r of want.rules) {
    const key = ruleArgs(r).join(' ');
    if (!haveRuleKeys.has(key)) adds.push({ args: ['rule', 'add', ...ruleArgs(r)], what: `rule ${key}` });
  }

  const deletes: RoutingChange[] = [];
  for (const key of ownedRules) {
    if (!wantRuleKeys.has(key)) deletes.push({ args: ['rule', 'del', ...key.split(' ')], what: `removed rule ${key}` });
  }
  for (const [key, r] of have) {
    if (wantKeys.has(key)) continue;
    const table = r.table ?? 'main';
    const type = r.type && r.type !== 'unicast' ? [r.type] : [];
    deletes.push({
      args: [
        'route',
        'del',
        ...type,
        ipDst(r.dst),
        ...routeIn(table),
        ...(r.metric ? ['metric', String(r.metric)] : []),
      ],
      what: `removed route ${[...type, ipDst(r.dst)].join(' ')}${r.gateway ? ` via ${r.gateway}` : ''}${table === 'main' ? '' : ` (table ${table})`}`,
    });
  }
  return [...adds, ...deletes];
}

/** "0.0.0.0/0" for "default", "10.0.1.6/32" for "10.0.1.6". */
function ipDst(dst: string): string {
  if (dst === 'default') return '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/32`;
}

function canonicalCidr(text: string): string {
  const c = parseCidr(text);
  return c ? `${networkAddress(c.address, c.prefix)}/${c.prefix}` : text;
}

const RULE_FIELDS = new Set(['priority', 'src', 'srclen', 'table', 'suppress_prefixlen', 'protocol']);

/** The rule's key (its `ruleArgs`), or undefined for a rule natops would not have made. */
function ipRuleKey(r: IpRule): string | undefined {
  if (Object.keys(r).some((k) => !RULE_FIELDS.has(k)) || r.table === undefined) return undefined;
  const from = r.src === undefined || r.src === 'all' ? '0.0.0.0/0' : `${r.src}/${r.srclen ?? 32}`;
  return ruleArgs({ pref: r.priority, from, table: r.table, suppressPrefixLength: r.suppress_prefixlen }).join(' ');
}
