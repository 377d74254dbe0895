// Which documents natops reads, which it ignores, and which it cannot attribute (pure).
//
// natops reads every *.yaml under the tracked path, and a repository holds other things: other
// Kubernetes manifests (Deployments, Services, other ConfigMaps), other API groups' resources
// that share a kind's name (ACK's ec2.services.k8s.aws Subnet), Helm values, CI configuration.
// Those are ignored: refusing them would make natops unusable in such a repository, and they
// cannot hold a gateway.
//
// A document natops cannot attribute is different. A gateway whose kind was misspelt
// (`VpcNatGatway`), whose apiVersion is wrong, whose metadata.name is gone or not a string, or
// that lost its kind line, would otherwise be neither desired nor invalid, and the gateway it
// describes would look deleted and be pruned. So these refuse the whole commit:
//   - a kind natops reads under another apiVersion of its own group or the core group
//     (`kubeovn.io/v2`, `v1`, `kube-ovn.io/v1`, a missing apiVersion);
//   - a kind that is a near miss of one natops reads (case, a typo, a plural, "NatGateway");
//   - a kubeovn.io kind natops does not read (OvnEip, ...): natops cannot tell whether
//     it changes a gateway;
//   - a kind natops reads without a readable metadata.name (a non-empty string);
//   - the gateway ConfigMap under a near-miss name (`ovn-vpc-nat-gw-confg`);
//   - a document with apiVersion, metadata or spec but no kind;
//   - a List holding any of the above (natops reads each resource as its own document).
// A resource of another API group (a dotted group not near kubeovn.io) is ignored whatever its
// kind: a near miss there is somebody else's resource, not a typo.
import type { FieldPath, LoadedDoc } from './load.ts';
import { NAT_CONFIG_CONFIGMAP, NAT_GW_CONFIGMAP, type ResourceKey } from './schema.ts';

/** The kinds natops reads and their apiVersion. */
export const NATOPS_KINDS = {
  ConfigMap: 'v1',
  Vpc: 'kubeovn.io/v1',
  Subnet: 'kubeovn.io/v1',
  VpcNatGateway: 'kubeovn.io/v1',
  IptablesEIP: 'kubeovn.io/v1',
  IptablesFIPRule: 'kubeovn.io/v1',
  IptablesDnatRule: 'kubeovn.io/v1',
  IptablesSnatRule: 'kubeovn.io/v1',
  // the external network's, whose macvlan master is a gateway's nic (current-form.ts)
  NetworkAttachmentDefinition: 'k8s.cni.cncf.io/v1',
} as const;
export type NatopsKind = keyof typeof NATOPS_KINDS;

export type Verdict =
  | { action: 'read'; kind: NatopsKind; key: ResourceKey; name: string; id: string }
  | { action: 'ignore'; resource: string; reason: string }
  | {
      action: 'refuse';
      resource: string;
      path: FieldPath;
      key?: string;
      message: string;
      /** the kind natops reads that this document is, or seems meant to be, and its name if readable */
      meant?: NatopsKind;
      name?: string;
    };

/** How far a misspelling may be from each kind (optimal string alignment distance, ignoring case). */
const NEAR: Record<NatopsKind, number> = {
  Vpc: 1,
  Subnet: 2,
  ConfigMap: 2,
  VpcNatGateway: 3,
  IptablesEIP: 2,
  IptablesFIPRule: 2,
  IptablesDnatRule: 2,
  IptablesSnatRule: 2,
  NetworkAttachmentDefinition: 3,
};

type Raw = Record<string, unknown>;
const isRecord = (v: unknown): v is Raw => v !== null && typeof v === 'object' && !Array.isArray(v);

export function classify(doc: LoadedDoc, raw: unknown = doc.value, at: FieldPath = []): Verdict {
  if (!isRecord(raw)) {
    return {
      action: 'refuse',
      resource: '-',
      path: at,
      message: 'a manifest must be a mapping with apiVersion, kind and metadata',
    };
  }
  const kind = raw.kind;
  const api = raw.apiVersion;
  const group = typeof api === 'string' ? (api.includes('/') ? api.slice(0, api.lastIndexOf('/')) : '') : undefined;
  const metadata = raw.metadata;
  const rawName = isRecord(metadata) ? metadata.name : undefined;
  const name = typeof rawName === 'string' && rawName !== '' ? rawName : undefined;
  const resource = `${typeof kind === 'string' && kind !== '' ? kind : '-'}/${name ?? '?'}`;

  // a kind natops reads from another group (the NetworkAttachmentDefinition) is read at its own apiVersion only
  if (group !== undefined && isForeignGroup(group) && !(typeof kind === 'string' && readAt(kind) === api))
    return { action: 'ignore', resource, reason: `apiVersion ${api}: not a Kube-OVN resource` };
  if (typeof kind !== 'string' || kind === '') {
    if (!('apiVersion' in raw) && !('metadata' in raw) && !('spec' in raw)) {
      return { action: 'ignore', resource, reason: 'no kind, apiVersion, metadata or spec: not a Kubernetes manifest' };
    }
    const meant = guessKind(raw);
    const looks = meant ? ` (it looks like a ${meant})` : '';
    const message =
      kind === undefined || kind === null || kind === ''
        ? `no kind${looks}: natops cannot tell what this document is, and a gateway it held would look deleted; ` +
          'add its kind (VpcNatGateway, Vpc, Subnet or ConfigMap), or move YAML that is not a Kubernetes manifest out of the tracked path'
        : `${yaml11Hint(doc, [...at, 'kind']) ?? 'kind must be a string'}; natops cannot tell what this document is${looks}`;
    return { action: 'refuse', resource, path: [...at, 'kind'], message, meant, name };
  }

  if ((kind === 'List' || kind.endsWith('List')) && Array.isArray(raw.items)) {
    for (const [i, item] of raw.items.entries()) {
      const inner = classify(doc, item, [...at, 'items', i]);
      if (inner.action === 'ignore') continue;
      const what = isRecord(item) && typeof item.kind === 'string' ? item.kind : 'each resource';
      return {
        action: 'refuse',
        resource,
        path: [...at, 'items', i, 'kind'],
        message: `natops does not read resources inside a ${kind}: write ${what} as its own document (separated by ---)`,
      };
    }
    return { action: 'ignore', resource, reason: `a ${kind} of resources natops does not read` };
  }

  const known = kind in NATOPS_KINDS ? (kind as NatopsKind) : undefined;
  if (!known) {
    const near = nearKind(kind);
    if (near)
      return {
        action: 'refuse',
        resource,
        path: [...at, 'kind'],
        message: `unknown kind ${kind} (did you mean ${near}?)`,
        meant: near,
        name,
      };
    if (group !== undefined && isKubeOvnGroup(group)) {
      return {
        action: 'refuse',
        resource,
        path: [...at, 'kind'],
        message:
          `${group} kind ${kind} is not one natops reads (it reads Vpc, Subnet, VpcNatGateway, IptablesEIP, IptablesFIPRule, IptablesDnatRule and IptablesSnatRule, and the ConfigMap ${NAT_GW_CONFIGMAP}); ` +
          'natops cannot tell whether it changes a gateway: move it out of the tracked path',
      };
    }
    return { action: 'ignore', resource, reason: `kind ${kind}: not a resource natops reads` };
  }

  if (known === 'ConfigMap' && name !== undefined && name !== NAT_GW_CONFIGMAP && name !== NAT_CONFIG_CONFIGMAP) {
    if (distance(name, NAT_GW_CONFIGMAP) <= 3 || name.includes('nat-gw')) {
      return {
        action: 'refuse',
        resource,
        path: [...at, 'metadata', 'name'],
        meant: 'ConfigMap',
        name: NAT_GW_CONFIGMAP,
        message: `ConfigMap ${name} is not one natops reads (did you mean ${NAT_GW_CONFIGMAP}?)`,
      };
    }
    return { action: 'ignore', resource, reason: `ConfigMap ${name}: natops reads only ${NAT_GW_CONFIGMAP}` };
  }
  const expected = NATOPS_KINDS[known];
  if (api !== expected) {
    return {
      action: 'refuse',
      resource,
      path: [...at, 'apiVersion'],
      message: `${known} is read as apiVersion ${expected}, not ${JSON.stringify(api ?? null)}; natops cannot tell which resource this is`,
      meant: known,
      name,
    };
  }
  if (name === undefined) {
    const about = `natops cannot tell which ${known} this is, and the one it was would look deleted`;
    if (!isRecord(metadata) || !('name' in metadata) || rawName === null || rawName === undefined) {
      // at the metadata key when there is one, else where the document starts
      return {
        action: 'refuse',
        resource,
        path: 'metadata' in raw ? at : [...at, 'metadata'],
        key: 'metadata' in raw ? 'metadata' : undefined,
        message: `metadata.name is required: ${about}`,
        meant: known,
      };
    }
    const hint = yaml11Hint(doc, [...at, 'metadata', 'name']);
    return {
      action: 'refuse',
      resource,
      path: [...at, 'metadata', 'name'],
      message: hint ?? `metadata.name must be a string${rawName === '' ? ' that is not empty' : ''}: ${about}`,
      meant: known,
    };
  }
  // the current form's ConfigMap has its own schema
  const key: ResourceKey =
    known === 'ConfigMap' && name === NAT_CONFIG_CONFIGMAP
      ? 'v1 ConfigMap ovn-vpc-nat-config'
      : (`${expected} ${known}` as ResourceKey);
  return { action: 'read', kind: known, key, name, id: `${known}/${name}` };
}

/**
 * How YAML 1.1 (kubectl's YAML) read an unquoted scalar that is not the string it looks like:
 * "`name: 0755` is a number (493) to Kubernetes; quote it ('0755')". Undefined for anything else.
 */
export function yaml11Hint(
  doc: LoadedDoc,
  path: FieldPath,
  quoteAs?: (value: unknown, source: string) => string,
): string | undefined {
  const sc = doc.scalarAt(path);
  if (!sc?.plain) return undefined;
  const type = typeof sc.value === 'boolean' ? 'a boolean' : typeof sc.value === 'number' ? 'a number' : undefined;
  if (!type) return undefined;
  const last = path[path.length - 1];
  const written = typeof last === 'number' ? `- ${sc.source}` : `${last}: ${sc.source}`;
  const read = String(sc.value) === sc.source ? '' : ` (${String(sc.value)})`;
  return `\`${written}\` is ${type}${read} to Kubernetes; quote it ('${(quoteAs ?? ((_v, s) => s))(sc.value, sc.source)}')`;
}

function readAt(kind: string): string | undefined {
  return kind in NATOPS_KINDS ? NATOPS_KINDS[kind as NatopsKind] : undefined;
}

/** Which kind a document without one seems to be, from the fields only that kind has. */
function guessKind(raw: Raw): NatopsKind | undefined {
  const spec = isRecord(raw.spec) ? raw.spec : {};
  const data = isRecord(raw.data) ? raw.data : {};
  if ('lanIp' in spec || 'eips' in spec || 'dnatRules' in spec) return 'VpcNatGateway';
  if ('natGwDp' in spec) return 'IptablesEIP';
  if ('externalPort' in spec) return 'IptablesDnatRule';
  if ('cidrBlock' in spec) return 'Subnet';
  if ('staticRoutes' in spec) return 'Vpc';
  if ('enable-vpc-nat-gw' in data) return 'ConfigMap';
  return undefined;
}

function isKubeOvnGroup(group: string): boolean {
  const g = group.toLowerCase();
  return g.includes('kubeovn') || g.includes('kube-ovn') || distance(g, 'kubeovn.io') <= 2;
}

/** Another API group: a dotted name (as every custom group is) that is not near kubeovn.io. */
function isForeignGroup(group: string): boolean {
  return group.includes('.') && !isKubeOvnGroup(group);
}

function nearKind(kind: string): NatopsKind | undefined {
  const k = kind.toLowerCase();
  if (/natgateway|natgw|vpcnat/.test(k)) return 'VpcNatGateway';
  let best: { kind: NatopsKind; d: number } | undefined;
  for (const known of Object.keys(NEAR) as NatopsKind[]) {
    const d = distance(k, known.toLowerCase());
    if (d <= NEAR[known] && (!best || d < best.d)) best = { kind: known, d };
  }
  return best?.kind;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case. */
export function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  if (Math.abs(a.length - b.length) > 3) return Math.abs(a.length - b.length);
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
