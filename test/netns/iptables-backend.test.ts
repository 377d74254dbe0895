// Which iptables a gateway's rules live in, on this kernel with real packets: a new gateway's go
// to iptables-legacy, as Kube-OVN's gateway image does wherever the kernel has it; a gateway whose
// chains are already in nf_tables (made by an earlier natops, whose `iptables` was nft) keeps them
// there, and natops never builds a second copy in the other iptables (both tables act on every
// packet, so a stale copy would keep a removed mapping alive).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IPTABLES_PROGRAMS } from '../../dataplane/model.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, set, type SeedObjects } from '../helpers/manifests.ts';

const { legacy, nft } = IPTABLES_PROGRAMS;

describe('the iptables a gateway keeps its rules in', () => {
  let h: LabHarness;
  let seed: SeedObjects;
  /** the nat table of one iptables, read by that iptables's own program */
  const natOf = async (save: string) => h.inGateway('ngw', [save, '-t', 'nat']);

  before(async () => {
    h = await LabHarness.create();
    seed = await seedObjects();
    await h.apply(seed);
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('web', { tcp: [80, 8080] });
  });
  after(async () => {
    await h?.cleanup();
  });

  it('a new gateway: iptables-legacy, nothing of natops in nf_tables', async () => {
    assert.match(await natOf(legacy.save), /^-A SHARED_DNAT .*--dport 8888 -j DNAT --to-destination 10\.0\.1\.10:80$/m);
    assert.doesNotMatch(await natOf(nft.save), /DNAT_FILTER|SHARED_DNAT/);
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
  });

  it('a gateway whose chains are in nf_tables: its changes go there, and legacy stays without them', async () => {
    // move the gateway's nat table over to nf_tables, as an earlier natops would have left it
    const table = (await natOf(legacy.save))
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    await h.inGateway('ngw', ['sh', '-c', `printf '%s\\n' "$1" | ${nft.restore}`, 'sh', table]);
    await h.inGateway('ngw', [legacy.iptables, '-t', 'nat', '-F']);
    await h.inGateway('ngw', [legacy.iptables, '-t', 'nat', '-X']);
    assert.doesNotMatch(await natOf(legacy.save), /DNAT_FILTER/);
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'the moved rules answer');

    set(seed.gateway, 'spec.dnatRules.0.internalPort', 8080);
    const [result] = await h.apply(seed);
    assert.equal(result!.action, 'update');
    assert.deepEqual(
      result!.commands.filter((c) => c.stdin !== undefined).map((c) => c.argv[0]),
      [nft.restore],
    );
    assert.match(await natOf(nft.save), /^-A SHARED_DNAT .*--dport 8888 -j DNAT --to-destination 10\.0\.1\.10:8080$/m);
    assert.doesNotMatch(await natOf(legacy.save), /DNAT_FILTER|SHARED_DNAT/);
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'the changed forward answers');

    const [again] = await h.apply(seed);
    assert.equal(again!.action, 'unchanged');
  });
});
