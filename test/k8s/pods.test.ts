// A gateway pod that never becomes ready fails with the cluster's reason, and the next apply
// still works; a replaced pod (deleted by hand) is noticed by the watch and made whole again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api } from '@kubernetes/client-node';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { deploymentName } from '../../runtime/kubernetes/objects.ts';
import { GatewayNotReadyError, type KubernetesRuntime } from '../../runtime/kubernetes/runtime.ts';
import { GatewaysFailedError, reconcileGateway } from '../../runtime/reconcile.ts';
import { CLUSTER_READ, forCluster, KubeHarness } from '../helpers/k8s.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, set, writeManifestDir, type SeedObjects } from '../helpers/manifests.ts';

describe('Kubernetes runtime: pods that fail and pods that are replaced', () => {
  let h: LabHarness;
  let k: KubeHarness;
  let runtime: KubernetesRuntime;
  let seed: SeedObjects;

  before(async () => {
    h = await LabHarness.create();
    k = await KubeHarness.create();
    runtime = k.runtime({ readyTimeoutMs: 20_000 });
    seed = forCluster(await seedObjects());
  });
  after(async () => {
    await k?.close();
    await h?.cleanup();
  });

  it("an image the node does not have fails the apply with the kubelet's reason; the next apply works", async () => {
    const broken = structuredClone(seed);
    // allowed (Kube-OVN's own image, the policy's default) but not on the node, and no registry is reachable
    set(broken.config, 'data.image', 'kubeovn/vpc-nat-gateway:v1.7.0');
    await assert.rejects(h.apply(broken, runtime), (e: Error) => {
      const failure = e instanceof GatewaysFailedError ? e.failures[0]?.error : e;
      assert.ok(failure instanceof GatewayNotReadyError, String(failure));
      assert.match(
        e.message,
        /gateway ngw: pod not ready: vpc-nat-gw-ngw-\S+: (ErrImagePull|ImagePullBackOff|ErrImageNeverPull)/,
      );
      assert.match(e.message, /after 20 s/);
      return true;
    });
    const results = await h.apply(seed, runtime);
    assert.deepEqual(
      results.map((r) => [r.name, r.action]),
      [['ngw', 'create']],
    );
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('web', { tcp: [80] });
    assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
  });

  it('a pod deleted by hand is noticed by the watch; its replacement starts empty and is made whole', async () => {
    const replaced: string[] = [];
    const watch = runtime.watchReplacements((g) => replaced.push(g));
    try {
      await watch.started;
      const core = k.core;
      const pods = await core.listNamespacedPod({
        namespace: k.namespace,
        labelSelector: `app=${deploymentName('ngw')}`,
      });
      const old = pods.items.find((x) => !x.metadata?.deletionTimestamp)!.metadata!.name!;
      await core.deleteNamespacedPod({ name: old, namespace: k.namespace });
      await until(async () => replaced.length > 0, 60_000);
      assert.deepEqual(replaced, ['ngw']);
      const handle = await runtime.gateway('ngw');
      assert.ok(handle);
      assert.notEqual(handle.location, `pod ${k.namespace}/${old}`);
      const live = await handle.readState();
      assert.equal(live.nat.SHARED_DNAT, undefined, 'the new pod starts without the rules');
      const spec = (await readDesired(await writeManifestDir(seed), CLUSTER_READ)).gateways.get('ngw')!;
      const result = await reconcileGateway(runtime, spec);
      assert.equal(result.action, 'update');
      assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
      const d = await k.admin
        .makeApiClient(AppsV1Api)
        .readNamespacedDeployment({ name: deploymentName('ngw'), namespace: k.namespace });
      assert.equal(d.status?.readyReplicas, 1);
    } finally {
      watch.stop();
    }
  });
});

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
