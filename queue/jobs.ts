// The queues and the data of their jobs: the planner's, the resync's and one per handler kind.
// Job data is checked with zod when a worker takes a job.
import { z } from 'zod';
import { HANDLER_KINDS, type HandlerKind } from '../dataplane/kinds.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import { SHA } from '../common/sha.ts';
import type { LabTopology } from '../lab/topology.ts';

export const QUEUE_NAMES = ['plan', 'resync', ...HANDLER_KINDS] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export const Sha = z.string().regex(SHA);

/** What a delivery leaves for the planner. */
export const PlanJob = z.object({
  delivery: z.string(),
  repository: z.string(),
  branch: z.string(),
  before: Sha,
  after: Sha,
  forced: z.boolean(),
  receivedAt: z.number(),
  /** a delivery, or the catch-up that found the branch ahead of what was planned */
  cause: z.enum(['push', 'catch-up']).default('push'),
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
 * A handler job: make its part of gateway `gateway` (the networks, for a vpc job) what commit
 * `sha` (generation `gen`) wants, unless a newer generation was planned for it meanwhile.
 */
export const HandlerJob = z.object({
  kind: z.enum(HANDLER_KINDS),
  sha: Sha,
  gen: z.number().int().positive(),
  cause: z.enum(['push', 'catch-up', 'repair']),
  /** the gateway whose flow this job is in; absent for a lone vpc job */
  gateway: z.string().optional(),
  /** the gateway's desired spec (every kind but vpc and gateway-delete) */
  spec: GatewaySpecSchema.optional(),
  /** the networks (vpc jobs) */
  network: NetworkSchema.optional(),
  /** the last job of its flow: its success makes the generation applied */
  last: z.boolean(),
}).refine((j) => j.kind === 'vpc' || j.gateway !== undefined, { message: 'every kind but vpc names its gateway', path: ['gateway'] });
export type HandlerJob = z.infer<typeof HandlerJob>;

/** A vpc job reconciles the networks; every other kind its gateway. */
export function jobTarget(job: Pick<HandlerJob, 'kind' | 'gateway'>): { kind: 'networks' } | { kind: 'gateway'; name: string } {
  if (job.kind === 'vpc') return { kind: 'networks' };
  if (job.gateway === undefined) throw new TypeError(`a ${job.kind} job without a gateway`);
  return { kind: 'gateway', name: job.gateway };
}

export type { HandlerKind };

// The wire schemas describe the same shapes as the dataplane's and the lab's types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameSpec: Same<z.infer<typeof GatewaySpecSchema>, GatewaySpec> = true;
const sameNetwork: Same<z.infer<typeof NetworkSchema>, LabTopology> = true;
void sameSpec;
void sameNetwork;
