// zod schemas of the resources natops reads, in the form Kube-OVN 1.7 wrote them.
// Every object is strict: an unknown field is an error, never silently dropped.
import { z } from 'zod';
import { isCanonicalNetwork, isIPv4, networkOf, parseCidr } from '../../common/ipv4.ts';
import { k8sName } from '../../common/k8s-name.ts';

export const ipv4Address = z
  .string({ error: 'must be an IPv4 address written as a string' })
  .refine(isIPv4, 'must be an IPv4 address such as 10.0.1.5');

/** A network in CIDR form, written with its network address (10.0.1.0/24, not 10.0.1.7/24). */
export const ipv4Network = z.string({ error: 'must be a CIDR written as a string' }).superRefine((text, ctx) => {
  const cidr = parseCidr(text);
  if (!cidr) ctx.addIssue({ code: 'custom', message: 'must be an IPv4 CIDR such as 10.0.1.0/24' });
  else if (!isCanonicalNetwork(cidr))
    ctx.addIssue({ code: 'custom', message: `has host bits set; the network is ${networkOf(cidr)}` });
});

/** An address with its prefix length (host bits allowed), as eipCIDR is written. */
export const ipv4Interface = z
  .string({ error: 'must be an address/prefix written as a string' })
  .refine(
    (text) => parseCidr(text) !== undefined,
    'must be an IPv4 address with a prefix length, such as 192.168.0.111/24',
  );

/** Kube-OVN accepts ports as numbers or strings; both become numbers here. */
export const port = z
  .union([z.number(), z.string()], { error: 'must be a port number from 1 to 65535' })
  .transform((value, ctx) => {
    // '0755' would be 755 here but octal 493 to iptables (and to Kube-OVN, which passes the string on)
    if (typeof value === 'string' && /^\s*0\d+\s*$/.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `must be written without a leading 0: iptables reads ${JSON.stringify(value)} as an octal number`,
      });
      return z.NEVER;
    }
    const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      ctx.addIssue({ code: 'custom', message: `must be a port number from 1 to 65535, not ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return n;
  });

export const protocol = z.string({ error: 'must be tcp or udp' }).transform((value, ctx) => {
  const p = value.toLowerCase();
  if (p !== 'tcp' && p !== 'udp') {
    ctx.addIssue({ code: 'custom', message: `must be tcp or udp, not ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return p;
});

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
    image: configString.regex(
      /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/,
      'must be a container image reference such as kubeovn/vpc-nat-gateway:v1.7.0',
    ),
    'enable-vpc-nat-gw': configString.refine((v) => v === 'true' || v === 'false', "must be 'true' or 'false'"),
    // The nic becomes an interface name (macvlan master, the lab's underlay bridge): 1-15 safe characters.
    nic: configString.regex(
      /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/,
      'must be a network interface name (1-15 letters, digits, ".", "_" or "-")',
    ),
  }),
});
export type NatGwConfigMap = z.output<typeof NatGwConfigMapSchema>;

// ---- Vpc ---------------------------------------------------------------------------------------

/** A Vpc's static route as a manifest writes it (dataplane/network.ts's StaticRoute once read). */
export const VpcStaticRouteSchema = z.strictObject({
  cidr: ipv4Network,
  nextHopIP: ipv4Address,
  policy: z.enum(['policyDst', 'policySrc'], { error: 'must be policyDst or policySrc' }).default('policyDst'),
});

export const VpcSchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('Vpc'),
  metadata: clusterMetadata,
  spec: z
    .strictObject({
      namespaces: z.array(k8sName).optional(),
      staticRoutes: z.array(VpcStaticRouteSchema).default([]),
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
    excludeIps: z.array(z.string()).optional(),
    namespaces: z.array(k8sName).optional(),
    provider: z.string().optional(),
    gatewayType: z.enum(['distributed', 'centralized']).optional(),
    gatewayNode: z.string().optional(),
    natOutgoing: z.boolean().optional(),
    private: z.boolean().optional(),
    allowSubnets: z.array(ipv4Network).optional(),
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

export const VpcNatGatewaySchema = z.strictObject({
  apiVersion: z.literal('kubeovn.io/v1'),
  kind: z.literal('VpcNatGateway'),
  // A gateway's status context is natops/<name>; natops/preview is the pull-request preview's.
  metadata: clusterMetadata.extend({
    name: k8sName.refine(
      (n) => n !== 'preview',
      'is reserved: natops/preview is the status context of pull-request previews',
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
    eips: z.array(EipSchema).default([]),
    floatingIpRules: z.array(FloatingIpRuleSchema).default([]),
    dnatRules: z.array(DnatRuleSchema).default([]),
    snatRules: z.array(SnatRuleSchema).default([]),
  }),
});
export type VpcNatGateway = z.output<typeof VpcNatGatewaySchema>;

/** The kinds natops reads, by "apiVersion kind". */
export const RESOURCE_SCHEMAS = {
  'v1 ConfigMap': NatGwConfigMapSchema,
  'kubeovn.io/v1 Vpc': VpcSchema,
  'kubeovn.io/v1 Subnet': SubnetSchema,
  'kubeovn.io/v1 VpcNatGateway': VpcNatGatewaySchema,
} as const;
export type ResourceKey = keyof typeof RESOURCE_SCHEMAS;
