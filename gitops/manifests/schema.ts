// zod schemas of the resources natops reads, in the form Kube-OVN 1.7 wrote them (the current
// form's own kinds are in iptables-resources.ts).
// Every object is strict: an unknown field is an error, never silently dropped.
import { z } from 'zod';
import {
  IMAGE_REF,
  IMAGE_REF_MESSAGE,
  ipv4Address,
  ipv4Interface,
  ipv4Network,
  NIC_NAME,
  NIC_NAME_MESSAGE,
  port,
  protocol,
} from '../../common/ipv4-schema.ts';
import { k8sName } from '../../common/k8s-name.ts';
import { DATAPLANES } from '../../dataplane/model.ts';
import { excludeRange } from './eip-address.ts';
import {
  IptablesDnatRuleSchema,
  IptablesEipSchema,
  IptablesFipRuleSchema,
  IptablesSnatRuleSchema,
  NetworkAttachmentDefinitionSchema,
} from './iptables-resources.ts';

const labelMap = z.record(z.string(), z.string({ error: 'label and annotation values must be strings' }));

const clusterMetadata = z.strictObject({
  name: k8sName,
  labels: labelMap.optional(),
  annotations: labelMap.optional(),
});

// ---- ConfigMap ovn-vpc-nat-gw-config ----------------------------------------------------------

export const NAT_GW_CONFIGMAP = 'ovn-vpc-nat-gw-config';

/** ConfigMap data must be strings; YAML reads an unquoted true as a boolean. */
const configString = z.string({
  error: (iss) =>
    iss.input === undefined
      ? 'is required'
      : `ConfigMap data values must be strings: quote it ('${String(iss.input)}')`,
});

export const NatGwConfigMapSchema = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('ConfigMap'),
  metadata: z.strictObject({
    name: z.literal(NAT_GW_CONFIGMAP, `natops reads only the ConfigMap ${NAT_GW_CONFIGMAP}`),
    namespace: z.literal('kube-system', 'the gateway ConfigMap lives in kube-system').optional(),
    labels: labelMap.optional(),
    annotations: labelMap.optional(),
  }),
  data: z.strictObject({
    // Kube-OVN 1.7's; the current form has it in ovn-vpc-nat-config (one of the two must)
    image: configString.regex(IMAGE_REF, IMAGE_REF_MESSAGE).optional(),
    'enable-vpc-nat-gw': configString.refine((v) => v === 'true' || v === 'false', "must be 'true' or 'false'"),
    // Kube-OVN 1.7's; now Kube-OVN takes it from the external network's NetworkAttachmentDefinition
    nic: configString.regex(NIC_NAME, NIC_NAME_MESSAGE).optional(),
  }),
});
export type NatGwConfigMap = z.output<typeof NatGwConfigMapSchema>;

// ---- ConfigMap ovn-vpc-nat-config (Kube-OVN since v1.11) --------------------------------------

/** Its presence makes every gateway Kube-OVN's current StatefulSet (runtime/kubernetes/objects.ts). */
export const NAT_CONFIG_CONFIGMAP = 'ovn-vpc-nat-config';

export const NatConfigMapSchema = z.strictObject({
  apiVersion: z.literal('v1'),
  kind: z.literal('ConfigMap'),
  metadata: z.strictObject({
    name: z.literal(NAT_CONFIG_CONFIGMAP),
    namespace: z.literal('kube-system', 'the gateway ConfigMap lives in kube-system').optional(),
    labels: labelMap.optional(),
    annotations: labelMap.optional(),
  }),
  data: z.strictObject({
    image: configString.regex(IMAGE_REF, IMAGE_REF_MESSAGE),
    // Kube-OVN's pkg/controller/vpc_nat.go: the StatefulSet is <natGwNamePrefix>-<gateway>
    natGwNamePrefix: configString
      .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/, 'must be lowercase letters, digits and "-" (a name prefix)')
      .optional(),
    // the BGP speaker's: accepted, not applied (natops runs no speaker)
    bgpSpeakerImage: configString.optional(),
    apiNadProvider: configString.optional(),
  }),
});
export type NatConfigMap = z.output<typeof NatConfigMapSchema>;

// ---- Vpc ---------------------------------------------------------------------------------------

/** A Vpc's static route as a manifest writes it (dataplane/network.ts's StaticRoute once read). */
export const VpcStaticRouteSchema = z.strictObject({
  cidr: ipv4Network,
  nextHopIP: ipv4Address,
  policy: z.enum(['policyDst', 'policySrc'], { error: 'must be policyDst or policySrc' }).default('policyDst'),
});

/**
 * Fields of Kube-OVN's CRDs that are about its logical network, not a NAT gateway: accepted as
 * Kube-OVN takes them (an exported Vpc or Subnet carries them) and left to it. A name outside
 * Kube-OVN's CRD is still an unknown field (a misspelling). docs/kube-ovn-fields.md lists them;
 * test/unit/kube-ovn-fields.test.ts holds both to the CRDs.
 */
export const KUBE_OVN_OWN_FIELDS = {
  Vpc: [
    'bfdPort',
    'defaultSubnet',
    'enableBfd',
    'enableExternal',
    'extraExternalSubnets',
    'policyRoutes',
    'vpcPeerings',
  ],
  Subnet: [
    'acls',
    'allowEWTraffic',
    'dhcpV4Options',
    'dhcpV6Options',
    'disableGatewayCheck',
    'disableInterConnection',
    'enableDHCP',
    'enableEcmp',
    'enableExternalLBAddress',
    'enableIPv6RA',
    'enableLb',
    'enableMulticastSnoop',
    'externalEgressGateway',
    'gatewayNodeSelectors',
    'ipv6RAConfigs',
    'logicalGateway',
    'mtu',
    'namespaceSelectors',
    'natOutgoingPolicyRules',
    'nodeNetwork',
    'policyRoutingPriority',
    'policyRoutingTableID',
    'routeTable',
    'u2oFeatures',
    'u2oInterconnection',
    'u2oInterconnectionIP',
    'vips',
    'vlan',
  ],
} as const;
const leftToKubeOvn = <F extends string>(fields: readonly F[]) =>
  Object.fromEntries(fields.map((f) => [f, z.unknown().optional()])) as { [K in F]: z.ZodOptional<z.ZodUnknown> };

export const VpcSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('Vpc'),
  metadata: clusterMetadata,
  spec: z
    .strictObject({
      namespaces: z.array(k8sName).optional(),
      staticRoutes: z.array(VpcStaticRouteSchema).default([]),
      ...leftToKubeOvn(KUBE_OVN_OWN_FIELDS.Vpc),
    })
    .default({ staticRoutes: [] }),
});
export type Vpc = z.output<typeof VpcSchema>;

// ---- Subnet ------------------------------------------------------------------------------------

/** Kube-OVN's default VPC, which a Subnet without spec.vpc belongs to. */
export const DEFAULT_VPC = 'ovn-cluster';

export const SubnetSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('Subnet'),
  metadata: clusterMetadata,
  spec: z.strictObject({
    vpc: k8sName.optional(),
    default: z.boolean().optional(),
    protocol: z.literal('IPv4', 'natops supports IPv4 subnets only (protocol: IPv4)').default('IPv4'),
    cidrBlock: ipv4Network,
    gateway: ipv4Address.optional(),
    // Kube-OVN's form: an address or a range a..b; an EIP without v4ip is never given one of them
    excludeIps: z
      .array(
        z
          .string()
          .refine(
            (e) => excludeRange(e) !== undefined,
            'must be an address or a range of addresses, as 192.168.0.1 or 192.168.0.10..192.168.0.20',
          ),
      )
      .optional(),
    namespaces: z.array(k8sName).optional(),
    provider: z.string().optional(),
    gatewayType: z.enum(['distributed', 'centralized']).optional(),
    gatewayNode: z.string().optional(),
    natOutgoing: z.boolean().optional(),
    private: z.boolean().optional(),
    allowSubnets: z.array(ipv4Network).optional(),
    ...leftToKubeOvn(KUBE_OVN_OWN_FIELDS.Subnet),
  }),
});
export type Subnet = z.output<typeof SubnetSchema>;

// ---- VpcNatGateway (Kube-OVN 1.7) ---------------------------------------------------------------

export const EipSchema = z.strictObject({ eipCIDR: ipv4Interface, gateway: ipv4Address });
export const FloatingIpRuleSchema = z.strictObject({ eip: ipv4Address, internalIp: ipv4Address });
export const DnatRuleSchema = z.strictObject({
  eip: ipv4Address,
  externalPort: port,
  protocol,
  internalIp: ipv4Address,
  internalPort: port,
});
export const SnatRuleSchema = z.strictObject({ eip: ipv4Address, internalCIDR: ipv4Network });

/**
 * Kube-OVN names a gateway's Deployment and its `app` label vpc-nat-gw-<name>
 * (runtime/kubernetes/objects.ts); a label value is at most 63 characters, so a longer name
 * would pass here and fail only when applied.
 */
const GATEWAY_LABEL_PREFIX = 'vpc-nat-gw-';
export const MAX_GATEWAY_NAME = 63 - GATEWAY_LABEL_PREFIX.length;

/** The annotation that puts a gateway on a data plane, over the installation's (NATOPS_DATAPLANE). */
export const DATAPLANE_ANNOTATION = 'natops.io/dataplane';

export const VpcNatGatewaySchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('VpcNatGateway'),
  // A gateway's status context is natops/<name>; natops/preview is the pull-request preview's.
  metadata: clusterMetadata.extend({
    annotations: labelMap
      .superRefine((a, ctx) => {
        const plane = a[DATAPLANE_ANNOTATION];
        if (plane !== undefined && !(DATAPLANES as readonly string[]).includes(plane))
          ctx.addIssue({ code: 'custom', path: [DATAPLANE_ANNOTATION], message: `must be ${DATAPLANES.join(' or ')}` });
      })
      .optional(),
    name: k8sName
      .refine((n) => n !== 'preview', 'is reserved: natops/preview is the status context of pull-request previews')
      .refine(
        (n) => n.length <= MAX_GATEWAY_NAME,
        `is longer than ${MAX_GATEWAY_NAME} characters: the gateway's Deployment is labelled ${GATEWAY_LABEL_PREFIX}<name>, and a label value is at most 63`,
      ),
  }),
  spec: z.strictObject({
    vpc: k8sName,
    subnet: k8sName,
    lanIp: ipv4Address,
    // Kube-OVN's node selector: "key: value" strings
    selector: z
      .array(
        z
          .string()
          .regex(
            /^\s*[A-Za-z0-9][A-Za-z0-9._/-]*\s*:\s*[A-Za-z0-9._-]*\s*$/,
            'must be "label-key: value", e.g. "kubernetes.io/os: linux"',
          ),
      )
      .optional(),
    // Kube-OVN HEAD's scheduling fields, as a pod spec has them
    tolerations: z
      .array(
        z.strictObject({
          key: z.string().optional(),
          operator: z.enum(['Exists', 'Equal']).optional(),
          value: z.string().optional(),
          effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
          tolerationSeconds: z.number().int().optional(),
        }),
      )
      .default([]),
    affinity: z
      .strictObject({
        nodeAffinity: z.json().optional(),
        podAffinity: z.json().optional(),
        podAntiAffinity: z.json().optional(),
      })
      .optional(),
    // Kube-OVN's current fields (its CRD): the external networks, and the pod's routes, annotations
    // and namespace, which natops accepts and does not apply yet (current-form.ts notes them)
    externalSubnets: z.array(k8sName).optional(),
    routes: z.array(z.strictObject({ cidr: ipv4Network, nextHopIP: ipv4Address })).optional(),
    noDefaultEIP: z.boolean().optional(),
    annotations: labelMap.optional(),
    namespace: k8sName.optional(),
    eips: z.array(EipSchema).default([]),
    floatingIpRules: z.array(FloatingIpRuleSchema).default([]),
    dnatRules: z.array(DnatRuleSchema).default([]),
    snatRules: z.array(SnatRuleSchema).default([]),
  }),
});
export type VpcNatGateway = z.output<typeof VpcNatGatewaySchema>;

/**
 * A port forward as a gateway's checks read it: the 1.7 form's inline ones have no type
 * (exclusive); one from an IptablesDnatRule keeps its type, share or exclusive.
 */
export type GatewayDnatRule = z.output<typeof DnatRuleSchema> & { type?: 'exclusive' | 'share' };
/** A VpcNatGateway with the current form's rules merged into its lists (current-form.ts). */
export type GatewayManifest = Omit<VpcNatGateway, 'spec'> & {
  spec: Omit<VpcNatGateway['spec'], 'dnatRules'> & { dnatRules: GatewayDnatRule[] };
};

/** The kinds natops reads, by "apiVersion kind". */
export const RESOURCE_SCHEMAS = {
  'v1 ConfigMap': NatGwConfigMapSchema,
  'v1 ConfigMap ovn-vpc-nat-config': NatConfigMapSchema,
  'kubeovn.io/v1 Vpc': VpcSchema,
  'kubeovn.io/v1 Subnet': SubnetSchema,
  'kubeovn.io/v1 VpcNatGateway': VpcNatGatewaySchema,
  'kubeovn.io/v1 IptablesEIP': IptablesEipSchema,
  'kubeovn.io/v1 IptablesFIPRule': IptablesFipRuleSchema,
  'kubeovn.io/v1 IptablesDnatRule': IptablesDnatRuleSchema,
  'kubeovn.io/v1 IptablesSnatRule': IptablesSnatRuleSchema,
  'k8s.cni.cncf.io/v1 NetworkAttachmentDefinition': NetworkAttachmentDefinitionSchema,
} as const;
export type ResourceKey = keyof typeof RESOURCE_SCHEMAS;
