// Job data is checked with the manifests' rules: whoever can write Redis must not reach a command,
// an iptables-restore payload or a path with a value the manifests would refuse. The lab builds
// no path from a name that is not a plain file name.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RuleSpecError, restorePayload } from '../../dataplane/commands.ts';
import { GatewaySpecSchema, type GatewaySpec } from '../../dataplane/model.ts';
import { NetworkModelSchema, type NetworkModel } from '../../dataplane/network.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { HandlerJob, jobData, readJobData } from '../../queue/jobs.ts';
import { LabError } from '../../runtime/netns/errors.ts';
import { Lab } from '../../runtime/netns/lab.ts';
import { LabNames } from '../../runtime/netns/names.ts';
import { seedObjects, seedSpec, toFiles, type Obj } from '../helpers/manifests.ts';

const SHA = 'a'.repeat(40);
const INJECTION =
  '192.168.0.112/32 -j ACCEPT\nCOMMIT\n*filter\n-P INPUT ACCEPT\nCOMMIT\n*nat\n-A SHARED_DNAT -d 1.2.3.4';

/** `value` at `path` (dotted, numeric parts index lists) in a copy of `obj`. */
function withField<T>(obj: T, path: string, value: unknown): T {
  const copy = structuredClone(obj) as Obj;
  const keys = path.split('.');
  let node = copy as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) node = node[k] as Record<string, unknown>;
  node[keys[keys.length - 1]!] = value;
  return copy as T;
}

/** The paths of the issues a schema finds, dotted as readJobData names them. */
const refused = (r: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) =>
  r.success ? [] : r.error!.issues.map((i) => i.path.map(String).join('.'));

describe('gateway spec schema', () => {
  let spec: GatewaySpec;
  before(async () => {
    spec = await seedSpec();
  });

  it('accepts the seed spec as the planner resolves it, unchanged', () => {
    assert.deepEqual(GatewaySpecSchema.parse(JSON.parse(JSON.stringify(spec))), spec);
  });

  const bad: [string, unknown][] = [
    ['name', 'x/../../../../etc/passwd'],
    ['name', 'Ngw'],
    ['vpc', '../vpc'],
    ['subnet.name', 'sn/..'],
    ['subnet.cidr', '10.0.1.0/24\n'],
    ['subnet.cidr', '10.0.1.7/24'],
    ['subnet.gateway', '10.0.1.1 -j ACCEPT'],
    ['lanIp', '10.0.1.254\n'],
    ['vpcSubnets.0.name', 'a b'],
    ['vpcSubnets.0.cidr', '10.0.1.0'],
    ['eips.0.cidr', INJECTION],
    ['eips.0.gateway', '192.168.0.254/24'],
    ['floatingIps.0.eip', '192.168.0.111\r'],
    ['floatingIps.0.internalIp', '10.0.1.5/32'],
    ['dnats.0.eip', INJECTION],
    ['dnats.0.externalPort', 0],
    ['dnats.0.externalPort', 65536],
    ['dnats.0.protocol', 'icmp'],
    ['dnats.0.internalIp', '10.0.1.10:80'],
    ['dnats.0.internalPort', 1.5],
    ['snats.0.eip', 'any'],
    ['snats.0.internalCidr', '10.0.1.0/24 -j ACCEPT'],
    ['workload.image', 'evil\nimage'],
    ['workload.image', '--privileged'],
    ['workload.nic', '../eth1'],
    ['workload.nic', 'eth1\n'],
  ];
  for (const [path, value] of bad) {
    it(`refuses ${path} = ${JSON.stringify(value)}, naming the field`, () => {
      assert.deepEqual(refused(GatewaySpecSchema.safeParse(withField(spec, path, value))), [path]);
    });
  }
});

describe('network model schema', () => {
  let network: NetworkModel;
  before(async () => {
    network = networkModel(validateManifests(toFiles(await seedObjects())).desired);
  });

  it('accepts the seed networks as the planner resolves them, unchanged', () => {
    assert.deepEqual(NetworkModelSchema.parse(JSON.parse(JSON.stringify(network))), network);
  });

  const bad: [string, unknown][] = [
    ['nic', '../../../../etc/passwd'],
    ['nic', '-eth1'],
    ['vpcs.0.name', 'x/../../y'],
    ['vpcs.0.staticRoutes.0.cidr', '0.0.0.0/0\nflush'],
    ['vpcs.0.staticRoutes.0.nextHopIP', '10.0.1.254 dev lo'],
    ['subnets.0.name', '..'],
    ['subnets.0.vpc', 'Vpc'],
    ['subnets.0.cidr', '10.0.1.0/33'],
    ['subnets.0.gateway', 'gw'],
    ['eipNextHops.0.address', '192.168.0.254\n'],
    ['eipNextHops.0.prefix', 33],
    ['eipNextHops.0.network', '192.168.0.0'],
  ];
  for (const [path, value] of bad) {
    it(`refuses ${path} = ${JSON.stringify(value)}, naming the field`, () => {
      assert.deepEqual(refused(NetworkModelSchema.safeParse(withField(network, path, value))), [path]);
    });
  }
});

describe('handler job data', () => {
  it('a job whose spec has a newline in an EIP is refused, with the field in the message', async () => {
    const spec = await seedSpec();
    const job = jobData({ kind: 'dnat', sha: SHA, gen: 1, cause: 'push', gateway: 'ngw', spec, last: true });
    assert.ok(readJobData(HandlerJob, job).ok, 'the seed job reads');
    const read = readJobData(HandlerJob, withField(job, 'spec.dnats.0.eip', INJECTION));
    assert.equal(read.ok, false);
    assert.match(read.ok ? '' : read.message, /^spec\.dnats\.0\.eip: must be an IPv4 address/);
  });

  it('a job naming a gateway that is not a Kubernetes name is refused', async () => {
    const job = jobData({ kind: 'gateway-delete', sha: SHA, gen: 1, cause: 'push', gateway: '../ngw', last: true });
    const read = readJobData(HandlerJob, job);
    assert.match(read.ok ? '' : read.message, /^gateway: must be a valid Kubernetes name/);
  });
});

describe('iptables-restore payload', () => {
  for (const [what, spec] of [
    ['\\n', '-d 1.2.3.4/32 -j ACCEPT\nCOMMIT'],
    ['\\r', '-d 1.2.3.4/32 -j ACCEPT\rCOMMIT'],
  ] as const) {
    it(`refuses a rule spec holding ${what}`, () => {
      for (const op of [{ op: 'append', spec } as const, { op: 'insert', position: 1, spec } as const]) {
        assert.throws(
          () => restorePayload([{ chain: 'SHARED_DNAT', create: false, rewrite: false, ops: [op] }]),
          (e: unknown) => e instanceof RuleSpecError && !e.retryable && e.chain === 'SHARED_DNAT',
        );
      }
    });
  }
});

describe('the lab builds no path from a name that is not a plain file name', () => {
  let outside: string;
  let lab: Lab;
  before(async () => {
    outside = await mkdtemp(join(tmpdir(), 'natops-outside-'));
    lab = new Lab(`j${randomBytes(4).toString('hex')}`);
  });
  after(async () => {
    await rm(outside, { recursive: true, force: true });
  });
  /** A name that, joined below the lab's state dir, lands on `file` in `outside`. */
  const escaping = (file: string) => `${'../'.repeat(16)}${join(outside, file).slice(1)}`;

  it('LabNames asserts a DNS label for gateway, VPC and host names', () => {
    const n = new LabNames('natops');
    for (const bad of ['x/../../y', '..', 'a b', 'Upper', ''])
      for (const name of [() => n.gateway(bad), () => n.vpc(bad), () => n.host(bad)])
        assert.throws(name, (e: unknown) => e instanceof LabError && !e.retryable);
    assert.equal(n.gateway('ngw'), 'natops-gw-ngw');
  });

  it('ownNamespace refuses a path-like name and creates no file', async () => {
    await assert.rejects(lab.ownNamespace(escaping('ns-victim')), LabError);
    assert.equal(existsSync(join(outside, 'ns-victim')), false);
  });

  it('removeHost checks the name as addHost does and removes no file', async () => {
    await writeFile(join(outside, 'victim.json'), 'keep');
    await assert.rejects(
      lab.removeHost(escaping('victim')),
      (e: unknown) => e instanceof LabError && /^host name "\.\.\/.*": must /.test(e.message),
    );
    assert.equal(existsSync(join(outside, 'victim.json')), true);
  });

  it('attachHost refuses a nic that is not a plain file name and creates no file', async () => {
    const network: NetworkModel = { nic: escaping('nic-victim'), vpcs: [], subnets: [], eipNextHops: [] };
    await assert.rejects(lab.attachHost(network), LabError);
    assert.equal(existsSync(join(outside, 'nic-victim')), false);
  });
});
