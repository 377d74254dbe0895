// The reconciler's read-back: a side effect left after the change set is mended by one more
// pass, and a gateway that still differs is an error, not a success.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../dataplane/commands.ts';
import { compileGateway, emptyGatewayState } from '../../dataplane/compile.ts';
import type { GatewayState } from '../../dataplane/model.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { ConvergenceError, reconcileGateway } from '../../runtime/reconcile.ts';
import type { GatewayHandle, GatewayRuntime } from '../../runtime/runtime.ts';
import { seedObjects, toFiles } from '../helpers/manifests.ts';

/** A gateway whose reads return the given states in turn (the last one repeats). */
function scriptedRuntime(states: GatewayState[]): { runtime: GatewayRuntime; batches: Command[][] } {
  const batches: Command[][] = [];
  let reads = 0;
  const handle: GatewayHandle = {
    name: 'ngw',
    location: 'script',
    readState: async () => states[Math.min(reads++, states.length - 1)]!,
    runCommands: async (commands) => void batches.push(commands),
  };
  const runtime: GatewayRuntime = {
    kind: 'dry-run',
    ensureGateway: async () => ({ handle, created: false }),
    gateway: async () => handle,
    listGateways: async () => ['ngw'],
    removeGateway: async () => false,
  };
  return { runtime, batches };
}

describe('reconcile', async () => {
  const spec = validateManifests(toFiles(await seedObjects())).desired.gateways.get('ngw')!;
  const desired = compileGateway(spec);

  it('runs nothing and reports unchanged when the gateway already matches', async () => {
    const { runtime, batches } = scriptedRuntime([desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(result.action, 'unchanged');
    assert.equal(batches.length, 0);
  });

  it('mends a side effect found on read-back with a second pass of only what is missing', async () => {
    const lostRoute = { ...desired, routes: desired.routes.filter((r) => r.dst !== 'default') };
    const { runtime, batches } = scriptedRuntime([emptyGatewayState(), lostRoute, desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(batches.length, 2);
    assert.deepEqual(batches[1]!.map((c) => c.argv.join(' ')), ['ip route replace default via 192.168.0.254 dev net1 table 100']);
    assert.equal(result.action, 'update');
  });

  it('fails with what is still different when the gateway does not converge', async () => {
    const stuck = { ...desired, nat: { ...desired.nat, SHARED_DNAT: [] } };
    const { runtime } = scriptedRuntime([emptyGatewayState(), stuck]);
    await assert.rejects(reconcileGateway(runtime, spec), (e: unknown) =>
      e instanceof ConvergenceError && e.remaining.some((l) => l.includes('--dport 8888')));
  });
});
