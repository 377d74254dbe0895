// Small changes stay small (issue 11): a reconcile reads back only what its change set could have
// touched, and a part handler reads only what its part compares, yet a side effect the kernel
// takes along (an address removal dropping a route) is still caught and mended.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../dataplane/commands.ts';
import { compileGateway } from '../../dataplane/compile.ts';
import { diffStates, readBackOf } from '../../dataplane/diff.ts';
import { READ_FIELDS, type GatewayState, type StateRead } from '../../dataplane/model.ts';
import { PART_READS, partTarget, type GatewayPart } from '../../dataplane/parts.ts';
import { portForward } from '../../dataplane/rules.ts';
import type { ExecRequest, ExecResult } from '../../common/exec.ts';
import {
  READ_COMMANDS,
  READ_SECTIONS,
  readGatewayState,
  readScript,
  splitReads,
  type ReadSection,
} from '../../runtime/gateway-io.ts';
import { reconcileGateway, reconcilePart } from '../../runtime/reconcile.ts';
import type { GatewayHandle } from '../../runtime/runtime.ts';
import { isWired } from '../../runtime/netns/runtime.ts';
import { seedSpec } from '../helpers/manifests.ts';
import { oneGatewayRuntime } from '../helpers/fixtures.ts';

/** Only the fields `reads` fill, as a real narrowed read returns them. */
function pick(state: GatewayState, reads: readonly StateRead[]): Partial<GatewayState> {
  const out: Partial<GatewayState> = {};
  for (const r of reads) for (const f of READ_FIELDS[r]) Object.assign(out, { [f]: structuredClone(state[f]) });
  return out;
}

/**
 * A gateway whose reads return the given states in turn (the last repeats), narrowed to what was
 * asked; `reads` records what each read asked for ('all' for a whole read). `wide` answers every
 * read whole, as a handle wrapper that drops the argument does.
 */
function recordingRuntime(states: GatewayState[], opts: { wide?: boolean } = {}) {
  const reads: (readonly StateRead[] | 'all')[] = [];
  const batches: Command[][] = [];
  let i = 0;
  const handle: GatewayHandle = {
    name: 'ngw',
    location: 'script',
    readState: (async (asked?: readonly StateRead[]) => {
      reads.push(asked ?? 'all');
      const state = states[Math.min(i++, states.length - 1)]!;
      return asked && !opts.wide ? pick(state, asked) : structuredClone(state);
    }) as GatewayHandle['readState'],
    // (a copy: reconcile appends the corrective pass to the list it ran first)
    runCommands: async (commands) => void batches.push([...commands]),
  };
  const runtime = oneGatewayRuntime(handle);
  return { runtime, reads, batches };
}

const argvs = (cs: Command[]) => cs.map((c) => c.argv.join(' '));

describe('a small change reads no more than it must', async () => {
  const spec = await seedSpec();
  const desired = compileGateway(spec);
  const forward = (port: number) => portForward('192.168.0.112', 'tcp', 8888, '10.0.1.10', port);
  const otherBackend: GatewayState = {
    ...structuredClone(desired),
    nat: { ...structuredClone(desired.nat), SHARED_DNAT: [forward(8080)] },
  };

  it('one changed port forward: a whole first read, then the nat read only', async () => {
    const { runtime, reads, batches } = recordingRuntime([otherBackend, desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(result.action, 'update');
    assert.deepEqual(reads, ['all', ['nat']]);
    assert.equal(batches.length, 1);
    assert.deepEqual(argvs(batches[0]!), [
      'iptables-legacy-restore -w --noflush',
      'conntrack -D -p tcp -d 192.168.0.112 --dport 8888 -r 10.0.1.10 --reply-port-src 8080',
    ]);
  });

  it('a nat side effect seen on the narrowed read-back still gets its corrective pass', async () => {
    const dropped: GatewayState = {
      ...structuredClone(desired),
      nat: { ...structuredClone(desired.nat), SHARED_SNAT: [] },
    };
    const { runtime, reads, batches } = recordingRuntime([otherBackend, dropped, desired]);
    await reconcileGateway(runtime, spec);
    assert.equal(batches.length, 2);
    assert.match(batches[1]![0]!.stdin!, /-A SHARED_SNAT -s 10\.0\.1\.0\/24/);
    assert.deepEqual(reads, ['all', ['nat'], ['nat']]);
  });

  it('an EIP removal re-reads addresses and the routes it may take along, and mends a lost route', async () => {
    const extra: GatewayState = {
      ...structuredClone(desired),
      addresses: [...desired.addresses, { dev: 'net1', cidr: '192.168.0.120/24' }],
    };
    // the kernel dropped the default route with the address (no promote_secondaries, say)
    const lostRoute: GatewayState = {
      ...structuredClone(desired),
      routes: desired.routes.filter((r) => r.dst !== 'default'),
    };
    const { runtime, reads, batches } = recordingRuntime([extra, lostRoute, desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(result.action, 'update');
    assert.deepEqual(argvs(batches[0]!), ['ip addr del 192.168.0.120/24 dev net1']);
    assert.deepEqual(argvs(batches[1]!), ['ip route replace default via 192.168.0.254 dev net1 table 100']);
    assert.equal(reads[0], 'all');
    for (const r of ['net1', 'routes', 'rules'] as const)
      assert.ok((reads[1] as StateRead[]).includes(r), `the read-back reads ${r}`);
    assert.ok(!(reads[1] as StateRead[]).includes('nat'), 'nat was not touched: no iptables save');
    assert.ok((reads[2] as StateRead[]).includes('routes'));
  });

  it('a handle that answers every read whole (a wrapper dropping the argument) converges the same', async () => {
    const { runtime, batches } = recordingRuntime([otherBackend, desired], { wide: true });
    const result = await reconcileGateway(runtime, spec);
    assert.equal(result.action, 'update');
    assert.equal(batches.length, 1);
  });

  it("a gateway in nf_tables: a part handler's narrowed reads keep its transactions there, the corrective pass's too", async () => {
    const inNft = (s: GatewayState): GatewayState => ({ ...structuredClone(s), iptables: 'nft' });
    // the first transaction did not take (read back as before), the second did
    const { runtime, batches } = recordingRuntime([inNft(otherBackend), inNft(otherBackend), inNft(desired)]);
    await reconcilePart(runtime, spec, 'dnat');
    assert.equal(batches.length, 2);
    for (const batch of batches) assert.equal(batch[0]!.argv[0], 'iptables-nft-restore');
  });

  it('a part handler reads only what its part compares', async () => {
    const dnat = recordingRuntime([otherBackend, desired]);
    await reconcilePart(dnat.runtime, spec, 'dnat');
    assert.deepEqual(dnat.reads, [['nat'], ['nat']]);

    const routes = recordingRuntime([{ ...structuredClone(desired), routes: [] }, desired]);
    const result = await reconcilePart(routes.runtime, spec, 'subnet-route');
    assert.equal(result.action, 'update');
    assert.deepEqual(routes.reads, [['routes'], ['routes']]);
    assert.deepEqual(argvs(routes.batches[0]!), [
      'ip route replace default via 192.168.0.254 dev net1 table 100',
      'ip route replace 10.0.1.0/24 via 10.0.1.1 dev eth0 table 100',
    ]);
  });

  it('an unchanged gateway is read once', async () => {
    const { runtime, reads, batches } = recordingRuntime([desired]);
    assert.equal((await reconcileGateway(runtime, spec)).action, 'unchanged');
    assert.deepEqual(reads, ['all']);
    assert.equal(batches.length, 0);
  });
});

describe('what a change set must read back', async () => {
  const desired = compileGateway(await seedSpec());
  const change = (live: GatewayState) => readBackOf(diffStates(live, desired));

  it('nat rules: the nat read alone', () => {
    assert.deepEqual(change({ ...desired, nat: { ...desired.nat, SHARED_DNAT: [] } }), ['nat']);
  });
  it('addresses or net1 itself: net1, and the rules and routes an address can take along', () => {
    assert.deepEqual(change({ ...desired, addresses: [] }), ['net1', 'rules', 'routes']);
    assert.deepEqual(change({ ...desired, net1Up: false }), ['net1', 'rules', 'routes']);
  });
  it('routes, rules, sysctls: each alone', () => {
    assert.deepEqual(change({ ...desired, routes: [] }), ['routes']);
    assert.deepEqual(change({ ...desired, rules: [] }), ['rules']);
    assert.deepEqual(change({ ...desired, sysctls: {} }), ['sysctls']);
  });
  it('nothing changed: nothing to read', () => {
    assert.deepEqual(change(desired), []);
  });
});

describe('each part reads what it compares', async () => {
  const spec = await seedSpec();
  const desired = compileGateway(spec);
  // a live gateway differing from desired in every field
  const live: GatewayState = {
    iptables: 'nft',
    net1Up: false,
    sysctls: {},
    addresses: [],
    rules: [],
    routes: [],
    nat: { PREROUTING: [], POSTROUTING: [] },
  };
  for (const [part, reads] of Object.entries(PART_READS)) {
    it(`${part}: the fields its target changes are all in its reads`, () => {
      const t = partTarget(part as GatewayPart, live, desired);
      const readFields = new Set(reads.flatMap((r) => READ_FIELDS[r]));
      for (const f of Object.keys(live) as (keyof GatewayState)[]) {
        if (!readFields.has(f)) assert.deepEqual(t[f], live[f], `${part} changes ${f}, which it does not read`);
      }
    });
  }
});

describe('a narrowed read of a gateway', () => {
  /** An exec that answers the read script from canned outputs, recording what it ran. */
  const fakeExec =
    (ran: string[]) =>
    async (req: ExecRequest): Promise<ExecResult> => {
      const script = req.argv[2]!;
      ran.push(script);
      const canned: Record<ReadSection, string> = {
        'nat-legacy':
          '*nat\n:SHARED_DNAT - [0:0]\n-A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.0.1.10:1\nCOMMIT\n',
        'nat-nft': '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n',
        // no nftables table (nft's answer then)
        'nat-nftables': '',
        'nat-revision': '',
        net1: '[{"ifname":"net1","flags":["UP"],"addr_info":[{"family":"inet","local":"192.168.0.112","prefixlen":24,"scope":"global"}]}]',
        rules: '[{"iif":"net1","table":"100"}]',
        routes: '[{"dst":"default","gateway":"192.168.0.254","dev":"net1"}]',
        sysctls: '1\n1\n',
      };
      let stdout = '';
      let stderr = '';
      for (const name of Object.keys(READ_COMMANDS) as ReadSection[]) {
        if (!script.includes(READ_COMMANDS[name].map((a) => `'${a}'`).join(' '))) continue;
        const absent = name === 'nat-nftables';
        stdout += `\n#natops-read ${name}\n${canned[name]}\n#natops-read-exit ${name} ${absent ? 1 : 0}\n`;
        stderr += `\n#natops-read ${name}\n${absent ? 'Error: No such file or directory\n' : ''}`;
      }
      return { stdout, stderr, code: 0 };
    };

  it('runs only the commands asked for and returns only their fields', async () => {
    const ran: string[] = [];
    const nat = await readGatewayState(fakeExec(ran), ['nat']);
    // (nftables: undefined where there is no table, so that a read-back after its removal says so)
    assert.deepEqual(Object.keys(nat).sort(), ['iptables', 'nat', 'nftables']);
    assert.equal(nat.nftables, undefined);
    assert.equal(nat.nat?.SHARED_DNAT?.length, 1);
    assert.equal(nat.iptables, 'legacy');
    assert.match(ran[0]!, /iptables-legacy-save.*\n.*iptables-nft-save/);
    assert.doesNotMatch(ran[0]!, /'ip' '-j'|sysctl/);

    const ip = await readGatewayState(fakeExec(ran), ['net1', 'routes']);
    assert.deepEqual(Object.keys(ip).sort(), ['addresses', 'net1Up', 'routes']);
    assert.doesNotMatch(ran[1]!, /iptables/);
  });

  it('a whole read is unchanged: every command, every field', async () => {
    const ran: string[] = [];
    const all = await readGatewayState(fakeExec(ran));
    assert.deepEqual(Object.keys(all).sort(), [
      'addresses',
      'iptables',
      'nat',
      'net1Up',
      'nftables',
      'routes',
      'rules',
      'sysctls',
    ]);
    assert.equal(ran[0], readScript(Object.values(READ_SECTIONS).flat()));
    assert.deepEqual(all.sysctls, { 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.net1.promote_secondaries': '1' });
  });

  it('splits the streams of a narrowed script by the reads it ran', () => {
    const r = splitReads(
      '\n#natops-read nat-nft\n*nat\nCOMMIT\n\n#natops-read-exit nat-nft 0\n',
      '\n#natops-read nat-nft\n',
      ['nat-nft'],
    );
    assert.deepEqual(Object.keys(r), ['nat-nft']);
    assert.equal(r['nat-nft'].code, 0);
  });
});

describe('an existing netns gateway whose wiring needs no step', () => {
  const ok = (stdout: unknown) => ({ code: 0, stdout: JSON.stringify(stdout) });
  const port = (master: string, up = true) =>
    ok([{ ifname: 'p', master, flags: up ? ['BROADCAST', 'UP', 'LOWER_UP'] : ['BROADCAST'] }]);
  const eth0 = (cidr: string, up = true) =>
    ok([
      {
        ifname: 'eth0',
        flags: up ? ['UP'] : [],
        addr_info: [
          { family: 'inet', local: cidr.split('/')[0], prefixlen: Number(cidr.split('/')[1]), scope: 'global' },
        ],
      },
    ]);
  const want = { bridge: 'br-sn', lanCidr: '10.0.1.254/24', nic: 'eth1', gateway: '10.0.1.1' };
  const wired = {
    eth0Port: port('br-sn'),
    eth0: eth0('10.0.1.254/24'),
    net1Port: port('eth1'),
    routes: ok([{ dst: 'default', gateway: '10.0.1.1', dev: 'eth0', flags: [] }]),
  };

  it('is wired when every step already holds', () => {
    assert.equal(isWired(wired, want), true);
  });

  it('is not wired (and the full path runs) when any step would change something, or a read is in doubt', () => {
    const cases: [string, Partial<typeof wired>][] = [
      ['eth0 port on another bridge', { eth0Port: port('br-other') }],
      ['eth0 port down', { eth0Port: port('br-sn', false) }],
      ['eth0 down', { eth0: eth0('10.0.1.254/24', false) }],
      ['eth0 without lanIp', { eth0: eth0('10.0.1.253/24') }],
      ['net1 port off the underlay', { net1Port: port('br-sn') }],
      ['no default route', { routes: ok([]) }],
      ['default route elsewhere', { routes: ok([{ dst: 'default', gateway: '10.0.1.2', dev: 'eth0' }]) }],
      [
        'default route at another metric only',
        { routes: ok([{ dst: 'default', gateway: '10.0.1.1', dev: 'eth0', metric: 100 }]) },
      ],
      ['a read failed', { net1Port: { code: 1, stdout: '' } }],
      ['a read printed garbage', { eth0: { code: 0, stdout: '[{"ifname":' } }],
    ];
    for (const [what, change] of cases) assert.equal(isWired({ ...wired, ...change }, want), false, what);
  });
});
