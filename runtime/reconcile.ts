// Makes gateways match their specs: ensure the gateway, read it, diff, run the change set.
// Level-triggered, so running it again with the same spec changes nothing.
import { NatopsError, errorMessage, isRetryable } from '../common/errors.ts';
import { changeSetCommands, type Command } from '../dataplane/commands.ts';
import { compileGateway, emptyGatewayState } from '../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet, readBackOf, type ChangeSet } from '../dataplane/diff.ts';
import type { GatewaySpec, GatewayState, StateRead } from '../dataplane/model.ts';
import { PART_READS, partTarget, type GatewayPart } from '../dataplane/parts.ts';
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
  constructor(
    readonly gateway: string,
    readonly remaining: string[],
  ) {
    super(`gateway ${gateway} did not reach its desired state; still different:\n  ${remaining.join('\n  ')}`);
  }
}

export async function reconcileGateway(runtime: GatewayRuntime, spec: GatewaySpec): Promise<GatewayResult> {
  const { handle, created } = await runtime.ensureGateway(spec);
  const desired = compileGateway(spec);
  const { changes, commands } = await converge(handle, () => desired);
  return {
    name: spec.name,
    action: created ? 'create' : isEmptyChangeSet(changes) ? 'unchanged' : 'update',
    changes,
    commands,
  };
}

/** A gateway that a part handler needs is not there (its gateway job has not run, or it was deleted). */
export class GatewayMissingError extends NatopsError {
  constructor(readonly gateway: string) {
    super(`gateway ${gateway} does not exist; its gateway job must run first`);
  }
}

/**
 * Makes an existing gateway's rules, addresses and routes match its spec and leaves its workload
 * as it is: an adopted gateway's pod, which `export --adopt` must not restart.
 */
export async function reconcileRules(runtime: GatewayRuntime, spec: GatewaySpec): Promise<GatewayResult> {
  const handle = await runtime.gateway(spec.name);
  if (!handle) throw new GatewayMissingError(spec.name);
  const desired = compileGateway(spec);
  const { changes, commands } = await converge(handle, () => desired);
  return { name: spec.name, action: isEmptyChangeSet(changes) ? 'unchanged' : 'update', changes, commands };
}

/** Reconciles one part of an existing gateway (a Kube-OVN worker's share), leaving the rest alone. */
export async function reconcilePart(
  runtime: GatewayRuntime,
  spec: GatewaySpec,
  part: GatewayPart,
): Promise<GatewayResult> {
  const handle = await runtime.gateway(spec.name);
  if (!handle) throw new GatewayMissingError(spec.name);
  const desired = compileGateway(spec);
  const { changes, commands } = await converge(handle, (live) => partTarget(part, live, desired), PART_READS[part]);
  return { name: spec.name, action: isEmptyChangeSet(changes) ? 'unchanged' : 'update', changes, commands };
}

/**
 * Read, diff against the target, run the change set. Then read back: the kernel has side effects
 * (an address removal can take routes with it), and what is live, not what was sent, is the
 * result. One more pass mends such a side effect; the target is recomputed from each reading.
 *
 * The first read is `reads` (all when not given: the target compares everything); each read-back
 * only what the commands just run could have changed (readBackOf), over the reading before it.
 * What is not read back was read before and is untouched since, so it still compares equal.
 */
async function converge(
  handle: GatewayHandle,
  target: (live: GatewayState) => GatewayState,
  reads?: readonly StateRead[],
): Promise<{ changes: ChangeSet; commands: Command[] }> {
  // A part's target takes what it does not compare from the live state, so what stands in for
  // the fields not read does not matter: they compare equal.
  const live = reads ? { ...emptyGatewayState(), ...(await readSome(handle, reads)) } : await handle.readState();
  const changes = diffStates(live, target(live));
  const commands = changeSetCommands(changes);
  if (!commands.length) return { changes, commands };
  await handle.runCommands(commands);
  const after = { ...live, ...(await readSome(handle, readBackOf(changes))) };
  const rest = diffStates(after, target(after));
  if (isEmptyChangeSet(rest)) return { changes, commands };
  const again = changeSetCommands(rest);
  await handle.runCommands(again);
  commands.push(...again);
  const last = { ...after, ...(await readSome(handle, readBackOf(rest))) };
  const left = diffStates(last, target(last));
  if (!isEmptyChangeSet(left)) throw new ConvergenceError(handle.name, ruleDiff(left));
  return { changes, commands };
}

/** Only `reads` (a handle may answer with more; that is used too). */
async function readSome(handle: GatewayHandle, reads: readonly StateRead[]): Promise<Partial<GatewayState>> {
  return reads.length ? handle.readState(reads) : {};
}

/**
 * Removes the gateways the runtime has that are not in `keep`. Each removal is attempted; those
 * that fail are thrown together at the end as a GatewaysFailedError.
 */
export async function pruneGateways(runtime: GatewayRuntime, keep: ReadonlySet<string>): Promise<GatewayResult[]> {
  const results: GatewayResult[] = [];
  const failures: GatewayFailure[] = [];
  for (const name of await runtime.listGateways()) {
    if (keep.has(name)) continue;
    try {
      // A gateway that cannot be reached (a pod that never got ready) is still removed.
      const handle = await runtime.gateway(name).catch(() => undefined);
      const live = handle ? await handle.readState().catch(() => undefined) : undefined;
      await runtime.removeGateway(name);
      const changes = live
        ? diffStates(live, removalTarget(live))
        : diffStates(emptyGatewayState(), emptyGatewayState());
      results.push({ name, action: 'delete', changes, commands: [] });
    } catch (error) {
      failures.push({ gateway: name, error });
    }
  }
  if (failures.length) throw new GatewaysFailedError(failures, results);
  return results;
}

export interface GatewayFailure {
  gateway: string;
  error: unknown;
}

/** Some gateways failed; the others were still attempted, and what they did is kept in `results`. */
export class GatewaysFailedError extends NatopsError {
  constructor(
    readonly failures: GatewayFailure[],
    /** the gateways that succeeded, then the ones pruned */
    readonly results: GatewayResult[],
    /** set when the prune could not run at all (listing the gateways failed) */
    pruneError?: unknown,
  ) {
    const lines = failures.map((f) => `${f.gateway}: ${errorMessage(f.error)}`);
    if (pruneError !== undefined) lines.push(`(and the prune did not run: ${errorMessage(pruneError)})`);
    super(`gateways ${failures.map((f) => f.gateway).join(', ')} failed:\n  ${lines.join('\n  ')}`, {
      // a retry redoes them all, which is worth it when any of them may pass next time
      retryable: failures.some((f) => isRetryable(f.error)),
      cause: pruneError,
    });
  }
}

/**
 * Every gateway in parallel (they share nothing), then the prune. One gateway failing neither
 * stops the others or the prune nor hides their failures: all are thrown together at the end.
 */
export async function reconcileAll(runtime: GatewayRuntime, gateways: Iterable<GatewaySpec>): Promise<GatewayResult[]> {
  const specs = [...gateways];
  const settled = await Promise.allSettled(specs.map((spec) => reconcileGateway(runtime, spec)));
  const results: GatewayResult[] = [];
  const failures: GatewayFailure[] = [];
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') results.push(s.value);
    else failures.push({ gateway: specs[i]!.name, error: s.reason });
  });
  try {
    results.push(...(await pruneGateways(runtime, new Set(specs.map((s) => s.name)))));
  } catch (e) {
    if (e instanceof GatewaysFailedError) {
      failures.push(...e.failures);
      results.push(...e.results);
    } else if (failures.length) {
      throw new GatewaysFailedError(failures, results, e);
    } else {
      throw e;
    }
  }
  if (failures.length) throw new GatewaysFailedError(failures, results);
  return results;
}
