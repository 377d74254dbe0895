// The GitOps loop with gateways on Kubernetes: git push -> webhook -> planner -> handlers ->
// Deployment -> pod -> pods/exec -> real packets from lab hosts. natops runs with the shipped
// Role's ServiceAccount (its kubeconfig), network mode multus, the lab providing the networks.
// The gateway runs the BusyBox-userland image (sh, sed, timeout and sysctl BusyBox's, as in
// Kube-OVN's Alpine image); the other Kubernetes packet tests run the Debian one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { deploymentName, EXTERNAL_NETWORK } from '../../runtime/kubernetes/objects.ts';
import { gatewayTarget } from '../../state/records.ts';
import { forCluster, clusterPipeline, KubeHarness } from '../helpers/k8s.ts';
import { get, set, subnet, TEST_BUSYBOX_IMAGE, unset, type Obj, type SeedObjects } from '../helpers/manifests.ts';
import type { PipelineHarness } from '../helpers/pipeline.ts';
import { scenarioManifests } from '../helpers/scenario.ts';
import { natops } from '../helpers/cli.ts';

/** A second VPC whose subnet has the seed's CIDR: gateway ngw3 at the same lanIp, its own EIP. */
const sameCidrVpc = (): Obj[] => [
  {
    apiVersion: 'kubeovn.io/v1',
    kind: 'Vpc',
    metadata: { name: 'test-vpc-3' },
    spec: { staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: '10.0.1.254', policy: 'policyDst' }] },
  },
  subnet('sn-c', 'test-vpc-3', '10.0.1.0/24', '10.0.1.1'),
  {
    apiVersion: 'kubeovn.io/v1',
    kind: 'VpcNatGateway',
    metadata: { name: 'ngw3' },
    spec: {
      vpc: 'test-vpc-3',
      subnet: 'sn-c',
      lanIp: '10.0.1.254',
      eips: [{ eipCIDR: '192.168.0.130/24', gateway: '192.168.0.254' }],
      dnatRules: [
        { eip: '192.168.0.130', externalPort: 8000, protocol: 'tcp', internalIp: '10.0.1.10', internalPort: 80 },
      ],
      snatRules: [{ eip: '192.168.0.130', internalCIDR: '10.0.1.0/24' }],
    },
  },
];

describe('GitOps loop on Kubernetes (real cluster, Redis, git, lab hosts)', () => {
  let k: KubeHarness;
  let p: PipelineHarness;
  let seed: SeedObjects;
  const deployment = (gw: string) =>
    k.admin.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: deploymentName(gw), namespace: k.namespace });
  const pushSettled = async (message: string) => {
    const sha = await p.push(seed, message);
    return { sha, statuses: await p.settled(sha, 180_000) };
  };

  before(async () => {
    k = await KubeHarness.create();
    p = await clusterPipeline(k);
    seed = forCluster(await scenarioManifests());
    set(seed.config, 'data.image', TEST_BUSYBOX_IMAGE);
  });
  after(async () => {
    await p?.cleanup();
    await k?.close();
  });

  it('a push makes the gateway a pod that answers: floating IP both ways, port forwards, SNAT, hairpin', async () => {
    const { sha, statuses } = await pushSettled('seed');
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.match(statuses.get('natops/ngw')!.description, /live: 2 EIPs, 1 floating IP, 3 port forwards, 2 SNATs/);
    assert.equal((await deployment('ngw')).status?.readyReplicas, 1);
    const lab = p.lab;
    for (const [name, net, ip] of [
      ['fip', 'sn', '10.0.1.5/24'],
      ['web', 'sn', '10.0.1.10/24'],
      ['client', 'sn', '10.0.1.20/24'],
      ['db', 'sn2', '10.0.2.10/24'],
      ['ext', 'external', '192.168.0.50/24'],
    ] as const) {
      await lab.host(name, net, ip);
    }
    await Promise.all(['fip', 'web', 'client', 'db', 'ext'].map((h) => lab.serve(h, { tcp: [80, 9000], udp: [53] })));
    assert.equal(await lab.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50', 'floating IP inbound');
    assert.equal(await lab.tcp('fip', '192.168.0.50', 9000), 'ext 192.168.0.111', 'floating IP outbound');
    assert.equal(await lab.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', 'port forward');
    assert.equal(await lab.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50', 'udp port forward');
    assert.equal(await lab.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112', 'SNAT');
    assert.equal(await lab.tcp('client', '192.168.0.112', 8888), 'web 192.168.0.112', 'hairpin');
    assert.equal(await lab.tcp('ext', '192.168.0.112', 2222), 'db 192.168.0.50', 'second subnet');
    const cli = await natops(['status', sha, '--redis', p.redis.url]);
    assert.match(cli.stdout, /\n {2}ngw\s+True\s+Applied\s/);
  });

  it('an update moves a port and removes the floating IP; the Deployment is left as it is', async () => {
    const before = (await deployment('ngw')).metadata?.resourceVersion;
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8080);
    set(seed.gateway, 'spec.floatingIpRules', []);
    const { statuses } = await pushSettled('move a port, drop the floating IP');
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8080), 'web 192.168.0.50');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8888), undefined, 'the old port is closed');
    assert.equal(await p.lab.tcp('ext', '192.168.0.111', 80), undefined, 'the floating IP is gone');
    assert.equal(
      (await deployment('ngw')).metadata?.resourceVersion,
      before,
      'a rule change does not touch the workload',
    );
  });

  it('an invalid push changes nothing: the status names the field, traffic and Deployment stay', async () => {
    const before = (await deployment('ngw')).metadata?.resourceVersion;
    const good = structuredClone(seed);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 70000);
    const { statuses } = await pushSettled('an invalid port');
    seed = good;
    assert.equal(statuses.get('natops/ngw')?.state, 'failure');
    assert.match(statuses.get('natops/ngw')!.description, /spec\.dnatRules\[0\]\.externalPort/);
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8080), 'web 192.168.0.50');
    assert.equal((await deployment('ngw')).metadata?.resourceVersion, before);
  });

  it('a pod deleted by hand: traffic comes back without a push, recorded as a repair', async () => {
    const pods = await k.core.listNamespacedPod({
      namespace: k.namespace,
      labelSelector: `app=${deploymentName('ngw')}`,
    });
    const old = pods.items[0]!.metadata!.name!;
    await k.core.deleteNamespacedPod({ name: old, namespace: k.namespace });
    const rec = await p.until(
      'a repair of ngw to complete',
      async () => {
        const r = await p.running!.records.get(gatewayTarget('ngw'));
        return r?.condition.cause === 'repair' && r.condition.ready === 'True' ? r : undefined;
      },
      120_000,
    );
    assert.equal(rec.condition.reason, 'Applied');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8080), 'web 192.168.0.50');
    assert.ok(
      p.logs.some((l) => /the pod of gateway ngw was replaced/.test(l)),
      p.logs.slice(-20).join('\n'),
    );
    const cli = await natops(['status', '--redis', p.redis.url]);
    assert.match(cli.stdout, /\n {2}ngw\s+True\s+Applied\s.*repair/);
  });

  it('a pod replaced again while its repair runs is repaired too (the resync waits for the repair, then looks again)', async () => {
    // the pod that is not on its way out (the one deleted last may still be listed for a while)
    const podOf = (what: string) =>
      p.until(
        what,
        async () =>
          (
            await k.core.listNamespacedPod({ namespace: k.namespace, labelSelector: `app=${deploymentName('ngw')}` })
          ).items.find((x) => !x.metadata?.deletionTimestamp)?.metadata?.name,
        60_000,
        20,
      );
    await k.core.deleteNamespacedPod({ name: await podOf('the first pod'), namespace: k.namespace });
    const deletedAt = Date.now();
    // The second pod goes once the repair has initialised it and before the repair's last job:
    // the jobs after that point run on the third pod, which never got the first ones. Only jobs
    // finished after the deletion count: the record may say Repairing before the new pod exists,
    // with the last job of the previous repair as its last attempt.
    await p.until(
      'the repair to be half done',
      async () => {
        const r = await p.running!.records.get(gatewayTarget('ngw'));
        const last = r?.lastAttempted;
        return (
          r?.condition.reason === 'Repairing' &&
          last !== undefined &&
          last.at >= deletedAt &&
          ['gateway-init', 'eip', 'subnet-route'].includes(last.kind)
        );
      },
      120_000,
      20,
    );
    const second = await podOf('the second pod');
    await k.core.deleteNamespacedPod({ name: second, namespace: k.namespace });
    // the second pod answers on for a few seconds after its deletion: only the third one counts
    await p.until(
      'the second pod to be gone',
      async () => {
        const pods = await k.core.listNamespacedPod({
          namespace: k.namespace,
          labelSelector: `app=${deploymentName('ngw')}`,
        });
        return !pods.items.some((x) => x.metadata?.name === second);
      },
      60_000,
    );
    await p.until(
      'the port forward to answer through the third pod',
      async () => (await p.lab.tcp('ext', '192.168.0.112', 8080)) === 'web 192.168.0.50',
      120_000,
    );
    // whole again: init, EIPs and rules, not only the jobs that ran after the pod went
    const live = await p.until(
      'the third pod to hold the whole gateway',
      async () => {
        const handle = await k.runtime().gateway('ngw');
        const state = await handle?.readState();
        // the policy rules and the subnet's route in table 100 (which SNAT's replies take back to
        // the subnet) come with the repair's last jobs: waited for, not read once
        return state?.net1Up &&
          state.addresses.length === 2 &&
          state.nat.SHARED_DNAT?.length &&
          state.nat.SHARED_SNAT?.length &&
          state.rules.length >= 2 &&
          state.routes.some((r) => r.dst === '10.0.1.0/24' && r.dev === 'eth0')
          ? state
          : undefined;
      },
      120_000,
    );
    assert.ok(live.rules.length >= 2);
    const rec = await p.until(
      'ngw to settle',
      async () => {
        const r = await p.running!.records.get(gatewayTarget('ngw'));
        return r?.condition.ready === 'True' ? r : undefined;
      },
      120_000,
    );
    assert.equal(rec.condition.cause, 'repair');
    // SNAT too, once the VPC router's ARP entry for lanIp points at this pod: natops announces
    // EIPs on net1 but not lanIp on eth0, so a replaced pod's new MAC is learned only when the
    // router's entry for the old one expires (15-45 s; seen here: 23-36 s). A known issue
    // (docs/kubernetes.md, "Known issues"); with Kube-OVN the port keeps its MAC.
    await p.until(
      'SNAT through the third pod',
      async () => (await p.lab.tcp('client', '192.168.0.50', 9000)) === 'ext 192.168.0.112',
      90_000,
    );
  });

  it('a second VPC with the same CIDR gets a gateway pod of its own at the same lanIp', async () => {
    seed.extra.push(...sameCidrVpc());
    const { statuses } = await pushSettled('a second VPC with the same CIDR');
    assert.equal(statuses.get('natops/ngw3')?.state, 'success', JSON.stringify([...statuses.values()]));
    await p.lab.host('web3', 'sn-c', '10.0.1.10/24');
    await p.lab.serve('web3', { tcp: [80, 9000] });
    assert.equal(await p.lab.tcp('ext', '192.168.0.130', 8000), 'web3 192.168.0.50');
    assert.equal(await p.lab.tcp('web3', '192.168.0.50', 9000), 'ext 192.168.0.130');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8080), 'web 192.168.0.50', 'the first VPC is unaffected');
  });

  it("enable-vpc-nat-gw: 'false' leaves the gateways alone and says why", async () => {
    const before = (await deployment('ngw')).metadata?.resourceVersion;
    const enabled = get(seed.config, 'data.enable-vpc-nat-gw');
    set(seed.config, 'data.enable-vpc-nat-gw', 'false');
    unset(seed.gateway, 'spec.snatRules.0');
    const { statuses } = await pushSettled('disable');
    set(seed.config, 'data.enable-vpc-nat-gw', enabled);
    assert.match(statuses.get('natops')!.description, /enable-vpc-nat-gw is 'false'/);
    assert.equal((await deployment('ngw')).metadata?.resourceVersion, before);
    assert.equal(
      await p.lab.tcp('client', '192.168.0.50', 9000),
      'ext 192.168.0.112',
      'the SNAT removed in Git is still live',
    );
  });

  it('a gateway removed from Git loses its Deployment; the external network goes with the last one', async () => {
    seed.extra = seed.extra.filter((o) => get(o, 'kind') !== 'VpcNatGateway');
    const gateway = seed.gateway;
    seed.gateway = { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: 'spare' } };
    const { statuses } = await pushSettled('remove the gateways');
    seed.gateway = gateway;
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    await assert.rejects(deployment('ngw'), (e: { code?: number }) => e.code === 404);
    await assert.rejects(deployment('ngw3'), (e: { code?: number }) => e.code === 404);
    await assert.rejects(
      k.admin.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        plural: 'network-attachment-definitions',
        namespace: k.namespace,
        name: EXTERNAL_NETWORK,
      }),
      (e: { code?: number }) => e.code === 404,
    );
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8080), undefined);
  });
});
