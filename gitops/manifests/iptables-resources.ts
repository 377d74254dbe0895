// zod schemas of Kube-OVN's current NAT resources (kubeovn.io/v1, since v1.10): IptablesEIP and
// the three rule kinds, and the external network's NetworkAttachmentDefinition, whose macvlan
// master is the gateway's nic. Fields as in Kube-OVN's CRDs (charts/kube-ovn/templates/
// kube-ovn-crd.yaml) and checks as its webhook and controller make them (pkg/webhook/
// vpc_nat_gateway.go, pkg/controller/vpc_nat_gw_nat.go). Every object is strict but the
// NetworkAttachmentDefinition (below).
import { z } from 'zod';
import { ipv4Address, ipv4Network, port, protocol } from '../../common/ipv4-schema.ts';
import { isIPv4 } from '../../common/ipv4.ts';
import { k8sName } from '../../common/k8s-name.ts';

const labelMap = z.record(z.string(), z.string({ error: 'label and annotation values must be strings' }));
const metadata = z.strictObject({ name: k8sName, labels: labelMap.optional(), annotations: labelMap.optional() });

/** Kube-OVN reads an empty string as unset (`v6ip: ""` in an exported object): so does natops. */
function unsetIfEmpty<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === '' ? undefined : v), schema.optional());
}

/** The CRDs declare ports as strings: the API server refuses a number (YAML's 8888 unquoted). */
const portString = z.string({ error: 'must be a string' }).transform((text, ctx) => {
  const read = port.safeParse(text);
  if (read.success) return read.data;
  for (const iss of read.error.issues) ctx.addIssue({ code: 'custom', message: iss.message });
  return z.NEVER;
});

const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

export const IptablesEipSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('IptablesEIP'),
  metadata,
  spec: z.strictObject({
    /** without it natops allocates one from externalSubnet, as Kube-OVN does (eip-allocation.ts) */
    v4ip: unsetIfEmpty(ipv4Address),
    v6ip: unsetIfEmpty(z.string().refine(() => false, 'natops supports IPv4 only: remove v6ip')),
    /** the VpcNatGateway the EIP belongs to */
    natGwDp: k8sName,
    /** the Subnet the address is from; Kube-OVN's default is ovn-vpc-external-network */
    externalSubnet: unsetIfEmpty(k8sName),
    macAddress: unsetIfEmpty(z.string().regex(MAC, 'must be a MAC address such as 00:00:5e:00:53:01')),
    qosPolicy: unsetIfEmpty(k8sName),
    namespace: unsetIfEmpty(k8sName),
  }),
});
export type IptablesEip = z.output<typeof IptablesEipSchema>;

export const IptablesFipRuleSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('IptablesFIPRule'),
  metadata,
  spec: z.strictObject({ eip: k8sName, internalIp: ipv4Address }),
});
export type IptablesFipRule = z.output<typeof IptablesFipRuleSchema>;

export const IptablesDnatRuleSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('IptablesDnatRule'),
  metadata,
  spec: z.strictObject({
    eip: k8sName,
    externalPort: portString,
    protocol,
    internalIp: ipv4Address,
    internalPort: portString,
    // share: one backend of a port several rules share (dnat-rules.ts checks them together)
    type: unsetIfEmpty(z.enum(['exclusive', 'share'], { error: 'must be exclusive or share' })),
  }),
});
export type IptablesDnatRule = z.output<typeof IptablesDnatRuleSchema>;

/** Kube-OVN takes one CIDR or a bare address, which it makes a /32 (normalizeSnatInternalCIDR). */
const snatCidr = z
  .string({ error: 'must be a CIDR or an address written as a string' })
  .transform((text) => (isIPv4(text) ? `${text}/32` : text))
  .pipe(ipv4Network);

export const IptablesSnatRuleSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('IptablesSnatRule'),
  metadata,
  spec: z.strictObject({ eip: k8sName, internalCIDR: snatCidr }),
});
export type IptablesSnatRule = z.output<typeof IptablesSnatRuleSchema>;

/**
 * Namespaced, unlike Kube-OVN's kinds: without a namespace kubectl would put it in `default`.
 * Read leniently, unlike every other kind: a repository may hold the NADs of its workloads, or
 * exported ones with cluster fields, and natops reads only the master of the one an external
 * network names (a problem with that one is said where a gateway needs it: current-form.ts).
 */
export const NetworkAttachmentDefinitionSchema = z.object({
  apiVersion: z.literal('k8s.cni.cncf.io/v1'),
  kind: z.literal('NetworkAttachmentDefinition'),
  metadata: z.object({ name: k8sName, namespace: k8sName.default('default') }),
  spec: z.object({ config: z.unknown() }).partial().default({}),
});
export type NetworkAttachmentDefinition = z.output<typeof NetworkAttachmentDefinitionSchema>;

/**
 * The macvlan master a NetworkAttachmentDefinition's CNI configuration names (a plugin list's
 * first plugin that names one), or why there is none.
 */
export function nadMaster(config: unknown): { master: string } | { problem: string } {
  if (config === undefined) return { problem: 'its spec.config is missing' };
  if (typeof config !== 'string') return { problem: 'its spec.config must be the CNI configuration as a JSON string' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(config);
  } catch (e) {
    return { problem: `its spec.config is not JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  const record = (v: unknown): Record<string, unknown> | undefined =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  const top = record(parsed);
  const plugins = Array.isArray(top?.plugins) ? top.plugins.map(record) : [top];
  const master = plugins.map((p) => p?.master).find((m) => m !== undefined);
  if (typeof master !== 'string' || master === '')
    return { problem: 'its spec.config names no "master" (the host interface of the macvlan)' };
  return { master };
}
