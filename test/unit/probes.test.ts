// What `natops preview --prove` sends (preview/probes.ts): a host behind every mapping, the answer
// each probe must get, sampling, and the mappings no host can stand behind. The packets themselves
// are test/netns/prove.test.ts's.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkModel } from '../../gitops/manifests/network.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { judge, planProbes, sample } from '../../preview/probes.ts';
import { push, toFiles, type SeedObjects } from '../helpers/manifests.ts';
import { scenarioManifests } from '../helpers/scenario.ts';

function plan(seed: SeedObjects, limit = 50) {
  const { desired, issues } = validateManifests(toFiles(seed));
  assert.deepEqual(issues, []);
  return planProbes([...desired.gateways.values()], networkModel(desired), limit);
}

describe('preview --prove: the probes planned', () => {
  it('the scenario: a host per backend, floating IP and SNAT, the far side on the external network', async () => {
    const p = plan(await scenarioManifests());
    assert.deepEqual(
      p.hosts.map((h) => `${h.name} ${h.net} ${h.ip} tcp=${h.tcp} udp=${h.udp}`),
      [
        'ext external 192.168.0.253/24 tcp=7777 udp=',
        'h1 sn 10.0.1.5/24 tcp=7777 udp=',
        'h2 sn 10.0.1.10/24 tcp=80 udp=53',
        'h3 sn2 10.0.2.10/24 tcp=9000 udp=',
        'h4 sn 10.0.1.253/24 tcp=7777 udp=',
        'h5 sn2 10.0.2.254/24 tcp=7777 udp=',
      ],
    );
    assert.deepEqual(
      p.probes.map(
        (x) =>
          `${x.kind}: ${x.from} -> ${x.protocol} ${x.to}:${x.port} = ${x.answeredBy}${x.seenSource ? ` seeing ${x.seenSource}` : ''}`,
      ),
      [
        'floating IP in: ext -> tcp 192.168.0.111:7777 = h1',
        'floating IP out: h1 -> tcp 192.168.0.253:7777 = ext seeing 192.168.0.111',
        'port forward: ext -> tcp 192.168.0.112:8888 = h2',
        'port forward: ext -> udp 192.168.0.112:5353 = h2',
        'port forward: ext -> tcp 192.168.0.112:2222 = h3',
        'SNAT: h4 -> tcp 192.168.0.253:7777 = ext seeing 192.168.0.112',
        'SNAT: h5 -> tcp 192.168.0.253:7777 = ext seeing 192.168.0.112',
        'hairpin: h4 -> tcp 192.168.0.112:8888 = h2',
      ],
    );
    assert.equal(p.total, 8);
    assert.deepEqual(p.unprobed, []);
  });

  it('a forward to the subnet gateway or a lanIp has no host behind it, and says why', async () => {
    const seed = await scenarioManifests();
    for (const [port, ip] of [
      [8081, '10.0.1.1'],
      [8082, '10.0.1.254'],
    ] as const)
      push(seed.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: port,
        protocol: 'tcp',
        internalIp: ip,
        internalPort: 80,
      });
    assert.deepEqual(plan(seed).unprobed, [
      {
        gateway: 'ngw',
        key: 'ngw port forward tcp 192.168.0.112:8081',
        mapping: 'port forward tcp 192.168.0.112:8081 -> 10.0.1.1:80',
        reason: "10.0.1.1 is subnet sn's gateway (its VPC router): no host can stand there",
      },
      {
        gateway: 'ngw',
        key: 'ngw port forward tcp 192.168.0.112:8082',
        mapping: 'port forward tcp 192.168.0.112:8082 -> 10.0.1.254:80',
        reason: "10.0.1.254 is gateway ngw's lanIp: no host can stand there",
      },
    ]);
  });

  it('an SNAT of one address, and one wider than its subnet, get a host; a longer prefix is left to its own', async () => {
    const seed = await scenarioManifests();
    push(seed.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.1.77/32' });
    push(seed.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.0.0/16' });
    const p = plan(seed);
    const from = (mapping: string) => {
      const probe = p.probes.find((x) => x.mapping === mapping);
      assert.ok(probe, mapping);
      return p.hosts.find((h) => h.name === probe.from)!.ip;
    };
    assert.equal(from('SNAT 10.0.1.77/32 -> 192.168.0.112'), '10.0.1.77/24');
    // 10.0.0.0/16 holds sn (10.0.1.0/24) and sn2 (10.0.2.0/24), whose SNATs are longer prefixes:
    // its probe comes from neither, and there is no other subnet in it, so it has none
    assert.deepEqual(
      p.unprobed.map((u) => u.mapping),
      ['SNAT 10.0.0.0/16 -> 192.168.0.112'],
    );
    assert.match(p.unprobed[0]!.reason, /no free host address of 10\.0\.0\.0\/16/);
    assert.equal(p.unprobedTotal, 1);
  });

  it('past the limit the probes are sampled evenly, and only their hosts are made', async () => {
    const seed = await scenarioManifests();
    for (let i = 0; i < 1000; i++)
      push(seed.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: 20000 + i,
        protocol: 'tcp',
        internalIp: `10.0.1.${20 + (i % 200)}`,
        internalPort: 80,
      });
    const p = plan(seed, 10);
    assert.equal(p.total, 1008);
    assert.equal(p.probes.length, 10);
    // or exactly the probes of the mappings asked for (the same on both sides of a change)
    const keys = new Set(['ngw port forward tcp 192.168.0.112:20500', 'ngw SNAT 10.0.2.0/24']);
    assert.deepEqual(
      planProbes(
        [...validateManifests(toFiles(seed)).desired.gateways.values()],
        networkModel(validateManifests(toFiles(seed)).desired),
        keys,
      ).probes.map((x) => x.key),
      [...keys],
    );
    const needed = new Set(p.probes.flatMap((x) => [x.from, ...x.answeredBy]));
    assert.deepEqual(new Set(p.hosts.map((h) => h.name)), needed);
    assert.ok(p.hosts.length <= 11, `${p.hosts.length} hosts`);
    assert.deepEqual(sample([1, 2, 3, 4, 5, 6, 7, 8], 3), [1, 3, 6]);
  });

  it('a reply is judged by who answered and the source it saw', async () => {
    const [fipOut] = plan(await scenarioManifests()).probes.filter((x) => x.kind === 'floating IP out');
    assert.ok(fipOut);
    assert.equal(judge(fipOut, { line: 'ext 192.168.0.111' }).answered, true);
    assert.deepEqual(judge(fipOut, { line: 'ext 192.168.0.112' }), {
      gateway: 'ngw',
      kind: 'floating IP out',
      key: 'ngw floating IP 192.168.0.111 out',
      mapping: 'floating IP 192.168.0.111 -> 10.0.1.5 (out)',
      answered: false,
      detail: 'ext answered seeing 192.168.0.112, not ext seeing 192.168.0.111',
    });
    assert.equal(judge(fipOut, { error: 'ECONNREFUSED' }).detail, 'no answer (ECONNREFUSED)');
  });
});
