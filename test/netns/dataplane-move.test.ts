// A gateway moving between the data planes: one change each way, with new connections through an
// untouched forward all the while (none may fail) and an established flow kept. Then hand edits of
// natops's nftables table, each repaired by the next apply.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { observeCommands, run } from '../../common/exec.ts';
import { changeSetCommands } from '../../dataplane/commands.ts';
import { compileGateway } from '../../dataplane/compile.ts';
import { diffStates } from '../../dataplane/diff.ts';
import { ruleDiff } from '../../dataplane/plan-text.ts';
import { inNamespace, linkExists } from '../../runtime/netns/netns.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { reconcileGateway, reconcilePart } from '../../runtime/reconcile.ts';
import type { LabHarness } from '../helpers/lab-harness.ts';
import type { SeedObjects } from '../helpers/manifests.ts';
import { onDataplane, useScenario } from '../helpers/scenario.ts';

describe('moving a gateway between iptables and nftables', () => {
  let h: LabHarness;
  let seed: SeedObjects;

  useScenario((harness, manifests) => {
    h = harness;
    seed = manifests;
  });

  const natopsRules = /-A \S+ -j (?:DNAT_FILTER|SNAT_FILTER)$|-j (?:DNAT|SNAT) --to/m;
  // (the revision is new at every change)
  const table = () =>
    h
      .gatewayRules('ngw')
      .then((r) =>
        r.slice(r.indexOf('table ip natops')).replace(/(set revision \{[^}]*elements = \{ )0x[0-9a-f]+/, '$1…'),
      );

  for (const [to, from] of [
    ['nftables', 'iptables'],
    ['iptables', 'nftables'],
  ] as const)
    it(`${from} -> ${to}: one change, no new connection refused, an established flow kept`, async () => {
      const flow = await h.openFlow('ext', '192.168.0.112', 8888);
      assert.equal(flow.greeting, 'web 192.168.0.50');
      const loop = await h.connectLoop('ext', '192.168.0.112', 8888, 2);
      const [result] = await h.apply(onDataplane(seed, to));
      const connections = await loop.stop();

      assert.equal(result!.action, 'update');
      assert.equal(result!.changes.move, to);
      assert.deepEqual(result!.changes.added, [], 'no mapping changes, so the words list none');
      assert.deepEqual(result!.changes.removed, []);
      // the new plane is filled before the old one is emptied
      const programs = result!.commands.map((c) => c.argv[0]);
      assert.deepEqual(
        programs,
        to === 'nftables' ? ['nft', 'iptables-legacy-restore'] : ['iptables-legacy-restore', 'nft'],
      );
      assert.equal(connections.failed, 0, `refused or lost: ${JSON.stringify(connections.reasons)}`);
      assert.ok(connections.ok > 20, `only ${connections.ok} connections went through`);
      assert.equal(await flow.send(), 'web 192.168.0.50', 'the established flow goes on');

      const rules = await h.gatewayRules('ngw');
      if (to === 'nftables') {
        assert.doesNotMatch(rules, natopsRules, 'iptables holds none of natops rules');
        assert.match(rules, /table ip natops/);
      } else {
        assert.match(rules, natopsRules);
        assert.doesNotMatch(rules, /table ip natops/, 'the nftables table is gone');
      }
      for (const [client, ip, port, answer] of [
        ['ext', '192.168.0.111', 80, 'fip 192.168.0.50'],
        ['client', '192.168.0.50', 9000, 'ext 192.168.0.112'],
        ['client', '192.168.0.112', 8888, 'web 192.168.0.112'],
      ] as const)
        assert.equal(await h.tcp(client, ip, port), answer);
      const [again] = await h.apply(seed);
      assert.equal(again!.action, 'unchanged');
    });

  it('hand edits of the nftables table are repaired by the next apply', async () => {
    await h.apply(onDataplane(seed, 'nftables'));
    const made = await table();
    const edits: [string, string[], RegExp][] = [
      [
        'a forward added by hand',
        ['add', 'element', 'ip', 'natops', 'forwards', '{ 192.168.0.112 . tcp . 7777 : 10.0.1.20 . 80 }'],
        /^- -t nat -A SHARED_DNAT -d 192\.168\.0\.112\/32 -p tcp -m tcp --dport 7777 /m,
      ],
      [
        'a rule of its own in an SNAT chain',
        ['insert', 'rule', 'ip', 'natops', 'SHARED_SNAT', 'ip', 'saddr', '10.0.1.20', 'accept'],
        /^- -t nat -A SHARED_SNAT nft: /m,
      ],
      ['the filter chain flushed', ['flush', 'chain', 'ip', 'natops', 'DNAT_FILTER'], /^\+ nftables table ip natops/m],
      ['a map of its own', ['add', 'map', 'ip', 'natops', 'extra', '{ type ipv4_addr : ipv4_addr; }'], /^\+ nftables/m],
    ];
    for (const [what, argv, planned] of edits) {
      await h.inGateway('ngw', ['nft', ...argv]);
      assert.notEqual(await table(), made, `${what}: the edit took`);
      const [result] = await h.apply(seed);
      assert.equal(result!.action, 'update', what);
      assert.match(ruleDiff(result!.changes).join('\n'), planned, what);
      assert.equal(await table(), made, `${what}: the table is natops's again`);
      assert.equal(await h.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50', what);
    }
  });
});

describe("natops's nftables table between changes", () => {
  let h: LabHarness;
  let seed: SeedObjects;

  useScenario((harness, manifests) => {
    h = harness;
    seed = manifests;
  }, 'nftables');

  const forward = (port: number) => ({
    eip: '192.168.0.112',
    protocol: 'tcp' as const,
    externalPort: port,
    internalIp: '10.0.1.10',
    internalPort: 80,
  });
  const inGateway = (argv: string[], stdin?: string) =>
    inNamespace(h.lab.names.gateway('ngw'), { argv, stdin, okExitCodes: [0, 1] });

  it('a long-lived runtime trusts the table it wrote while its revision holds, and reads it whole after', async () => {
    const spec = await h.gatewaySpec(seed, 'ngw');
    const runtime = new NetnsRuntime(h.lab, undefined, { nftablesCacheMs: 60_000 });
    await reconcileGateway(runtime, spec);
    const changed = { ...spec, dnats: [...spec.dnats, forward(7001)] };
    assert.equal((await reconcileGateway(runtime, changed)).action, 'update');
    assert.equal(await h.tcp('ext', '192.168.0.112', 7001), 'web 192.168.0.50');

    // a hand edit keeps the revision: this runtime does not see it until its entry is too old
    await inGateway([
      'nft',
      'add',
      'element',
      'ip',
      'natops',
      'forwards',
      '{ 192.168.0.112 . tcp . 7002 : 10.0.1.10 . 80 }',
    ]);
    assert.equal((await reconcileGateway(runtime, changed)).action, 'unchanged');
    const fresh = new NetnsRuntime(h.lab, undefined, { nftablesCacheMs: 0 });
    const repaired = await reconcileGateway(fresh, changed);
    assert.deepEqual(
      repaired.changes.removed.map((r) => r.spec),
      ['-d 192.168.0.112/32 -p tcp -m tcp --dport 7002 -j DNAT --to-destination 10.0.1.10:80'],
    );

    // another natops changed the table since: the first runtime's probe fails, and it reads it whole
    const third = { ...changed, dnats: [...changed.dnats, forward(7003)] };
    assert.equal((await reconcileGateway(runtime, third)).action, 'update');
    assert.equal(await h.tcp('ext', '192.168.0.112', 7003), 'web 192.168.0.50');
    assert.equal((await reconcileGateway(fresh, third)).action, 'unchanged');
  });

  it("reads and changes a table it knows through the gateway's nft, and follows a namespace made again", async () => {
    const spec = await h.gatewaySpec(seed, 'ngw');
    const runtime = new NetnsRuntime(h.lab, undefined, { nftablesCacheMs: 60_000 });
    await reconcileGateway(runtime, spec);
    const running = () => run(['ip', 'netns', 'pids', h.lab.names.gateway('ngw')]).then((r) => r.stdout.trim());
    // (this read starts the gateway's nft: the table is known now)
    await (await runtime.gateway('ngw'))!.readState(['nat']);
    const before = await running();
    const programs: string[] = [];
    const stop = observeCommands((c) => programs.push(c.program));
    try {
      const changed = { ...spec, dnats: [...spec.dnats, forward(7005)] };
      assert.equal((await reconcilePart(runtime, changed, 'dnat')).action, 'update');
      // the probe, the transaction, its probe, the read-back: lines of the gateway's nft; no
      // process came or went in the gateway
      assert.deepEqual(programs, ['nft', 'nft', 'nft', 'nft']);
      assert.equal(await running(), before);
      assert.equal(await h.tcp('ext', '192.168.0.112', 7005), 'web 192.168.0.50');

      // deleted by hand, the namespace goes: the runtime's sessions do not keep it (and its
      // links on the bridges, and its EIPs answering) alive
      await run(['ip', 'netns', 'del', h.lab.names.gateway('ngw')]);
      const port = h.lab.names.gatewayPort('ngw', 'eth0');
      for (let i = 0; i < 100 && (await linkExists(h.lab.names.fabric, port)); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await linkExists(h.lab.names.fabric, port), false, "the namespace's link is gone with it");

      // the namespace is made again: its sessions start in the new one
      const again = await reconcileGateway(runtime, changed);
      assert.equal(again.action, 'create');
      assert.equal(await h.tcp('ext', '192.168.0.112', 7005), 'web 192.168.0.50');
    } finally {
      stop();
    }
  });

  it('a change computed from a stale table fails whole and changes nothing', async () => {
    const spec = await h.gatewaySpec(seed, 'ngw');
    const runtime = new NetnsRuntime(h.lab, undefined, { nftablesCacheMs: 0 });
    const handle = (await runtime.gateway('ngw'))!;
    const live = await handle.readState();
    const stale = { ...live, nftables: { ...live.nftables!, revision: live.nftables!.revision! + 1 } };
    const [nft] = changeSetCommands(diffStates(stale, compileGateway({ ...spec, dnats: [forward(7004)] }))).filter(
      (c) => c.argv[0] === 'nft',
    );
    const before = await h.gatewayRules('ngw');
    const r = await inGateway(nft!.argv, nft!.stdin);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /revision \{ \d+ \}/, 'the revision it expected is the error');
    assert.equal(await h.gatewayRules('ngw'), before);
  });
});
