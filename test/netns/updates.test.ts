// Updates and deletes of every kind of mapping, in order, on one lab and on each data plane: the old mapping stops
// (established flows included, through their conntrack entries) and the new one works.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DATAPLANES } from '../../dataplane/model.ts';
import { ManifestValidationError } from '../../gitops/manifests/issues.ts';
import { namespaceExists } from '../../runtime/netns/netns.ts';
import type { LabHarness } from '../helpers/lab-harness.ts';
import { get, set, unset, type SeedObjects } from '../helpers/manifests.ts';
import { useScenario } from '../helpers/scenario.ts';

for (const dataplane of DATAPLANES)
  describe(`updates and deletes with real packets, on ${dataplane}`, () => {
    let h: LabHarness;
    let seed: SeedObjects;

    useScenario((harness, manifests) => {
      h = harness;
      seed = manifests;
    }, dataplane);

    it('DNAT update: the old port stops, an established flow through it stops, the new port works', async () => {
      const flow = await h.openFlow('ext', '192.168.0.112', 8888);
      assert.equal(flow.greeting, 'web 192.168.0.50');
      assert.equal(await flow.send(), 'web 192.168.0.50', 'the flow works before the change');
      set(seed.gateway, 'spec.dnatRules.0.externalPort', 8889);
      const [result] = await h.apply(seed);
      assert.equal(result!.action, 'update');
      assert.equal(await h.tcp('ext', '192.168.0.112', 8889), 'web 192.168.0.50');
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50', 'an unchanged forward keeps working');
      assert.equal(await flow.send(), undefined, 'the established flow no longer reaches the old backend');
      assert.equal(await h.tcp('ext', '192.168.0.112', 8888), undefined);
    });

    it('DNAT update of the backend: the same port now reaches another host', async () => {
      set(seed.gateway, 'spec.dnatRules.0.internalIp', '10.0.1.20');
      await h.apply(seed);
      assert.equal(await h.tcp('ext', '192.168.0.112', 8889), 'client 192.168.0.50');
    });

    it('DNAT delete: the port stops', async () => {
      unset(seed.gateway, 'spec.dnatRules.0');
      await h.apply(seed);
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
      assert.equal(await h.tcp('ext', '192.168.0.112', 8889), undefined);
    });

    it('floating IP update: the EIP moves to another host; the old host and its established flow lose it', async () => {
      const flow = await h.openFlow('ext', '192.168.0.111', 80);
      assert.equal(flow.greeting, 'fip 192.168.0.50');
      set(seed.gateway, 'spec.floatingIpRules.0.internalIp', '10.0.1.6');
      await h.apply(seed);
      assert.equal(await h.tcp('ext', '192.168.0.111', 80), 'fip2 192.168.0.50');
      assert.equal(await h.tcp('fip2', '192.168.0.50', 9000), 'ext 192.168.0.111');
      assert.equal(await h.tcp('fip', '192.168.0.50', 9000), 'ext 192.168.0.112', 'the old host falls back to SNAT');
      assert.equal(await flow.send(), undefined, 'the established flow no longer reaches the old host');
    });

    it('floating IP delete: the EIP no longer reaches the host, which leaves by SNAT', async () => {
      set(seed.gateway, 'spec.floatingIpRules', []);
      await h.apply(seed);
      assert.equal(await h.tcp('fip2', '192.168.0.50', 9000), 'ext 192.168.0.112');
      assert.equal(await h.ping('ext', '192.168.0.111'), true, 'the EIP itself still answers');
      assert.equal(await h.tcp('ext', '192.168.0.111', 80), undefined);
    });

    it('SNAT update: new connections leave as the new EIP, an established one does not survive on the old', async () => {
      const flow = await h.openFlow('client', '192.168.0.50', 9000);
      assert.equal(flow.greeting, 'ext 192.168.0.112');
      set(seed.gateway, 'spec.snatRules.0.eip', '192.168.0.111');
      await h.apply(seed);
      assert.equal(await h.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.111');
      assert.equal(await h.tcp('db', '192.168.0.50', 9000), 'ext 192.168.0.112', 'the other subnet keeps its SNAT');
      assert.equal(await flow.send(), undefined);
    });

    it('VPC static route: without it the VPC cannot get out, with it again it can', async () => {
      const routes = get(seed.vpc, 'spec.staticRoutes');
      set(seed.vpc, 'spec.staticRoutes', []);
      await h.apply(seed);
      assert.equal(await h.tcp('client', '192.168.0.50', 9000), undefined);
      set(seed.vpc, 'spec.staticRoutes', routes);
      await h.apply(seed);
      assert.equal(await h.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.111');
    });

    it('SNAT delete: the subnet no longer gets out', async () => {
      unset(seed.gateway, 'spec.snatRules.0');
      await h.apply(seed);
      assert.equal(await h.tcp('db', '192.168.0.50', 9000), 'ext 192.168.0.112');
      assert.equal(await h.tcp('client', '192.168.0.50', 9000), undefined);
    });

    it('an invalid update is refused before anything changes, and the live rules keep working', async () => {
      const save = await h.gatewayRules('ngw');
      const bad = structuredClone(seed);
      set(bad.gateway, 'spec.dnatRules.0.externalPort', 70000);
      set(bad.gateway, 'spec.snatRules', []);
      await assert.rejects(
        h.apply(bad),
        (e: unknown) => e instanceof ManifestValidationError && /spec\.dnatRules\[0\]\.externalPort/.test(e.message),
      );
      assert.equal(await h.gatewayRules('ngw'), save);
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
      assert.equal(await h.tcp('db', '192.168.0.50', 9000), 'ext 192.168.0.112');
    });

    it('subnet removed from the VPC: its route leaves table 100', async () => {
      // The forward and SNAT into sn2 must go with it, or validation refuses the change.
      set(seed.gateway, 'spec.dnatRules', [get(seed.gateway, 'spec.dnatRules.0')]);
      set(seed.gateway, 'spec.snatRules', []);
      seed.extra = [];
      await h.apply(seed);
      const table = await h.inGateway('ngw', ['ip', 'route', 'show', 'table', '100']);
      assert.doesNotMatch(table, /10\.0\.2\.0\/24/);
      assert.match(table, /10\.0\.1\.0\/24 via 10\.0\.1\.1/);
      assert.doesNotMatch(
        await h.inRouter('test-vpc-1', ['ip', '-4', 'addr']),
        /10\.0\.2\.1\//,
        'the router lost its port on sn2',
      );
      assert.equal(await h.ping('client', '10.0.2.10'), false);
    });

    it('EIP delete: the address leaves net1 and stops answering', async () => {
      assert.equal(await h.ping('ext', '192.168.0.111'), true);
      unset(seed.gateway, 'spec.eips.0');
      await h.apply(seed);
      assert.equal(await h.ping('ext', '192.168.0.111'), false);
      assert.doesNotMatch(await h.inGateway('ngw', ['ip', 'addr', 'show', 'dev', 'net1']), /192\.168\.0\.111/);
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
    });

    it('a gateway rebuilt after its namespace was lost comes back whole', async () => {
      await h.lab.removeNamespace(h.lab.names.gateway('ngw'));
      const [result] = await h.apply(seed);
      assert.equal(result!.action, 'create');
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
    });

    it('a gateway removed from the manifests is removed', async () => {
      const gateway = seed.gateway;
      seed.gateway = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'ovn-vpc-nat-gw-config' },
        data: get(seed.config, 'data'),
      };
      seed.config = { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: 'spare' } };
      const results = await h.apply(seed);
      seed.gateway = gateway;
      assert.deepEqual(
        results.map((r) => `${r.name}:${r.action}`),
        ['ngw:delete'],
      );
      assert.equal(await namespaceExists(h.lab.names.gateway('ngw')), false);
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), undefined);
    });
  });
