// The Kubernetes runtime on a real cluster (shared/k8s), under the ServiceAccount and Role it
// ships with: the gateway is a Deployment in Kube-OVN's form, attached with Multus to the lab's
// networks, and every change and read-back goes through pods/exec. Real packets from lab hosts.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CustomObjectsApi, Exec } from '@kubernetes/client-node';
import { reconcileAll } from '../../runtime/reconcile.ts';
import { CONTAINER, deploymentName, EXTERNAL_NETWORK } from '../../runtime/kubernetes/objects.ts';
import { podExec } from '../../runtime/kubernetes/pod-exec.ts';
import { CommandError, CommandTimeoutError } from '../../common/exec.ts';
import { IPTABLES_PROGRAMS } from '../../dataplane/model.ts';
import type { KubernetesRuntime } from '../../runtime/kubernetes/runtime.ts';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { natops } from '../helpers/cli.ts';
import { CLUSTER_READ, forCluster, GATEWAY_IMAGE, KubeHarness } from '../helpers/k8s.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { writeManifestDir, type SeedObjects } from '../helpers/manifests.ts';
import { onDataplane, scenarioManifests, startScenario } from '../helpers/scenario.ts';

const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' };

describe('Kubernetes runtime: the seed as a pod', () => {
  let h: LabHarness;
  let k: KubeHarness;
  let runtime: KubernetesRuntime;
  let seed: SeedObjects;
  const apps = () => k.admin.makeApiClient(AppsV1Api);
  const deployment = () => apps().readNamespacedDeployment({ name: deploymentName('ngw'), namespace: k.namespace });

  before(async () => {
    h = await LabHarness.create();
    k = await KubeHarness.create();
    runtime = k.runtime();
    seed = forCluster(await scenarioManifests());
    await startScenario(h, seed, runtime);
  });
  after(async () => {
    await k?.close();
    await h?.cleanup();
  });

  it("runs the gateway as Kube-OVN 1.7's Deployment", async () => {
    const d = await deployment();
    assert.equal(d.spec?.replicas, 1);
    assert.equal(d.spec?.strategy?.type, 'Recreate');
    const labels = {
      app: 'vpc-nat-gw-ngw',
      'ovn.kubernetes.io/vpc-nat-gw': 'true',
      'app.kubernetes.io/managed-by': 'natops',
      'natops.io/instance': 'natops',
      'natops.io/gateway': 'ngw',
    };
    assert.deepEqual(d.spec?.selector.matchLabels, labels);
    const t = d.spec!.template;
    assert.deepEqual(t.metadata?.labels, labels);
    assert.equal(t.spec?.automountServiceAccountToken, false, 'no token in a privileged pod');
    const { 'natops.io/attachments': attachments, ...annotations } = t.metadata?.annotations ?? {};
    assert.match(attachments ?? '', /^[0-9a-f]{16}$/, 'a hash of the attachments rolls the pod when one changes');
    assert.deepEqual(annotations, {
      'ovn.kubernetes.io/vpc_nat_gw': 'ngw',
      'ovn.kubernetes.io/logical_switch': 'sn',
      'ovn.kubernetes.io/ip_address': '10.0.1.254',
      'k8s.v1.cni.cncf.io/networks': `${k.namespace}/${EXTERNAL_NETWORK}`,
      'v1.multus-cni.io/default-network': `${k.namespace}/vpc-nat-gw-ngw-lan`,
    });
    const c = t.spec!.containers[0]!;
    assert.equal(c.name, 'vpc-nat-gw');
    assert.equal(c.image, GATEWAY_IMAGE);
    assert.equal(c.securityContext?.privileged, true);
    const nad = (await k.admin
      .makeApiClient(CustomObjectsApi)
      .getNamespacedCustomObject({ ...NAD, namespace: k.namespace, name: EXTERNAL_NETWORK })) as {
      spec: { config: string };
    };
    assert.deepEqual(JSON.parse(nad.spec.config), {
      cniVersion: '0.3.1',
      type: 'macvlan',
      master: (seed.config as { data: { nic: string } }).data.nic,
      mode: 'bridge',
    });
  });

  it('floating IP, port forwards, SNAT and hairpin answer real packets through the pod', async () => {
    assert.equal(await h.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50');
    assert.equal(await h.udp('ext', '192.168.0.111', 53), 'fip 192.168.0.50');
    assert.equal(await h.tcp('fip', '192.168.0.50', 9000), 'ext 192.168.0.111');
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
    assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
    assert.equal(await h.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112');
    assert.equal(await h.tcp('client', '192.168.0.112', 8888), 'web 192.168.0.112');
    assert.equal(await h.tcp('ext', '192.168.0.112', 2222), 'db 192.168.0.50');
  });

  it('applying the same manifests again runs no command and writes nothing (the resourceVersions stay)', async () => {
    const before = (await deployment()).metadata?.resourceVersion;
    const results = await h.apply(seed, runtime);
    assert.deepEqual(
      results.map((r) => [r.name, r.action, r.commands.length]),
      [['ngw', 'unchanged', 0]],
    );
    assert.equal((await deployment()).metadata?.resourceVersion, before);
  });

  it('natops plan --against live reads the pod through the runtime apply uses: no change', async () => {
    const dir = await writeManifestDir(seed);
    try {
      const r = await natops(
        ['plan', dir, '--against', 'live', '--runtime', 'kubernetes', '--namespace', k.namespace],
        {
          env: { NATOPS_KUBECONFIG: join(k.dir, 'kubeconfig') },
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^gateway ngw: unchanged\n {2}no changes$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the pod's rules are in iptables-legacy, as in Kube-OVN's gateway image on this kernel, and nothing of natops is in nf_tables", async () => {
    const pods = await k.core.listNamespacedPod({
      namespace: k.namespace,
      labelSelector: `app=${deploymentName('ngw')}`,
    });
    const exec = podExec(new Exec(k.runtimeConfig), {
      namespace: k.namespace,
      name: pods.items.find((x) => !x.metadata?.deletionTimestamp)!.metadata!.name!,
      container: CONTAINER,
    });
    assert.match(
      (await exec({ argv: [IPTABLES_PROGRAMS.legacy.save, '-t', 'nat'] })).stdout,
      /^-A SHARED_DNAT .*--dport 8888 /m,
    );
    assert.doesNotMatch((await exec({ argv: [IPTABLES_PROGRAMS.nft.save, '-t', 'nat'] })).stdout, /DNAT_FILTER/);
  });

  it('moved to nftables in the pod and back: no new connection refused, every mapping answers on each', async () => {
    const podExecIn = async () => {
      const pods = await k.core.listNamespacedPod({
        namespace: k.namespace,
        labelSelector: `app=${deploymentName('ngw')}`,
      });
      const pod = pods.items.find((x) => !x.metadata?.deletionTimestamp)!;
      return {
        uid: pod.metadata!.uid,
        exec: podExec(new Exec(k.runtimeConfig), {
          namespace: k.namespace,
          name: pod.metadata!.name!,
          container: CONTAINER,
        }),
      };
    };
    const { uid } = await podExecIn();
    for (const dataplane of ['nftables', 'iptables'] as const) {
      const loop = await h.connectLoop('ext', '192.168.0.112', 8888, 5);
      const [result] = await h.apply(onDataplane(seed, dataplane), runtime);
      const connections = await loop.stop();
      assert.equal(result!.changes.move, dataplane);
      assert.equal(connections.failed, 0, `refused or lost: ${JSON.stringify(connections.reasons)}`);
      for (const [client, ip, port, answer] of [
        ['ext', '192.168.0.111', 80, 'fip 192.168.0.50'],
        ['fip', '192.168.0.50', 9000, 'ext 192.168.0.111'],
        ['ext', '192.168.0.112', 8888, 'web 192.168.0.50'],
        ['client', '192.168.0.50', 9000, 'ext 192.168.0.112'],
        ['client', '192.168.0.112', 8888, 'web 192.168.0.112'],
        ['ext', '192.168.0.112', 2222, 'db 192.168.0.50'],
      ] as const)
        assert.equal(await h.tcp(client, ip, port), answer, `${dataplane}: ${client} -> ${ip}:${port}`);
      assert.equal(await h.udp('ext', '192.168.0.112', 5353), 'web 192.168.0.50');
      const { uid: now, exec } = await podExecIn();
      assert.equal(now, uid, 'the same pod: a move is no restart');
      const table = await exec({ argv: ['nft', 'list', 'table', 'ip', 'natops'], okExitCodes: [0, 1] });
      if (dataplane === 'nftables') assert.match(table.stdout, /192\.168\.0\.112 \. tcp \. 8888 : 10\.0\.1\.10 \. 80/);
      else assert.equal(table.code, 1, 'the table is gone');
      const [again] = await h.apply(onDataplane(seed, dataplane), runtime);
      assert.equal(again!.action, 'unchanged');
    }
  });

  it('a command past its timeout is killed inside the pod, not only given up on', async () => {
    const pods = await k.core.listNamespacedPod({
      namespace: k.namespace,
      labelSelector: `app=${deploymentName('ngw')}`,
    });
    const pod = {
      namespace: k.namespace,
      name: pods.items.find((x) => !x.metadata?.deletionTimestamp)!.metadata!.name!,
      container: CONTAINER,
    };
    const exec = podExec(new Exec(k.runtimeConfig), pod);
    await assert.rejects(exec({ argv: ['sleep', '300'], timeoutMs: 1000 }), CommandTimeoutError);
    const left = await exec({ argv: ['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done'] });
    assert.doesNotMatch(left.stdout, /^sleep 300/m, 'the sleep is gone from the pod');
    await assert.rejects(
      exec({
        argv: [IPTABLES_PROGRAMS.legacy.restore, '--noflush'],
        stdin: '*nat\n-A NO_SUCH_CHAIN -j RETURN\nCOMMIT\n',
      }),
      (e: Error) => e instanceof CommandError && /line 2 failed/.test(e.message),
    );
  });

  it('removes the Deployment and, with the last gateway, the external network it made', async () => {
    const desired = await readDesired(await writeManifestDir(seed), CLUSTER_READ);
    const results = await reconcileAll(
      runtime,
      [...desired.gateways.values()].filter((g) => g.name !== 'ngw'),
    );
    assert.deepEqual(
      results.map((r) => [r.name, r.action]),
      [['ngw', 'delete']],
    );
    assert.deepEqual(await runtime.listGateways(), []);
    await assert.rejects(deployment(), (e: { code?: number }) => e.code === 404);
    await assert.rejects(
      k.admin
        .makeApiClient(CustomObjectsApi)
        .getNamespacedCustomObject({ ...NAD, namespace: k.namespace, name: EXTERNAL_NETWORK }),
      (e: { code?: number }) => e.code === 404,
    );
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), undefined, 'the port forward is gone with its pod');
  });
});
