// The dataplane's vocabulary: what a gateway should do (GatewaySpec, resolved from manifests)
// and what its namespace holds (GatewayState, compiled from a spec or read back live).
//
// Every value that reaches a command or a path is checked with the manifests' own rules: job data
// and records are read from Redis, which the manifests' validation never saw.
import { z } from 'zod';
import { imageRef, ipv4Address, ipv4Interface, ipv4Network, nicName, port, protocol } from '../common/ipv4-schema.ts';
import { k8sName } from '../common/k8s-name.ts';
import { DEFAULT_NIC } from './network.ts';

export type Protocol = z.output<typeof protocol>;

const EipSpecSchema = z.object({
  /** address/prefix on net1, e.g. 192.168.0.111/24 */
  cidr: ipv4Interface,
  gateway: ipv4Address,
  /** the IptablesEIP's name when natops allocated the address (it has no v4ip): statuses and previews say so */
  allocatedFor: k8sName.optional(),
});
export type EipSpec = z.output<typeof EipSpecSchema>;

const FloatingIpSpecSchema = z.object({ eip: ipv4Address, internalIp: ipv4Address });
export type FloatingIpSpec = z.output<typeof FloatingIpSpecSchema>;

const DnatSpecSchema = z.object({
  eip: ipv4Address,
  externalPort: port,
  protocol,
  internalIp: ipv4Address,
  internalPort: port,
  /**
   * One backend of a port several backends share (Kube-OVN's IptablesDnatRule type share); absent
   * for an exclusive forward, so specs and records written before shared ports read the same.
   */
  shared: z.literal(true).optional(),
});
export type DnatSpec = z.output<typeof DnatSpecSchema>;

const SnatSpecSchema = z.object({ eip: ipv4Address, internalCidr: ipv4Network });
export type SnatSpec = z.output<typeof SnatSpecSchema>;

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export const TolerationSchema = z.object({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().optional(),
});
export type Toleration = z.infer<typeof TolerationSchema>;

/**
 * Which of Kube-OVN's workloads runs a gateway: 1.7's Deployment `vpc-nat-gw-<name>`, or the
 * StatefulSet `<natGwNamePrefix>-<name>` Kube-OVN makes since v1.11. The manifests decide: a
 * ConfigMap ovn-vpc-nat-config (the current form's) means StatefulSet (gitops/manifests/validate.ts).
 */
export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];
/** Kube-OVN's default natGwNamePrefix (pkg/util/vpc_nat_gateway.go) */
export const DEFAULT_NAT_GW_NAME_PREFIX = 'vpc-nat-gw';

/**
 * The two data planes a gateway's nat rules can live in: Kube-OVN's iptables chains, or one
 * nftables table of natops's whose maps make a port forward's lookup the same cost at any count
 * (dataplane/nftables.ts). Chosen per installation (NATOPS_DATAPLANE) or per gateway (the
 * VpcNatGateway's annotation natops.io/dataplane); iptables is the default, as Kube-OVN's.
 */
export const DATAPLANES = ['iptables', 'nftables'] as const;
export type Dataplane = (typeof DATAPLANES)[number];

/** What a gateway's pod runs and where: the workload runtimes that schedule pods read it. */
const GatewayWorkloadSchema = z.object({
  /** absent: 1.7's Deployment (so specs and records written before the current form read the same) */
  kind: z.enum(WORKLOAD_KINDS).optional(),
  /** the StatefulSet's name prefix (ovn-vpc-nat-config's natGwNamePrefix); a Deployment's is fixed */
  namePrefix: k8sName.optional(),
  /** the ConfigMap's image; absent when the manifests have no ConfigMap (the gateway is then refused) */
  image: imageRef.optional(),
  /** the ConfigMap's nic: the host interface the external network's macvlan sits on */
  nic: nicName,
  /** spec.selector's "key: value" strings as node labels */
  nodeSelector: z.record(z.string(), z.string()),
  tolerations: z.array(TolerationSchema),
  /** spec.affinity as the manifests give it (the API server checks it) */
  affinity: z.record(z.string(), z.json()).optional(),
});
export type GatewayWorkload = z.output<typeof GatewayWorkloadSchema>;

/** The workload a gateway runs as (the one switch between Kube-OVN 1.7's form and the current one). */
export const workloadKind = (w: Pick<GatewayWorkload, 'kind'>): WorkloadKind => w.kind ?? 'Deployment';

/**
 * One gateway with every cross-resource reference resolved; the compiler's only input. Jobs and
 * records carry it as it is here (checked with this schema when read back from Redis).
 */
export const GatewaySpecSchema = z.object({
  name: k8sName,
  vpc: k8sName,
  /** the subnet eth0 sits in */
  subnet: z.object({ name: k8sName, cidr: ipv4Network, gateway: ipv4Address }),
  lanIp: ipv4Address,
  /** every subnet of the gateway's VPC, eth0's included */
  vpcSubnets: z.array(z.object({ name: k8sName, cidr: ipv4Network })),
  eips: z.array(EipSpecSchema),
  floatingIps: z.array(FloatingIpSpecSchema),
  dnats: z.array(DnatSpecSchema),
  snats: z.array(SnatSpecSchema),
  // a spec written without a workload reads as the default one (a full gateway flow follows once)
  workload: GatewayWorkloadSchema.default({ nic: DEFAULT_NIC, nodeSelector: {}, tolerations: [] }),
  /** where the nat rules live; absent: iptables (so specs written before nftables read the same) */
  dataplane: z.enum(DATAPLANES).optional(),
});
export type GatewaySpec = z.output<typeof GatewaySpecSchema>;

/** The policy-routing table Kube-OVN's gateway uses for traffic entering on eth0 and net1. */
export const ROUTE_TABLE = 100;

/** The chains whose rules are mappings: what the nftables table holds, in the same words as iptables. */
export const MAPPING_CHAINS = [
  'EXCLUSIVE_DNAT',
  'EXCLUSIVE_SNAT',
  'SHARED_DNAT',
  'SHARED_SNAT',
  'HAIRPIN_SNAT',
] as const;
export type MappingChain = (typeof MAPPING_CHAINS)[number];
export const isMappingChain = (chain: string): chain is MappingChain =>
  (MAPPING_CHAINS as readonly string[]).includes(chain);

/** The nat chains natops owns, in the order Kube-OVN creates them: the filter chains, then the mappings'. */
export const OWNED_CHAINS = ['DNAT_FILTER', 'SNAT_FILTER', ...MAPPING_CHAINS] as const;
export type OwnedChain = (typeof OWNED_CHAINS)[number];

/** The jumps natops's chains are hooked by, as Kube-OVN's: the hooks into the filters, the filters into the mappings. */
export const NAT_JUMPS = {
  PREROUTING: ['DNAT_FILTER'],
  POSTROUTING: ['SNAT_FILTER'],
  DNAT_FILTER: ['EXCLUSIVE_DNAT', 'SHARED_DNAT'],
  SNAT_FILTER: ['EXCLUSIVE_SNAT', 'SHARED_SNAT', 'HAIRPIN_SNAT'],
} as const satisfies Record<string, readonly OwnedChain[]>;
export type JumpChain = keyof typeof NAT_JUMPS;

/** Built-in chains natops hooks its chains into; only its own jump rules there are managed. */
export const HOOK_CHAINS = ['PREROUTING', 'POSTROUTING'] as const;
export type HookChain = (typeof HOOK_CHAINS)[number];
export type NatChain = OwnedChain | HookChain;
export const NAT_CHAINS: readonly NatChain[] = [...HOOK_CHAINS, ...OWNED_CHAINS];

/** One rule added to or removed from a nat chain. */
export interface RuleChange {
  chain: NatChain;
  spec: string;
}

export function isOwnedChain(name: string): name is OwnedChain {
  return (OWNED_CHAINS as readonly string[]).includes(name);
}

export interface Address {
  dev: string;
  /** address/prefix */
  cidr: string;
}
export interface PolicyRule {
  iif: string;
  table: number;
}
export interface Route {
  table: number;
  /** "default" or a network in CIDR form */
  dst: string;
  via: string;
  dev: string;
}

/**
 * A gateway namespace's state as far as natops owns it. Rule specs are in iptables-save's
 * canonical form without the "-A CHAIN" prefix, so compiled and read states compare as text.
 */
/**
 * Kernel settings a gateway needs: forwarding, and promoted secondaries so that deleting the
 * first EIP of a network does not take every other EIP of that network with it.
 */
export const GATEWAY_SYSCTLS = {
  'net.ipv4.ip_forward': '1',
  'net.ipv4.conf.net1.promote_secondaries': '1',
} as const;
export type GatewaySysctl = keyof typeof GATEWAY_SYSCTLS;

/**
 * Which iptables holds a gateway's nat rules. Kube-OVN's gateway image uses iptables-legacy where
 * the kernel has it (nat-gateway.sh probes `iptables-legacy -t nat -S INPUT 1`), else iptables
 * (nf_tables); natops gives a new gateway the same, and leaves an existing gateway's rules where
 * they are, so natops's chains are never in both (the two tables both act on every packet).
 */
export const IPTABLES_BACKENDS = ['legacy', 'nft'] as const;
export type IptablesBackend = (typeof IPTABLES_BACKENDS)[number];
/** Each backend's programs, by name (an image's plain `iptables` may be either). */
export const IPTABLES_PROGRAMS = {
  legacy: { iptables: 'iptables-legacy', save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
  nft: { iptables: 'iptables-nft', save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
} as const satisfies Record<IptablesBackend, { iptables: string; save: string; restore: string }>;

export const dataplaneOf = (spec: Pick<GatewaySpec, 'dataplane'>): Dataplane => spec.dataplane ?? 'iptables';

/**
 * natops's nftables table as read: its mappings as the iptables rule specs they stand for (so the
 * diff, the words and the conntrack clean-up are the data planes' one), and whether the table's
 * fixed parts (chains, hooks, map lookups) are exactly natops's; when not, it is made again whole.
 */
export interface NftablesState {
  nat: Record<MappingChain, string[]>;
  intact: boolean;
  /**
   * The table's revision, which every change of natops's swaps for a new one in its transaction:
   * a change made from a stale reading fails whole, and a reading is current while it holds
   * (runtime/gateway-io.ts). Absent in a compiled state.
   */
  revision?: number;
}

export interface GatewayState {
  net1Up: boolean;
  /** the GATEWAY_SYSCTLS values as the gateway has them */
  sysctls: Partial<Record<GatewaySysctl, string>>;
  /** global addresses on net1 (the EIPs) */
  addresses: Address[];
  /** rules that point at ROUTE_TABLE */
  rules: PolicyRule[];
  /** every route in ROUTE_TABLE */
  routes: Route[];
  /** rule specs per chain; a chain absent from the map does not exist */
  nat: Partial<Record<NatChain, string[]>>;
  /**
   * the iptables `nat` is in: read from the gateway; a compiled or empty state has a new
   * gateway's (legacy). Never diffed: natops does not move rules from one to the other.
   */
  iptables: IptablesBackend;
  /** natops's nftables table (undefined: there is none); `nat` then holds no mapping */
  nftables?: NftablesState;
}

/**
 * The reads a live state is made of, each one command in the gateway: the nat table, net1 (its
 * link state and addresses), the policy rules, table 100's routes, the sysctls. A change set
 * reads back only those it could have touched; only the nat read is dear (iptables-save of every
 * rule, from both iptables: see IPTABLES_BACKENDS), the others print a few lines.
 */
export const STATE_READS = ['nat', 'net1', 'rules', 'routes', 'sysctls'] as const;
export type StateRead = (typeof STATE_READS)[number];

/** The fields of GatewayState each read fills. */
export const READ_FIELDS = {
  nat: ['nat', 'iptables', 'nftables'],
  net1: ['net1Up', 'addresses'],
  rules: ['rules'],
  routes: ['routes'],
  sysctls: ['sysctls'],
} as const satisfies Record<StateRead, readonly (keyof GatewayState)[]>;

/** What a read of `R` returns; reading every part gives a whole GatewayState. */
export type StateOf<R extends StateRead> = Pick<GatewayState, (typeof READ_FIELDS)[R][number]>;
