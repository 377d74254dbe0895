// The upstream router holds every EIP gateway address on the underlay. When one of two addresses
// on the same network changes, the other and the new one are both there afterwards: removing the
// first (primary) address must not take the secondaries with it, so the router promotes them.
// A VPC router's port, whose subnet gateway changes, is the same case with one address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inNamespace } from '../../runtime/netns/netns.ts';
import type { NetworkModel } from '../../dataplane/network.ts';
import { LabHarness } from '../helpers/lab-harness.ts';

const topology = (addresses: string[]): NetworkModel => ({
  nic: 'eth1',
  subnets: [],
  vpcs: [],
  eipNextHops: [...addresses].sort().map((address) => ({ address, prefix: 24, network: '192.168.0.0/24' })),
});

describe("the upstream router's addresses", () => {
  let h: LabHarness;
  const upstream = (argv: string[]) => inNamespace(h.lab.names.upstream, { argv });
  const addresses = async () => {
    const links = JSON.parse((await upstream(['ip', '-j', 'addr', 'show', 'dev', 'net0'])).stdout) as {
      addr_info: { family: string; local: string; secondary?: boolean }[];
    }[];
    return links[0]!.addr_info.filter((a) => a.family === 'inet');
  };
  before(async () => {
    h = await LabHarness.create();
    await h.lab.up(topology(['192.168.0.253', '192.168.0.254']));
    await h.host('ext', 'external', '192.168.0.50/24');
  });
  after(async () => {
    await h?.cleanup();
  });

  it('keeps the other address and the new one when the primary one changes', async () => {
    const before = await addresses();
    assert.deepEqual(before.map((a) => a.local).sort(), ['192.168.0.253', '192.168.0.254']);
    const primary = before.find((a) => !a.secondary)!.local;
    const other = before.find((a) => a.secondary)!.local;

    const log = await h.lab.up(topology([other, '192.168.0.250']));
    const after = (await addresses()).map((a) => a.local).sort();
    assert.deepEqual(
      after,
      ['192.168.0.250', other].sort(),
      `after replacing ${primary}: ${after.join(', ') || 'no address'}`,
    );
    assert.ok(
      log.some((l) => l.includes('192.168.0.250/24')),
      log.join('\n'),
    );
    assert.ok(
      log.some((l) => l.includes(`removed address ${primary}/24`)),
      log.join('\n'),
    );
    for (const ip of [other, '192.168.0.250']) assert.ok(await h.ping('ext', ip), `the underlay reaches ${ip}`);
    assert.ok(!(await h.ping('ext', primary)), `${primary} is gone`);
    assert.deepEqual(await h.lab.up(topology([other, '192.168.0.250'])), [], 'the next run changes nothing');
  });

  it('sets promote_secondaries again where it was turned off, and says so', async () => {
    for (const key of ['all', 'default', 'net0'])
      await upstream(['sysctl', '-q', '-w', `net.ipv4.conf.${key}.promote_secondaries=0`]);
    const log = await h.lab.up(topology(['192.168.0.250', '192.168.0.253', '192.168.0.254']));
    assert.ok(
      log.some((l) => l.includes('net.ipv4.conf.all.promote_secondaries=1')),
      log.join('\n'),
    );
    const values = await upstream([
      'sysctl',
      '-n',
      'net.ipv4.conf.all.promote_secondaries',
      'net.ipv4.conf.default.promote_secondaries',
      'net.ipv4.conf.net0.promote_secondaries',
    ]);
    assert.deepEqual(values.stdout.trim().split('\n'), ['1', '1', '1']);
    assert.deepEqual(await h.lab.up(topology(['192.168.0.250', '192.168.0.253', '192.168.0.254'])), []);

    // The primary now is 192.168.0.250 or whichever was promoted: drop it, the others stay.
    const primary = (await addresses()).find((a) => !a.secondary)!.local;
    const rest = ['192.168.0.250', '192.168.0.253', '192.168.0.254'].filter((a) => a !== primary);
    await h.lab.up(topology(rest));
    assert.deepEqual((await addresses()).map((a) => a.local).sort(), rest);
  });
});

describe("a VPC router port's gateway address changing", () => {
  let h: LabHarness;
  const routerTopology = (gateway: string): NetworkModel => ({
    nic: 'eth1',
    subnets: [{ name: 'sn', vpc: 'v1', cidr: '10.0.1.0/24', gateway }],
    vpcs: [{ name: 'v1', staticRoutes: [] }],
    eipNextHops: [],
  });
  before(async () => {
    h = await LabHarness.create();
    await h.lab.up(routerTopology('10.0.1.1'));
  });
  after(async () => {
    await h?.cleanup();
  });

  it('leaves the port with the new address', async () => {
    const log = await h.lab.up(routerTopology('10.0.1.254'));
    const port = h.lab.names.subnetBridge('sn');
    assert.match(await h.inRouter('v1', ['ip', '-br', 'addr', 'show', 'dev', port]), /\s10\.0\.1\.254\/24(\s|$)/);
    assert.deepEqual(log, [
      'router port for sn: address 10.0.1.254/24',
      'router port for sn: removed address 10.0.1.1/24',
    ]);
    await h.host('web', 'sn', '10.0.1.10/24');
    assert.ok(await h.ping('web', '10.0.1.254'), 'the host reaches its gateway');
    assert.deepEqual(await h.lab.up(routerTopology('10.0.1.254')), []);
  });
});
