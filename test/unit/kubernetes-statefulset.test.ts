// Kube-OVN's current workload form: the ConfigMap ovn-vpc-nat-config makes every gateway the
// StatefulSet `<natGwNamePrefix>-<name>` (pkg/controller/vpc_nat_gateway.go, genNatGwStatefulSet),
// and a StatefulSet's pod is the gateway's own by its controller reference, without a ReplicaSet.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import {
  gatewayDeployment,
  gatewayStatefulSet,
  gatewayWorkload,
  workloadName,
} from '../../runtime/kubernetes/objects.ts';
import { notOwnedReason, podController } from '../../runtime/kubernetes/ownership.ts';
import { type GatewayWorkloadObject, isCurrentPod, isStuckPod, rolledOut } from '../../runtime/kubernetes/workloads.ts';
import { seedObjects, seedSpec, TEST_CLUSTER_IMAGE, TEST_WORKLOAD_POLICY, toFiles } from '../helpers/manifests.ts';

const NAT_CONFIG = (data: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name: 'ovn-vpc-nat-config', namespace: 'kube-system' },
  data,
});
const settings = {
  namespace: 'natops-gateways',
  mode: 'multus' as const,
  instance: 'prod',
  keepOffControlPlane: false,
};
/** The seed's gateway with ovn-vpc-nat-config holding `data`, under a policy that allows the test image. */
async function withNatConfig(data: Record<string, string>) {
  const seed = await seedObjects();
  seed.extra.push(NAT_CONFIG(data));
  const { desired, issues } = validateManifests(toFiles(seed), { policy: TEST_WORKLOAD_POLICY });
  assert.deepEqual(issues, []);
  return desired.gateways.get('ngw')!;
}

describe('the workload form the manifests ask for', () => {
  it('without ovn-vpc-nat-config: 1.7 Deployment, as before (no kind in the spec)', async () => {
    const spec = await seedSpec();
    assert.equal(spec.workload.kind, undefined);
    assert.equal(workloadName(spec), 'vpc-nat-gw-ngw');
    assert.equal(gatewayWorkload(spec, settings).kind, 'Deployment');
  });

  it("with ovn-vpc-nat-config: its image (over 1.7's) and a StatefulSet named with its prefix", async () => {
    const spec = await withNatConfig({ image: TEST_CLUSTER_IMAGE, natGwNamePrefix: 'gw' });
    assert.equal(spec.workload.kind, 'StatefulSet');
    assert.equal(spec.workload.namePrefix, 'gw');
    assert.equal(spec.workload.image, TEST_CLUSTER_IMAGE);
    assert.equal(workloadName(spec), 'gw-ngw');
    const plain = await withNatConfig({ image: TEST_CLUSTER_IMAGE });
    assert.equal(workloadName(plain), 'vpc-nat-gw-ngw', "Kube-OVN's default prefix");
  });

  it('the 1.7 ConfigMap may leave the image to ovn-vpc-nat-config; without either, it is required', async () => {
    const seed = await seedObjects();
    delete (seed.config.data as Record<string, unknown>).image;
    const missing = validateManifests(toFiles(seed));
    assert.match(
      missing.issues.map((i) => `${i.field}: ${i.message}`).join('\n'),
      /data\.image: is required: the gateways' image is this ConfigMap's \(Kube-OVN 1\.7\) or ovn-vpc-nat-config's/,
    );
    seed.extra.push(NAT_CONFIG({ image: TEST_CLUSTER_IMAGE }));
    const { issues, desired } = validateManifests(toFiles(seed), { policy: TEST_WORKLOAD_POLICY });
    assert.deepEqual(issues, []);
    assert.equal(desired.gateways.get('ngw')?.workload.image, TEST_CLUSTER_IMAGE);
  });

  it("refuses an image the operator's policy does not allow, and a name too long for the StatefulSet", async () => {
    const seed = await seedObjects();
    seed.extra.push(NAT_CONFIG({ image: 'evil.example/nat:1', natGwNamePrefix: 'a'.repeat(49) }));
    const text = validateManifests(toFiles(seed))
      .issues.map((i) => `${i.resource} ${i.field}: ${i.message}`)
      .join('\n');
    assert.match(text, /ConfigMap\/ovn-vpc-nat-config data\.image: /);
    assert.match(text, /VpcNatGateway\/ngw metadata\.name: is too long for Kube-OVN's StatefulSet a+-ngw: at most 52/);
  });
});

describe("the gateway's StatefulSet", () => {
  it("Kube-OVN's name, labels, selector, annotations, container and update strategy; natops's own parts", async () => {
    const spec = await withNatConfig({ image: TEST_CLUSTER_IMAGE });
    const s = gatewayStatefulSet(spec, settings);
    const d = gatewayDeployment({ ...spec, workload: { ...spec.workload, kind: 'Deployment' } }, settings);
    assert.equal(s.kind, 'StatefulSet');
    assert.equal(s.metadata.name, 'vpc-nat-gw-ngw');
    const labels = {
      app: 'vpc-nat-gw-ngw',
      'ovn.kubernetes.io/vpc-nat-gw': 'true',
      'app.kubernetes.io/managed-by': 'natops',
      'natops.io/instance': 'prod',
      'natops.io/gateway': 'ngw',
    };
    assert.deepEqual(s.metadata.labels, labels);
    assert.deepEqual(s.spec.selector.matchLabels, labels);
    assert.equal(s.spec.replicas, 1);
    assert.deepEqual(s.spec.updateStrategy, { type: 'RollingUpdate' });
    assert.equal('strategy' in s.spec, false, "a StatefulSet has no Deployment's strategy");
    const t = s.spec.template;
    assert.deepEqual(t.metadata.annotations, {
      'ovn.kubernetes.io/vpc_nat_gw': 'ngw',
      'ovn.kubernetes.io/logical_switch': 'sn',
      'ovn.kubernetes.io/ip_address': '10.0.1.254',
      'k8s.v1.cni.cncf.io/networks': 'natops-gateways/ovn-vpc-external-network',
      'v1.multus-cni.io/default-network': 'natops-gateways/vpc-nat-gw-ngw-lan',
    });
    const c = t.spec.containers[0]!;
    assert.equal(c.name, 'vpc-nat-gw');
    assert.equal(c.image, TEST_CLUSTER_IMAGE);
    assert.deepEqual(c.command, ['sleep', 'infinity']);
    assert.deepEqual(c.lifecycle?.postStart?.exec?.command, ['sh', '-c', 'sysctl -w net.ipv4.ip_forward=1']);
    assert.equal(c.securityContext?.privileged, true);
    assert.equal(t.spec.terminationGracePeriodSeconds, 0);
    assert.equal(t.spec.automountServiceAccountToken, false);
    // the same pod as the Deployment's but for the hook: one data plane for both forms
    const { lifecycle: _, ...rest } = c;
    assert.deepEqual({ ...t, spec: { ...t.spec, containers: [rest] } }, d.spec.template);
    assert.equal(d.spec.template.spec.containers[0]?.lifecycle, undefined, 'the 1.7 Deployment stays as it was');
  });
});

describe("a StatefulSet's pod", () => {
  const sts: GatewayWorkloadObject = {
    kind: 'StatefulSet',
    metadata: { name: 'vpc-nat-gw-ngw', uid: 's-1', generation: 2 },
    status: {
      replicas: 1,
      readyReplicas: 1,
      updatedReplicas: 1,
      observedGeneration: 2,
      currentRevision: 'vpc-nat-gw-ngw-b',
      updateRevision: 'vpc-nat-gw-ngw-b',
    },
  };
  const pod = (owner: { kind: string; uid: string }, revision = 'vpc-nat-gw-ngw-b'): V1Pod => ({
    metadata: {
      name: 'vpc-nat-gw-ngw-0',
      labels: {
        'app.kubernetes.io/managed-by': 'natops',
        'natops.io/instance': 'prod',
        'natops.io/gateway': 'ngw',
        'controller-revision-hash': revision,
      },
      ownerReferences: [{ apiVersion: 'apps/v1', ...owner, name: 'vpc-nat-gw-ngw', controller: true }],
    },
    spec: { containers: [{ name: 'vpc-nat-gw' }] },
  });
  const noReplicaSet = async () => {
    throw new Error("a StatefulSet's pod has no ReplicaSet to read");
  };
  const expect = { instance: 'prod', gateway: 'ngw' };

  it('is its own when its controller is the StatefulSet, by UID (no ReplicaSet read)', async () => {
    assert.deepEqual(await podController(pod({ kind: 'StatefulSet', uid: 's-1' }), noReplicaSet), {
      kind: 'StatefulSet',
      uid: 's-1',
    });
    assert.equal(await notOwnedReason(pod({ kind: 'StatefulSet', uid: 's-1' }), sts, expect, noReplicaSet), undefined);
  });

  it("is not: another StatefulSet's (made again by the same name), or a Deployment's pod for the StatefulSet", async () => {
    assert.match(
      (await notOwnedReason(pod({ kind: 'StatefulSet', uid: 's-0' }), sts, expect, noReplicaSet))!,
      /its StatefulSet is another one \(UID s-0, not s-1\)/,
    );
    const rs = {
      metadata: {
        uid: 'rs-1',
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'x', uid: 's-1', controller: true }],
      },
    };
    assert.match(
      (await notOwnedReason(pod({ kind: 'ReplicaSet', uid: 'rs-1' }), sts, expect, async () => rs))!,
      /its controller is a Deployment, not the gateway's StatefulSet/,
    );
    // and the other way round: a Deployment's check does not take a StatefulSet's pod
    assert.match(
      (await notOwnedReason(
        pod({ kind: 'StatefulSet', uid: 's-1' }),
        { metadata: { uid: 's-1' } },
        expect,
        noReplicaSet,
      ))!,
      /not the gateway's Deployment/,
    );
  });

  it('rolled out when its current revision is the update revision; a pod of an older one is not current', () => {
    assert.equal(rolledOut(sts), true);
    const rolling = { ...sts, status: { ...sts.status, currentRevision: 'vpc-nat-gw-ngw-a' } } as GatewayWorkloadObject;
    assert.equal(rolledOut(rolling), false);
    const old = pod({ kind: 'StatefulSet', uid: 's-1' }, 'vpc-nat-gw-ngw-a');
    assert.equal(isCurrentPod(sts, old), false);
    assert.equal(isCurrentPod(sts, pod({ kind: 'StatefulSet', uid: 's-1' })), true);
    // an old pod that is not ready is deleted by natops (the controller would wait for it forever)
    assert.equal(isStuckPod(sts, old, false), true);
    assert.equal(isStuckPod(sts, old, true), false, 'a ready one the controller replaces itself');
    assert.equal(isStuckPod(sts, pod({ kind: 'StatefulSet', uid: 's-1' }), false), false, 'the current one waits');
    const d = { kind: 'Deployment', metadata: {}, status: {} } as GatewayWorkloadObject;
    assert.equal(isStuckPod(d, old, false), false, "a Deployment's Recreate strategy replaces its pods");
  });
});
