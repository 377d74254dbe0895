// An EIP's next hop moving to another address of the underlay: the gateway's default route in
// table 100 follows in place, outbound SNAT and inbound port-forward traffic go through the new
// next hop, and applying the same manifests again runs nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LabHarness } from '../helpers/lab-harness.ts';
import { get, seedObjects, set, type Obj, type SeedObjects } from '../helpers/manifests.ts';

const NEW_NEXT_HOP = '192.168.0.253';

describe("an EIP's next hop changing", () => {
  let h: LabHarness;
  let seed: SeedObjects;
  before(async () => {
    h = await LabHarness.create();
    seed = await seedObjects();
    await h.apply(seed);
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('client', 'sn', '10.0.1.20/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await Promise.all(['web', 'client', 'ext'].map((name) => h.serve(name, { tcp: [80, 9000] })));
  });
  after(async () => {
    await h?.cleanup();
  });

  it('moves the default route in place, traffic follows, and a re-apply runs nothing', async () => {
    assert.equal(
      await h.tcp('client', '192.168.0.50', 9000),
      'ext 192.168.0.112',
      'SNAT works through the first next hop',
    );

    // One next hop per gateway: every EIP moves. The lab's upstream router takes the addresses the
    // manifests name as EIP gateways, so it answers at the new one (and no longer at the old).
    for (const i of (get(seed.gateway, 'spec.eips') as Obj[]).keys())
      set(seed.gateway, `spec.eips.${i}.gateway`, NEW_NEXT_HOP);
    const [result] = await h.apply(seed);
    assert.equal(result!.action, 'update');
    assert.deepEqual(
      result!.commands.map((c) => c.argv.join(' ')),
      [`ip route replace default via ${NEW_NEXT_HOP} dev net1 table 100`],
    );

    const table = await h.inGateway('ngw', ['ip', 'route', 'show', 'table', '100']);
    assert.match(table, /^default via 192\.168\.0\.253 dev net1/m);
    assert.doesNotMatch(table, /192\.168\.0\.254/);
    assert.equal(
      await h.tcp('client', '192.168.0.50', 9000),
      'ext 192.168.0.112',
      'SNAT goes out through the new next hop',
    );
    assert.equal(
      await h.tcp('ext', '192.168.0.112', 8888),
      'web 192.168.0.50',
      'a port forward answers back through the new next hop',
    );

    const [again] = await h.apply(seed);
    assert.equal(again!.action, 'unchanged');
    assert.deepEqual(again!.commands, []);
  });
});
