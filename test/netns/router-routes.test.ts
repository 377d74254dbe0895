// A VPC router's static routes across resyncs: `lab up` with unchanged networks changes nothing
// (a flow through a destination route and one through a source route lose no connection across
// 50 runs, and each run reports nothing), while a real change, a removal or a hand edit of the
// router's routes or rules is applied and reported.
//
// The next hops are plain lab hosts standing in for NAT gateways: each holds the "external"
// address 203.0.113.5 and serves it, so the answer names the next hop the router chose.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inNamespace } from '../../runtime/netns/netns.ts';
import type { NetworkModel } from '../../dataplane/network.ts';
import { ROOT } from '../helpers/cli.ts';
import { LabHarness } from '../helpers/lab-harness.ts';

const CONNECT_LOOP = fileURLToPath(new URL('../../bench/connect-loop.ts', import.meta.url));
const EXTERNAL = '203.0.113.5';
const RUNS = 50;

const topology = (staticRoutes: NetworkModel['vpcs'][number]['staticRoutes']): NetworkModel => ({
  nic: 'eth1',
  subnets: [{ name: 'sn', vpc: 'v1', cidr: '10.0.1.0/24', gateway: '10.0.1.1' }],
  vpcs: [{ name: 'v1', staticRoutes }],
  eipNextHops: [],
});
// As examples/seed/10-vpc.yaml (0.0.0.0/0 via the gateway's lanIp), plus a source route as in
// test/netns/eip-move.test.ts (one host's replies leave through another gateway).
const ROUTES: NetworkModel['vpcs'][number]['staticRoutes'] = [
  { cidr: '0.0.0.0/0', nextHopIP: '10.0.1.254', policy: 'policyDst' },
  { cidr: '10.0.1.6/32', nextHopIP: '10.0.1.253', policy: 'policySrc' },
];

interface LoopResult {
  ok: number;
  failed: number;
  reasons: Record<string, number>;
}

describe("a VPC router's static routes", () => {
  let h: LabHarness;
  const router = (argv: string[]) => h.inRouter('v1', argv);
  const mainStatic = async () => (await router(['ip', 'route', 'show', 'proto', 'static'])).trim();
  const sourceRules = async () =>
    (await router(['ip', 'rule', 'show']))
      .split('\n')
      .filter((l) => /^1\d{3}:/.test(l))
      .map((l) => l.replace(/\s+/g, ' ').trim());
  const table1001 = async () =>
    (
      await inNamespace(h.lab.names.vpc('v1'), { argv: ['ip', 'route', 'show', 'table', '1001'], okExitCodes: [0, 2] })
    ).stdout.trim();

  before(async () => {
    h = await LabHarness.create();
    assert.ok((await h.lab.up(topology(ROUTES))).length > 0, 'the first run builds the lab and says so');
    for (const [name, ip] of [
      ['nh1', '10.0.1.254'],
      ['nh2', '10.0.1.253'],
      ['dst', '10.0.1.10'],
      ['src', '10.0.1.6'],
    ] as const) {
      await h.host(name, 'sn', `${ip}/24`);
    }
    for (const nh of ['nh1', 'nh2']) {
      await inNamespace(h.lab.names.host(nh), { argv: ['ip', 'addr', 'add', `${EXTERNAL}/32`, 'dev', 'lo'] });
      await h.serve(nh, { tcp: [80] });
    }
    for (const client of ['dst', 'src']) {
      await inNamespace(h.lab.names.host(client), {
        argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000'],
      });
    }
  });
  after(async () => {
    await h?.cleanup();
  });

  it(`carries flows without loss across ${RUNS} runs with the same networks, each reporting nothing`, async () => {
    assert.equal(await h.tcp('dst', EXTERNAL, 80), 'nh1 10.0.1.10', 'the destination route leads to 10.0.1.254');
    assert.equal(await h.tcp('src', EXTERNAL, 80), 'nh2 10.0.1.6', 'the source route leads to 10.0.1.253');
    assert.deepEqual(await h.lab.up(topology(ROUTES)), [], 'a second run over the built lab changes nothing');
    const before = { main: await mainStatic(), rules: await sourceRules(), table: await table1001() };

    const loops = ['dst', 'src'].map((client) => {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          h.lab.names.host(client),
          process.execPath,
          '--import',
          'tsx',
          CONNECT_LOOP,
          EXTERNAL,
          '80',
          '3',
        ],
        {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const done = new Promise<LoopResult>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', () => {
          try {
            resolve(JSON.parse(out) as LoopResult);
          } catch {
            reject(new Error(`connect loop in ${client} printed ${JSON.stringify(out)}`));
          }
        });
      });
      return { client, child, done };
    });
    try {
      await new Promise((r) => setTimeout(r, 1500)); // node and tsx start, the loops run
      const reports: string[][] = [];
      for (let i = 0; i < RUNS; i++) reports.push(await h.lab.up(topology(ROUTES)));
      await new Promise((r) => setTimeout(r, 300));
      for (const l of loops) l.child.kill('SIGTERM');
      const results = await Promise.all(loops.map((l) => l.done));
      for (const [i, r] of results.entries()) {
        process.stderr.write(
          `${loops[i]!.client}: ${r.ok} connections ok, ${r.failed} failed ${JSON.stringify(r.reasons)}\n`,
        );
      }
      assert.deepEqual(
        reports,
        Array.from({ length: RUNS }, () => []),
        'no run reports a change',
      );
      for (const [i, r] of results.entries()) {
        assert.ok(r.ok >= 100, `${loops[i]!.client}: the loop ran through the runs (${r.ok} ok)`);
        assert.equal(r.failed, 0, `${loops[i]!.client}: no connection failed (${JSON.stringify(r.reasons)})`);
      }
    } finally {
      for (const l of loops) if (l.child.exitCode === null) l.child.kill('SIGKILL');
    }
    assert.deepEqual(
      { main: await mainStatic(), rules: await sourceRules(), table: await table1001() },
      before,
      'the routes and rules are as they were',
    );
  });

  it('applies and reports a changed next hop, in place', async () => {
    const swapped: NetworkModel['vpcs'][number]['staticRoutes'] = [
      { cidr: '0.0.0.0/0', nextHopIP: '10.0.1.253', policy: 'policyDst' },
      { cidr: '10.0.1.6/32', nextHopIP: '10.0.1.254', policy: 'policySrc' },
    ];
    const log = await h.lab.up(topology(swapped));
    assert.equal(log.length, 2, log.join('\n'));
    assert.ok(
      log.some((l) => /0\.0\.0\.0\/0 via 10\.0\.1\.253/.test(l)),
      log.join('\n'),
    );
    assert.ok(
      log.some((l) => /10\.0\.1\.6\/32 via 10\.0\.1\.254/.test(l)),
      log.join('\n'),
    );
    assert.match(await mainStatic(), /^default via 10\.0\.1\.253 [^\n]*$/);
    assert.match(await table1001(), /^default via 10\.0\.1\.254 /);
    assert.equal(await h.tcp('dst', EXTERNAL, 80), 'nh2 10.0.1.10');
    assert.equal(await h.tcp('src', EXTERNAL, 80), 'nh1 10.0.1.6');
    assert.deepEqual(await h.lab.up(topology(swapped)), []);
    assert.ok((await h.lab.up(topology(ROUTES))).length > 0, 'back to the first next hops');
    assert.equal(await h.tcp('dst', EXTERNAL, 80), 'nh1 10.0.1.10');
  });

  it('removes and reports a route that left the manifests, and a source route with its rules and table', async () => {
    const log = await h.lab.up(topology([ROUTES[1]!]));
    assert.equal(log.length, 1, log.join('\n'));
    assert.match(log[0]!, /0\.0\.0\.0\/0 via 10\.0\.1\.254/);
    assert.equal(await mainStatic(), '');
    assert.equal(await h.tcp('src', EXTERNAL, 80), 'nh2 10.0.1.6', 'the source route still works');
    assert.deepEqual(await h.lab.up(topology([ROUTES[1]!])), []);

    const none = await h.lab.up(topology([]));
    assert.ok(none.length > 0, 'the source route removal is reported');
    assert.ok(
      none.some((l) => /10\.0\.1\.6\/32/.test(l)),
      none.join('\n'),
    );
    assert.deepEqual(await sourceRules(), []);
    assert.equal(await table1001(), '');
    assert.deepEqual(await h.lab.up(topology([])), []);

    const back = await h.lab.up(topology(ROUTES));
    assert.ok(back.length > 0);
    assert.equal(await h.tcp('dst', EXTERNAL, 80), 'nh1 10.0.1.10');
    assert.equal(await h.tcp('src', EXTERNAL, 80), 'nh2 10.0.1.6');
  });

  it('repairs and reports hand edits: a deleted route, a deleted rule, a route natops did not make', async () => {
    const ns = h.lab.names.vpc('v1');
    const ip = (...args: string[]) => inNamespace(ns, { argv: ['ip', ...args] });
    await ip('route', 'del', 'default');
    await ip('rule', 'del', 'pref', '1001');
    await ip('route', 'add', '198.51.100.0/24', 'via', '10.0.1.253', 'proto', 'static');
    await ip('route', 'add', '198.51.101.0/24', 'via', '10.0.1.253', 'table', '1002');
    const log = await h.lab.up(topology(ROUTES));
    assert.equal(log.length, 4, log.join('\n'));
    assert.ok(
      log.some((l) => /198\.51\.100\.0\/24/.test(l)),
      log.join('\n'),
    );
    assert.ok(
      log.some((l) => /198\.51\.101\.0\/24/.test(l)),
      log.join('\n'),
    );
    assert.match(await mainStatic(), /^default via 10\.0\.1\.254 [^\n]*$/);
    assert.equal((await sourceRules()).length, 2, (await sourceRules()).join('\n'));
    assert.equal(await h.tcp('dst', EXTERNAL, 80), 'nh1 10.0.1.10');
    assert.equal(await h.tcp('src', EXTERNAL, 80), 'nh2 10.0.1.6');
    assert.deepEqual(await h.lab.up(topology(ROUTES)), []);
  });
});
