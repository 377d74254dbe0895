import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { issueSummary, planCommit, statusText, type LiveRecord } from '../../gitops/commit-plan.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { labTopology } from '../../lab/topology.ts';
import { push, seedObjects, set, SEED_VERBATIM, toFiles, type SeedObjects } from '../helpers/manifests.ts';

const validate = (seed: SeedObjects) => validateManifests(toFiles(seed));
const nothingLive: LiveRecord = { gateways: new Map(), known: new Set(), network: undefined };

/** What is live after the seed went through. */
async function seedLive(): Promise<LiveRecord> {
  const r = validate(await seedObjects());
  return { gateways: new Map(r.desired.gateways), known: new Set(r.desired.gateways.keys()), network: labTopology(r.desired) };
}

function secondGateway(seed: SeedObjects, name: string, lanIp: string, eip: string): void {
  const gw = structuredClone(seed.gateway) as { metadata: { name: string }; spec: Record<string, unknown> };
  gw.metadata.name = name;
  gw.spec = { vpc: 'test-vpc-1', subnet: 'sn', lanIp, eips: [{ eipCIDR: `${eip}/24`, gateway: '192.168.0.254' }] };
  seed.extra.push(gw);
}

describe('planning a commit', () => {
  it('a first commit runs every handler in order, networks first', async () => {
    const plan = planCommit(validate(await seedObjects()), nothingLive);
    assert.deepEqual(plan.changed.map((c) => [c.name, c.kinds]), [['ngw', ['vpc', 'gateway', 'gateway-init', 'eip', 'subnet-route', 'fip', 'dnat', 'snat']]]);
    assert.ok(plan.network);
    assert.deepEqual([plan.refused, plan.removed, plan.unchanged, plan.invalid], [[], [], [], []]);
  });

  it('the same commit again changes nothing; a changed port forward runs only the DNAT handler', async () => {
    const live = await seedLive();
    const same = planCommit(validate(await seedObjects()), live);
    assert.deepEqual([same.changed, same.unchanged, same.network], [[], ['ngw'], undefined]);
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    assert.deepEqual(planCommit(validate(seed), live).changed.map((c) => c.kinds), [['dnat']]);
  });

  it('an invalid gateway is left alone (not removed) while a valid one proceeds', async () => {
    const seed = await seedObjects();
    secondGateway(seed, 'ngw2', '10.0.1.250', '192.168.0.120');
    const live: LiveRecord = { ...(await seedLive()), network: labTopology(validate(seed).desired) };
    const broken = await seedObjects();
    secondGateway(broken, 'ngw2', '10.0.1.250', '192.168.0.120');
    set(broken.gateway, 'spec.dnatRules.0.externalPort', 70000);
    const plan = planCommit(validate(broken), live);
    assert.deepEqual(plan.invalid.map((i) => i.name), ['ngw']);
    assert.match(issueSummary(plan.invalid[0]!.issues), /^30-nat-gateway\.yaml:\d+:\d+ VpcNatGateway\/ngw spec\.dnatRules\[0\]\.externalPort: /);
    assert.deepEqual(plan.removed, []);
    assert.deepEqual(plan.changed.map((c) => c.name), ['ngw2']);
  });

  it('a gateway gone from Git is removed, also one planned but not live yet', async () => {
    const seed = await seedObjects();
    seed.gateway = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated' }, data: {} };
    const live: LiveRecord = { ...(await seedLive()), known: new Set(['ngw', 'pending-gw']) };
    const plan = planCommit(validate(seed), live);
    assert.deepEqual(plan.removed, ['ngw', 'pending-gw']);
  });

  it('a file that does not parse refuses the whole commit, so nothing in it looks deleted', async () => {
    const seed = await seedObjects();
    const files = [...toFiles(seed).filter((f) => !f.path.includes('nat-gateway')), { path: 'gw.yaml', text: await readFile(SEED_VERBATIM, 'utf8') }];
    const plan = planCommit(validateManifests(files), await seedLive());
    assert.ok(plan.refused.length > 0);
    assert.deepEqual([plan.changed, plan.removed], [[], []]);
    assert.match(issueSummary(plan.refused), /^gw\.yaml:\d+:\d+ /);
  });

  it('a broken Subnet leaves the networks as they are', async () => {
    const seed = await seedObjects();
    set(seed.subnet, 'spec.cidrBlock', '10.0.1.0/33');
    const plan = planCommit(validate(seed), await seedLive());
    assert.ok(plan.networkIssues.length > 0);
    assert.equal(plan.network, undefined);
  });

  it('an EIP change brings the routes along; a new lan IP recreates the gateway', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    push(seed.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
    assert.deepEqual(planCommit(validate(seed), live).changed.map((c) => c.kinds), [['eip', 'subnet-route']]);
    const moved = await seedObjects();
    set(moved.gateway, 'spec.lanIp', '10.0.1.200');
    assert.deepEqual(planCommit(validate(moved), live).changed[0]!.kinds.slice(0, 2), ['gateway', 'gateway-init']);
  });

  it("enable-vpc-nat-gw: 'false' leaves every gateway as it is", async () => {
    const seed = await seedObjects();
    set(seed.config, 'data.enable-vpc-nat-gw', 'false');
    const plan = planCommit(validate(seed), await seedLive());
    assert.equal(plan.disabled, true);
    assert.deepEqual([plan.changed, plan.removed, plan.network], [[], [], undefined]);
  });

  it('status texts fit in 140 characters', () => {
    assert.equal(statusText('x'.repeat(300)).length, 140);
    assert.equal(statusText(' a \n b '), 'a b');
    const issues = Array.from({ length: 3 }, (_, i) => ({ pos: { file: 'f.yaml', line: i + 1, column: 1 }, resource: 'VpcNatGateway/g', field: 'spec.x', message: 'y'.repeat(200) }));
    const s = issueSummary(issues);
    assert.equal(s.length, 140);
    assert.ok(s.endsWith(' (+2 more)'));
  });
});

