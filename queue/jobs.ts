// The job kinds: one BullMQ queue and one handler function per Kube-OVN worker type, plus the
// planner and the resync. Job data is checked with zod when a handler takes a job.
import { z } from 'zod';
import { SHA } from '../gitops/git/sha.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import type { GatewayPart } from '../dataplane/parts.ts';
import type { LabTopology } from '../lab/topology.ts';

export const HANDLER_KINDS = ['vpc', 'gateway', 'gateway-init', 'gateway-delete', 'eip', 'fip', 'dnat', 'snat', 'subnet-route'] as const;
export type HandlerKind = (typeof HANDLER_KINDS)[number];

export const QUEUE_NAMES = ['plan', 'resync', ...HANDLER_KINDS] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export function isHandlerKind(s: string): s is HandlerKind {
  return (HANDLER_KINDS as readonly string[]).includes(s);
}

/** The handler that owns each part of a live gateway. */
export const PART_KIND: Record<GatewayPart, HandlerKind> = {
  init: 'gateway-init', eip: 'eip', 'subnet-route': 'subnet-route', fip: 'fip', dnat: 'dnat', snat: 'snat',
};

const Sha = z.string().regex(SHA);

/** What a delivery leaves for the planner. */
export const PlanJob = z.object({
  delivery: z.string(),
  repository: z.string(),
  branch: z.string(),
  before: Sha,
  after: Sha,
  forced: z.boolean(),
  receivedAt: z.number(),
});
export type PlanJob = z.infer<typeof PlanJob>;

const Protocol = z.enum(['tcp', 'udp']);
export const GatewaySpecSchema = z.object({
  name: z.string(),
  vpc: z.string(),
  subnet: z.object({ name: z.string(), cidr: z.string(), gateway: z.string() }),
  lanIp: z.string(),
  vpcSubnets: z.array(z.object({ name: z.string(), cidr: z.string() })),
  eips: z.array(z.object({ cidr: z.string(), gateway: z.string() })),
  floatingIps: z.array(z.object({ eip: z.string(), internalIp: z.string() })),
  dnats: z.array(z.object({ eip: z.string(), externalPort: z.number(), protocol: Protocol, internalIp: z.string(), internalPort: z.number() })),
  snats: z.array(z.object({ eip: z.string(), internalCidr: z.string() })),
});

export const NetworkSchema = z.object({
  nic: z.string(),
  subnets: z.array(z.object({ name: z.string(), vpc: z.string(), cidr: z.string(), gateway: z.string() })),
  vpcs: z.array(z.object({ name: z.string(), staticRoutes: z.array(z.object({ cidr: z.string(), nextHopIP: z.string(), policy: z.enum(['policyDst', 'policySrc']) })) })),
  underlay: z.array(z.object({ address: z.string(), prefix: z.number(), network: z.string() })),
});

/**
 * A handler job: reconcile `target` (a gateway, or "network" for vpc jobs) to the state of commit
 * `sha`, unless a newer generation was planned for it meanwhile.
 */
export const HandlerJob = z.object({
  kind: z.enum(HANDLER_KINDS),
  target: z.string(),
  sha: Sha,
  gen: z.number().int().positive(),
  /** "push" for a planned commit, "repair" for the resync */
  cause: z.enum(['push', 'repair']),
  /** the gateway's desired spec (absent for vpc and gateway-delete) */
  spec: GatewaySpecSchema.optional(),
  /** the networks (vpc jobs) */
  network: NetworkSchema.optional(),
  /** the gateway whose chain this job belongs to (its status reports failures); absent for a lone vpc job */
  chain: z.string().optional(),
  /** the last job of a chain records the result */
  last: z.boolean(),
});
export type HandlerJob = z.infer<typeof HandlerJob>;

// The wire schemas describe the same shapes as the dataplane's and the lab's types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameSpec: Same<z.infer<typeof GatewaySpecSchema>, GatewaySpec> = true;
const sameNetwork: Same<z.infer<typeof NetworkSchema>, LabTopology> = true;
void sameSpec;
void sameNetwork;
