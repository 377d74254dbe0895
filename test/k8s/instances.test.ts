// Two natops installations in one namespace (instances blue and green, as staging and prod would
// be) never list, exec into, watch or prune each other's gateways; they share the namespace's one
// external network, which goes only when no gateway of any instance is left. A Deployment from a
// natops before instance labels is refused until labelled, then recreated with today's selector.
// Network mode kube-ovn on the cluster's own network, with a host veth of the test's own as the
// macvlan master: no traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AppsV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  type V1Deployment,
} from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { deploymentName, EXTERNAL_NETWORK, gatewayDeployment } from '../../runtime/kubernetes/objects.ts';
import { FIELD_MANAGER, type KubernetesRuntime } from '../../runtime/kubernetes/runtime.ts';
import { reconcileAll } from '../../runtime/reconcile.ts';
import { KubeHarness, seedOnHostVeth } from '../helpers/k8s.ts';

describe('two natops instances in one namespace', () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  let k: KubeHarness;
  let spec: GatewaySpec;
  let blue: KubernetesRuntime;
  let green: KubernetesRuntime;
  const named = (name: string): GatewaySpec => ({ ...spec, name });
  const apps = () => k.admin.makeApiClient(AppsV1Api);
  const deployment = (gw: string) =>
    apps().readNamespacedDeployment({ name: deploymentName(gw), namespace: k.namespace });
  const external = async () => {
    try {
      return (await k.admin.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        plural: 'network-attachment-definitions',
        namespace: k.namespace,
        name: EXTERNAL_NETWORK,
      })) as { metadata: { uid: string; resourceVersion: string; labels: Record<string, string> } };
    } catch (e) {
      if ((e as { code?: number }).code === 404) return undefined;
      throw e;
    }
  };
  /** the gateway's pods, by the labels any natops puts on them */
  const podsOf = async (gw: string) =>
    (
      await k.core.listNamespacedPod({ namespace: k.namespace, labelSelector: `app=${deploymentName(gw)}` })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);

  before(async () => {
    veth = await seedOnHostVeth('ni');
    spec = veth.spec;
    k = await KubeHarness.create();
    blue = k.runtime({ mode: 'kube-ovn', instance: 'blue' });
    green = k.runtime({ mode: 'kube-ovn', instance: 'green' });
  });
  after(async () => {
    await k?.close();
    await veth?.remove();
  });

  it("neither lists, opens, takes over, watches or prunes the other's gateways", async () => {
    const blueReplaced: string[] = [];
    const greenReplaced: string[] = [];
    const blueWatch = blue.watchReplacements((g) => blueReplaced.push(g));
    const greenWatch = green.watchReplacements((g) => greenReplaced.push(g));
    try {
      await Promise.all([blueWatch.started, greenWatch.started]);
      await blue.ensureGateway(named('bgw'));
      const nad = await external();
      assert.equal(nad?.metadata.labels['natops.io/instance'], 'blue', 'blue wrote the external network');
      await green.ensureGateway(named('ggw'));
      assert.equal(
        (await external())?.metadata.resourceVersion,
        nad?.metadata.resourceVersion,
        'green uses it as it is',
      );
      assert.deepEqual(await blue.listGateways(), ['bgw']);
      assert.deepEqual(await green.listGateways(), ['ggw']);

      const bgw = await deployment('bgw');
      await assert.rejects(
        green.ensureGateway(named('bgw')),
        (e: unknown) => e instanceof PermanentError && /it is natops instance blue's, not green's/.test(e.message),
      );
      assert.equal(await green.gateway('bgw'), undefined);
      assert.equal(await green.removeGateway('bgw'), false);
      assert.equal((await deployment('bgw')).metadata?.resourceVersion, bgw.metadata?.resourceVersion, 'untouched');

      // one external network per namespace: green cannot have its gateways on another nic
      await assert.rejects(
        green.ensureGateway({ ...named('ggw2'), workload: { ...spec.workload, nic: 'nxother' } }),
        (e: unknown) =>
          e instanceof PermanentError &&
          new RegExp(
            `is natops instance blue's, a macvlan on ${spec.workload.nic}; gateways of instance green need a macvlan on nxother`,
          ).test(e.message),
      );
      await assert.rejects(deployment('ggw2'), (e: { code?: number }) => e.code === 404);

      // a replaced pod is seen by its own instance only
      const [old] = await podsOf('bgw');
      await k.core.deleteNamespacedPod({ name: old!.metadata!.name!, namespace: k.namespace });
      await blue.waitForPod('bgw');
      await until(async () => blueReplaced.length > 0, 30_000);
      assert.deepEqual(blueReplaced, ['bgw']);
      assert.deepEqual(greenReplaced, []);

      // pruning through green (no gateways in its Git) removes green's only
      const bluePod = (await podsOf('bgw'))[0]!.metadata!.uid;
      const results = await reconcileAll(green, []);
      assert.deepEqual(
        results.map((r) => [r.name, r.action]),
        [['ggw', 'delete']],
      );
      assert.deepEqual(await green.listGateways(), []);
      assert.deepEqual(await blue.listGateways(), ['bgw']);
      assert.equal((await deployment('bgw')).status?.readyReplicas, 1);
      assert.deepEqual(
        (await podsOf('bgw')).map((p) => p.metadata?.uid),
        [bluePod],
        "blue's pod still runs, the same one",
      );
      assert.equal((await external())?.metadata.uid, nad?.metadata.uid, "blue's gateway still uses it");
      assert.ok((await (await blue.gateway('bgw'))?.readState())?.net1Up !== undefined, 'blue still reads its pod');
    } finally {
      blueWatch.stop();
      greenWatch.stop();
    }
  });

  it('the external network goes with the last gateway of any instance, whoever wrote it', async () => {
    await green.ensureGateway(named('ggw'));
    assert.equal(await blue.removeGateway('bgw'), true);
    const nad = await external();
    assert.equal(nad?.metadata.labels['natops.io/instance'], 'blue', "green's gateway still needs blue's network");
    assert.equal(await green.removeGateway('ggw'), true);
    assert.equal(await external(), undefined, 'no natops gateway is left in the namespace');
  });

  it('a Deployment from a natops before instance labels is refused until labelled, then recreated with the new selector', async () => {
    const warnings: string[] = [];
    const runtime = k.runtime({ mode: 'kube-ovn', instance: 'blue' }, (m) => warnings.push(m));
    // what an older natops applied: Kube-OVN's selector, natops's labels without the instance
    const now = gatewayDeployment(named('ogw'), {
      namespace: k.namespace,
      mode: 'kube-ovn',
      instance: 'blue',
      keepOffControlPlane: true,
    });
    const labels = { app: deploymentName('ogw'), 'ovn.kubernetes.io/vpc-nat-gw': 'true' };
    const older: V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: now.metadata.name,
        namespace: k.namespace,
        labels: { ...labels, 'app.kubernetes.io/managed-by': 'natops', 'natops.io/gateway': 'ogw' },
      },
      spec: {
        ...now.spec,
        replicas: 0,
        selector: { matchLabels: labels },
        template: { ...now.spec.template, metadata: { ...now.spec.template.metadata, labels } },
      },
    };
    await KubernetesObjectApi.makeApiClient(k.admin).patch(
      older,
      undefined,
      undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
    await assert.rejects(
      runtime.ensureGateway(named('ogw')),
      (e: unknown) =>
        e instanceof PermanentError &&
        /a natops without instance labels made it \(to adopt it: label it natops.io\/instance=blue\)/.test(e.message),
    );
    assert.deepEqual(await runtime.listGateways(), []);
    const uid = (await deployment('ogw')).metadata?.uid;
    // as `kubectl label` does: a merge patch
    await KubernetesObjectApi.makeApiClient(k.admin).patch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: deploymentName('ogw'), namespace: k.namespace, labels: { 'natops.io/instance': 'blue' } },
      },
      undefined,
      undefined,
      'kubectl-label',
      undefined,
      PatchStrategy.MergePatch,
    );
    const { created } = await runtime.ensureGateway(named('ogw'));
    assert.equal(created, true);
    const d = await deployment('ogw');
    assert.notEqual(d.metadata?.uid, uid, 'a new Deployment');
    assert.deepEqual(d.spec?.selector.matchLabels, now.spec.selector.matchLabels);
    assert.ok(
      warnings.some((w) => /has an older selector: recreating it/.test(w)),
      warnings.join('\n'),
    );
    assert.equal(await runtime.removeGateway('ogw'), true);
  });
});

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
