// The planner's pure decision and finalize's pure transition, without Redis: what a commit
// does to the records, which flows it enqueues and which statuses follow, in every order the
// flows of two commits can finish in.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  decide,
  decideRepairs,
  issueSummary,
  type Decision,
  type PlanContext,
} from '../../functions/planner/decide.ts';
import { settle, supersededBy, type JobOutcome } from '../../functions/jobs/finalize.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { jobTarget } from '../../queue/jobs.ts';
import { KEEP, type GatewayRecord, type NetworkRecord, type RecordSnapshot } from '../../state/records.ts';
import { statusText } from '../../state/statuses.ts';
import { push, seedObjects, set, SEED_VERBATIM, toFiles, type SeedObjects } from '../helpers/manifests.ts';

const validate = (seed: SeedObjects) => validateManifests(toFiles(seed));
const empty: RecordSnapshot = { gateways: new Map(), networks: undefined };
let clock = 0;
const ctx = (gen: number): PlanContext => ({
  sha: gen.toString(16).padStart(40, 'a'),
  gen,
  cause: 'push',
  at: ++clock,
  planUrl: `plan/${gen}`,
  jobUrl: (q, id) => `${q}/${id}`,
});

/** The records after a decision's writes. */
function written(snap: RecordSnapshot, d: Pick<Decision, 'writes'>): RecordSnapshot {
  const gateways = new Map(snap.gateways);
  let networks = snap.networks;
  for (const w of d.writes) {
    if (w.target.kind === 'networks') networks = w.record as NetworkRecord;
    else if (w.record) gateways.set(w.target.name, w.record as GatewayRecord);
    else gateways.delete(w.target.name);
  }
  return { gateways, networks };
}

/** Runs every job of the decision's flows through settle, as successful jobs would. */
function runFlows(snap: RecordSnapshot, d: Pick<Decision, 'flows'>): RecordSnapshot {
  let s = snap;
  for (const f of d.flows) s = runJobs(s, f.jobs);
  return s;
}

function runJobs(snap: RecordSnapshot, jobs: Decision['flows'][number]['jobs']): RecordSnapshot {
  const gateways = new Map(snap.gateways);
  let networks = snap.networks;
  for (const job of jobs) {
    const t = jobTarget(job);
    const cur = t.kind === 'networks' ? networks : gateways.get(t.name);
    const superseded = cur?.desired && cur.desired.gen > job.gen;
    const out = settle(
      t,
      cur,
      job,
      superseded ? { kind: 'superseded', ...supersededBy(cur, job)! } : { kind: 'done', changes: [] },
      { at: ++clock, url: 'u', attempt: 1, attempts: 1 },
    );
    if (out.record === KEEP) continue;
    if (t.kind === 'networks') networks = out.record as NetworkRecord;
    else if (out.record) gateways.set(t.name, out.record as GatewayRecord);
    else gateways.delete(t.name);
  }
  return { gateways, networks };
}

const kinds = (d: Decision, gw: string) => d.flows.find((f) => f.gateway === gw)?.jobs.map((j) => j.kind);
const status = (d: Decision, sha: string, context: string) =>
  d.statuses.find((s) => s.sha === sha && s.context === context);

async function seedLive(): Promise<RecordSnapshot> {
  const d = decide(validate(await seedObjects()), empty, ctx(1));
  return runFlows(written(empty, d), d);
}

describe('the planner decides (pure)', () => {
  it('a new gateway runs every handler in order, networks first; its status is pending until the flow is done', async () => {
    const c = ctx(1);
    const d = decide(validate(await seedObjects()), empty, c);
    assert.deepEqual(kinds(d, 'ngw'), ['vpc', 'gateway', 'gateway-init', 'eip', 'subnet-route', 'fip', 'dnat', 'snat']);
    assert.equal(status(d, c.sha, 'natops/ngw')?.state, 'pending');
    assert.equal(status(d, c.sha, 'natops:networks')?.state, 'pending');
    assert.equal(d.commit, undefined);
    const after = runFlows(written(empty, d), d);
    const rec = after.gateways.get('ngw')!;
    assert.deepEqual(
      [rec.condition.ready, rec.condition.reason, rec.pending, rec.lastApplied?.gen],
      ['True', 'Applied', [], 1],
    );
    assert.match(rec.condition.message, /^live: 2 EIPs, 1 floating IP, 1 port forward, 1 SNAT$/);
    assert.deepEqual([after.networks?.condition.ready, after.networks?.pending], ['True', []]);
  });

  it('the same commit again changes nothing; a changed port forward runs only the DNAT handler', async () => {
    const live = await seedLive();
    const same = decide(validate(await seedObjects()), live, ctx(2));
    assert.deepEqual(same.flows, []);
    assert.equal(status(same, ctx(2).sha, 'natops/ngw')?.description, 'no change');
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    assert.deepEqual(kinds(decide(validate(seed), live, ctx(3)), 'ngw'), ['dnat']);
  });

  it('an EIP change brings the routes along; a new lan IP recreates the gateway', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    push(seed.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
    assert.deepEqual(kinds(decide(validate(seed), live, ctx(2)), 'ngw'), ['eip', 'subnet-route']);
    const moved = await seedObjects();
    set(moved.gateway, 'spec.lanIp', '10.0.1.200');
    assert.deepEqual(kinds(decide(validate(moved), live, ctx(3)), 'ngw')!.slice(0, 2), ['gateway', 'gateway-init']);
  });

  it('a revert planned before the change it reverts ran: the newer commit runs the change again, so the revert wins', async () => {
    const live = await seedLive();
    const a = await seedObjects();
    push(a.gateway, 'spec.dnatRules', {
      eip: '192.168.0.112',
      externalPort: 7000,
      protocol: 'tcp',
      internalIp: '10.0.1.10',
      internalPort: 80,
    });
    const da = decide(validate(a), live, ctx(2));
    assert.deepEqual(kinds(da, 'ngw'), ['dnat']);
    const afterA = written(live, da);
    // B reverts A before A's jobs ran: B's spec equals what is live, yet A's dnat may run first.
    const db = decide(validate(await seedObjects()), afterA, ctx(3));
    assert.deepEqual(kinds(db, 'ngw'), ['dnat'], 'the revert runs the DNAT handler again');
    assert.equal(
      status(db, ctx(2).sha, 'natops/ngw')?.description,
      `not applied: superseded by newer commit ${ctx(3).sha.slice(0, 7)}`,
    );
    const afterB = written(afterA, db);
    for (const order of [
      [da, db],
      [db, da],
    ]) {
      const end = order.reduce((s, d) => runFlows(s, d), afterB);
      const rec = end.gateways.get('ngw')!;
      assert.deepEqual([rec.condition.ready, rec.condition.sha, rec.pending], ['True', ctx(3).sha, []]);
      assert.equal(rec.lastApplied?.gen, 3);
      assert.equal(rec.lastApplied?.state?.dnats.length, 1);
    }
  });

  it('a failed flow leaves its kinds pending: the next commit runs them again even with no change', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    const d = decide(validate(seed), live, ctx(2));
    const job = d.flows[0]!.jobs[0]!;
    const rec = written(live, d).gateways.get('ngw')!;
    const failed = settle(
      jobTarget(job),
      rec,
      job,
      { kind: 'failed', message: 'boom', final: true },
      { at: 1, url: 'u', attempt: 5, attempts: 5 },
    );
    assert.notEqual(failed.record, KEEP);
    const f = failed.record as GatewayRecord;
    assert.deepEqual(
      [f.condition.ready, f.condition.reason, f.condition.message, f.pending],
      ['False', 'Failed', 'dnat failed: boom', ['dnat']],
    );
    assert.equal(failed.statuses[0]?.state, 'failure');
    // GitHub (public for a public repository) is told that it failed; the error's text stays on natops's pages
    assert.equal(failed.statuses[0]?.description, 'dnat failed: boom');
    assert.equal(failed.statuses[0]?.publicDescription, "dnat failed; the error is on natops's dashboard");
    const retrying = settle(
      jobTarget(job),
      rec,
      job,
      { kind: 'failed', message: 'boom', final: false },
      { at: 1, url: 'u', attempt: 2, attempts: 5 },
    );
    assert.doesNotMatch(retrying.statuses[0]?.publicDescription ?? 'missing', /boom|missing/);
    const again = decide(validate(seed), { ...live, gateways: new Map([['ngw', f]]) }, ctx(3));
    assert.deepEqual(kinds(again, 'ngw'), ['dnat']);
  });

  it('an invalid gateway keeps what it had, its networks included (the upstream keeps its EIP next hops)', async () => {
    const live = await seedLive();
    const broken = await seedObjects();
    set(broken.gateway, 'spec.dnatRules.0.internalIp', '172.16.0.10');
    const d = decide(validate(broken), live, ctx(2));
    assert.deepEqual(d.flows, []);
    const s = status(d, ctx(2).sha, 'natops/ngw');
    assert.equal(s?.state, 'failure');
    assert.match(s!.description, /^30-nat-gateway\.yaml:\d+:\d+ VpcNatGateway\/ngw spec\.dnatRules\[0\]\.internalIp: /);
    const rec = written(live, d).gateways.get('ngw')!;
    assert.deepEqual(
      [rec.condition.reason, rec.desired, rec.lastApplied],
      ['Invalid', live.gateways.get('ngw')!.desired, live.gateways.get('ngw')!.lastApplied],
    );
    assert.equal(
      d.writes.some((w) => w.target.kind === 'networks'),
      false,
      'the networks are unchanged',
    );
  });

  it('a gateway gone from Git is removed, also one planned but not live yet; a removal done forgets the record', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    seed.gateway = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated' }, data: {} };
    const d = decide(validate(seed), live, ctx(2));
    assert.deepEqual(kinds(d, 'ngw'), ['gateway-delete']);
    assert.equal(status(d, ctx(2).sha, 'natops/ngw')?.state, 'pending');
    const end = runFlows(written(live, d), d);
    assert.equal(end.gateways.has('ngw'), false);
  });

  it('a file that does not parse refuses the whole commit, so nothing in it looks deleted', async () => {
    const seed = await seedObjects();
    const files = [
      ...toFiles(seed).filter((f) => !f.path.includes('nat-gateway')),
      { path: 'gw.yaml', text: await readFile(SEED_VERBATIM, 'utf8') },
    ];
    const d = decide(validateManifests(files), await seedLive(), ctx(2));
    assert.deepEqual([d.flows, d.writes], [[], []]);
    assert.equal(d.commit?.state, 'failure');
    assert.match(d.commit!.description, /^gw\.yaml:\d+:\d+ /);
  });

  it("enable-vpc-nat-gw: 'false' leaves every gateway as it is", async () => {
    const seed = await seedObjects();
    set(seed.config, 'data.enable-vpc-nat-gw', 'false');
    const d = decide(validate(seed), await seedLive(), ctx(2));
    assert.deepEqual([d.flows, d.writes], [[], []]);
    assert.match(d.commit!.description, /enable-vpc-nat-gw is 'false'/);
  });

  it('a broken Subnet leaves the networks as they are and says so', async () => {
    const seed = await seedObjects();
    set(seed.subnet, 'spec.cidrBlock', '10.0.1.0/33');
    const d = decide(validate(seed), await seedLive(), ctx(2));
    const net = d.writes.find((w) => w.target.kind === 'networks');
    assert.equal(net?.record?.condition.reason, 'Invalid');
    assert.equal(status(d, ctx(2).sha, 'natops:networks')?.state, 'failure');
    assert.ok(!d.flows.some((f) => f.jobs.some((j) => j.kind === 'vpc')));
  });

  it('the resync repairs with the same flows, at the desired generation; a gateway without a record is never removed', async () => {
    const live = await seedLive();
    const r = decideRepairs(
      live,
      {
        drifted: [{ name: 'ngw', what: ['gateway ngw is missing'] }],
        unrecorded: ['stray'],
        planned: true,
        maxRemovals: 1,
      },
      ctx(9),
    );
    assert.deepEqual(
      r.flows.map((f) => [f.gateway, f.jobs.map((j) => [j.kind, j.gen, j.cause])[0]]),
      [['ngw', ['gateway', 1, 'repair']]],
    );
    assert.deepEqual(
      r.writes.map((w) => (w.target.kind === 'gateway' ? w.target.name : '(networks)')),
      ['ngw'],
    );
    assert.deepEqual(
      r.held.map((h) => h.target),
      ['stray'],
    );
    assert.match(r.held[0]!.why, /^not removed: no record holds it/);
    assert.match(r.warnings.join('\n'), /1 gateway run that no record holds \(stray\): not removed/);
    assert.equal(r.alarm, undefined);
    const rec = written(live, r).gateways.get('ngw')!;
    assert.deepEqual([rec.condition.ready, rec.condition.reason], ['Unknown', 'Repairing']);
    const end = runFlows(written(live, r), r);
    assert.equal(end.gateways.get('ngw')!.condition.ready, 'True');
  });

  /** The seed's gateway removed by commit 2, whose removal failed for good: its record says "remove". */
  async function removalFailed(): Promise<GatewayRecord> {
    const live = await seedLive();
    const seed = await seedObjects();
    seed.gateway = { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: 'spare' } };
    const d = decide(validate(seed), live, ctx(2));
    const job = d.flows.find((f) => f.gateway === 'ngw')!.jobs.at(-1)!;
    assert.equal(job.kind, 'gateway-delete');
    const out = settle(
      jobTarget(job),
      written(live, d).gateways.get('ngw'),
      job,
      { kind: 'failed', message: 'ip: broken', final: true },
      { at: ++clock, url: 'u', attempt: 5, attempts: 5 },
    );
    const rec = out.record as GatewayRecord;
    assert.deepEqual([rec.desired?.state, rec.condition.reason], [null, 'Failed']);
    return rec;
  }
  const drift = (name: string) => ({ name, what: [`gateway ${name} is still there after its removal failed`] });

  it('the resync removes only what a record says to remove, at most maxRemovals a run; the rest wait and it says so', async () => {
    const rec = await removalFailed();
    const gateways = new Map(['a', 'b', 'c'].map((name) => [name, { ...rec, name }]));
    const snap: RecordSnapshot = { gateways, networks: undefined };
    const found = { drifted: ['a', 'b', 'c'].map(drift), unrecorded: [], planned: true };
    const one = decideRepairs(snap, { ...found, maxRemovals: 1 }, ctx(9));
    assert.deepEqual(
      one.flows.map((f) => [f.gateway, f.jobs.map((j) => [j.kind, j.gen])]),
      [['a', [['gateway-delete', 2]]]],
      'removed at the generation of the commit that removed it',
    );
    assert.deepEqual(one.held, [
      { target: 'b', why: 'removal held back: at most 1 removal per resync; the next run takes it' },
      { target: 'c', why: 'removal held back: at most 1 removal per resync; the next run takes it' },
    ]);
    assert.deepEqual(one.warnings, ['2 removals held back: at most 1 per resync (b, c); the next run takes the next']);
    assert.equal(runFlows(written(snap, one), one).gateways.has('a'), false);
    const all = decideRepairs(snap, { ...found, maxRemovals: 3 }, ctx(9));
    assert.deepEqual([all.flows.length, all.held, all.warnings], [3, [], []]);
  });

  it('without a planned commit, or with no record while gateways run, the resync removes nothing and raises the alarm', async () => {
    const rec = await removalFailed();
    const live = await seedLive();
    const gateways = new Map([...live.gateways, ['gone', { ...rec, name: 'gone' }]]);
    const snap: RecordSnapshot = { gateways, networks: live.networks };
    const drifted = [{ name: 'ngw', what: ['gateway ngw is missing'] }, drift('gone')];
    const r = decideRepairs(snap, { drifted, unrecorded: [], planned: false, maxRemovals: 5 }, ctx(9));
    assert.deepEqual(
      r.flows.map((f) => f.gateway),
      ['ngw'],
      'a repair to what a record wants still runs',
    );
    assert.deepEqual(r.held, [
      { target: 'gone', why: 'removal held back: no commit of the tracked branch is planned' },
    ]);
    assert.match(r.alarm ?? '', /^no commit of the tracked branch is planned .*: removing nothing/);

    const lost = decideRepairs(
      empty,
      { drifted: [], unrecorded: ['ngw', 'ngw2'], planned: false, maxRemovals: 5 },
      ctx(9),
    );
    assert.deepEqual([lost.flows, lost.writes], [[], []]);
    assert.deepEqual(
      lost.held.map((h) => h.target),
      ['ngw', 'ngw2'],
    );
    assert.match(lost.alarm ?? '', /natops's records are empty but 2 gateways run/);
    const planned = decideRepairs(empty, { drifted: [], unrecorded: ['ngw'], planned: true, maxRemovals: 5 }, ctx(9));
    assert.match(planned.alarm ?? '', /^natops's records are empty but 1 gateway run/);
    assert.equal(
      decideRepairs(empty, { drifted: [], unrecorded: [], planned: false, maxRemovals: 5 }, ctx(9)).alarm,
      undefined,
      'nothing planned and nothing running yet: nothing to say',
    );
  });

  it('status texts fit in 140 characters', () => {
    assert.equal(statusText('x'.repeat(300)).length, 140);
    assert.equal(statusText(' a \n b '), 'a b');
    const issues = Array.from({ length: 3 }, (_, i) => ({
      pos: { file: 'f.yaml', line: i + 1, column: 1 },
      resource: 'VpcNatGateway/g',
      field: 'spec.x',
      message: 'y'.repeat(200),
    }));
    const s = issueSummary(issues);
    assert.equal(s.length, 140);
    assert.ok(s.endsWith(' (+2 more)'));
  });

  it('a gateway defined twice is invalid as a whole: no flow, one write per record', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    seed.extra.push(structuredClone(seed.gateway));
    const d = decide(validate(seed), live, ctx(2));
    assert.deepEqual(d.flows, []);
    const keys = d.writes.map((w) => (w.target.kind === 'gateway' ? w.target.name : '(networks)'));
    assert.deepEqual(keys, [...new Set(keys)]);
    assert.equal(written(live, d).gateways.get('ngw')?.condition.reason, 'Invalid');
  });

  it('a flow whose gateway a newer commit removed (after one that made it invalid) leaves its commit superseded, not pending', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    const d2 = decide(validate(seed), live, ctx(2));
    set(seed.gateway, 'spec.dnatRules.0.internalIp', '172.16.0.10');
    const d3 = decide(validate(seed), written(live, d2), ctx(3));
    // the invalid commit keeps the older flow going: commit 2's status is still to come from it
    assert.equal(status(d3, ctx(2).sha, 'natops/ngw'), undefined);
    seed.gateway = { apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: 'spare' } };
    const d4 = decide(validate(seed), written(written(live, d2), d3), ctx(4));
    assert.deepEqual(kinds(d4, 'ngw'), ['gateway-delete']);
    const removed = runFlows(written(written(written(live, d2), d3), d4), d4);
    assert.equal(removed.gateways.get('ngw'), undefined);
    // commit 2's jobs run after the removal (a worker died holding one): they find no record
    const late = d2.flows[0]!.jobs.at(-1)!;
    const by = supersededBy(removed.gateways.get('ngw'), late);
    assert.ok(by);
    const out = settle(
      jobTarget(late),
      removed.gateways.get('ngw'),
      late,
      { kind: 'superseded', ...by },
      { at: ++clock, url: 'u', attempt: 1, attempts: 1 },
    );
    assert.equal(out.record, KEEP);
    assert.deepEqual(
      out.statuses.map((s) => [s.sha, s.context, s.state, s.description]),
      [[ctx(2).sha, 'natops/ngw', 'success', 'not applied: removed by a newer commit']],
    );
    // a repair's jobs say nothing about any commit
    assert.deepEqual(
      settle(
        jobTarget(late),
        undefined,
        { ...late, cause: 'repair' },
        { kind: 'superseded', ...by },
        { at: ++clock, url: 'u', attempt: 1, attempts: 1 },
      ).statuses,
      [],
    );
  });

  it('a push that replaces a repair still at work marks the repaired commit superseded', async () => {
    const live = await seedLive();
    const r = decideRepairs(
      live,
      { drifted: [{ name: 'ngw', what: ['gateway ngw is missing'] }], unrecorded: [], planned: true, maxRemovals: 1 },
      ctx(5),
    );
    const repairing = written(live, r);
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    const d = decide(validate(seed), repairing, ctx(6));
    assert.equal(
      status(d, ctx(1).sha, 'natops/ngw')?.description,
      `not applied: superseded by newer commit ${ctx(6).sha.slice(0, 7)}`,
    );
  });

  it('only the generation a record wants runs: older ones, and newer ones (an orphan removal that lost to a plan), are superseded', () => {
    const rec = { desired: { gen: 5, sha: ctx(5).sha, cause: 'push' as const, state: null } };
    assert.equal(
      supersededBy(
        {
          ...rec,
          pending: [],
          observedGen: 0,
          condition: {
            ready: 'Unknown',
            reason: 'Progressing',
            message: '',
            sha: ctx(5).sha,
            gen: 5,
            cause: 'push',
            at: 0,
          },
          name: 'x',
        },
        { gen: 5 },
      ),
      undefined,
    );
    for (const gen of [4, 6])
      assert.equal(
        supersededBy(
          {
            ...rec,
            pending: [],
            observedGen: 0,
            condition: {
              ready: 'Unknown',
              reason: 'Progressing',
              message: '',
              sha: ctx(5).sha,
              gen: 5,
              cause: 'push',
              at: 0,
            },
            name: 'x',
          },
          { gen },
        )?.by,
        ctx(5).sha,
      );
    assert.ok(
      supersededBy(
        {
          name: 'x',
          pending: [],
          observedGen: 0,
          condition: { ready: 'False', reason: 'Invalid', message: '', sha: ctx(5).sha, gen: 5, cause: 'push', at: 0 },
        },
        { gen: 5 },
      ),
      'a record that never validated wants no job',
    );
  });

  it('an older generation of the same commit says nothing about that commit', async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    // The same commit planned twice (a plan retried after a partial carry-out): generations 2 and 3.
    const c2 = { ...ctx(2), sha: 'f'.repeat(40) };
    const d2 = decide(validate(seed), live, c2);
    const d3 = decide(validate(seed), written(live, d2), { ...ctx(3), sha: c2.sha });
    const rec = written(written(live, d2), d3).gateways.get('ngw')!;
    const oldJob = d2.flows[0]!.jobs.at(-1)!;
    const outcomes: JobOutcome[] = [
      { kind: 'done', changes: [] },
      { kind: 'superseded', by: c2.sha, why: 'superseded' },
      { kind: 'failed', message: 'x', final: true },
    ];
    for (const outcome of outcomes) {
      assert.deepEqual(
        settle(jobTarget(oldJob), rec, oldJob, outcome, { at: 1, url: 'u', attempt: 1, attempts: 1 }).statuses,
        [],
        outcome.kind,
      );
    }
  });

  it("an older flow finishing keeps a newer commit's Invalid condition", async () => {
    const live = await seedLive();
    const seed = await seedObjects();
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 9999);
    const d2 = decide(validate(seed), live, ctx(2));
    const broken = await seedObjects();
    set(broken.gateway, 'spec.dnatRules.0.internalIp', '172.16.0.10');
    const d3 = decide(validate(broken), written(live, d2), ctx(3));
    const end = runFlows(written(written(live, d2), d3), d2);
    const rec = end.gateways.get('ngw')!;
    assert.deepEqual(
      [rec.condition.reason, rec.condition.gen, rec.lastApplied?.gen, rec.pending],
      ['Invalid', 3, 2, []],
    );
  });

  it('a removal finishing after a newer generation rebuilt the gateway leaves what that one applied', async () => {
    const live = await seedLive();
    const gone = await seedObjects();
    gone.gateway = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated' }, data: {} };
    const d2 = decide(validate(gone), live, ctx(2));
    const d3 = decide(validate(await seedObjects()), written(live, d2), ctx(3));
    const rebuilt = runFlows(written(written(live, d2), d3), d3);
    assert.equal(rebuilt.gateways.get('ngw')?.lastApplied?.gen, 3);
    // The removal ran (under its lease, while it was wanted); its outcome is recorded only now.
    const del = d2.flows[0]!.jobs[0]!;
    const late = settle(
      jobTarget(del),
      rebuilt.gateways.get('ngw'),
      del,
      { kind: 'done', changes: [] },
      { at: 1, url: 'u', attempt: 1, attempts: 1 },
    );
    assert.notEqual(late.record, KEEP);
    assert.equal(
      (late.record as GatewayRecord).lastApplied?.gen,
      3,
      'the late removal cleared what generation 3 made live',
    );
  });
});
