// Around every handler call: one job per target at a time (a lease), a job of an older
// generation never applied over a newer one, and the result recorded (live record, statuses).
import type { GatewaySpec } from '../../dataplane/model.ts';
import { statusText } from '../../gitops/commit-plan.ts';
import type { HandlerJob } from '../../queue/kinds.ts';
import { withLock } from '../../queue/lock.ts';
import type { FunctionEnv } from '../env.ts';
import { gatewayContext, NETWORK_CONTEXT } from '../../queue/statuses.ts';
import { NETWORK } from '../../queue/store.ts';
import { HANDLERS, type HandlerClients } from './handlers.ts';

export interface JobEnv extends FunctionEnv {
  clients: HandlerClients;
}

export interface JobReport {
  superseded?: string;
  changes: string[];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function liveSummary(spec: GatewaySpec): string {
  return [plural(spec.eips.length, 'EIP'), plural(spec.floatingIps.length, 'floating IP'), plural(spec.dnats.length, 'port forward'), plural(spec.snats.length, 'SNAT')].join(', ');
}

/** The status context a job reports to: its gateway's, or the networks'. */
export function jobContext(job: HandlerJob): string {
  return job.chain ? gatewayContext(job.chain) : NETWORK_CONTEXT;
}

export async function runHandlerJob(job: HandlerJob, jobId: string, env: JobEnv): Promise<JobReport> {
  const url = env.jobUrl(job.kind, jobId);
  return withLock(env.redis, env.store.lockKey(job.target), env.lock, async () => {
    const current = await env.store.target(job.target);
    if (current && current.gen > job.gen) {
      const by = current.sha.slice(0, 7);
      env.log(`${job.kind} ${job.target}: generation ${job.gen} superseded by ${current.gen} (${by}); skipped`);
      if (job.last && job.cause === 'push') {
        await env.statuses.set(job.sha, { context: jobContext(job), state: 'success', description: statusText(`not applied: superseded by newer commit ${by}`), targetUrl: url });
      }
      return { superseded: current.sha, changes: [] };
    }

    const { changes } = await HANDLERS[job.kind](job, env.clients);
    env.log(`${job.kind} ${job.target} @${job.sha.slice(0, 7)} (${job.cause}): ${changes.length ? changes.join('; ') : 'no change'}`);

    if (job.kind === 'vpc') {
      await env.store.setLive(NETWORK, job.gen, job.sha, { network: job.network });
      if (job.cause === 'push') await env.statuses.set(job.sha, { context: NETWORK_CONTEXT, state: 'success', description: 'networks live', targetUrl: url });
    }
    if (job.last && job.kind !== 'vpc') {
      if (job.kind === 'gateway-delete') await env.store.forget(job.target, job.gen);
      else await env.store.setLive(job.target, job.gen, job.sha, { spec: job.spec });
      if (job.cause === 'push') {
        const description = job.kind === 'gateway-delete' ? 'removed' : `live: ${liveSummary(job.spec!)}`;
        await env.statuses.set(job.sha, { context: jobContext(job), state: 'success', description: statusText(description), targetUrl: url });
      }
    }
    return { changes };
  });
}

/** A job that failed for good: its gateway's (or the networks') status says why. */
export async function reportFailure(job: HandlerJob, jobId: string, error: unknown, env: JobEnv): Promise<void> {
  const reason = error instanceof Error ? error.message : String(error);
  env.log(`${job.kind} ${job.target} @${job.sha.slice(0, 7)} failed: ${reason}`);
  await env.store.settle(job.target, job.gen);
  if (job.chain && job.chain !== job.target) await env.store.settle(job.chain, job.gen);
  if (job.cause !== 'push') return;
  await env.statuses.set(job.sha, { context: jobContext(job), state: 'failure', description: statusText(`${job.kind} failed: ${reason}`), targetUrl: env.jobUrl(job.kind, jobId) });
}
