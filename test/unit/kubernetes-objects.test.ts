// The Kubernetes runtime's pure parts: the objects it applies, the reasons it gives for a pod
// that is not ready, and the exit code it reads from an exec status.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CoreV1Event,
  KubeConfig,
  type V1Deployment,
  type V1Pod,
  type V1ReplicaSet,
} from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import { KubernetesRuntime } from '../../runtime/kubernetes/runtime.ts';
import { applyConflict } from '../../runtime/kubernetes/api.ts';
import { notOwnedReason } from '../../runtime/kubernetes/ownership.ts';
import {
  externalNetwork,
  gatewayDeployment,
  isLabelValue,
  isOurs,
  ownSelector,
  subnetAttachment,
} from '../../runtime/kubernetes/objects.ts';
import { ExecTransportError, exitCodeOf } from '../../runtime/kubernetes/pod-exec.ts';
import { notReadyReason, podReadiness } from '../../runtime/kubernetes/pods.ts';
import { subnetAttachmentBridge } from '../../dataplane/network.ts';
import { seedSpec, set } from '../helpers/manifests.ts';

describe('Kubernetes objects', () => {
  it('kube-ovn mode: annotations only, no default network; scheduling fields pass through', async () => {
    const spec = await seedSpec((s) => {
      set(s.gateway, 'spec.selector', ['kubernetes.io/os: linux']);
      set(s.gateway, 'spec.tolerations', [{ key: 'nat', operator: 'Exists', effect: 'NoSchedule' }]);
    });
    const d = gatewayDeployment(spec, {
      namespace: 'kube-system',
      mode: 'kube-ovn',
      instance: 'prod',
      keepOffControlPlane: false,
    });
    assert.equal(d.metadata.name, 'vpc-nat-gw-ngw');
    assert.equal(d.metadata.labels['app.kubernetes.io/managed-by'], 'natops');
    assert.equal(
      d.spec.template.metadata.annotations['k8s.v1.cni.cncf.io/networks'],
      'kube-system/ovn-vpc-external-network',
    );
    assert.equal('v1.multus-cni.io/default-network' in d.spec.template.metadata.annotations, false);
    assert.deepEqual(d.spec.template.spec.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.deepEqual(d.spec.template.spec.tolerations, [{ key: 'nat', operator: 'Exists', effect: 'NoSchedule' }]);
    assert.equal(d.spec.template.spec.terminationGracePeriodSeconds, 0);
    assert.equal('affinity' in d.spec.template.spec, false);
  });

  it('the pod gets no ServiceAccount token (it talks to no API) and no Service environment', async () => {
    const d = gatewayDeployment(await seedSpec(), {
      namespace: 'ns',
      mode: 'kube-ovn',
      instance: 'prod',
      keepOffControlPlane: false,
    });
    assert.equal(d.spec.template.spec.automountServiceAccountToken, false);
    assert.equal(d.spec.template.spec.enableServiceLinks, false);
  });

  it("natops's labels, with the instance, on the Deployment, its pods (selected by them) and the attachments", async () => {
    const spec = await seedSpec();
    const s = { namespace: 'ns', mode: 'multus', instance: 'prod', keepOffControlPlane: true } as const;
    const d = gatewayDeployment(spec, s);
    const own = { 'app.kubernetes.io/managed-by': 'natops', 'natops.io/instance': 'prod', 'natops.io/gateway': 'ngw' };
    const labels = { app: 'vpc-nat-gw-ngw', 'ovn.kubernetes.io/vpc-nat-gw': 'true', ...own };
    assert.deepEqual(d.metadata.labels, labels);
    assert.deepEqual(d.spec.template.metadata.labels, labels);
    // a ReplicaSet adopts ownerless pods its selector matches: not a pod with Kube-OVN's labels alone
    assert.deepEqual(d.spec.selector.matchLabels, labels);
    assert.deepEqual(subnetAttachment(spec, s).metadata.labels, own);
    assert.deepEqual(externalNetwork('eth1', s).metadata.labels, {
      'app.kubernetes.io/managed-by': 'natops',
      'natops.io/instance': 'prod',
    });
    assert.equal(
      ownSelector('prod', 'ngw'),
      'app.kubernetes.io/managed-by=natops,natops.io/instance=prod,natops.io/gateway=ngw',
    );
    assert.equal(isOurs(labels, 'prod', 'ngw'), true);
    assert.equal(isOurs(labels, 'staging', 'ngw'), false, 'another instance');
    assert.equal(isOurs(labels, 'prod', 'other'), false, 'another gateway');
    assert.equal(isOurs({ ...labels, 'natops.io/instance': '' }, 'prod'), false);
    assert.equal(isLabelValue('natops'), true);
    assert.equal(isLabelValue('natops_'), false, 'NATOPS_PREFIX allows what a label value does not');
    assert.equal(isLabelValue('a'.repeat(64)), false);
    // refused before the runtime does anything: no object could carry it
    assert.throws(
      () =>
        new KubernetesRuntime(new KubeConfig(), {
          namespace: 'ns',
          mode: 'kube-ovn',
          instance: 'natops_',
          readyTimeoutMs: 1000,
          commandTimeoutMs: 1000,
          policy: { images: ['*'], allowControlPlane: false },
        }),
      (e: unknown) => e instanceof PermanentError && /NATOPS_INSTANCE/.test(e.message),
    );
  });

  it("refuses a gateway whose image or placement the operator's policy does not allow, before any API call", async () => {
    // Job data comes from Redis, not only from validated manifests: the runtime checks it too.
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'none', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'none', token: 'x' }],
      contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
      currentContext: 'none',
    });
    const runtime = new KubernetesRuntime(kc, {
      namespace: 'ns',
      mode: 'kube-ovn',
      instance: 'natops',
      readyTimeoutMs: 1000,
      commandTimeoutMs: 1000,
      policy: { images: ['kubeovn/vpc-nat-gateway:v1.7.0'], allowControlPlane: false },
    });
    const spec = await seedSpec();
    for (const workload of [
      { ...spec.workload, image: 'evil.example/root:1' },
      { ...spec.workload, tolerations: [{ operator: 'Exists' as const }] },
      { ...spec.workload, nodeSelector: { 'node-role.kubernetes.io/control-plane': '' } },
    ]) {
      await assert.rejects(
        runtime.ensureGateway({ ...spec, workload }),
        (e: unknown) =>
          e instanceof PermanentError && /policy|NATOPS_/.test(e.message) && !/ECONNREFUSED/.test(e.message),
        JSON.stringify(workload),
      );
    }
  });

  it('unless the policy allows control-plane nodes, every required node term keeps the pod off them', async () => {
    const keepOff = [
      { key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' },
      { key: 'node-role.kubernetes.io/master', operator: 'DoesNotExist' },
    ];
    const s = { namespace: 'ns', mode: 'kube-ovn' as const, instance: 'prod' };
    const plain = gatewayDeployment(await seedSpec(), { ...s, keepOffControlPlane: true });
    assert.deepEqual(plain.spec.template.spec.affinity, {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: keepOff }] },
      },
    });
    // the manifest's own terms are ORed: each must exclude them, and keep what it asked
    const zone = { key: 'zone', operator: 'In', values: ['a'] };
    const spec = await seedSpec((x) =>
      set(x.gateway, 'spec.affinity', {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [zone] },
              { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] },
            ],
          },
        },
        podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [] },
      }),
    );
    const d = gatewayDeployment(spec, { ...s, keepOffControlPlane: true });
    const terms =
      d.spec.template.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    assert.deepEqual(
      terms?.map((t) => t.matchExpressions),
      [[zone, ...keepOff], keepOff],
    );
    assert.deepEqual(terms?.[1]?.matchFields, [{ key: 'metadata.name', operator: 'In', values: ['n1'] }]);
    assert.ok(d.spec.template.spec.affinity?.podAntiAffinity, 'the rest of the affinity kept');
    // allowed: as the manifest wrote it
    assert.equal(
      'affinity' in gatewayDeployment(await seedSpec(), { ...s, keepOffControlPlane: false }).spec.template.spec,
      false,
    );
  });

  it('a changed attachment (the subnet gateway, the nic) changes the pod template, so the pod rolls', async () => {
    const a = await seedSpec();
    const b = await seedSpec((x) => set(x.subnet, 'spec.gateway', '10.0.1.2'));
    const c = await seedSpec((x) => set(x.config, 'data.nic', 'eth9'));
    const hash = (spec: typeof a) =>
      gatewayDeployment(spec, { namespace: 'ns', mode: 'multus', instance: 'prod', keepOffControlPlane: false }, [
        externalNetwork(spec.workload.nic, { namespace: 'ns', instance: 'prod' }),
        subnetAttachment(spec, { namespace: 'ns', instance: 'prod' }),
      ]).spec.template.metadata.annotations['natops.io/attachments'];
    assert.match(hash(a) ?? '', /^[0-9a-f]{16}$/);
    assert.equal(hash(a), hash(structuredClone(a)));
    assert.notEqual(hash(a), hash(b));
    assert.notEqual(hash(a), hash(c));
  });

  it('the external network is a macvlan on the nic; multus mode gives the lanIp on the subnet bridge', async () => {
    const spec = await seedSpec();
    assert.deepEqual(JSON.parse(externalNetwork('eth1', { namespace: 'ns', instance: 'prod' }).spec.config), {
      cniVersion: '0.3.1',
      type: 'macvlan',
      master: 'eth1',
      mode: 'bridge',
    });
    const lan = JSON.parse(subnetAttachment(spec, { namespace: 'ns', instance: 'prod' }).spec.config) as {
      bridge: string;
      ipam: { addresses: { address: string }[]; routes: { gw: string }[] };
    };
    assert.equal(lan.bridge, subnetAttachmentBridge('sn'));
    assert.ok(lan.bridge.length <= 15);
    assert.deepEqual(
      lan.ipam.addresses.map((a) => a.address),
      ['10.0.1.254/24'],
    );
    assert.deepEqual(
      lan.ipam.routes.map((r) => r.gw),
      ['10.0.1.1'],
    );
  });
});

describe('pod readiness', () => {
  const pod = (status: V1Pod['status'], name = 'vpc-nat-gw-ngw-1'): V1Pod => ({ metadata: { name }, status });

  it('ready only when Running, Ready and not being deleted', () => {
    const ready = pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
    assert.equal(podReadiness(ready).ready, true);
    assert.equal(podReadiness({ ...ready, metadata: { deletionTimestamp: new Date() } }).ready, false);
    assert.equal(podReadiness(pod({ phase: 'Pending' })).ready, false);
  });

  it("gives the cluster's reason: unschedulable, a waiting container, else the pod's newest warning event", () => {
    const unschedulable = pod({
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: "0/1 nodes are available: 1 node(s) didn't match node selector.",
        },
      ],
    });
    assert.equal(
      notReadyReason([unschedulable], [], 20_000),
      "vpc-nat-gw-ngw-1: Unschedulable: 0/1 nodes are available: 1 node(s) didn't match node selector. (after 20 s)",
    );
    const cni = pod({ phase: 'Pending' });
    const event = (message: string, at: string): CoreV1Event => ({
      metadata: {},
      involvedObject: { kind: 'Pod', name: 'vpc-nat-gw-ngw-1' },
      type: 'Warning',
      reason: 'FailedCreatePodSandBox',
      message,
      lastTimestamp: new Date(at),
    });
    assert.match(
      notReadyReason(
        [cni],
        [event('old', '2026-01-01T00:00:00Z'), event('multus: master "eth9" not found', '2026-01-01T00:01:00Z')],
        5000,
      ),
      /FailedCreatePodSandBox: multus: master "eth9" not found \(after 5 s\)$/,
    );
    assert.match(notReadyReason([], [], 5000), /no pod was created/);
    const second = pod({ phase: 'Pending' }, 'vpc-nat-gw-ngw-2');
    const warning = (name: string, message: string): CoreV1Event => ({
      metadata: {},
      involvedObject: { kind: 'Pod', name },
      type: 'Warning',
      reason: 'FailedCreatePodSandBox',
      message,
    });
    assert.equal(
      notReadyReason([cni, second], [warning('vpc-nat-gw-ngw-1', 'one'), warning('vpc-nat-gw-ngw-2', 'two')], 1000),
      'vpc-nat-gw-ngw-1: FailedCreatePodSandBox: one; vpc-nat-gw-ngw-2: FailedCreatePodSandBox: two (after 1 s)',
      'each pod says its own reason',
    );
  });

  it('an exec the API server refuses for permissions is not retried; one it could not serve is', () => {
    assert.equal(new ExecTransportError('pod a/b', ['ip'], 'exec refused', 403).retryable, false);
    assert.equal(new ExecTransportError('pod a/b', ['ip'], 'exec refused', 503).retryable, true);
    assert.equal(new ExecTransportError('pod a/b', ['ip'], 'stream closed').retryable, true);
  });

  it('reads the exit code from the exec status', () => {
    assert.equal(exitCodeOf({ status: 'Success' }), 0);
    assert.equal(
      exitCodeOf({
        status: 'Failure',
        reason: 'NonZeroExitCode',
        details: { causes: [{ reason: 'ExitCode', message: '2' }] },
      }),
      2,
    );
    assert.equal(exitCodeOf({ status: 'Failure', reason: 'InternalError', message: 'container not found' }), undefined);
  });
});

describe("which pod is the gateway's own", () => {
  const d: V1Deployment = { metadata: { name: 'vpc-nat-gw-ngw', uid: 'd-1' } };
  const rs: V1ReplicaSet = {
    metadata: {
      name: 'vpc-nat-gw-ngw-abc',
      uid: 'rs-1',
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'vpc-nat-gw-ngw', uid: 'd-1', controller: true },
      ],
    },
  };
  const own = (over: Partial<V1Pod['spec']> = {}, owners = [rsRef('rs-1')]): V1Pod => ({
    metadata: {
      name: 'vpc-nat-gw-ngw-abc-x',
      labels: { 'app.kubernetes.io/managed-by': 'natops', 'natops.io/instance': 'prod', 'natops.io/gateway': 'ngw' },
      ownerReferences: owners,
    },
    spec: { containers: [{ name: 'vpc-nat-gw' }], ...over },
  });
  function rsRef(uid: string) {
    return { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'vpc-nat-gw-ngw-abc', uid, controller: true };
  }
  const why = (pod: V1Pod, replicaSet: V1ReplicaSet | undefined = rs, expect = { instance: 'prod', gateway: 'ngw' }) =>
    notOwnedReason(pod, d, expect, async () => replicaSet);

  it('its own: natops labels, the container, controlled by a ReplicaSet of the Deployment UID', async () => {
    assert.equal(await why(own()), undefined);
  });

  it('not its own: another instance, the host network, no container, another controller, another Deployment', async () => {
    assert.match((await why(own(), rs, { instance: 'staging', gateway: 'ngw' }))!, /lacks natops's labels/);
    assert.match((await why(own({ hostNetwork: true })))!, /host's network/);
    assert.match((await why(own({ containers: [{ name: 'other' }] })))!, /no container vpc-nat-gw/);
    assert.match((await why(own({}, [])))!, /no controller/);
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'c', controller: true };
    assert.match((await why(own({}, [cm])))!, /its controller is ConfigMap x, not a ReplicaSet/);
    assert.match(
      (await notOwnedReason(own(), d, { instance: 'prod', gateway: 'ngw' }, async () => undefined))!,
      /ReplicaSet is gone/,
    );
    assert.match(
      (await why(own({}, [rsRef('rs-old')])))!,
      /ReplicaSet is gone/,
      'a ReplicaSet of that name made again',
    );
    const other = structuredClone(rs);
    other.metadata!.ownerReferences![0]!.uid = 'd-2';
    assert.match((await why(own(), other))!, /belongs to another Deployment \(UID d-2, not d-1\)/);
  });
});

describe('server-side apply conflicts', () => {
  it('names the other managers and their fields, from the API status', () => {
    const body = JSON.stringify({
      kind: 'Status',
      reason: 'Conflict',
      details: {
        causes: [
          { reason: 'FieldManagerConflict', message: 'conflict with "ops-team"', field: '.spec.replicas' },
          {
            reason: 'FieldManagerConflict',
            message: 'conflict with "kubectl-edit" using apps/v1',
            field: '.metadata.labels.x',
          },
        ],
      },
      code: 409,
    });
    assert.deepEqual(applyConflict({ code: 409, body }), {
      managers: ['ops-team', 'kubectl-edit'],
      fields: ['.spec.replicas', '.metadata.labels.x'],
    });
    assert.equal(applyConflict({ code: 409, body: JSON.stringify({ reason: 'Conflict', details: {} }) }), undefined);
    assert.equal(applyConflict({ code: 422, body }), undefined);
  });
});
