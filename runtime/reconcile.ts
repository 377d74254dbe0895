// Makes gateways match their specs: ensure the gateway, read it, diff, run the change set.
// Level-triggered, so running it again with the same spec changes nothing.
import { NatopsError } from '../common/errors.ts';
import { changeSetCommands, type Command } from '../dataplane/commands.ts';
import { compileGateway, emptyGatewayState } from '../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet, type ChangeSet } from '../dataplane/diff.ts';
import type { GatewaySpec, GatewayState } from '../dataplane/model.ts';
import { partTarget, type GatewayPart } from '../dataplane/parts.ts';
import { removalTarget, ruleDiff, type GatewayAction } from '../dataplane/plan-text.ts';
import type { GatewayHandle, GatewayRuntime } from './runtime.ts';

export interface GatewayResult {
  name: string;
  action: GatewayAction;
  changes: ChangeSet;
  commands: Command[];
}

/** The gateway still differs from its spec after the change set and one corrective pass. */
export class ConvergenceError extends NatopsError {
  constructor(readonly gateway: string, readonly remaining: string[]) {
    super(`gateway ${gateway} did not reach its desired state; still different:\n  ${remaining.join('\n  ')}`);
  }
}

export async function reconcileGateway(runtime: GatewayRuntime, spec: GatewaySpec): Promise<GatewayResult> {
  const { handle, created } = await runtime.ensureGateway(spec);
  const desired = compileGateway(spec);
  const { changes, commands } = await converge(handle, () => desired);
  return { name: spec.name, action: created ? 'create' : isEmptyChangeSet(changes) ? 'unchanged' : 'update', changes, commands };
}

/** A gateway that a part handler needs is not there (its gateway job has not run, or it was deleted). */
export class GatewayMissingError extends NatopsError {
  constructor(readonly gateway: string) {
    super(`gateway ${gateway} does not exist; its gateway job must run first`);
  }
}

/** Reconciles one part of an existing gateway (a Kube-OVN worker's share), leaving the rest alone. */
export async function reconcilePart(runtime: GatewayRuntime, spec: GatewaySpec, part: GatewayPart): Promise<GatewayResult> {
  const handle = await runtime.gateway(spec.name);
  if (!handle) throw new GatewayMissingError(spec.name);
  const desired = compileGateway(spec);
  const { changes, commands } = await converge(handle, (live) => partTarget(part, live, desired));
  return { name: spec.name, action: isEmptyChangeSet(changes) ? 'unchanged' : 'update', changes, commands };
}

/**
 * Read, diff against the target, run the change set. Then read back: the kernel has side effects
 * (an address removal can take routes with it), and what is live, not what was sent, is the
 * result. One more pass mends such a side effect; the target is recomputed from each reading.
 */
async function converge(handle: GatewayHandle, target: (live: GatewayState) => GatewayState): Promise<{ changes: ChangeSet; commands: Command[] }> {
  const live = await handle.readState();
  const changes = diffStates(live, target(live));
  const commands = changeSetCommands(changes);
  if (!commands.length) return { changes, commands };
  await handle.runCommands(commands);
  const after = await handle.readState();
  const rest = diffStates(after, target(after));
  if (isEmptyChangeSet(rest)) return { changes, commands };
  const again = changeSetCommands(rest);
  await handle.runCommands(again);
  commands.push(...again);
  const last = await handle.readState();
  const left = diffStates(last, target(last));
  if (!isEmptyChangeSet(left)) throw new ConvergenceError(handle.name, ruleDiff(left));
  return { changes, commands };
}

/** Removes the gateways the runtime has that are not in `keep`. */
export async function pruneGateways(runtime: GatewayRuntime, keep: ReadonlySet<string>): Promise<GatewayResult[]> {
  const results: GatewayResult[] = [];
  for (const name of await runtime.listGateways()) {
    if (keep.has(name)) continue;
    const handle = await runtime.gateway(name);
    const live = handle ? await handle.readState().catch(() => undefined) : undefined;
    await runtime.removeGateway(name);
    const changes = live ? diffStates(live, removalTarget(live)) : diffStates(emptyGatewayState(), emptyGatewayState());
    results.push({ name, action: 'delete', changes, commands: [] });
  }
  return results;
}

/** Every gateway in parallel (they share nothing), then the prune. */
export async function reconcileAll(runtime: GatewayRuntime, gateways: Iterable<GatewaySpec>): Promise<GatewayResult[]> {
  const specs = [...gateways];
  const results = await Promise.all(specs.map((spec) => reconcileGateway(runtime, spec)));
  results.push(...(await pruneGateways(runtime, new Set(specs.map((s) => s.name)))));
  return results;
}
