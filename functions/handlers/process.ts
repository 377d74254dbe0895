// A handler job, as composed steps: the target's lease, the "superseded?" check (pure), the
// handler itself with fenced clients, and finalize last, whatever happened.
import { jobTarget, type HandlerJob } from '../../queue/jobs.ts';
import { withLock } from '../../state/lock.ts';
import type { FunctionEnv, JobContext } from '../jobs/env.ts';
import { finalize, supersededBy, type JobOutcome } from '../jobs/finalize.ts';
import { fenced } from './fence.ts';
import { HANDLERS, type HandlerClients } from './handlers.ts';

export interface HandlerEnv extends FunctionEnv {
  clients: HandlerClients;
}

export async function processHandlerJob(ctx: JobContext<HandlerJob>, env: HandlerEnv): Promise<JobOutcome> {
  const job = ctx.data;
  const target = jobTarget(job);
  let outcome: JobOutcome;
  try {
    outcome = await withLock(env.redis, env.store.leaseKey(target), env.lock, async (lease): Promise<JobOutcome> => {
      const superseded = supersededBy(await env.records.get(target), job);
      if (superseded) return { kind: 'superseded', ...superseded };
      const { changes } = await HANDLERS[job.kind](job, fenced(env.clients, lease));
      return { kind: 'done', changes };
    });
  } catch (error) {
    // (the worker logs the failure, with the job's fields)
    await finalize(ctx, { error }, env);
    throw error;
  }
  await finalize(ctx, outcome, env);
  return outcome;
}
