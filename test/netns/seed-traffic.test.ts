// The seed's gateway in a real lab, on each data plane: every mapping answers real TCP, UDP and ICMP.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DATAPLANES } from '../../dataplane/model.ts';
import type { LabHarness } from '../helpers/lab-harness.ts';
import { useScenario } from '../helpers/scenario.ts';
import type { SeedObjects } from '../helpers/manifests.ts';

for (const dataplane of DATAPLANES)
  describe(`seed gateway with real packets, on ${dataplane}`, () => {
    let h: LabHarness;
    let seed: SeedObjects;

    useScenario((harness, manifests) => {
      h = harness;
      seed = manifests;
    }, dataplane);

    it('floating IP, inbound: the underlay reaches the host behind it (tcp, udp, icmp)', async () => {
      assert.equal(await h.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50');
      assert.equal(await h.udp('ext', '192.168.0.111', 53), 'fip 192.168.0.50');
      assert.equal(await h.ping('ext', '192.168.0.111'), true);
    });

    it('floating IP, outbound: the host leaves as its EIP, winning over the SNAT that covers its subnet', async () => {
      assert.equal(await h.tcp('fip', '192.168.0.50', 9000), 'ext 192.168.0.111');
    });

    it('DNAT: tcp and udp port forwards reach their backend with the client address intact', async () => {
      assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
      assert.equal(await h.tcp('ext', '192.168.0.112', 8887), undefined, 'an unforwarded port answers nothing');
    });

    it('SNAT: the underlay sees the EIP as the source', async () => {
      assert.equal(await h.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112');
      assert.equal(await h.udp('client', '192.168.0.50', 53), 'ext 192.168.0.112');
      assert.equal(await h.ping('client', '192.168.0.50'), true);
    });

    it('hairpin: a VPC host reaches its own VPC port forward and floating IP', async () => {
      assert.equal(await h.tcp('client', '192.168.0.112', 8888), 'web 192.168.0.112');
      assert.equal(await h.tcp('client', '192.168.0.111', 80), 'fip 192.168.0.112');
    });

    it('subnet routes: a second subnet of the VPC is reachable through a port forward and leaves by SNAT', async () => {
      assert.equal(await h.tcp('ext', '192.168.0.112', 2222), 'db 192.168.0.50');
      assert.equal(await h.tcp('db', '192.168.0.50', 9000), 'ext 192.168.0.112');
      assert.match(
        await h.inGateway('ngw', ['ip', 'route', 'show', 'table', '100']),
        /^10\.0\.2\.0\/24 via 10\.0\.1\.1 dev eth0 $/m,
      );
    });

    it("the VPC static route sends the VPC's traffic to the gateway's lanIp", async () => {
      assert.match(
        await h.inRouter('test-vpc-1', ['ip', 'route', 'show']),
        /^default via 10\.0\.1\.254 dev \S+ proto static $/m,
      );
    });

    if (dataplane === 'iptables')
      it('shows Kube-OVN chains in iptables-save', async () => {
        const save = await h.gatewaySave('ngw');
        for (const chain of [
          'DNAT_FILTER',
          'SNAT_FILTER',
          'EXCLUSIVE_DNAT',
          'EXCLUSIVE_SNAT',
          'SHARED_DNAT',
          'SHARED_SNAT',
        ])
          assert.match(save, new RegExp(`^:${chain} - `, 'm'));
        assert.match(save, /^-A PREROUTING -j DNAT_FILTER$/m);
        assert.match(save, /^-A SNAT_FILTER -j EXCLUSIVE_SNAT\n-A SNAT_FILTER -j SHARED_SNAT\n/m);
      });
    else
      it("holds the mappings in natops's nftables maps, and nothing in iptables", async () => {
        const table = await h.inGateway('ngw', ['nft', 'list', 'table', 'ip', 'natops']);
        assert.match(
          table,
          /map forwards \{[^}]*elements = \{[^}]*192\.168\.0\.112 \. tcp \. 8888 : 10\.0\.1\.10 \. 80/s,
        );
        assert.match(table, /map floating_dnat \{[^}]*elements = \{ 192\.168\.0\.111 : 10\.0\.1\.5 \}/s);
        assert.match(table, /ip saddr 10\.0\.2\.0\/24 oifname "net1" snat to 192\.168\.0\.112/);
        assert.doesNotMatch(await h.gatewaySave('ngw'), /-j (DNAT|SNAT|DNAT_FILTER|SNAT_FILTER)\b/);
      });

    it('re-applying the same manifests changes nothing: no command, byte-identical rules and routes', async () => {
      const save = await h.gatewayRules('ngw');
      const ip = await h.inGateway('ngw', ['sh', '-c', 'ip addr show dev net1; ip rule; ip route show table 100']);
      const results = await h.apply(seed);
      assert.deepEqual(
        results.map((r) => [r.name, r.action, r.commands.length]),
        [['ngw', 'unchanged', 0]],
      );
      assert.equal(await h.gatewayRules('ngw'), save);
      assert.equal(
        await h.inGateway('ngw', ['sh', '-c', 'ip addr show dev net1; ip rule; ip route show table 100']),
        ip,
      );
    });
  });
