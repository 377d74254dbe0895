// `lab up` reads every namespace it keeps with one process each, before changing anything: over
// a built lab that is all it runs. Over a lab someone changed by hand it puts back each part that
// differs (a subnet's bridge, a router's port and its address, a router's sysctl, the upstream
// router's link), removes a bridge no subnet names, and a second run finds nothing to do. And a
// gateway wired as it should be is checked with two reads, one process each.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { observeCommands, type CommandTiming } from '../../common/exec.ts';
import { inNamespace, ipIn, linkExists } from '../../runtime/netns/netns.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import type { NetworkModel } from '../../dataplane/network.ts';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { reconcileGateway } from '../../runtime/reconcile.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, writeManifestDir } from '../helpers/manifests.ts';

/** The programs `work` runs, in the order they finish. */
async function programsRunBy(work: () => Promise<unknown>): Promise<string[]> {
  const seen: CommandTiming[] = [];
  const stop = observeCommands((c) => seen.push(c));
  try {
    await work();
  } finally {
    stop();
  }
  return seen.map((c) => c.program);
}

const TOPOLOGY: NetworkModel = {
  nic: 'eth1',
  subnets: [{ name: 'sn', cidr: '10.0.1.0/24', gateway: '10.0.1.1', vpc: 'v1' }],
  vpcs: [{ name: 'v1', staticRoutes: [] }],
  eipNextHops: [{ address: '192.168.0.254', prefix: 24, network: '192.168.0.0/24' }],
};

describe('lab up', () => {
  let h: LabHarness;
  before(async () => {
    h = await LabHarness.create();
    assert.ok((await h.lab.up(TOPOLOGY)).length > 0, 'the first run builds the lab');
    assert.deepEqual(await h.lab.up(TOPOLOGY), [], 'a second run over the built lab changes nothing');
  });
  after(async () => {
    await h?.cleanup();
  });

  it('puts back a deleted bridge, router port and upstream link and a changed sysctl; removes a stray bridge', async () => {
    const n = h.lab.names;
    const bridge = n.subnetBridge('sn');
    const router = n.vpc('v1');
    const stray = 's0123abcd';
    // the router's port goes with its veth peer on the bridge; the bridge itself next
    await ipIn(router, 'link', 'del', bridge);
    await ipIn(n.fabric, 'link', 'del', bridge);
    await ipIn(n.fabric, 'link', 'add', stray, 'type', 'bridge');
    await ipIn(n.upstream, 'link', 'del', 'net0');
    await inNamespace(router, { argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0'] });

    const log = await h.lab.up(TOPOLOGY);
    for (const line of [
      `created bridge ${bridge} for subnet sn 10.0.1.0/24`,
      `removed bridge ${stray} (its subnet left the manifests)`,
      'router of VPC v1: set net.ipv4.ip_forward=1',
      'router of VPC v1: port 10.0.1.1 on subnet sn',
      'router port for sn: address 10.0.1.1/24',
      'upstream router: address 192.168.0.254/24',
    ])
      assert.ok(log.includes(line), `${line}\nnot in:\n${log.join('\n')}`);

    assert.ok(await linkExists(n.fabric, bridge));
    assert.ok(!(await linkExists(n.fabric, stray)));
    assert.ok(await linkExists(n.upstream, 'net0'));
    assert.equal((await inNamespace(router, { argv: ['sysctl', '-n', 'net.ipv4.ip_forward'] })).stdout.trim(), '1');
    const addr = JSON.parse((await ipIn(router, '-j', 'addr', 'show', 'dev', bridge)).stdout) as {
      addr_info: { family: string; local: string }[];
    }[];
    assert.deepEqual(
      addr[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => a.local),
      ['10.0.1.1'],
    );
    assert.deepEqual(await h.lab.up(TOPOLOGY), [], 'and then nothing is left to do');
  });
});

describe('lab up removing a subnet and the static routes through it', () => {
  let h: LabHarness;
  after(async () => {
    await h?.cleanup();
  });

  it('removes the port, and the routes the kernel dropped with it are not deleted twice', async () => {
    h = await LabHarness.create();
    const two: NetworkModel = {
      ...TOPOLOGY,
      subnets: [...TOPOLOGY.subnets, { name: 'sn2', cidr: '10.0.2.0/24', gateway: '10.0.2.1', vpc: 'v1' }],
      vpcs: [
        {
          name: 'v1',
          staticRoutes: [
            { cidr: '10.9.0.0/16', nextHopIP: '10.0.2.5', policy: 'policyDst' },
            { cidr: '10.0.1.0/24', nextHopIP: '10.0.2.6', policy: 'policySrc' },
          ],
        },
      ],
    };
    const built = await h.lab.up(two);
    assert.ok(
      built.some((l) => l.includes('route 10.9.0.0/16 via 10.0.2.5')),
      built.join('\n'),
    );
    const log = await h.lab.up(TOPOLOGY);
    assert.ok(log.includes(`router of VPC v1: removed port ${h.lab.names.subnetBridge('sn2')}`), log.join('\n'));
    const router = h.lab.names.vpc('v1');
    const routes = JSON.parse((await ipIn(router, '-j', 'route', 'show', 'table', 'all')).stdout) as {
      dst: string;
      protocol?: string;
    }[];
    assert.deepEqual(
      routes.filter((r) => r.protocol === 'static'),
      [],
      'no static route is left',
    );
    const rules = JSON.parse((await ipIn(router, '-j', 'rule', 'show')).stdout) as { priority: number }[];
    assert.deepEqual(
      rules.filter((r) => r.priority >= 1000 && r.priority < 2000),
      [],
      'no source-route rule is left',
    );
    assert.deepEqual(await h.lab.up(TOPOLOGY), []);
  });
});

describe('reads over a built lab', () => {
  let h: LabHarness;
  after(async () => {
    await h?.cleanup();
  });

  it('lab up runs one process per namespace and nothing else; a wired gateway is checked by two', async () => {
    h = await LabHarness.create();
    const desired = await readDesired(await writeManifestDir(await seedObjects()));
    await h.lab.up(networkModel(desired));
    const runtime = new NetnsRuntime(h.lab);
    const spec = desired.gateways.get('ngw')!;
    await reconcileGateway(runtime, spec);

    let log: string[] = [];
    const up = await programsRunBy(async () => (log = await h.lab.up(networkModel(desired))));
    assert.deepEqual(log, []);
    // the fabric (ip), the VPC's router and the upstream router (sh: sysctl, then ip)
    assert.deepEqual([...up].sort(), ['ip', 'sh', 'sh']);

    let created = true;
    const check = await programsRunBy(async () => ({ created } = await runtime.ensureGateway(spec)));
    assert.equal(created, false);
    assert.deepEqual(check, ['ip', 'ip']);
  });
});
