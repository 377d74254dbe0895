// An EIP moving between gateways: the new owner announces it by gratuitous ARP, so the underlay
// stops sending to the old owner's MAC at once instead of when its ARP entry ages out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inNamespace } from '../../runtime/netns/netns.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { push, seedObjects, set, unset, type Obj, type SeedObjects } from '../helpers/manifests.ts';

const secondGateway = (eips: Obj[], floatingIpRules: Obj[]): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind: 'VpcNatGateway',
  metadata: { name: 'ngw2' },
  spec: { vpc: 'test-vpc-1', subnet: 'sn', lanIp: '10.0.1.253', eips, floatingIpRules },
});
const EIP = { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' };
const FIP = { eip: '192.168.0.113', internalIp: '10.0.1.6' };

describe('an EIP moving between gateways', () => {
  let h: LabHarness;
  let seed: SeedObjects;
  before(async () => {
    h = await LabHarness.create();
    seed = await seedObjects();
    seed.extra.push(secondGateway([EIP], [FIP]));
    // Replies from the floating IP's host must leave through the gateway that owns it (OVN source route).
    push(seed.vpc, 'spec.staticRoutes', { cidr: '10.0.1.6/32', nextHopIP: '10.0.1.253', policy: 'policySrc' });
    await h.apply(seed);
    await h.host('fip2', 'sn', '10.0.1.6/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('fip2', { tcp: [80] });
  });
  after(async () => {
    await h?.cleanup();
  });

  const net1Mac = async (gateway: string) =>
    (JSON.parse(await h.inGateway(gateway, ['ip', '-j', 'link', 'show', 'dev', 'net1'])) as { address: string }[])[0]!
      .address;
  const extNeighbour = async () => {
    const r = await inNamespace(h.lab.names.host('ext'), { argv: ['ip', '-j', 'neigh', 'show', '192.168.0.113'] });
    return (JSON.parse(r.stdout) as { lladdr?: string }[])[0]?.lladdr;
  };

  it('is announced by its new owner, and traffic follows at once', async () => {
    assert.equal(await h.tcp('ext', '192.168.0.113', 80), 'fip2 192.168.0.50', 'the first owner serves the EIP');
    assert.equal(await extNeighbour(), await net1Mac('ngw2'), 'the underlay host learnt the first owner');
    // The kernel ignores a new address for a neighbour updated less than locktime (1 s) ago.
    await new Promise((r) => setTimeout(r, 1200));

    set(seed.gateway, 'spec.eips', [...(seed.gateway.spec as { eips: Obj[] }).eips, EIP]);
    set(seed.gateway, 'spec.floatingIpRules', [
      ...(seed.gateway.spec as { floatingIpRules: Obj[] }).floatingIpRules,
      FIP,
    ]);
    seed.extra = [secondGateway([], [])];
    unset(seed.vpc, 'spec.staticRoutes.1');
    await h.apply(seed);

    assert.equal(await extNeighbour(), await net1Mac('ngw'), 'the gratuitous ARP moved the entry to the new owner');
    assert.equal(await h.tcp('ext', '192.168.0.113', 80), 'fip2 192.168.0.50', 'the new owner serves the EIP');
    assert.doesNotMatch(await h.inGateway('ngw2', ['ip', 'addr', 'show', 'dev', 'net1']), /192\.168\.0\.113/);
  });
});
