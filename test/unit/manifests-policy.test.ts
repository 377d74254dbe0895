// The operator's rules that manifests cannot override, checked at validation with file:line:
// the image allowlist and placement policy (review K1), gateway names that fit the Deployment's
// label (K6), and the most gateways per commit.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { DEFAULT_WORKLOAD_POLICY, type WorkloadPolicy } from '../../dataplane/workload-policy.ts';
import { decide, type PlanContext } from '../../functions/planner/decide.ts';
import { formatIssue, ManifestValidationError, refusesCommit } from '../../gitops/manifests/issues.ts';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { validateManifests, type ValidateOptions } from '../../gitops/manifests/validate.ts';
import type { GatewayRecord, RecordSnapshot } from '../../state/records.ts';
import {
  gatewayInOwnVpc,
  seedObjects,
  set,
  toFiles,
  writeManifestDir,
  type SeedObjects,
} from '../helpers/manifests.ts';

const EVIL = 'evil.example/x:1';
const CP = 'node-role.kubernetes.io/control-plane';

async function validate(change: (s: SeedObjects) => void, options: ValidateOptions = {}) {
  const seed = await seedObjects();
  change(seed);
  const files = toFiles(seed);
  return { files, ...validateManifests(files, options) };
}

/** The 1-based line of `file` whose text includes `needle` (the `nth` such line, from 0). */
function lineOf(files: ManifestFile[], file: string, needle: string, nth = 0): number {
  const lines = files.find((f) => f.path === file)!.text.split('\n');
  const found = lines.flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  assert.ok(found[nth] !== undefined, `${needle} in ${file}`);
  return found[nth]!;
}

describe('manifests: the image allowlist', () => {
  it("an unlisted image is one problem at the ConfigMap's data.image, naming the setting; it refuses the commit", async () => {
    const r = await validate((s) => set(s.config, 'data.image', EVIL));
    assert.equal(r.issues.length, 1, r.issues.map(formatIssue).join('\n'));
    const issue = r.issues[0]!;
    assert.deepEqual(
      [issue.pos.file, issue.pos.line, issue.resource, issue.field],
      ['00-config.yaml', lineOf(r.files, '00-config.yaml', EVIL), 'ConfigMap/ovn-vpc-nat-gw-config', 'data.image'],
    );
    assert.match(issue.message, /evil\.example\/x:1 is not one the operator allows .*NATOPS_GATEWAY_IMAGES/);
    // every gateway runs that image: none is valid, and none may look deleted
    assert.equal(refusesCommit(issue), true);
    assert.equal(r.desired.gateways.size, 0);
  });

  it('the policy given widens it: the image listed, Docker Hub spelt out, or `*`', async () => {
    for (const images of [[EVIL], ['*'], ['kubeovn/vpc-nat-gateway:v1.7.0']]) {
      const image = images[0] === 'kubeovn/vpc-nat-gateway:v1.7.0' ? 'docker.io/kubeovn/vpc-nat-gateway:v1.7.0' : EVIL;
      const r = await validate((s) => set(s.config, 'data.image', image), {
        policy: { ...DEFAULT_WORKLOAD_POLICY, images },
      });
      assert.deepEqual(r.issues.map(formatIssue), [], images.join());
      assert.equal(r.desired.gateways.get('ngw')?.workload.image, image);
    }
  });

  it('readDesired passes the policy through to validation', async () => {
    const seed = await seedObjects();
    set(seed.config, 'data.image', EVIL);
    const dir = await writeManifestDir(seed);
    try {
      await assert.rejects(
        readDesired(dir),
        (e: Error) => e instanceof ManifestValidationError && /NATOPS_GATEWAY_IMAGES/.test(e.message),
      );
      const policy: WorkloadPolicy = { images: [EVIL], allowControlPlane: false };
      const desired = await readDesired(dir, { limits: { policy } });
      assert.equal(desired.gateways.get('ngw')?.workload.image, EVIL);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('manifests: where a gateway may run', () => {
  const placement = (s: SeedObjects) => {
    set(s.gateway, 'spec.tolerations', [
      { key: 'dedicated', operator: 'Equal', value: 'nat', effect: 'NoSchedule' },
      { operator: 'Exists' },
      { key: CP, operator: 'Exists', effect: 'NoSchedule' },
    ]);
    set(s.gateway, 'spec.selector', ['kubernetes.io/os: linux', `${CP}:`]);
    set(s.gateway, 'spec.affinity', {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'node-role.kubernetes.io/master', operator: 'Exists' }] }],
        },
      },
    });
  };

  it('each violation at the field that asks for it, naming the setting; the gateway is invalid', async () => {
    const r = await validate(placement);
    const at = (needle: string, nth = 0) => lineOf(r.files, '30-nat-gateway.yaml', needle, nth);
    assert.deepEqual(
      r.issues.map((i) => [i.pos.file, i.pos.line, i.resource, i.field]),
      [
        ['30-nat-gateway.yaml', at('- operator: Exists'), 'VpcNatGateway/ngw', 'spec.tolerations[1]'],
        ['30-nat-gateway.yaml', at(`- key: ${CP}`), 'VpcNatGateway/ngw', 'spec.tolerations[2].key'],
        ['30-nat-gateway.yaml', at(`${CP}:`), 'VpcNatGateway/ngw', 'spec.selector[1]'],
        [
          '30-nat-gateway.yaml',
          at('node-role.kubernetes.io/master'),
          'VpcNatGateway/ngw',
          'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key',
        ],
      ],
      r.issues.map(formatIssue).join('\n'),
    );
    assert.match(r.issues[0]!.message, /tolerates every taint/);
    for (const i of r.issues.slice(1)) assert.match(i.message, /NATOPS_ALLOW_CONTROL_PLANE=true/);
    // the gateway keeps what it had: a problem filed under it, not one refusing the commit
    assert.equal(r.issues.some(refusesCommit), false);
    assert.equal(r.desired.gateways.has('ngw'), false);
  });

  it('NATOPS_ALLOW_CONTROL_PLANE allows the control-plane terms, never a toleration without a key', async () => {
    const r = await validate(placement, { policy: { ...DEFAULT_WORKLOAD_POLICY, allowControlPlane: true } });
    assert.deepEqual(
      r.issues.map((i) => i.field),
      ['spec.tolerations[1]'],
    );
  });

  it('is checked even when the gateway has other problems', async () => {
    const r = await validate((s) => {
      set(s.gateway, 'spec.lanIp', '10.9.9.9');
      set(s.gateway, 'spec.tolerations', [{ operator: 'Exists' }]);
    });
    assert.deepEqual(
      r.issues.map((i) => i.field),
      ['spec.lanIp', 'spec.tolerations[0]'],
    );
  });
});

describe('manifests: operator limits on gateways', () => {
  it("a name too long for the Deployment's label vpc-nat-gw-<name> (over 52 characters): at metadata.name", async () => {
    const ok = await validate((s) => set(s.gateway, 'metadata.name', 'g'.repeat(52)));
    assert.deepEqual(ok.issues.map(formatIssue), []);
    const long = 'g'.repeat(53);
    const r = await validate((s) => set(s.gateway, 'metadata.name', long));
    assert.equal(r.issues.length, 1);
    assert.deepEqual(
      [r.issues[0]!.pos.line, r.issues[0]!.field],
      [lineOf(r.files, '30-nat-gateway.yaml', long), 'metadata.name'],
    );
    assert.match(r.issues[0]!.message, /longer than 52 characters: .*vpc-nat-gw-<name>.* at most 63/);
  });

  it('more gateways than NATOPS_MANIFEST_MAX_GATEWAYS: one problem, on the first past the limit, refusing the commit', async () => {
    const more = (s: SeedObjects) =>
      s.extra.push(
        ...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn2', n: 2, eip: '192.168.0.120' }),
        ...gatewayInOwnVpc({ gateway: 'gw3', vpc: 'vpc3', subnet: 'sn3', n: 3, eip: '192.168.0.130' }),
      );
    assert.deepEqual((await validate(more, { maxGateways: 3 })).issues, []);
    const r = await validate(more, { maxGateways: 2 });
    assert.equal(r.issues.length, 1, r.issues.map(formatIssue).join('\n'));
    const issue = r.issues[0]!;
    assert.deepEqual(
      [issue.resource, issue.field, issue.pos.file],
      ['VpcNatGateway/gw3', 'metadata.name', '40-extra-5.yaml'],
    );
    assert.match(issue.message, /describes 3 gateways, more than NATOPS_MANIFEST_MAX_GATEWAYS \(2\)/);
    assert.equal(refusesCommit(issue), true);
    assert.deepEqual([...r.desired.gateways.keys()].sort(), ['gw2', 'ngw']);
  });
});

describe('the planner on a commit that breaks the policy', () => {
  const ctx = (gen: number): PlanContext => ({
    sha: gen.toString(16).padStart(40, 'a'),
    gen,
    cause: 'push',
    at: gen,
    planUrl: `plan/${gen}`,
    jobUrl: (q, id) => `${q}/${id}`,
  });
  const twoGateways = (s: SeedObjects) =>
    s.extra.push(...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn2', n: 2, eip: '192.168.0.120' }));
  /** The records once the planner has taken the valid two-gateway seed. */
  async function planned(): Promise<RecordSnapshot> {
    const d = decide(await validate(twoGateways), { gateways: new Map(), networks: undefined }, ctx(1));
    const gateways = new Map<string, GatewayRecord>();
    for (const w of d.writes)
      if (w.target.kind === 'gateway' && w.record) gateways.set(w.target.name, w.record as GatewayRecord);
    assert.deepEqual([...gateways.keys()].sort(), ['gw2', 'ngw']);
    return { gateways, networks: undefined };
  }

  it('an unlisted image changes nothing: no record written, no flow, no gateway removed', async () => {
    const r = await validate((s) => {
      twoGateways(s);
      set(s.config, 'data.image', EVIL);
    });
    const d = decide(r, await planned(), ctx(2));
    assert.deepEqual([d.writes, d.flows], [[], []]);
    assert.equal(d.commit?.state, 'failure');
    assert.match(d.commit!.description, /data\.image: image evil\.example\/x:1 is not one the operator allows/);
  });

  it('a placement breach leaves its gateway as it was; the other is planned and nothing is removed', async () => {
    const r = await validate((s) => {
      twoGateways(s);
      set(s.gateway, 'spec.tolerations', [{ operator: 'Exists' }]);
    });
    const d = decide(r, await planned(), ctx(2));
    assert.match(d.summary, /ngw: invalid/);
    assert.doesNotMatch(d.summary, /removed/);
    assert.equal(
      d.flows.some((f) => f.jobs.some((j) => j.kind === 'gateway-delete')),
      false,
    );
  });
});
