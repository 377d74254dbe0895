// Rules repeated by hand in a live gateway: a second hook jump, a repeated rule in an owned chain.
// Reconcile removes the surplus copies, iptables-save reads as before the hand edit, and the next
// reconcile runs nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { portForward } from '../../dataplane/rules.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, type SeedObjects } from '../helpers/manifests.ts';

const FORWARD = portForward('192.168.0.112', 'tcp', 8888, '10.0.1.10', 80);
const count = (save: string, line: string) => save.split('\n').filter((l) => l === line).length;

describe('rules duplicated by hand', () => {
  let h: LabHarness;
  let seed: SeedObjects;
  before(async () => {
    h = await LabHarness.create();
    seed = await seedObjects();
    await h.apply(seed);
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('web', { tcp: [80] });
  });
  after(async () => {
    await h?.cleanup();
  });

  it('are removed, leaving each rule once, and the next reconcile runs nothing', async () => {
    const clean = await h.gatewaySave('ngw');
    assert.equal(count(clean, '-A PREROUTING -j DNAT_FILTER'), 1);

    const { iptables } = await h.gatewayIptables('ngw');
    await h.inGateway('ngw', [iptables, '-w', '-t', 'nat', '-A', 'PREROUTING', '-j', 'DNAT_FILTER']);
    await h.inGateway('ngw', [iptables, '-w', '-t', 'nat', '-A', 'POSTROUTING', '-j', 'SNAT_FILTER']);
    await h.inGateway('ngw', [iptables, '-w', '-t', 'nat', '-A', 'SHARED_DNAT', ...FORWARD.split(' ')]);
    const edited = await h.gatewaySave('ngw');
    assert.equal(count(edited, '-A PREROUTING -j DNAT_FILTER'), 2);
    assert.equal(count(edited, `-A SHARED_DNAT ${FORWARD}`), 2);

    const [result] = await h.apply(seed);
    assert.equal(result!.action, 'update');
    const mended = await h.gatewaySave('ngw');
    assert.equal(count(mended, '-A PREROUTING -j DNAT_FILTER'), 1);
    assert.equal(count(mended, '-A POSTROUTING -j SNAT_FILTER'), 1);
    assert.equal(count(mended, `-A SHARED_DNAT ${FORWARD}`), 1);
    // the same rules; a built-in chain's packet counters may differ (the transaction that declares it resets them)
    const counted = (save: string) => save.replace(/ \[\d+:\d+\]$/gm, ' [0:0]');
    assert.equal(counted(mended), counted(clean), 'iptables-save reads as it did before the hand edit');
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'the port forward works');

    const [again] = await h.apply(seed);
    assert.equal(again!.action, 'unchanged');
    assert.deepEqual(again!.commands, []);
  });
});
