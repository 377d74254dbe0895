// Small stand-ins the tests share: a record as the planner writes it for one pending dnat job,
// and a runtime holding one gateway whose handle the test scripts.
import type { HandlerJob } from '../../queue/jobs.ts';
import { gatewayTarget, type Records } from '../../state/records.ts';
import type { GatewayHandle, GatewayRuntime } from '../../runtime/runtime.ts';

/** What the planner records before it adds a dnat job for `job.gateway` (a job with no record is skipped as removed). */
export async function recordPendingDnat(
  records: Records,
  job: HandlerJob & { gateway: string; spec: NonNullable<HandlerJob['spec']> },
): Promise<void> {
  const { gateway, sha, gen, spec } = job;
  await records.update(gatewayTarget(gateway), () => ({
    name: gateway,
    desired: { gen, sha, cause: 'push', state: spec },
    pending: ['dnat'],
    observedGen: 0,
    condition: {
      ready: 'Unknown',
      reason: 'Progressing',
      message: 'applying: dnat',
      sha,
      gen,
      cause: 'push',
      at: Date.now(),
    },
  }));
}

/** A runtime whose one gateway, ngw, is `handle` and already exists. */
export function oneGatewayRuntime(handle: GatewayHandle): GatewayRuntime {
  return {
    kind: 'dry-run',
    ensureGateway: async () => ({ handle, created: false }),
    gateway: async () => handle,
    listGateways: async () => ['ngw'],
    removeGateway: async () => false,
  };
}
