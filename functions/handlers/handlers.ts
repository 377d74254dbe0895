// The nine handler functions, one per Kube-OVN worker type. Each is a plain async function of
// (job data, injected clients) with no module state: it reconciles its part of one gateway (or
// the networks) to what the job's commit says, and says what it changed.
import type { GatewaySpec } from '../../dataplane/model.ts';
import type { GatewayPart } from '../../dataplane/parts.ts';
import { describeChanges } from '../../dataplane/plan-text.ts';
import type { LabTopology } from '../../lab/topology.ts';
import type { HandlerJob, HandlerKind } from '../../queue/kinds.ts';
import { reconcilePart } from '../../runtime/reconcile.ts';
import type { GatewayRuntime } from '../../runtime/runtime.ts';
import { NatopsError } from '../../common/errors.ts';

/** Where the networks live: the lab's bridges and VPC routers locally, OVN in a cluster. */
export interface NetworkRuntime {
  /** Makes the networks match; returns what it changed (empty: nothing). */
  apply(network: LabTopology): Promise<string[]>;
}

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
export class BadJobError extends NatopsError {}

function specOf(job: HandlerJob): GatewaySpec {
  if (!job.spec) throw new BadJobError(`${job.kind} job for ${job.target} carries no gateway spec`);
  return job.spec;
}

const part = (p: GatewayPart): Handler => async (job, { runtime }) => {
  const result = await reconcilePart(runtime, specOf(job), p);
  return { changes: describeChanges(result.changes) };
};

export const HANDLERS: Record<HandlerKind, Handler> = {
  async vpc(job, { network }) {
    if (!job.network) throw new BadJobError(`vpc job carries no networks`);
    return { changes: await network.apply(job.network) };
  },
  async gateway(job, { runtime }) {
    const { created } = await runtime.ensureGateway(specOf(job));
    return { changes: created ? [`created gateway ${job.target}`] : [] };
  },
  'gateway-init': part('init'),
  async 'gateway-delete'(job, { runtime }) {
    return { changes: (await runtime.removeGateway(job.target)) ? [`removed gateway ${job.target}`] : [] };
  },
  eip: part('eip'),
  fip: part('fip'),
  dnat: part('dnat'),
  snat: part('snat'),
  'subnet-route': part('subnet-route'),
};
