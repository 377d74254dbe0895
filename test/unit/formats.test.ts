// Records and job data written by an older natops are read (migrated), and ones from a newer
// natops are refused with a message, never misread: an upgrade cannot crash the planner.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { HandlerJob, JOB_SCHEMA, jobData, readJobData } from '../../queue/jobs.ts';
import { gatewayTarget, NETWORKS, parseRecord, RECORD_SCHEMA, RecordError } from '../../state/records.ts';

const SHA = 'a'.repeat(40);
const condition = { ready: 'True', reason: 'Applied', message: 'live', sha: SHA, gen: 3, cause: 'push', at: 1 };
// As natops 0.1 (stop 7, 7e8fdc9) stored them: no format field, the EIP next hops as `underlay`.
const networks01 = {
  nic: 'eth1',
  subnets: [{ name: 'sn', vpc: 'vpc1', cidr: '10.0.1.0/24', gateway: '10.0.1.1' }],
  vpcs: [{ name: 'vpc1', staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: '10.0.1.254', policy: 'policyDst' }] }],
  underlay: [{ address: '192.168.0.254', prefix: 24, network: '192.168.0.0/24' }],
};
const networksRecord01 = {
  desired: { gen: 3, sha: SHA, cause: 'push', state: networks01 },
  pending: [],
  lastApplied: { gen: 3, sha: SHA, at: 1, state: networks01 },
  observedGen: 3,
  condition,
};
const vpcJob01 = { kind: 'vpc', sha: SHA, gen: 3, cause: 'push', network: networks01, last: true };

describe('stored formats', () => {
  it('reads a networks record of natops 0.1, its EIP next hops renamed', () => {
    const rec = parseRecord(NETWORKS, 'natops:sys:networks', JSON.stringify(networksRecord01));
    assert.deepEqual(rec.desired?.state.eipNextHops, networks01.underlay);
    assert.deepEqual(rec.lastApplied?.state.eipNextHops, networks01.underlay);
    assert.equal('underlay' in (rec.desired?.state ?? {}), false);
  });

  it('reads a gateway record of natops 0.1 as it is', () => {
    const rec = parseRecord(
      gatewayTarget('ngw'),
      'natops:gw:ngw',
      JSON.stringify({ name: 'ngw', pending: ['dnat'], observedGen: 2, condition }),
    );
    assert.deepEqual(rec.pending, ['dnat']);
    assert.equal(rec.condition.reason, 'Applied');
  });

  it('refuses a record from a newer natops, and a corrupt one, with a RecordError naming the key', () => {
    const newer = JSON.stringify({ ...networksRecord01, schema: RECORD_SCHEMA + 1 });
    assert.throws(
      () => parseRecord(NETWORKS, 'natops:sys:networks', newer),
      (e: unknown) =>
        e instanceof RecordError &&
        /natops:sys:networks.*newer natops \(record format 3; this one reads up to 2\)/.test(e.message) &&
        !e.retryable,
    );
    assert.throws(
      () => parseRecord(NETWORKS, 'k', '{"pending":'),
      (e: unknown) => e instanceof RecordError && /not JSON/.test(e.message),
    );
    assert.throws(
      () => parseRecord(gatewayTarget('g'), 'natops:gw:g', '{"name":"g"}'),
      (e: unknown) => e instanceof RecordError && /natops:gw:g.*pending/.test(e.message),
    );
  });

  it('migrates a vpc job of natops 0.1 and refuses one from a newer natops', () => {
    const old = readJobData(HandlerJob, vpcJob01);
    assert.ok(old.ok);
    assert.deepEqual(old.data.network?.eipNextHops, networks01.underlay);
    const current = readJobData(HandlerJob, jobData(old.data));
    assert.ok(current.ok, 'a job written now reads back');
    assert.deepEqual(current.data, old.data);
    const newer = readJobData(HandlerJob, { ...vpcJob01, schema: JOB_SCHEMA + 1 });
    assert.deepEqual(newer, { ok: false, message: 'written by a newer natops (job format 3; this one reads up to 2)' });
  });
});
