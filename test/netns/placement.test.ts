// An existing gateway is recreated only on a positive finding that it is misplaced (its port on
// another bridge or gone, eth0 gone or without lanIp). A look that fails (ip failing, hanging or
// printing nonsense) is a retryable error and leaves the gateway, its rules and flows alone.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NatopsError, isRetryable } from '../../common/errors.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { ipIn } from '../../runtime/netns/netns.ts';
import { CommandTimeoutError, run } from '../../common/exec.ts';
import { NetnsRuntime, classifyPlacement } from '../../runtime/netns/runtime.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects, seedSpec } from '../helpers/manifests.ts';

const WANT = { port: 'gabcdef01e', bridge: 's12345678', lanCidr: '10.0.1.254/24' };
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
const noDevice = (dev: string) => ({ code: 1, stdout: '', stderr: `Device "${dev}" does not exist.\n` });
const link = (master?: string) =>
  ok(JSON.stringify([{ ifindex: 7, ifname: WANT.port, flags: ['UP'], ...(master ? { master } : {}) }]));
const addr = (...cidrs: string[]) =>
  ok(
    JSON.stringify([
      {
        ifindex: 2,
        ifname: 'eth0',
        flags: ['UP'],
        addr_info: cidrs.map((c) => ({
          family: 'inet',
          local: c.split('/')[0],
          prefixlen: Number(c.split('/')[1]),
          scope: 'global',
        })),
      },
    ]),
  );

describe('classifyPlacement', () => {
  it('is placed when the port is on the bridge and eth0 holds lanIp', () => {
    assert.deepEqual(classifyPlacement({ port: link(WANT.bridge), eth0: addr('10.0.1.254/24') }, WANT), {
      kind: 'placed',
    });
  });

  it('is misplaced only on a positive finding', () => {
    const cases = [
      { port: link('s99999999'), eth0: addr('10.0.1.254/24'), reason: /on s99999999, not s12345678/ },
      { port: link(), eth0: addr('10.0.1.254/24'), reason: /on no bridge/ },
      { port: noDevice(WANT.port), eth0: addr('10.0.1.254/24'), reason: /port gabcdef01e is missing/ },
      { port: link(WANT.bridge), eth0: noDevice('eth0'), reason: /eth0 is missing/ },
      {
        port: link(WANT.bridge),
        eth0: addr('10.0.1.253/24'),
        reason: /eth0 has 10\.0\.1\.253\/24, not 10\.0\.1\.254\/24/,
      },
      { port: link(WANT.bridge), eth0: addr(), reason: /eth0 has no address/ },
      // one side positively wrong is enough, whatever the other side showed
      {
        port: { code: 1, stdout: '', stderr: 'RTNETLINK answers: No buffer space available' },
        eth0: noDevice('eth0'),
        reason: /eth0 is missing/,
      },
    ];
    for (const c of cases) {
      const p = classifyPlacement(c, WANT);
      assert.equal(p.kind, 'misplaced', JSON.stringify(c));
      assert.match((p as { reason: string }).reason, c.reason);
    }
  });

  it('is unknown when ip failed otherwise or printed something unreadable', () => {
    const cases = [
      {
        port: { code: 1, stdout: '', stderr: 'RTNETLINK answers: No buffer space available' },
        eth0: addr('10.0.1.254/24'),
        reason: /ip exited 1: RTNETLINK/,
      },
      {
        port: link(WANT.bridge),
        eth0: { code: 1, stdout: '', stderr: 'Cannot send dump request: Resource temporarily unavailable' },
        reason: /eth0: ip exited 1/,
      },
      { port: ok('[{"ifindex": 3,'), eth0: addr('10.0.1.254/24'), reason: /not JSON/ },
      { port: ok('[]'), eth0: addr('10.0.1.254/24'), reason: /cannot read ip -j link show dev gabcdef01e/ },
      { port: link(WANT.bridge), eth0: ok('{}'), reason: /cannot read ip -j addr show dev eth0/ },
      { port: link(WANT.bridge), eth0: ok('[]'), reason: /no link eth0/ },
    ];
    for (const c of cases) {
      const p = classifyPlacement(c, WANT);
      assert.equal(p.kind, 'unknown', JSON.stringify(c));
      assert.match((p as { reason: string }).reason, c.reason);
    }
  });
});

const REAL_IP = spawnSync('sh', ['-c', 'command -v ip']).stdout.toString().trim();

/**
 * An `ip` put first on PATH for one call: the looks at a gateway's wiring (the placement probes,
 * `-j link show dev` and `-j addr show dev eth0`, and the batches of reads that check the wiring
 * first) fail as `mode` says, everything else is the real ip.
 */
async function withFailingIp<T>(mode: 'exit2' | 'exit1' | 'garbage' | 'hang', f: () => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'natops-fake-ip-'));
  const fail = {
    exit2: 'echo "RTNETLINK answers: Resource temporarily unavailable" >&2; exit 2',
    exit1: 'echo "RTNETLINK answers: No buffer space available" >&2; exit 1',
    garbage: 'echo \'[{"ifindex": 3,\'; exit 0',
    hang: 'exec sleep 30',
  }[mode];
  await writeFile(
    join(dir, 'ip'),
    `#!/bin/sh\ncase " $* " in\n  *" -j link show dev "*|*" -j addr show dev eth0 "*|*" -j -batch - "*) ${fail} ;;\nesac\nexec ${REAL_IP} "$@"\n`,
    { mode: 0o755 },
  );
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
  try {
    return await f();
  } finally {
    process.env.PATH = path;
  }
}

describe('ensureGateway on an existing gateway', () => {
  let h: LabHarness;
  let spec: GatewaySpec;
  let ns: string;
  // (Not the namespace's inode as its identity: the kernel reuses a freed one at once.)
  const lanAddrs = async () =>
    (await h.inGateway('ngw', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).match(/inet \S+/g);

  /** Applied, so the gateway holds its rules: a recreated one starts without them. */
  const healthy = async () => {
    await h.apply(await seedObjects());
    const save = await h.gatewaySave('ngw');
    assert.match(save, /SHARED_DNAT -d 192\.168\.0\.112/, 'the gateway holds its rules');
    return save;
  };

  before(async () => {
    h = await LabHarness.create();
    spec = await seedSpec();
    ns = h.lab.names.gateway('ngw');
  });
  after(async () => {
    await h?.cleanup();
  });

  it('leaves a healthy gateway in place', async () => {
    const save = await healthy();
    const { created } = await new NetnsRuntime(h.lab).ensureGateway(spec);
    assert.equal(created, false);
    assert.equal(await h.gatewaySave('ngw'), save);
  });

  for (const mode of ['exit2', 'exit1', 'garbage', 'hang'] as const) {
    it(`does not recreate a healthy gateway when looking at it fails (ip: ${mode})`, async () => {
      const save = await healthy();
      const runtime = new NetnsRuntime(h.lab, undefined, { commandTimeoutMs: 1000 });
      const outcome = await withFailingIp(mode, () => runtime.ensureGateway(spec)).then(
        (r) => `resolved with created=${r.created}`,
        (e: unknown) => e,
      );
      assert.ok(outcome instanceof NatopsError, `expected a NatopsError, got ${String(outcome)}`);
      assert.ok(isRetryable(outcome), outcome.message);
      if (mode === 'hang') assert.ok(outcome instanceof CommandTimeoutError, outcome.message);
      else assert.match(outcome.message, /cannot tell whether .* is wired|exited 2/);
      assert.equal(await h.gatewaySave('ngw'), save, 'the gateway was not recreated: its rules are intact');
    });
  }

  // Drift that is not a misplacement is mended in place: the gateway keeps its rules and EIPs.
  const drifts: [string, () => Promise<unknown>][] = [
    ['has lost its default route', () => ipIn(ns, 'route', 'del', 'default')],
    [
      'has its net1 port off the underlay bridge',
      () => ipIn(h.lab.names.fabric, 'link', 'set', h.lab.names.gatewayPort('ngw', 'net1'), 'nomaster'),
    ],
  ];
  for (const [what, drift] of drifts) {
    it(`mends a gateway that ${what} without recreating it`, async () => {
      const save = await healthy();
      const net1 = await h.inGateway('ngw', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'net1']);
      await drift();
      const { created } = await new NetnsRuntime(h.lab).ensureGateway(spec);
      assert.equal(created, false);
      assert.equal(await h.gatewaySave('ngw'), save, 'its rules are intact');
      assert.equal(await h.inGateway('ngw', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'net1']), net1, 'its EIPs too');
      assert.match(await h.inGateway('ngw', ['ip', 'route', 'show', 'default']), /default via 10\.0\.1\.1 dev eth0/);
    });
  }

  // Positive findings still recreate it (the Recreate strategy), each from a healthy start.
  const misplacements: [string, () => Promise<unknown>][] = [
    ['eth0 lost lanIp', () => ipIn(ns, 'addr', 'flush', 'dev', 'eth0')],
    [
      'its port left the subnet bridge',
      () => ipIn(h.lab.names.fabric, 'link', 'set', h.lab.names.gatewayPort('ngw', 'eth0'), 'nomaster'),
    ],
    ['eth0 is gone', () => ipIn(ns, 'link', 'del', 'eth0')],
    ['its namespace was deleted by hand', () => run(['ip', 'netns', 'del', ns])],
  ];
  for (const [what, misplace] of misplacements) {
    it(`recreates the gateway when ${what}`, async () => {
      await healthy();
      await misplace();
      const { created } = await new NetnsRuntime(h.lab).ensureGateway(spec);
      assert.equal(created, true);
      assert.doesNotMatch(await h.gatewaySave('ngw'), /SHARED_DNAT/, 'a fresh namespace, without the old rules');
      assert.deepEqual(await lanAddrs(), ['inet 10.0.1.254/24']);
    });
  }
});
