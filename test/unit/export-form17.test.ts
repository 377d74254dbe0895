// natops export --form 1.7 (gitops/export/form17.ts): the current form's objects, as the cluster
// holds them, written with every rule inline. For every seed scenario the 1.7 export validates
// and is the same gateways, states and networks as the current form it came from and the 1.7
// seed; what the 1.7 form cannot say is refused by gateway.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import { ClusterObjectSchema, type ClusterObject } from '../../gitops/export/clean.ts';
import { toForm17 } from '../../gitops/export/form17.ts';
import { exportFiles } from '../../gitops/export/write.ts';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { seedList, toCurrentForm } from '../helpers/current-form.ts';
import { seedObjects, toFiles } from '../helpers/manifests.ts';
import { seedScenarios } from '../helpers/scenario.ts';

/** Objects as export writes and reads them: one file each, validated. */
function validated(objects: readonly ClusterObject[]) {
  const { desired, issues } = validateManifests(exportFiles(objects));
  assert.deepEqual(issues.map(formatIssue), []);
  return desired;
}

const cluster = (seed: Parameters<typeof seedList>[0]) =>
  toCurrentForm(seedList(seed)).map((o) => ClusterObjectSchema.parse(o));

describe('natops export --form 1.7', () => {
  it('for every seed scenario: the same gateways, states and networks as the current form and the 1.7 seed', async () => {
    for (const [name, seed] of await seedScenarios()) {
      const objects = cluster(seed);
      const now = validated(objects);
      const { objects: old, problems } = toForm17(objects, now.gateways);
      assert.deepEqual(problems, [], name);
      assert.deepEqual(
        old.filter((o) => o.kind.startsWith('Iptables') || o.kind === 'NetworkAttachmentDefinition'),
        [],
        `${name}: every rule inline`,
      );
      const written = validated(old);
      const seed17 = validateManifests(toFiles(seed)).desired;
      assert.deepEqual([...written.gateways.keys()].sort(), [...seed17.gateways.keys()].sort(), name);
      for (const [gw, spec] of seed17.gateways) {
        assert.deepEqual(written.gateways.get(gw), spec, `${name}: ${gw}`);
        assert.deepEqual(compileGateway(written.gateways.get(gw)!), compileGateway(now.gateways.get(gw)!));
      }
      assert.deepEqual(networkModel(written), networkModel(now), name);
    }
  });

  it('the seed comes out as the 1.7 seed wrote it: inline lists, the nic in the ConfigMap', async () => {
    const seed = await seedObjects();
    const objects = cluster(seed);
    const { objects: old } = toForm17(objects, validated(objects).gateways);
    const gw = old.find((o) => o.kind === 'VpcNatGateway')!;
    assert.deepEqual(gw.spec, {
      vpc: 'test-vpc-1',
      subnet: 'sn',
      lanIp: '10.0.1.254',
      eips: [
        { eipCIDR: '192.168.0.111/24', gateway: '192.168.0.254' },
        { eipCIDR: '192.168.0.112/24', gateway: '192.168.0.254' },
      ],
      floatingIpRules: [{ eip: '192.168.0.111', internalIp: '10.0.1.5' }],
      dnatRules: [
        { eip: '192.168.0.112', externalPort: 8888, protocol: 'tcp', internalIp: '10.0.1.10', internalPort: 80 },
      ],
      snatRules: [{ eip: '192.168.0.112', internalCIDR: '10.0.1.0/24' }],
    });
    assert.equal((old.find((o) => o.kind === 'ConfigMap')!.data as Record<string, string>).nic, 'eth1');
    assert.deepEqual(
      old.filter((o) => o.kind === 'Subnet').map((o) => o.metadata.name),
      ['sn'],
      "the external network's Subnet is not the 1.7 form's",
    );
  });

  it('refuses, by gateway, a shared port and an EIP without an address', async () => {
    const objects = cluster(await seedObjects());
    const gateways = validated(objects).gateways;
    const ngw = gateways.get('ngw')!;
    const shared = { ...ngw, dnats: ngw.dnats.map((d) => ({ ...d, shared: true as const })) };
    const allocated = { ...ngw, eips: ngw.eips.map((e, i) => (i === 0 ? { ...e, allocatedFor: 'ngw-eip-0' } : e)) };
    assert.deepEqual(toForm17(objects, new Map([['ngw', shared]])).problems, [
      'gateway ngw: port tcp 192.168.0.112:8888 is shared by several backends, which the 1.7 form cannot say',
    ]);
    assert.deepEqual(toForm17(objects, new Map([['ngw', allocated]])).problems, [
      'gateway ngw: IptablesEIP ngw-eip-0 has no v4ip; the 1.7 form needs the address written (set its v4ip)',
    ]);
    const other = { ...ngw, name: 'gw2', workload: { ...ngw.workload, nic: 'eth2' } };
    assert.match(
      toForm17(
        objects,
        new Map([
          ['ngw', ngw],
          ['gw2', other],
        ]),
      ).problems.join('\n'),
      /several nics \(eth1, eth2\)/,
    );
  });
});
