// A handler job, as composed steps: the target's lease, the "superseded?" check (pure), the
// handler itself with fenced clients, and finalize last, whatever happened.
import { jobTarget, type HandlerJob } from '../../queue/jobs.ts';
import { withLock } from '../../queue/lock.ts';
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
    ctx.log(`failed (attempt ${ctx.attempt} of ${ctx.attempts}): ${error instanceof Error ? error.message : String(error)}`);
    await finalize(ctx, { error }, env);
    throw error;
  }
  ctx.log(outcome.kind === 'superseded' ? `${outcome.why}; skipped` : outcome.kind === 'done' && outcome.changes.length ? outcome.changes.join('; ') : 'no change');
  await finalize(ctx, outcome, env);
  return outcome;
}
