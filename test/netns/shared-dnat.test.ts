// Share DNAT with real packets: one port of an EIP spread over three backend hosts, written in
// Kube-OVN's current form (IptablesDnatRule type share). Each backend answers; a backend taken out
// gets no new connection and loses its established ones, while the others keep theirs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DATAPLANES, type Dataplane } from '../../dataplane/model.ts';
import { seedList, toCurrentForm } from '../helpers/current-form.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, type Obj, type SeedObjects } from '../helpers/manifests.ts';
import { onDataplane } from '../helpers/scenario.ts';

const BACKENDS = [
  ['web1', '10.0.1.31'],
  ['web2', '10.0.1.32'],
  ['web3', '10.0.1.33'],
] as const;

const share = (name: string, internalIp: string): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind: 'IptablesDnatRule',
  metadata: { name },
  spec: { eip: 'ngw-eip-1', externalPort: '8080', protocol: 'tcp', internalIp, internalPort: '80', type: 'share' },
});

/** The seed in the current form, plus `backends` sharing tcp 192.168.0.112:8080. */
async function manifests(backends: readonly (readonly [string, string])[], dataplane: Dataplane): Promise<SeedObjects> {
  const seed = await seedObjects();
  const nic = (seed.config.data as Record<string, string>).nic;
  const [config, vpc, subnet, gateway, ...extra] = toCurrentForm(seedList(seed));
  // the lab's underlay is the ConfigMap's nic, as in the 1.7 form
  (config!.data as Record<string, string>).nic = nic!;
  extra.push(...backends.map(([name, ip]) => share(`ngw-${name}`, ip)));
  return onDataplane({ config: config!, vpc: vpc!, subnet: subnet!, gateway: gateway!, extra }, dataplane);
}

for (const dataplane of DATAPLANES)
  describe(`share DNAT with real packets, on ${dataplane}`, () => {
    let h: LabHarness;
    before(async () => {
      h = await LabHarness.create();
      const [result] = await h.apply(await manifests(BACKENDS, dataplane));
      assert.equal(result!.action, 'create');
      await h.host('ext', 'external', '192.168.0.50/24');
      for (const [name, ip] of BACKENDS) await h.host(name, 'sn', `${ip}/24`);
      await Promise.all(BACKENDS.map(([name]) => h.serve(name, { tcp: [80] })));
    });
    after(async () => {
      await h?.cleanup();
    });

    /** Who answers each of `n` new connections to the shared port. */
    async function answers(n: number): Promise<Map<string, number>> {
      const seen = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const line = (await h.tcp('ext', '192.168.0.112', 8080)) ?? 'nobody';
        seen.set(line, (seen.get(line) ?? 0) + 1);
      }
      return seen;
    }

    it('every backend answers new connections; the gateway reads back as applied', async () => {
      const seen = await answers(12);
      for (const [name] of BACKENDS)
        assert.ok((seen.get(`${name} 192.168.0.50`) ?? 0) >= 1, `${name} answered: ${JSON.stringify([...seen])}`);
      assert.equal(seen.get('nobody'), undefined);
      assert.match(
        await h.gatewayRules('ngw'),
        dataplane === 'iptables'
          ? /--dport 8080 -m statistic --mode nth --every 3 --packet 0 -j DNAT/
          : /tcp dport 8080 numgen inc mod 3 0 dnat to 10\.0\.1\.31:80/,
      );
      // read back, the nat table is what was compiled: applying again changes nothing
      const [again] = await h.apply(await manifests(BACKENDS, dataplane));
      assert.equal(again!.action, 'unchanged');
    });

    it('a backend taken out: its flows end and it gets no new connection; the others keep theirs', async () => {
      // three new connections in a row go to the three backends in turn
      const flows = await Promise.all([0, 1, 2].map(() => h.openFlow('ext', '192.168.0.112', 8080)));
      const byBackend = new Map(flows.map((f) => [f.greeting?.split(' ')[0], f]));
      assert.deepEqual([...byBackend.keys()].sort(), ['web1', 'web2', 'web3']);
      for (const [name, flow] of byBackend) assert.equal(await flow.send(), `${name} 192.168.0.50`);

      const [result] = await h.apply(
        await manifests(
          BACKENDS.filter(([name]) => name !== 'web2'),
          dataplane,
        ),
      );
      assert.equal(result!.action, 'update');
      assert.equal(await byBackend.get('web1')!.send(), 'web1 192.168.0.50', "web1's flow is left alone");
      assert.equal(await byBackend.get('web3')!.send(), 'web3 192.168.0.50', "web3's flow is left alone");
      assert.notEqual(await byBackend.get('web2')!.send(), 'web2 192.168.0.50', "web2's flow no longer reaches it");

      const seen = await answers(12);
      assert.equal(seen.get('web2 192.168.0.50'), undefined, `web2 got new connections: ${JSON.stringify([...seen])}`);
      assert.ok((seen.get('web1 192.168.0.50') ?? 0) >= 1);
      assert.ok((seen.get('web3 192.168.0.50') ?? 0) >= 1);
      assert.equal(seen.get('nobody'), undefined);
      assert.equal(await byBackend.get('web1')!.send(), 'web1 192.168.0.50', 'still, after new connections');
    });
  });
