// The VPC networks a set of gateways lives in, said once for every runtime: the lab builds
// bridges and routers from it, the Kubernetes runtime its attachments. Resolved from manifests
// by gitops/manifests/network.ts; carried by jobs and records as it is here.
// Its values are checked with the manifests' rules (common/ipv4-schema.ts), as jobs come from Redis.
import { z } from 'zod';
import { hexDigest } from '../common/digest.ts';
import { ipv4Address, ipv4Network, nicName } from '../common/ipv4-schema.ts';
import { k8sName } from '../common/k8s-name.ts';

export const StaticRouteSchema = z.object({
  cidr: ipv4Network,
  nextHopIP: ipv4Address,
  policy: z.enum(['policyDst', 'policySrc']),
});
/** A Vpc's static route as Kube-OVN writes it. */
export type StaticRoute = z.infer<typeof StaticRouteSchema>;

const VpcNetwork = z.object({ name: k8sName, staticRoutes: z.array(StaticRouteSchema) });
const SubnetNetwork = z.object({
  name: k8sName,
  vpc: k8sName,
  cidr: ipv4Network,
  /** the subnet's gateway address (its VPC router's) */
  gateway: ipv4Address,
});
/** An EIP's next hop on the external network, with the network it is on ("192.168.0.0/24"). */
const EipNextHop = z.object({
  address: ipv4Address,
  prefix: z.number().int().min(0).max(32),
  network: ipv4Network,
});
export type EipNextHop = z.infer<typeof EipNextHop>;

const NetworkModelV2 = z.object({
  /** the external network's host interface (the ConfigMap's `nic`): every gateway's net1 attaches there */
  nic: nicName,
  vpcs: z.array(VpcNetwork),
  subnets: z.array(SubnetNetwork),
  /** every EIP gateway address: the upstream routers' side of the external network */
  eipNextHops: z.array(EipNextHop),
});

/**
 * The model, read from any natops that wrote it: before the model was neutral (natops 0.1, the
 * lab's "topology") the EIP next hops were called `underlay`.
 */
export const NetworkModelSchema = z.preprocess((v) => {
  if (v && typeof v === 'object' && 'underlay' in v && !('eipNextHops' in v)) {
    const { underlay, ...rest } = v as Record<string, unknown>;
    return { ...rest, eipNextHops: underlay };
  }
  return v;
}, NetworkModelV2);
export type NetworkModel = z.infer<typeof NetworkModelV2>;

/** Kube-OVN's default external interface when the ConfigMap names none. */
export const DEFAULT_NIC = 'eth1';

/**
 * The host bridge a subnet is reached through when gateway pods attach with Multus (network mode
 * `multus`): natops's subnet attachments name it, and the lab (or the operator) provides it.
 * Interface names are 15 characters at most, so it carries a short hash of the subnet's name.
 */
export function subnetAttachmentBridge(subnet: string): string {
  return `nat${hexDigest('sha1', `subnet/${subnet}`).slice(0, 10)}`;
}
