// What `natops export` keeps of an object read from a cluster, and where it writes it. Pure.
//
// Kept: apiVersion, kind, metadata's name, namespace (namespaced kinds only), labels and
// annotations, and every other top-level field (spec, data) as the API server returns it.
// Dropped, because the cluster made them and a manifest must say only what its author meant:
//   - status, and metadata's uid, resourceVersion, generation, creationTimestamp, managedFields,
//     ownerReferences, finalizers, selfLink, deletion* (metadata keeps only the four fields above);
//   - kubectl's last-applied-configuration annotation;
//   - the labels and annotations Kube-OVN's controller writes on these objects (kube-ovn
//     pkg/controller/vpc_nat_gateway.go, vpc_nat_gw_eip.go, vpc_nat_gw_nat.go; names from
//     pkg/util/const.go), so they never look like the author's;
//   - spec values the API server writes from the CRD's default into every object (VpcNatGateway
//     replicas: 1, IptablesDnatRule type: exclusive), which mean what their absence means.
// Keys are sorted (the API server returns custom resources sorted too), so an export is the same
// bytes for the same objects.
import { z } from 'zod';
import { stringify } from 'yaml';

const labelMap = z.record(z.string(), z.string());

/** An object as the API returns it: only what natops needs to place it is checked, the rest kept. */
export const ClusterObjectSchema = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({
    name: z.string(),
    namespace: z.string().optional(),
    labels: labelMap.nullish(),
    annotations: labelMap.nullish(),
  }),
});
export type ClusterObject = z.output<typeof ClusterObjectSchema>;

export interface ExportKind {
  kind: string;
  apiVersion: string;
  /** the API's resource name, for listing and for RBAC */
  plural: string;
  namespaced: boolean;
  /** the folder of the export its files go to: the numbers keep natops's reading order (config first) */
  dir: string;
}

/** Every kind export writes, in the order of its folders. */
export const EXPORT_KINDS = [
  { kind: 'ConfigMap', apiVersion: 'v1', plural: 'configmaps', namespaced: true, dir: '00-config' },
  { kind: 'Vpc', apiVersion: 'kubeovn.io/v1', plural: 'vpcs', namespaced: false, dir: '10-vpc' },
  { kind: 'Subnet', apiVersion: 'kubeovn.io/v1', plural: 'subnets', namespaced: false, dir: '20-subnet' },
  {
    kind: 'NetworkAttachmentDefinition',
    apiVersion: 'k8s.cni.cncf.io/v1',
    plural: 'network-attachment-definitions',
    namespaced: true,
    dir: '25-network-attachment-definition',
  },
  {
    kind: 'VpcNatGateway',
    apiVersion: 'kubeovn.io/v1',
    plural: 'vpc-nat-gateways',
    namespaced: false,
    dir: '30-vpc-nat-gateway',
  },
  {
    kind: 'IptablesEIP',
    apiVersion: 'kubeovn.io/v1',
    plural: 'iptables-eips',
    namespaced: false,
    dir: '40-iptables-eip',
  },
  {
    kind: 'IptablesFIPRule',
    apiVersion: 'kubeovn.io/v1',
    plural: 'iptables-fip-rules',
    namespaced: false,
    dir: '50-iptables-fip-rule',
  },
  {
    kind: 'IptablesDnatRule',
    apiVersion: 'kubeovn.io/v1',
    plural: 'iptables-dnat-rules',
    namespaced: false,
    dir: '60-iptables-dnat-rule',
  },
  {
    kind: 'IptablesSnatRule',
    apiVersion: 'kubeovn.io/v1',
    plural: 'iptables-snat-rules',
    namespaced: false,
    dir: '70-iptables-snat-rule',
  },
] as const satisfies readonly ExportKind[];

export type ExportKindName = (typeof EXPORT_KINDS)[number]['kind'];

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
// Kube-OVN's pkg/util/const.go
const SUBNET = 'ovn.kubernetes.io/subnet';
const VPC = 'ovn.kubernetes.io/vpc';
const QOS = 'ovn.kubernetes.io/qos';
const GW_NAME = 'ovn.kubernetes.io/vpc-nat-gw-name';
const EIP_V4 = 'ovn.kubernetes.io/eip_v4_ip';
const EIP_V6 = 'ovn.kubernetes.io/eip_v6_ip';
const DNAT_EPORT = 'ovn.kubernetes.io/vpc_dnat_eport';
const VPC_EIP = 'ovn.kubernetes.io/vpc_eip';

/** The labels and annotations Kube-OVN's controller writes, per kind. */
export const CONTROLLER_METADATA: Partial<Record<string, { labels: string[]; annotations: string[] }>> = {
  VpcNatGateway: { labels: [SUBNET, VPC, QOS], annotations: [] },
  IptablesEIP: { labels: [SUBNET, GW_NAME, EIP_V4, EIP_V6, QOS], annotations: [] },
  IptablesFIPRule: { labels: [GW_NAME, EIP_V4, EIP_V6], annotations: [VPC_EIP] },
  IptablesDnatRule: { labels: [GW_NAME, EIP_V4, EIP_V6, DNAT_EPORT], annotations: [VPC_EIP] },
  IptablesSnatRule: { labels: [GW_NAME, EIP_V4, EIP_V6], annotations: [VPC_EIP] },
};

/** spec fields the API server fills from the CRD's default (kube-ovn-crd.yaml), by kind: dropped at that value. */
const CRD_DEFAULTS: Partial<Record<string, Record<string, unknown>>> = {
  VpcNatGateway: { replicas: 1 },
  IptablesDnatRule: { type: 'exclusive' },
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The value with every mapping's keys sorted; arrays keep their order (it means something). */
function sorted(value: unknown): Json {
  if (Array.isArray(value)) return value.map(sorted);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
    );
  if (typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string' || value === null)
    return value;
  return String(value);
}

function without(map: Record<string, string> | null | undefined, keys: readonly string[]) {
  const kept = Object.entries(map ?? {}).filter(([k]) => !keys.includes(k));
  return kept.length ? Object.fromEntries(kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : undefined;
}

/** The object as a manifest: what the cluster added taken out (above), keys in a fixed order. */
export function cleanObject(obj: ClusterObject): Record<string, Json> {
  const { apiVersion, kind, metadata, status: _status, ...rest } = obj;
  const own = CONTROLLER_METADATA[kind] ?? { labels: [], annotations: [] };
  const namespaced = EXPORT_KINDS.find((k) => k.kind === kind)?.namespaced ?? metadata.namespace !== undefined;
  const meta: Record<string, Json> = { name: metadata.name };
  if (namespaced && metadata.namespace !== undefined) meta.namespace = metadata.namespace;
  const labels = without(metadata.labels, own.labels);
  const annotations = without(metadata.annotations, [LAST_APPLIED, ...own.annotations]);
  if (labels) meta.labels = labels;
  if (annotations) meta.annotations = annotations;
  const body = sorted(rest) as Record<string, Json>;
  const defaults = CRD_DEFAULTS[kind];
  const spec = body.spec;
  if (defaults && spec !== null && typeof spec === 'object' && !Array.isArray(spec))
    for (const [field, value] of Object.entries(defaults)) if (spec[field] === value) delete spec[field];
  return { apiVersion, kind, metadata: meta, ...body };
}

/** Kubernetes names are DNS subdomains; anything else (a path separator, "..") never becomes a file name. */
const SAFE_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** Where an object goes in the export: `<dir>/<name>.yaml`, `<dir>/<namespace>.<name>.yaml` when namespaced. */
export function exportPath(obj: ClusterObject): string | undefined {
  const k = EXPORT_KINDS.find((x) => x.kind === obj.kind && x.apiVersion === obj.apiVersion);
  const { name, namespace } = obj.metadata;
  if (!k || !SAFE_NAME.test(name) || (namespace !== undefined && !SAFE_NAME.test(namespace))) return undefined;
  return `${k.dir}/${k.namespaced ? `${namespace ?? 'default'}.` : ''}${name}.yaml`;
}

/**
 * YAML as kubectl reads it (YAML 1.1): strings such as `yes`, `on` or `0755` are quoted, or
 * natops and the API server would read a boolean or a number. No folding, so a line is a field.
 */
export function renderManifest(obj: ClusterObject): string {
  return stringify(cleanObject(obj), { version: '1.1', lineWidth: 0, minContentWidth: 0 });
}

/** The external networks' NetworkAttachmentDefinitions the gateways take their nic from, as namespace/name. */
export function nadsNeeded(objects: readonly ClusterObject[]): { namespace: string; name: string }[] {
  const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'ovn-vpc-nat-gw-config');
  const data = config?.data;
  const nic = data !== null && typeof data === 'object' ? (data as Record<string, unknown>).nic : undefined;
  // Kube-OVN 1.7's nic holds for every gateway: no attachment is read then (current-form.ts)
  if (typeof nic === 'string' && nic !== '') return [];
  const subnets = new Map(objects.filter((o) => o.kind === 'Subnet').map((s) => [s.metadata.name, s]));
  const refs = new Map<string, { namespace: string; name: string }>();
  for (const gw of objects.filter((o) => o.kind === 'VpcNatGateway')) {
    const external = stringArray(field(gw, 'externalSubnets'))[0] ?? 'ovn-vpc-external-network';
    const provider = field(subnets.get(external), 'provider');
    const parts = typeof provider === 'string' ? provider.split('.') : [];
    // Kube-OVN's provider "<nad>.<namespace>[.ovn]", else the Subnet's own name in kube-system
    const ref =
      parts.length === 2 || (parts.length === 3 && parts[2] === 'ovn')
        ? { namespace: parts[1]!, name: parts[0]! }
        : { namespace: 'kube-system', name: external };
    refs.set(`${ref.namespace}/${ref.name}`, ref);
  }
  return [...refs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, r]) => r);
}

function field(obj: ClusterObject | undefined, name: string): unknown {
  const spec = obj?.spec;
  return spec !== null && typeof spec === 'object' ? (spec as Record<string, unknown>)[name] : undefined;
}

function stringArray(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
