// The resync function, run by a job scheduler: compares every gateway with the state Git wants
// for it and repairs drift without a push (a namespace deleted, a rule changed by hand), and
// removes gateways natops runs that Git no longer has. Every repair is recorded.
import { compileGateway } from '../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet } from '../dataplane/diff.ts';
import { GATEWAY_PARTS } from '../dataplane/parts.ts';
import { ruleDiff } from '../dataplane/plan-text.ts';
import { PART_KIND, type HandlerJob, type HandlerKind } from '../queue/kinds.ts';
import { withLock } from '../queue/lock.ts';
import { NETWORK } from '../queue/store.ts';
import { ZERO_SHA } from '../gitops/git/sha.ts';
import type { JobEnv } from './handlers/run-job.ts';
import type { Queues } from '../queue/queues.ts';

export interface ResyncEnv extends JobEnv {
  queues: Queues;
}

export interface ResyncReport {
  checked: number;
  repairs: { target: string; what: string[] }[];
}

const FULL_CHAIN: HandlerKind[] = ['gateway', ...GATEWAY_PARTS.map((p) => PART_KIND[p])];

export async function resync(env: ResyncEnv, runId: string): Promise<ResyncReport> {
  const { store, clients } = env;
  const report: ResyncReport = { checked: 0, repairs: [] };
  const targets = await store.targets();
  const repair = async (target: string, sha: string, gen: number, what: string[]) => {
    report.repairs.push({ target, what });
    await store.recordRepair({ at: Date.now(), target, sha, gen, what });
    env.log(`resync: ${target} drifted from ${sha.slice(0, 7)}: ${what.join('; ')}`);
  };

  for (const target of targets) {
    const rec = await store.target(target);
    if (!rec) continue;
    report.checked++;
    if (target === NETWORK) {
      const network = rec.network ?? rec.live?.network;
      if (!network) continue;
      // The network handler is idempotent and says what it had to change: run it under the lease.
      const changed = await withLock(env.redis, store.lockKey(NETWORK), env.lock, () => clients.network.apply(network));
      if (changed.length) await repair(NETWORK, rec.sha, rec.gen, changed);
      continue;
    }
    // Jobs of a push are still at work on it (or a removal is under way): they decide, not the resync.
    if (rec.pending || !rec.spec) continue;
    const handle = await clients.runtime.gateway(target);
    let what: string[];
    if (!handle) what = [`gateway ${target} is missing`];
    else {
      const changes = diffStates(await handle.readState(), compileGateway(rec.spec));
      if (isEmptyChangeSet(changes)) continue;
      what = ruleDiff(changes);
    }
    const jobs: HandlerJob[] = FULL_CHAIN.map((kind, i) => ({
      kind, target, sha: rec.sha, gen: rec.gen, cause: 'repair', spec: rec.spec, chain: target, last: i === FULL_CHAIN.length - 1,
    }));
    await store.markPending(target);
    await env.queues.addChain(jobs, `r${rec.gen}.${target}.${runId}`);
    await repair(target, rec.sha, rec.gen, what);
  }

  // Gateways running that Git does not know: left over from a removal that did not finish.
  for (const name of await clients.runtime.listGateways()) {
    if (targets.includes(name)) continue;
    await env.queues.addChain([{ kind: 'gateway-delete', target: name, sha: ZERO_SHA, gen: 1, cause: 'repair', last: true }], `r.${name}.${runId}`);
    await repair(name, ZERO_SHA, 0, [`gateway ${name} is not in Git`]);
  }
  return report;
}
