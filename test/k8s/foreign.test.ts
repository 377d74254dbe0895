// natops finds, execs into and prunes only what it made: an external network someone else made
// (Kube-OVN's) is used as it is and survives the last gateway; a Deployment of a gateway's name
// that natops did not make is refused, untouched; a pod with the gateway's labels that its
// Deployment did not make is never exec'd into; a field another manager owns is not taken over;
// an object made again between natops's read and its delete is not deleted. Network mode
// kube-ovn on the cluster's own network, with a host veth of the test's own as the macvlan
// master: no traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import type { Exec } from '../../common/exec.ts';
import { IPTABLES_PROGRAMS, type GatewaySpec } from '../../dataplane/model.ts';
import { deploymentName, EXTERNAL_NETWORK, ownLabels } from '../../runtime/kubernetes/objects.ts';
import { ApplyConflictError, KubernetesApiError } from '../../runtime/kubernetes/runtime.ts';
import { reconcilePart } from '../../runtime/reconcile.ts';
import { foreignPod, GATEWAY_IMAGE, KubeHarness, seedOnHostVeth } from '../helpers/k8s.ts';

const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' };

describe('objects natops did not make', () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  let k: KubeHarness;
  let spec: GatewaySpec;

  before(async () => {
    veth = await seedOnHostVeth('nf');
    spec = veth.spec;
    k = await KubeHarness.create();
  });
  after(async () => {
    await k?.close();
    await veth?.remove();
  });

  it('an external network someone else made is used as it is and outlives the last gateway', async () => {
    const custom = k.admin.makeApiClient(CustomObjectsApi);
    const config = JSON.stringify({ cniVersion: '0.3.0', type: 'macvlan', master: spec.workload.nic, mode: 'bridge' });
    await custom.createNamespacedCustomObject({
      ...NAD,
      namespace: k.namespace,
      body: {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: EXTERNAL_NETWORK },
        spec: { config },
      },
    });
    const read = async () =>
      (await custom.getNamespacedCustomObject({ ...NAD, namespace: k.namespace, name: EXTERNAL_NETWORK })) as {
        metadata: { resourceVersion: string; labels?: Record<string, string> };
        spec: { config: string };
      };
    const before = await read();
    const warnings: string[] = [];
    const runtime = k.runtime({ mode: 'kube-ovn' }, (m) => warnings.push(m));
    await runtime.ensureGateway(spec);
    const during = await read();
    assert.equal(during.metadata.resourceVersion, before.metadata.resourceVersion, 'natops wrote nothing to it');
    assert.equal(during.spec.config, config);
    assert.ok(
      warnings.some((w) => /was not made by natops: using it as it is/.test(w)),
      warnings.join('\n'),
    );
    assert.equal(await runtime.removeGateway(spec.name), true);
    assert.deepEqual(await runtime.listGateways(), []);
    assert.equal(
      (await read()).metadata.resourceVersion,
      before.metadata.resourceVersion,
      'the last gateway left it in place',
    );
  });

  it("a Deployment of the gateway's name that natops did not make is refused and left alone", async () => {
    const apps = k.admin.makeApiClient(AppsV1Api);
    const labels = { app: 'theirs' };
    await apps.createNamespacedDeployment({
      namespace: k.namespace,
      body: {
        metadata: { name: 'vpc-nat-gw-ngw', labels },
        spec: {
          replicas: 0,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: 'c', image: GATEWAY_IMAGE }] } },
        },
      },
    });
    const runtime = k.runtime({ mode: 'kube-ovn' });
    await assert.rejects(
      runtime.ensureGateway(spec),
      (e: unknown) => e instanceof PermanentError && /exists but natops did not create it/.test(e.message),
    );
    assert.deepEqual(await runtime.listGateways(), [], 'not counted as a natops gateway');
    assert.equal(await runtime.removeGateway(spec.name), false);
    const d = await apps.readNamespacedDeployment({ name: 'vpc-nat-gw-ngw', namespace: k.namespace });
    assert.deepEqual(d.metadata?.labels, labels, 'untouched');
  });
});

/** What natops must not change in a pod it does not own: its nat table, its marker file, its links being up. */
async function untouched(exec: Exec) {
  const nat = (await exec({ argv: [IPTABLES_PROGRAMS.legacy.save, '-t', 'nat'] })).stdout;
  const links = (await exec({ argv: ['ip', '-o', 'link', 'show'] })).stdout;
  return {
    nat: nat.replace(/^#.*\n/gm, '').replace(/\[\d+:\d+\]/g, ''),
    marker: (await exec({ argv: ['cat', '/marker'] })).stdout,
    down: links.split('\n').filter((l) => l && !/<[^>]*\bUP\b[^>]*>/.test(l)),
  };
}

describe("pods, fields and objects of a gateway's that natops's Deployment did not make", () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  let k: KubeHarness;
  let spec: GatewaySpec;
  const named = (name: string): GatewaySpec => ({ ...spec, name });

  before(async () => {
    veth = await seedOnHostVeth('nf');
    spec = veth.spec;
    k = await KubeHarness.create();
  });
  after(async () => {
    await k?.close();
    await veth?.remove();
  });

  it("a Ready pod with all the gateway's labels but another controller is never exec'd into, watched or taken down", async () => {
    const labels = {
      app: deploymentName('fgw'),
      'ovn.kubernetes.io/vpc-nat-gw': 'true',
      ...ownLabels('natops', 'fgw'),
    };
    // "0..." sorts before the Deployment's pods (vpc-nat-gw-fgw-<hash>-<id>): a list offers it first
    const first = await foreignPod(k, `${deploymentName('fgw')}-0foreign`, labels);
    const before = await untouched(first.exec);
    assert.deepEqual(before.marker, 'foreign\n');
    const warnings: string[] = [];
    const runtime = k.runtime({ mode: 'kube-ovn' }, (m) => warnings.push(m));
    const replaced: string[] = [];
    const watch = runtime.watchReplacements((g) => replaced.push(g));
    try {
      await watch.started;
      const { created } = await runtime.ensureGateway(named('fgw'));
      assert.equal(created, true);
      // the parts that need no route on this network (kube-ovn mode here has no VPC subnet)
      for (const part of ['init', 'dnat', 'snat'] as const) {
        const result = await reconcilePart(runtime, named('fgw'), part);
        assert.equal(result.action, 'update', part);
      }
      const handle = await runtime.gateway('fgw');
      assert.ok(handle);
      assert.doesNotMatch(handle.location, /foreign/);
      assert.ok((await handle.readState()).nat.SHARED_SNAT, "natops's own pod has the rules");
      assert.deepEqual(await untouched(first.exec), before, 'the foreign pod is as it was');
      assert.ok(
        warnings.some((w) =>
          /-0foreign is not gateway fgw's own \(its controller is ConfigMap .*\): never exec'd into/.test(w),
        ),
        warnings.join('\n'),
      );
      // another one while the gateway runs: not taken for a replaced gateway pod
      const second = await foreignPod(k, `${deploymentName('fgw')}-1foreign`, labels);
      await new Promise((r) => setTimeout(r, 2000));
      assert.deepEqual(replaced, [], 'no resync for a pod natops did not make');
      const secondBefore = await untouched(second.exec);
      assert.equal(await runtime.removeGateway('fgw'), true);
      assert.deepEqual(await untouched(first.exec), before, "removal took down the gateway's own links only");
      assert.deepEqual(await untouched(second.exec), secondBefore);
      const left = await k.core.listNamespacedPod({
        namespace: k.namespace,
        labelSelector: `app=${deploymentName('fgw')}`,
      });
      assert.deepEqual(left.items.map((p) => p.metadata?.uid).sort(), [first.uid, second.uid].sort());
    } finally {
      watch.stop();
    }
  });

  it('a field another manager owns is not taken over: the apply fails for good, naming that manager and field', async () => {
    const runtime = k.runtime({ mode: 'kube-ovn' });
    const apps = k.admin.makeApiClient(AppsV1Api);
    const read = () => apps.readNamespacedDeployment({ name: deploymentName('cgw'), namespace: k.namespace });
    await runtime.ensureGateway(named('cgw'));
    const version = (await read()).metadata?.resourceVersion;
    await runtime.ensureGateway(named('cgw'));
    assert.equal((await read()).metadata?.resourceVersion, version, "natops's own re-apply: no conflict, no write");
    // an operator scales it to 0 by server-side apply, forcing: the field is theirs now
    await KubernetesObjectApi.makeApiClient(k.admin).patch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: deploymentName('cgw'), namespace: k.namespace },
        spec: { replicas: 0 },
      },
      undefined,
      undefined,
      'ops-team',
      true,
      PatchStrategy.ServerSideApply,
    );
    await assert.rejects(runtime.ensureGateway(named('cgw')), (e: unknown) => {
      assert.ok(e instanceof ApplyConflictError, String(e));
      assert.deepEqual(e.managers, ['ops-team']);
      assert.deepEqual(e.fields, ['.spec.replicas']);
      assert.equal(e.retryable, false);
      assert.match(
        e.message,
        /apply Deployment \S+\/vpc-nat-gw-cgw: fields owned by another field manager \("ops-team"\): \.spec\.replicas/,
      );
      return true;
    });
    assert.equal((await read()).spec?.replicas, 0, "the operator's value stays");
    assert.equal(await runtime.removeGateway('cgw'), true);
  });

  it("a Deployment or external network made again between natops's read and its delete is not deleted", async () => {
    const runtime = k.runtime({ mode: 'kube-ovn' });
    await runtime.ensureGateway(named('ugw'));
    const apps = k.admin.makeApiClient(AppsV1Api);
    const custom = k.admin.makeApiClient(CustomObjectsApi);
    const name = deploymentName('ugw');
    const namespace = k.namespace;
    const original = await apps.readNamespacedDeployment({ name, namespace });
    // the runtime's own clients, to step in between its read and its delete
    const internals = runtime as unknown as { apps: AppsV1Api; custom: CustomObjectsApi };
    const deleteDeployment = internals.apps.deleteNamespacedDeployment.bind(internals.apps);
    let impostor: string | undefined;
    internals.apps.deleteNamespacedDeployment = async (req) => {
      await apps.deleteNamespacedDeployment({ name, namespace });
      // natops's very labels: only the UID tells it from the one natops read
      const made = await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name, labels: original.metadata?.labels },
          spec: { replicas: 0, selector: original.spec!.selector, template: original.spec!.template },
        },
      });
      impostor = made.metadata?.uid;
      return deleteDeployment(req);
    };
    await assert.rejects(
      runtime.removeGateway('ugw'),
      (e: unknown) => e instanceof KubernetesApiError && e.status === 409 && /UID in the precondition/.test(e.message),
    );
    assert.equal((await apps.readNamespacedDeployment({ name, namespace })).metadata?.uid, impostor, 'still there');
    internals.apps.deleteNamespacedDeployment = deleteDeployment;
    await apps.deleteNamespacedDeployment({ name, namespace });

    const nad = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions', namespace };
    const readNad = async () =>
      (await custom.getNamespacedCustomObject({ ...nad, name: EXTERNAL_NETWORK })) as {
        metadata: { uid: string; labels: Record<string, string> };
        spec: { config: string };
      };
    const made = await readNad();
    const deleteNad = internals.custom.deleteNamespacedCustomObject.bind(internals.custom);
    let again: string | undefined;
    internals.custom.deleteNamespacedCustomObject = async (req) => {
      await custom.deleteNamespacedCustomObject({ ...nad, name: EXTERNAL_NETWORK });
      const body = {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: EXTERNAL_NETWORK, labels: made.metadata.labels },
        spec: made.spec,
      };
      again = ((await custom.createNamespacedCustomObject({ ...nad, body })) as { metadata: { uid: string } }).metadata
        .uid;
      return deleteNad(req);
    };
    // the last gateway is gone: the external network would go now
    await assert.rejects(
      runtime.removeGateway('ugw'),
      (e: unknown) => e instanceof KubernetesApiError && e.status === 409 && /UID in the precondition/.test(e.message),
    );
    assert.equal((await readNad()).metadata.uid, again, 'still there');
    internals.custom.deleteNamespacedCustomObject = deleteNad;
  });
});
