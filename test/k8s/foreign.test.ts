// natops finds and prunes only what it made: an external network someone else made (Kube-OVN's)
// is used as it is and survives the last gateway; a Deployment of a gateway's name that natops
// did not make is refused, untouched. Network mode kube-ovn on the cluster's own network, with a
// host veth of the test's own as the macvlan master: no traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { EXTERNAL_NETWORK } from '../../runtime/kubernetes/objects.ts';
import { GATEWAY_IMAGE, KubeHarness, seedOnHostVeth } from '../helpers/k8s.ts';

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
