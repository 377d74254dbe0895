// The lab's pure parts: names fit Linux's limits, the topology follows the manifests.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { LabError } from '../../runtime/netns/errors.ts';
import { LabNames } from '../../runtime/netns/names.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { push, seedObjects, subnet, toFiles } from '../helpers/manifests.ts';

describe('lab names', () => {
  it('keeps interface names within 15 characters and distinct', () => {
    const n = new LabNames('natops');
    const long = 'a'.repeat(63);
    const names = [
      n.subnetBridge(long),
      n.subnetBridge('sn'),
      n.routerPort(long, long),
      n.gatewayPort(long, 'eth0'),
      n.gatewayPort(long, 'net1'),
      n.hostPort(long),
      n.upstreamPort,
    ];
    for (const name of names) assert.ok(name.length <= 15, name);
    assert.equal(new Set(names).size, names.length);
  });

  it('names namespaces after the resources and recognises its gateways', () => {
    const n = new LabNames();
    assert.equal(n.gateway('ngw'), 'natops-gw-ngw');
    assert.equal(n.gatewayOf('natops-gw-ngw'), 'ngw');
    assert.equal(n.gatewayOf('natops-host-ngw'), undefined);
    assert.equal(n.vpc('test-vpc-1'), 'natops-vpc-test-vpc-1');
  });

  it('refuses a lab name that could reach outside its own namespaces', () => {
    for (const bad of ['', 'Natops', 'a-b', 'x/../y', 'abcdefghijklm'])
      assert.throws(() => new LabNames(bad), LabError);
  });
});

describe('lab topology', () => {
  it('has a bridge per subnet, a router per VPC and the upstream at each EIP gateway', async () => {
    const seed = await seedObjects();
    seed.extra.push(subnet('sn2', 'test-vpc-1', '10.0.2.0/24', '10.0.2.1'));
    push(seed.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
    const { desired, issues } = validateManifests(toFiles(seed));
    assert.deepEqual(issues, []);
    assert.deepEqual(networkModel(desired), {
      nic: 'eth1',
      subnets: [
        { name: 'sn', vpc: 'test-vpc-1', cidr: '10.0.1.0/24', gateway: '10.0.1.1' },
        { name: 'sn2', vpc: 'test-vpc-1', cidr: '10.0.2.0/24', gateway: '10.0.2.1' },
      ],
      vpcs: [
        { name: 'test-vpc-1', staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: '10.0.1.254', policy: 'policyDst' }] },
      ],
      eipNextHops: [{ address: '192.168.0.254', prefix: 24, network: '192.168.0.0/24' }],
    });
  });
});
