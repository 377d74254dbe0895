// The operator's workload policy as a pure check: images and placement (review K1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewayWorkload } from '../../dataplane/model.ts';
import {
  DEFAULT_WORKLOAD_POLICY,
  imageAllowed,
  normalizeImage,
  workloadPolicyViolations,
  type WorkloadPolicy,
} from '../../dataplane/workload-policy.ts';

const workload = (w: Partial<GatewayWorkload> = {}): GatewayWorkload => ({
  image: 'kubeovn/vpc-nat-gateway:v1.7.0',
  nic: 'eth1',
  nodeSelector: {},
  tolerations: [],
  ...w,
});
const allowingControlPlane: WorkloadPolicy = { ...DEFAULT_WORKLOAD_POLICY, allowControlPlane: true };
const paths = (w: GatewayWorkload, p: WorkloadPolicy = DEFAULT_WORKLOAD_POLICY) =>
  workloadPolicyViolations(w, p).map((v) => v.path);

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('workload policy: images', () => {
  it('the default allows Kube-OVN 1.7.0 only, and a refusal names the list and NATOPS_GATEWAY_IMAGES', () => {
    assert.deepEqual(workloadPolicyViolations(workload(), DEFAULT_WORKLOAD_POLICY), []);
    const [v, ...more] = workloadPolicyViolations(workload({ image: 'evil.example/x:1' }), DEFAULT_WORKLOAD_POLICY);
    assert.deepEqual(more, []);
    assert.deepEqual(v!.path, ['image']);
    assert.match(v!.message, /evil\.example\/x:1 is not one the operator allows \(kubeovn\/vpc-nat-gateway:v1\.7\.0\)/);
    assert.match(v!.message, /NATOPS_GATEWAY_IMAGES/);
    // a tag is not a prefix match, nor is a missing one
    for (const image of [
      'kubeovn/vpc-nat-gateway:v1.7.0-evil',
      'kubeovn/vpc-nat-gateway',
      'kubeovn/vpc-nat-gateway:v1.7',
    ])
      assert.deepEqual(paths(workload({ image })), [['image']], image);
  });

  it('`*` allows any image; an empty list none', () => {
    assert.equal(imageAllowed('evil.example/x:1', ['*']), true);
    assert.equal(imageAllowed('kubeovn/vpc-nat-gateway:v1.7.0', []), false);
    assert.match(
      workloadPolicyViolations(workload(), { images: [], allowControlPlane: false })[0]!.message,
      /\(none\)/,
    );
  });

  it("Docker Hub's spellings of one reference are one; other registries stay apart", () => {
    assert.equal(normalizeImage('docker.io/kubeovn/x:1'), 'kubeovn/x:1');
    assert.equal(normalizeImage('index.docker.io/kubeovn/x:1'), 'kubeovn/x:1');
    assert.equal(normalizeImage('docker.io/library/nginx:1'), 'nginx:1');
    assert.equal(normalizeImage('library/nginx:1'), 'nginx:1');
    assert.equal(normalizeImage('quay.io/kubeovn/x:1'), 'quay.io/kubeovn/x:1');
    assert.equal(imageAllowed('docker.io/kubeovn/vpc-nat-gateway:v1.7.0', DEFAULT_WORKLOAD_POLICY.images), true);
    assert.equal(imageAllowed('kubeovn/x:1', ['docker.io/kubeovn/x:1']), true);
    assert.equal(imageAllowed('quay.io/kubeovn/vpc-nat-gateway:v1.7.0', DEFAULT_WORKLOAD_POLICY.images), false);
    assert.equal(imageAllowed('docker.io.evil/kubeovn/vpc-nat-gateway:v1.7.0', DEFAULT_WORKLOAD_POLICY.images), false);
  });

  it('a digest entry allows that digest, with or without a tag; a tag entry allows no digest', () => {
    const images = [`registry.example:5000/nat/gw@${DIGEST}`, 'kubeovn/vpc-nat-gateway:v1.7.0'];
    assert.equal(imageAllowed(`registry.example:5000/nat/gw@${DIGEST}`, images), true);
    assert.equal(imageAllowed(`registry.example:5000/nat/gw:v2@${DIGEST}`, images), true);
    assert.equal(
      imageAllowed(`registry.example:5000/nat/gw@${DIGEST}`, [`registry.example:5000/nat/gw:v2@${DIGEST}`]),
      true,
    );
    assert.equal(imageAllowed(`registry.example:5000/nat/gw@sha256:${'b'.repeat(64)}`, images), false);
    assert.equal(imageAllowed(`registry.example:5000/nat/other@${DIGEST}`, images), false);
    assert.equal(imageAllowed('registry.example:5000/nat/gw', images), false);
    // the tag may point anywhere in the repository once a digest is added
    assert.equal(imageAllowed(`kubeovn/vpc-nat-gateway:v1.7.0@${DIGEST}`, images), false);
  });

  it('a workload without an image (no ConfigMap) has no image violation', () => {
    assert.deepEqual(
      workloadPolicyViolations({ nic: 'eth1', nodeSelector: {}, tolerations: [] }, DEFAULT_WORKLOAD_POLICY),
      [],
    );
  });
});

describe('workload policy: placement', () => {
  it('a toleration without a key tolerates every taint: refused whatever the setting', () => {
    const w = workload({
      tolerations: [
        { key: 'dedicated', operator: 'Exists' },
        { operator: 'Exists' },
        { operator: 'Exists', effect: 'NoSchedule' },
      ],
    });
    for (const policy of [DEFAULT_WORKLOAD_POLICY, allowingControlPlane]) {
      const v = workloadPolicyViolations(w, policy);
      assert.deepEqual(
        v.map((x) => x.path),
        [
          ['tolerations', 1],
          ['tolerations', 2],
        ],
      );
      assert.match(v[0]!.message, /tolerates every taint/);
    }
  });

  it('control-plane taints, node labels and affinity terms: refused unless NATOPS_ALLOW_CONTROL_PLANE', () => {
    const w = workload({
      tolerations: [
        { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
        { key: 'node-role.kubernetes.io/master', operator: 'Exists' },
        { key: 'dedicated', operator: 'Equal', value: 'nat' },
      ],
      nodeSelector: { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/control-plane': '' },
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
              { matchExpressions: [{ key: 'node-role.kubernetes.io/master', operator: 'Exists' }] },
            ],
          },
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 1,
              preference: {
                matchExpressions: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'In', values: [''] }],
              },
            },
          ],
        },
      },
    });
    const v = workloadPolicyViolations(w, DEFAULT_WORKLOAD_POLICY);
    assert.deepEqual(
      v.map((x) => x.path),
      [
        ['tolerations', 0, 'key'],
        ['tolerations', 1, 'key'],
        ['nodeSelector', 'node-role.kubernetes.io/control-plane'],
        [
          'affinity',
          'nodeAffinity',
          'requiredDuringSchedulingIgnoredDuringExecution',
          'nodeSelectorTerms',
          1,
          'matchExpressions',
          0,
          'key',
        ],
        [
          'affinity',
          'nodeAffinity',
          'preferredDuringSchedulingIgnoredDuringExecution',
          0,
          'preference',
          'matchExpressions',
          0,
          'key',
        ],
      ],
    );
    for (const x of v)
      assert.match(x.message, /control-plane nodes; refused unless the operator sets NATOPS_ALLOW_CONTROL_PLANE=true/);
    assert.deepEqual(workloadPolicyViolations(w, allowingControlPlane), []);
  });

  it('affinity that keeps control-plane nodes out is allowed', () => {
    const w = workload({
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [
                  { key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' },
                  { key: 'node-role.kubernetes.io/master', operator: 'NotIn', values: [''] },
                ],
              },
            ],
          },
        },
      },
    });
    assert.deepEqual(paths(w), []);
  });
});
