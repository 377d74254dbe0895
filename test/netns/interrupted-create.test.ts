// A worker killed while it was creating a gateway leaves a namespace half wired. The next
// gateway job must finish the wiring (as a pod that did not start is started again), at every
// point the kill can land: the gateway then answers, and reading it back is not enough to tell.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { addVeth, ipIn } from '../../runtime/netns/netns.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { reconcileAll } from '../../runtime/reconcile.ts';
import type { Desired } from '../../gitops/manifests/validate.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, writeManifestDir } from '../helpers/manifests.ts';

// The steps of creating a gateway, in order; a kill lands after `upTo` of them.
const KILL_POINTS = [
  'namespace only',
  'eth0 added',
  'eth0 address',
  'default route',
  'net1 pair added',
  'net1 port on the underlay, down',
] as const;

describe('a gateway whose creation was interrupted', () => {
  let h: LabHarness;
  let desired: Desired;

  before(async () => {
    h = await LabHarness.create();
    desired = await readDesired(await writeManifestDir(await seedObjects()));
    await h.lab.up(networkModel(desired));
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('web', { tcp: [80] });
  });
  after(async () => {
    await h?.cleanup();
  });

  for (const [i, point] of KILL_POINTS.entries()) {
    it(`killed after: ${point}; the next gateway job completes it and the gateway answers`, async () => {
      const n = h.lab.names;
      const ns = n.gateway('ngw');
      await h.lab.removeNamespace(ns);
      await h.lab.ownNamespace(ns, { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' });
      const steps = [
        () =>
          addVeth({
            outerNs: n.fabric,
            outer: n.gatewayPort('ngw', 'eth0'),
            bridge: n.subnetBridge('sn'),
            innerNs: ns,
            inner: 'eth0',
          }),
        () => ipIn(ns, 'addr', 'add', '10.0.1.254/24', 'dev', 'eth0'),
        () => ipIn(ns, 'route', 'add', 'default', 'via', '10.0.1.1', 'dev', 'eth0'),
        () =>
          ipIn(
            n.fabric,
            'link',
            'add',
            n.gatewayPort('ngw', 'net1'),
            'type',
            'veth',
            'peer',
            'name',
            'net1',
            'netns',
            ns,
          ),
        async () => ipIn(n.fabric, 'link', 'set', n.gatewayPort('ngw', 'net1'), 'master', (await h.lab.network()).nic),
      ];
      for (const step of steps.slice(0, i)) await step();

      const runtime = new NetnsRuntime(h.lab);
      await reconcileAll(runtime, desired.gateways.values());
      assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
      // and it is done for good: the next run changes nothing
      const again = await reconcileAll(runtime, desired.gateways.values());
      assert.deepEqual(
        again.map((r) => [r.name, r.action]),
        [['ngw', 'unchanged']],
      );
    });
  }
});
