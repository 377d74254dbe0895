// The dry-run runtime follows the commands natops sends a gateway, so a gateway reads back what
// they would have made: a whole reconcile and each part's, in a fresh process (runtime) too,
// converge; a command it cannot follow is an error, never a silent success.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import { GATEWAY_PARTS } from '../../dataplane/parts.ts';
import { DryRunCommandError, DryRunRuntime } from '../../runtime/dry-run.ts';
import { reconcileGateway, reconcilePart } from '../../runtime/reconcile.ts';
import { onDataplane, seedScenarios } from '../helpers/scenario.ts';
import { push, seedSpec, toFiles } from '../helpers/manifests.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';

describe('the dry-run runtime', () => {
  it('reads back what the commands made: every seed scenario converges on both planes', async () => {
    for (const [name, seed] of await seedScenarios()) {
      for (const plane of ['iptables', 'nftables'] as const) {
        const { desired, issues } = validateManifests(toFiles(onDataplane(structuredClone(seed), plane)));
        assert.deepEqual(issues, []);
        for (const spec of desired.gateways.values()) {
          const runtime = new DryRunRuntime();
          const created = await reconcileGateway(runtime, spec);
          assert.notEqual(created.commands.length, 0, `${name} ${plane}`);
          const live = await (await runtime.gateway(spec.name))!.readState();
          assert.deepEqual(live.nat, compileGateway(spec).nat, `${name} ${plane} ${spec.name}: the rules`);
          assert.equal((await reconcileGateway(runtime, spec)).action, 'unchanged', `${name} ${plane}`);
        }
      }
    }
  });

  it("each part converges in a runtime that ran none of the gateway's other jobs", async () => {
    const spec = await seedSpec((s) =>
      push(s.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: 53,
        protocol: 'udp',
        internalIp: '10.0.1.10',
        internalPort: 53,
      }),
    );
    for (const part of GATEWAY_PARTS) {
      const runtime = new DryRunRuntime();
      await runtime.ensureGateway(spec);
      const r = await reconcilePart(runtime, spec, part);
      assert.equal(r.action, 'update', part);
      assert.equal((await reconcilePart(runtime, spec, part)).action, 'unchanged', part);
    }
  });

  it('a command it cannot follow fails', async () => {
    const runtime = new DryRunRuntime();
    const { handle } = await runtime.ensureGateway(await seedSpec());
    await assert.rejects(handle.runCommands([{ argv: ['ip', 'tunnel', 'add', 't0'] }]), DryRunCommandError);
    await assert.rejects(
      handle.runCommands([
        { argv: ['iptables-legacy-restore', '--noflush'], stdin: '*nat\n-D SHARED_DNAT -j X\nCOMMIT\n' },
      ]),
      DryRunCommandError,
    );
  });
});
