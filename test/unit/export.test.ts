// natops export's pure part: what it drops of an object read from a cluster (what the cluster and
// Kube-OVN's controller added), where each object goes, and that the files natops validate reads
// back are the same gateway, in any order the API lists them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import {
  cleanObject,
  ClusterObjectSchema,
  exportPath,
  nadsNeeded,
  type ClusterObject,
} from '../../gitops/export/clean.ts';
import { exportFiles } from '../../gitops/export/write.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { seedList, toCurrentForm } from '../helpers/current-form.ts';
import { seedObjects, type Obj } from '../helpers/manifests.ts';

/** The object as the API server returns it: what the cluster and Kube-OVN's controller add. */
function asLive(o: Obj, i: number): ClusterObject {
  const obj = structuredClone(o) as Obj & { metadata: Obj; spec?: Obj };
  const kind = obj.kind as string;
  obj.metadata = {
    ...obj.metadata,
    uid: `0000-${i}`,
    resourceVersion: String(1000 + i),
    generation: 2,
    creationTimestamp: '2026-12-01T00:00:00Z',
    managedFields: [{ manager: 'kubectl', operation: 'Update' }],
    finalizers: ['kubeovn.io/kube-ovn-controller'],
    annotations: {
      ...(obj.metadata.annotations as Obj | undefined),
      'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(o),
    },
  };
  if (kind === 'IptablesEIP')
    obj.metadata.labels = {
      'ovn.kubernetes.io/subnet': 'ovn-vpc-external-network',
      'ovn.kubernetes.io/vpc-nat-gw-name': 'ngw',
      'ovn.kubernetes.io/eip_v4_ip': '192.168.0.111',
    };
  if (kind === 'IptablesDnatRule') {
    obj.metadata.labels = { 'ovn.kubernetes.io/vpc_dnat_eport': '8888', team: 'web' };
    obj.metadata.annotations = { ...(obj.metadata.annotations as Obj), 'ovn.kubernetes.io/vpc_eip': 'ngw-eip-1' };
    obj.spec = { ...obj.spec, type: 'exclusive' };
  }
  if (kind === 'VpcNatGateway') {
    obj.metadata.labels = { 'ovn.kubernetes.io/subnet': 'sn', 'ovn.kubernetes.io/vpc': 'test-vpc-1' };
    obj.spec = { ...obj.spec, replicas: 1 };
  }
  if (obj.spec) (obj as Obj).status = { ready: true, conditions: [] };
  return ClusterObjectSchema.parse(obj);
}

async function liveSeed(): Promise<ClusterObject[]> {
  const current = toCurrentForm(seedList(await seedObjects()));
  const kubeOvnConfig = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'ovn-vpc-nat-config', namespace: 'kube-system' },
    data: { image: 'kubeovn/vpc-nat-gateway:v1.7.0' },
  };
  return [...current, kubeOvnConfig].map(asLive);
}

describe('natops export: cleaning an object read from the cluster', () => {
  it('drops status, server metadata, kubectl and Kube-OVN bookkeeping; keeps the author’s labels', async () => {
    const live = await liveSeed();
    const dnat = cleanObject(live.find((o) => o.kind === 'IptablesDnatRule')!);
    assert.deepEqual(dnat, {
      apiVersion: 'kubeovn.io/v1',
      kind: 'IptablesDnatRule',
      metadata: { name: 'ngw-dnat-0', labels: { team: 'web' } },
      spec: { eip: 'ngw-eip-1', externalPort: '8888', internalIp: '10.0.1.10', internalPort: '80', protocol: 'tcp' },
    });
    const gw = cleanObject(live.find((o) => o.kind === 'VpcNatGateway')!);
    assert.deepEqual(gw.metadata, { name: 'ngw' });
    assert.equal('status' in gw, false);
    assert.deepEqual(Object.keys(gw), ['apiVersion', 'kind', 'metadata', 'spec']);
    assert.deepEqual(cleanObject(live.find((o) => o.kind === 'IptablesEIP')!).metadata, { name: 'ngw-eip-0' });
    const config = cleanObject(live.find((o) => o.metadata.name === 'ovn-vpc-nat-gw-config')!);
    assert.deepEqual(config.metadata, { name: 'ovn-vpc-nat-gw-config', namespace: 'kube-system' });
  });

  it('keeps a value the CRD defaults when it is not the default, and drops a namespace a cluster kind cannot have', () => {
    const gw = cleanObject(
      ClusterObjectSchema.parse({
        apiVersion: 'kubeovn.io/v1',
        kind: 'VpcNatGateway',
        metadata: { name: 'g', namespace: 'x' },
        spec: { replicas: 2, vpc: 'v' },
      }),
    );
    assert.deepEqual(gw, {
      apiVersion: 'kubeovn.io/v1',
      kind: 'VpcNatGateway',
      metadata: { name: 'g' },
      spec: { replicas: 2, vpc: 'v' },
    });
    const share = cleanObject(
      ClusterObjectSchema.parse({
        apiVersion: 'kubeovn.io/v1',
        kind: 'IptablesDnatRule',
        metadata: { name: 'd' },
        spec: { type: 'share' },
      }),
    );
    assert.deepEqual(share.spec, { type: 'share' });
  });

  it('places each object in its kind folder and refuses a name that is not a Kubernetes name', () => {
    const at = (kind: string, apiVersion: string, name: string, namespace?: string) =>
      exportPath(ClusterObjectSchema.parse({ apiVersion, kind, metadata: { name, namespace } }));
    assert.equal(at('Vpc', 'kubeovn.io/v1', 'test-vpc-1'), '10-vpc/test-vpc-1.yaml');
    assert.equal(
      at('ConfigMap', 'v1', 'ovn-vpc-nat-gw-config', 'kube-system'),
      '00-config/kube-system.ovn-vpc-nat-gw-config.yaml',
    );
    assert.equal(at('Vpc', 'kubeovn.io/v1', '../../etc'), undefined);
    assert.equal(at('Vpc', 'kubeovn.io/v2', 'x'), undefined);
  });

  it('names the external network’s NetworkAttachmentDefinition only when the ConfigMap has no nic', async () => {
    const live = await liveSeed();
    assert.deepEqual(nadsNeeded(live), [{ namespace: 'kube-system', name: 'ovn-vpc-external-network' }]);
    const withNic = live.map((o) =>
      o.metadata.name === 'ovn-vpc-nat-gw-config' ? { ...o, data: { ...(o.data as Obj), nic: 'eth1' } } : o,
    );
    assert.deepEqual(nadsNeeded(withNic), []);
  });

  it('writes files natops validate accepts as the same gateway, the same bytes in any listing order', async () => {
    const live = await liveSeed();
    const files = exportFiles(live);
    assert.deepEqual(
      files.map((f) => f.path),
      [
        '00-config/kube-system.ovn-vpc-nat-config.yaml',
        '00-config/kube-system.ovn-vpc-nat-gw-config.yaml',
        '10-vpc/test-vpc-1.yaml',
        '20-subnet/ovn-vpc-external-network.yaml',
        '20-subnet/sn.yaml',
        '25-network-attachment-definition/kube-system.ovn-vpc-external-network.yaml',
        '30-vpc-nat-gateway/ngw.yaml',
        '40-iptables-eip/ngw-eip-0.yaml',
        '40-iptables-eip/ngw-eip-1.yaml',
        '50-iptables-fip-rule/ngw-fip-0.yaml',
        '60-iptables-dnat-rule/ngw-dnat-0.yaml',
        '70-iptables-snat-rule/ngw-snat-0.yaml',
      ],
    );
    assert.deepEqual(exportFiles([...live].reverse()), files);
    const config = files.find((f) => f.path.endsWith('ovn-vpc-nat-gw-config.yaml'))!;
    assert.match(config.text, /enable-vpc-nat-gw: "true"/);
    // ovn-vpc-nat-config is written as the cluster has it; whether natops reads it is not export's concern
    const { desired, issues } = validateManifests(
      files.filter((f) => !f.path.includes('ovn-vpc-nat-config')).map((f) => ({ path: f.path, text: f.text })),
    );
    assert.deepEqual(issues, []);
    assert.equal(desired.gateways.get('ngw')?.eips.length, 2);
    for (const f of files) assert.equal(typeof parse(f.text), 'object');
  });
});
