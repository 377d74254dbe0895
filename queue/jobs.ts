// The queues and the data of their jobs: the planner's, the resync's and one per handler kind.
// Job data is checked with zod when a worker takes a job, with the manifests' rules: whoever can
// write Redis could otherwise put any value in a command, a rule or a path.
import { z } from 'zod';
import { k8sName } from '../common/k8s-name.ts';
import { HANDLER_KINDS, type HandlerKind } from '../dataplane/kinds.ts';
import { GatewaySpecSchema } from '../dataplane/model.ts';
import { NetworkModelSchema } from '../dataplane/network.ts';
import { Sha } from '../common/sha-schema.ts';

// github: statuses and check runs written to GitHub; preview: pull-request previews.
export const QUEUE_NAMES = ['plan', 'resync', 'github', 'preview', ...HANDLER_KINDS] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/**
 * The format of job data. 2: the networks are the neutral model. Data without the field is
 * from natops 0.1 (format 1) and migrates as it parses; data from a newer natops is refused.
 */
export const JOB_SCHEMA = 2;

/** Job data as stored: the current format, marked. */
export const jobData = <T extends object>(data: T): T & { schema: number } => ({ ...data, schema: JOB_SCHEMA });

/** Job data a worker can run, or a message saying why not. */
export function readJobData<T>(
  schema: z.ZodType<T>,
  data: unknown,
): { ok: true; data: T } | { ok: false; message: string } {
  const format = data !== null && typeof data === 'object' && 'schema' in data ? data.schema : 1;
  if (typeof format !== 'number' || format > JOB_SCHEMA)
    return {
      ok: false,
      message: `written by a newer natops (job format ${String(format)}; this one reads up to ${JOB_SCHEMA})`,
    };
  const parsed = schema.safeParse(data);
  return parsed.success
    ? { ok: true, data: parsed.data }
    : { ok: false, message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') };
}

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

/**
 * A pull request's preview: plan `head` against `base` (nothing live changes) and keep its one
 * comment up to date; `close` marks that comment outdated; `rerender` writes it again from what
 * was computed (another pull request began or stopped changing the same gateways).
 */
export const PreviewJob = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('preview'),
    delivery: z.string(),
    number: z.number().int().positive(),
    head: Sha,
    base: Sha,
    baseRef: z.string(),
    headLabel: z.string(),
    title: z.string(),
    url: z.string(),
    /** the pull request's updated_at: an older event never overwrites a newer one's preview */
    updatedAt: z.number(),
  }),
  z.object({
    action: z.literal('close'),
    delivery: z.string(),
    number: z.number().int().positive(),
    merged: z.boolean(),
    updatedAt: z.number(),
    /** set when the pull request was not closed but moved to another base branch */
    retargeted: z.string().optional(),
  }),
  z.object({ action: z.literal('rerender'), number: z.number().int().positive() }),
]);
export type PreviewJob = z.infer<typeof PreviewJob>;

/** Bring GitHub's statuses (and check run) of a commit up to what natops's status book says. */
export const GitHubSyncJob = z.object({ sha: Sha });
export type GitHubSyncJob = z.infer<typeof GitHubSyncJob>;

/**
 * A handler job: make its part of gateway `gateway` (the networks, for a vpc job) what commit
 * `sha` (generation `gen`) wants, unless a newer generation was planned for it meanwhile.
 */
export const HandlerJob = z
  .object({
    kind: z.enum(HANDLER_KINDS),
    sha: Sha,
    gen: z.number().int().positive(),
    cause: z.enum(['push', 'catch-up', 'repair']),
    /** the gateway whose flow this job is in; absent for a lone vpc job */
    gateway: k8sName.optional(),
    /** the gateway's desired spec (every kind but vpc and gateway-delete) */
    spec: GatewaySpecSchema.optional(),
    /** the networks (vpc jobs) */
    network: NetworkModelSchema.optional(),
    /** the last job of its flow: its success makes the generation applied */
    last: z.boolean(),
  })
  .refine((j) => j.kind === 'vpc' || j.gateway !== undefined, {
    message: 'every kind but vpc names its gateway',
    path: ['gateway'],
  });
export type HandlerJob = z.infer<typeof HandlerJob>;

/** A vpc job reconciles the networks; every other kind its gateway. */
export function jobTarget(
  job: Pick<HandlerJob, 'kind' | 'gateway'>,
): { kind: 'networks' } | { kind: 'gateway'; name: string } {
  if (job.kind === 'vpc') return { kind: 'networks' };
  if (job.gateway === undefined) throw new TypeError(`a ${job.kind} job without a gateway`);
  return { kind: 'gateway', name: job.gateway };
}

export type { HandlerKind };
