// A gateway on an image whose userland is BusyBox's, as Kube-OVN's own (Alpine) image is:
// natops's exec path (in-pod timeout, stdin sentinel, the read script) works there as with GNU
// tools, and an image that lacks a tool fails at the first exec with the tool and the image named.
// Network mode kube-ovn on the cluster's own network, with a host veth of the test's own as the
// macvlan master (no lab): it can run beside the tests that make labs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Exec } from '@kubernetes/client-node';
import type { Exec as CommandExec } from '../../common/exec.ts';
import { IPTABLES_PROGRAMS, type GatewaySpec } from '../../dataplane/model.ts';
import { CONTAINER, deploymentName } from '../../runtime/kubernetes/objects.ts';
import { podExec } from '../../runtime/kubernetes/pod-exec.ts';
import type { KubernetesRuntime } from '../../runtime/kubernetes/runtime.ts';
import { GatewayImageError } from '../../runtime/kubernetes/userland.ts';
import { reconcileGateway } from '../../runtime/reconcile.ts';
import { KubeHarness, seedOnHostVeth } from '../helpers/k8s.ts';
import { seedSpec, set, TEST_BUSYBOX_IMAGE, TEST_WORKLOAD_POLICY } from '../helpers/manifests.ts';

/** an image on the node with sh, sed, timeout and sleep but no dataplane tools (.ci/run loads it for the chart) */
const TOOLLESS_IMAGE = process.env.NATOPS_REDIS_IMAGE ?? 'natops/redis:7-bookworm';

describe('a gateway on a BusyBox userland', () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  let k: KubeHarness;
  let runtime: KubernetesRuntime;
  let spec: GatewaySpec;
  /** the seed on the BusyBox image, on the test's own host veth, `change`d */
  const onBusybox = async (change?: Parameters<typeof seedSpec>[0]): Promise<GatewaySpec> => {
    const s = await seedSpec(change);
    return { ...s, workload: { ...s.workload, image: TEST_BUSYBOX_IMAGE, nic: veth!.spec.workload.nic } };
  };
  /** a command in the gateway's pod as the admin, through the same transport */
  const inPod = async (gateway: string): Promise<CommandExec> => {
    const pods = await k.core.listNamespacedPod({
      namespace: k.namespace,
      labelSelector: `app=${deploymentName(gateway)}`,
    });
    const pod = pods.items.find((p) => !p.metadata?.deletionTimestamp)!;
    return podExec(new Exec(k.admin), { namespace: k.namespace, name: pod.metadata!.name!, container: CONTAINER });
  };

  before(async () => {
    veth = await seedOnHostVeth('nb');
    k = await KubeHarness.create();
    runtime = k.runtime({
      mode: 'kube-ovn',
      policy: { ...TEST_WORKLOAD_POLICY, images: [...TEST_WORKLOAD_POLICY.images, TOOLLESS_IMAGE] },
    });
    spec = await onBusybox();
  });
  after(async () => {
    await k?.close();
    await veth?.remove();
  });

  it("the pod's sh, sed, timeout, sysctl and the rest are BusyBox's, ip and iptables the real ones", async () => {
    await runtime.ensureGateway(spec);
    const exec = await inPod(spec.name);
    // (as found on the PATH by the pod's sh; printf and true are its builtins)
    const tools = ['sh', 'sed', 'timeout', 'sysctl', 'sleep', 'cat', 'head', 'tr', 'ip', 'iptables-legacy-restore'];
    const r = await exec({
      argv: ['sh', '-c', 'for t in "$@"; do echo "$t $(readlink -f "$(command -v "$t")")"; done', 'sh', ...tools],
    });
    const where = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
    for (const t of tools.slice(0, 8)) assert.match(where[t] ?? '', /\/busybox$/, `${t}: ${where[t]}`);
    assert.equal(where.ip, '/usr/bin/ip');
    assert.equal(where['iptables-legacy-restore'], '/usr/sbin/xtables-legacy-multi');
    assert.match((await exec({ argv: ['sed', '--version'] })).stdout, /not GNU sed/);
    assert.match((await exec({ argv: ['sh', '-c', 'timeout --help 2>&1; true'] })).stdout, /BusyBox v1\.\d+/);
  });

  it("applies the seed's rules through pods/exec and reads them back unchanged", async () => {
    // Kube-OVN's CNI would give eth0 the lanIp; the cluster's network does not, and the VPC's
    // routes go via the subnet's gateway on eth0
    await (await inPod(spec.name))({
      argv: ['ip', 'addr', 'add', `${spec.lanIp}/${spec.subnet.cidr.split('/')[1]}`, 'dev', 'eth0'],
    });
    const first = await reconcileGateway(runtime, spec);
    assert.equal(first.action, 'update');
    assert.ok(
      first.commands.some((c) => c.stdin !== undefined),
      'the rules went in as one iptables-restore through the sentinel pipe',
    );
    const again = await reconcileGateway(runtime, spec);
    assert.deepEqual([again.action, again.commands.length], ['unchanged', 0]);

    const live = await (await runtime.gateway(spec.name))!.readState();
    assert.equal(live.iptables, 'legacy');
    assert.ok(
      live.nat.SHARED_DNAT?.some((r) => /--dport 8888 .*--to-destination 10\.0\.1\.10:80/.test(r)),
      JSON.stringify(live.nat.SHARED_DNAT),
    );
    assert.deepEqual(live.sysctls, { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.net1.promote_secondaries': '1' });
    assert.deepEqual(live.addresses.map((a) => a.cidr).sort(), ['192.168.0.111/24', '192.168.0.112/24']);
    assert.ok(live.routes.some((r) => r.dst === 'default' && r.via === '192.168.0.254'));
    const saved = await (await inPod(spec.name))({ argv: [IPTABLES_PROGRAMS.legacy.save, '-t', 'nat'] });
    assert.match(saved.stdout, /^-A SHARED_DNAT .*--dport 8888 /m);
  });

  it('applies a change: a port forward moved to another port, the old one gone', async () => {
    const changed = await onBusybox((seed) =>
      set(seed.gateway, 'spec.dnatRules', [
        { eip: '192.168.0.112', externalPort: '9999', protocol: 'tcp', internalIp: '10.0.1.10', internalPort: '80' },
      ]),
    );
    const result = await reconcileGateway(runtime, changed);
    assert.equal(result.action, 'update');
    assert.ok(
      result.commands.some((c) => c.argv[0] === 'conntrack'),
      "the old mapping's conntrack entries cleaned",
    );
    const nat = (await (await runtime.gateway(spec.name))!.readState(['nat'])).nat;
    assert.ok(nat.SHARED_DNAT?.some((r) => /--dport 9999 /.test(r)));
    assert.ok(!nat.SHARED_DNAT?.some((r) => /--dport 8888 /.test(r)));
    assert.equal((await reconcileGateway(runtime, changed)).action, 'unchanged');
    assert.equal(await runtime.removeGateway(spec.name), true);
  });

  it('an image without the dataplane tools fails at the first exec, naming them and the image', async () => {
    const toolless = { ...spec, name: 'tgw', workload: { ...spec.workload, image: TOOLLESS_IMAGE } };
    await assert.rejects(runtime.ensureGateway(toolless), (e: unknown) => {
      assert.ok(e instanceof GatewayImageError, String(e));
      assert.equal(e.image, TOOLLESS_IMAGE);
      for (const tool of ['ip', 'conntrack', 'arping', 'iptables'] as const) assert.ok(e.tools.includes(tool), tool);
      assert.ok(!e.tools.includes('sed') && !e.tools.includes('timeout'), 'its sed and timeout are there');
      assert.match(e.message, new RegExp(`^gateway image ${TOOLLESS_IMAGE} \\(pod ${k.namespace}/vpc-nat-gw-tgw-`));
      assert.match(e.message, /no ip \(iproute2\)/);
      assert.equal(e.retryable, false);
      return true;
    });
    assert.equal(await runtime.removeGateway('tgw'), true);
  });
});
