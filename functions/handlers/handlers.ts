// The nine handler functions, one per Kube-OVN worker type. Each is a plain async function of
// (job data, injected clients) with no module state: it reconciles its part of one gateway (or
// the networks) to what the job's commit says, and says what it changed.
import type { GatewaySpec } from '../../dataplane/model.ts';
import type { GatewayPart } from '../../dataplane/parts.ts';
import { describeChanges } from '../../dataplane/plan-text.ts';
import type { HandlerKind } from '../../dataplane/kinds.ts';
import type { HandlerJob } from '../../queue/jobs.ts';
import { reconcilePart } from '../../runtime/reconcile.ts';
import type { GatewayRuntime, NetworkRuntime } from '../../runtime/runtime.ts';
import { PermanentError } from '../../common/errors.ts';

export interface HandlerClients {
  runtime: GatewayRuntime;
  network: NetworkRuntime;
}

export interface HandlerOutcome {
  /** what changed, in words; empty when the target already matched */
  changes: string[];
}

export type Handler = (job: HandlerJob, clients: HandlerClients) => Promise<HandlerOutcome>;

/** A job without the data its kind needs: a planner bug, never worth a retry. */
export class BadJobError extends PermanentError {}

function specOf(job: HandlerJob): GatewaySpec {
  if (!job.spec) throw new BadJobError(`${job.kind} job for ${job.gateway ?? '(no gateway)'} carries no gateway spec`);
  return job.spec;
}

const part =
  (p: GatewayPart): Handler =>
  async (job, { runtime }) => {
    const result = await reconcilePart(runtime, specOf(job), p);
    return { changes: describeChanges(result.changes) };
  };

export const HANDLERS: Record<HandlerKind, Handler> = {
  async vpc(job, { network }) {
    if (!job.network) throw new BadJobError(`vpc job carries no networks`);
    return { changes: await network.apply(job.network) };
  },
  async gateway(job, { runtime }) {
    const spec = specOf(job);
    const { created } = await runtime.ensureGateway(spec);
    return { changes: created ? [`created gateway ${spec.name}`] : [] };
  },
  'gateway-init': part('init'),
  async 'gateway-delete'(job, { runtime }) {
    if (!job.gateway) throw new BadJobError('gateway-delete job names no gateway');
    return { changes: (await runtime.removeGateway(job.gateway)) ? [`removed gateway ${job.gateway}`] : [] };
  },
  eip: part('eip'),
  fip: part('fip'),
  dnat: part('dnat'),
  snat: part('snat'),
  'subnet-route': part('subnet-route'),
};
