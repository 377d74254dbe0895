// What natops compares before it keeps a workload adopted from Kube-OVN (runtime/kubernetes/adoption.ts):
// what the pod runs and where it is attached, not Kube-OVN's own parts nor its placement. The
// adoption itself, against a real cluster, is test/k8s/adopt.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adoptedDifferences, isAdopted } from '../../runtime/kubernetes/adoption.ts';
import { gatewayStatefulSet } from '../../runtime/kubernetes/objects.ts';
import type { GatewayWorkloadObject } from '../../runtime/kubernetes/workloads.ts';
import { seedSpec } from '../helpers/manifests.ts';

const settings = { namespace: 'kube-system', mode: 'multus' as const, instance: 'natops', keepOffControlPlane: true };

/** The StatefulSet as Kube-OVN makes it for the same gateway: its labels, route annotations, env and placement. */
function kubeOvns(want: ReturnType<typeof gatewayStatefulSet>): GatewayWorkloadObject {
  const labels = { app: want.metadata.name, 'ovn.kubernetes.io/vpc-nat-gw': 'true' };
  const template = structuredClone(want.spec.template);
  template.metadata.labels = labels;
  template.metadata.annotations = {
    ...template.metadata.annotations,
    'ovn.kubernetes.io/routes': '[{"dst":"10.0.2.0/24","gw":"10.0.1.1"}]',
  };
  const { affinity: _a, automountServiceAccountToken: _t, enableServiceLinks: _l, ...podSpec } = template.spec;
  const [container] = template.spec.containers;
  return {
    kind: 'StatefulSet',
    metadata: { name: want.metadata.name, namespace: 'kube-system', labels },
    spec: {
      ...want.spec,
      serviceName: '',
      selector: { matchLabels: labels },
      template: {
        ...template,
        spec: {
          ...podSpec,
          containers: [{ ...container!, env: [{ name: 'GATEWAY_V4', value: '192.168.0.254' }] }],
          nodeSelector: { 'kubernetes.io/os': 'linux' },
        },
      },
    },
  };
}

describe('a workload adopted from Kube-OVN: kept while its pod runs what Git asks', () => {
  it("Kube-OVN's labels, routes, env, placement and missing natops settings are no difference", async () => {
    const want = gatewayStatefulSet(
      { ...(await seedSpec()), workload: { ...(await seedSpec()).workload, kind: 'StatefulSet' } },
      settings,
    );
    assert.deepEqual(adoptedDifferences(kubeOvns(want), want), []);
  });

  it('the image, the lanIp, the subnet, the networks and privileged are, each by name', async () => {
    const spec = await seedSpec();
    const want = gatewayStatefulSet({ ...spec, workload: { ...spec.workload, kind: 'StatefulSet' } }, settings);
    const have = kubeOvns(want);
    const pod = have.spec!.template;
    pod.spec!.containers[0]!.image = 'kubeovn/vpc-nat-gateway:v1.14.0';
    pod.spec!.containers[0]!.securityContext = { privileged: false };
    pod.metadata!.annotations!['ovn.kubernetes.io/ip_address'] = '10.0.1.253';
    pod.metadata!.annotations!['ovn.kubernetes.io/logical_switch'] = 'other';
    delete pod.metadata!.annotations!['k8s.v1.cni.cncf.io/networks'];
    assert.deepEqual(adoptedDifferences(have, want), [
      `image kubeovn/vpc-nat-gateway:v1.14.0, Git asks ${spec.workload.image}`,
      'privileged',
      'annotation ovn.kubernetes.io/logical_switch other, Git asks sn',
      'annotation ovn.kubernetes.io/ip_address 10.0.1.253, Git asks 10.0.1.254',
      'annotation k8s.v1.cni.cncf.io/networks (none), Git asks kube-system/ovn-vpc-external-network',
    ]);
    pod.spec!.containers = [];
    assert.deepEqual(adoptedDifferences(have, want), ['it has no container vpc-nat-gw']);
  });

  it('is told by its annotation', () => {
    assert.equal(isAdopted({ metadata: { annotations: { 'natops.io/adopted': '{}' } } }), true);
    assert.equal(isAdopted({ metadata: { annotations: {} } }), false);
  });
});
