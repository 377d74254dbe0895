// The nftables data plane's pure core: where each mapping goes in the table, a change as the
// fewest element deletes and adds, a whole table when it is not natops's, and reading it back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changeSetCommands } from '../../dataplane/commands.ts';
import { compileGateway } from '../../dataplane/compile.ts';
import { diffStates } from '../../dataplane/diff.ts';
import type { GatewaySpec, GatewayState } from '../../dataplane/model.ts';
import {
  emptyMappings,
  NftablesSpecError,
  lineProbeHolds,
  nftablesPayload,
  nftablesProbe,
  nftLine,
  parseNftables,
  probeHolds,
} from '../../dataplane/nftables.ts';
import { partTarget } from '../../dataplane/parts.ts';
import { NftablesCache } from '../../runtime/gateway-io.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { manifestRulesFromEnv } from '../../server/config.ts';
import { seedObjects, seedSpec, set, toFiles } from '../helpers/manifests.ts';

const onNftables = (spec: GatewaySpec): GatewaySpec => ({ ...spec, dataplane: 'nftables' });
/** `s` as read back from a gateway: its table has a revision (7 here; the next change leaves 8). */
const read = (s: GatewayState): GatewayState => (s.nftables ? { ...s, nftables: { ...s.nftables, revision: 7 } } : s);
const nftCommand = (live: GatewayState, desired: GatewayState) =>
  changeSetCommands(diffStates(read(live), desired), 8).filter((c) => c.argv[0] === 'nft');

describe('the nftables data plane', () => {
  it('compiles the mappings into the table and leaves iptables only its empty hooks', async () => {
    const state = compileGateway(onNftables(await seedSpec()));
    assert.deepEqual(state.nat, { PREROUTING: [], POSTROUTING: [] });
    assert.equal(state.nftables?.intact, true);
    assert.deepEqual(state.nftables?.nat.EXCLUSIVE_DNAT, ['-d 192.168.0.111/32 -j DNAT --to-destination 10.0.1.5']);
    assert.equal(state.nftables?.nat.SHARED_DNAT.length, 1);
  });

  it('a new gateway gets the whole table in one transaction: maps, hooks before iptables, elements', async () => {
    const desired = compileGateway(onNftables(await seedSpec()));
    const [cmd, ...rest] = nftCommand(
      compileGateway({ ...(await seedSpec()), dnats: [], floatingIps: [], snats: [] }),
      desired,
    );
    assert.equal(rest.length, 0);
    assert.deepEqual(cmd!.argv, ['nft', '-f', '-']);
    const lines = cmd!.stdin!.split('\n');
    assert.deepEqual(lines.slice(0, 3), ['add table ip natops', 'delete table ip natops', 'add table ip natops']);
    assert.ok(
      lines.includes('add chain ip natops PREROUTING { type nat hook prerouting priority -101; policy accept; }'),
    );
    assert.ok(lines.includes('add element ip natops forwards { 192.168.0.112 . tcp . 8888 : 10.0.1.10 . 80 }'));
    assert.ok(lines.includes('add element ip natops floating_dnat { 192.168.0.111 : 10.0.1.5 }'));
    assert.ok(lines.includes('add element ip natops floating_snat { 10.0.1.5 : 192.168.0.111 }'));
    assert.ok(
      lines.includes('add rule ip natops SHARED_SNAT ip saddr 10.0.1.0/24 oifname "net1" snat to 192.168.0.112'),
    );
  });

  it('one forward changed among many is one delete and one add, nothing else', async () => {
    const base = await seedSpec();
    const many = (port: number) =>
      onNftables({
        ...base,
        dnats: Array.from({ length: 5000 }, (_, i) => ({
          eip: '192.168.0.112',
          protocol: 'tcp' as const,
          externalPort: 1000 + i,
          internalIp: '10.0.1.10',
          internalPort: i === 42 ? port : 80,
        })),
      });
    const changes = diffStates(read(compileGateway(many(80))), compileGateway(many(81)));
    assert.equal(changes.added.length, 1);
    assert.equal(changes.removed.length, 1);
    assert.deepEqual(changes.chains, [], 'iptables is not touched');
    const cmds = changeSetCommands(changes, 8);
    const nft = cmds.find((c) => c.argv[0] === 'nft')!;
    // the revision read is swapped for a new one in the same transaction: from a stale read it fails
    assert.equal(
      nft.stdin,
      'delete element ip natops revision { 7 }\n' +
        'delete element ip natops forwards { 192.168.0.112 . tcp . 1042 }\n' +
        'add element ip natops forwards { 192.168.0.112 . tcp . 1042 : 10.0.1.10 . 81 }\n' +
        'add element ip natops revision { 8 }\n',
    );
    // read back: the new revision is there, the forward maps to its new backend (a value that
    // differs fails to add), and the transaction is made to fail at its last line, changing nothing
    assert.deepEqual(nft.nftables?.probe, {
      payload:
        'delete element ip natops revision { 8 }\n' +
        'add element ip natops forwards { 192.168.0.112 . tcp . 1042 : 10.0.1.10 . 81 }\n' +
        'delete element ip natops revision { 0 }\n',
      mustFail: [false, false, true],
    });
    // the removed backend's connections are cleaned up, as on iptables
    assert.ok(cmds.some((c) => c.conntrack?.origDport === 1042 && c.conntrack.replySport === 80));
  });

  it('a changed SNAT rewrites its chain only (order matters there), with its rules in order', async () => {
    const spec = onNftables(await seedSpec());
    // a longer prefix goes first: the first SNAT to match wins
    const wider = { ...spec, snats: [...spec.snats, { eip: '192.168.0.111', internalCidr: '10.0.1.128/25' }] };
    const [cmd] = nftCommand(compileGateway(spec), compileGateway(wider));
    assert.equal(
      cmd!.stdin,
      'delete element ip natops revision { 7 }\n' +
        'flush chain ip natops SHARED_SNAT\n' +
        'add rule ip natops SHARED_SNAT ip saddr 10.0.1.128/25 oifname "net1" snat to 192.168.0.111\n' +
        'add rule ip natops SHARED_SNAT ip saddr 10.0.1.0/24 oifname "net1" snat to 192.168.0.112\n' +
        'flush chain ip natops HAIRPIN_SNAT\n' +
        'add rule ip natops HAIRPIN_SNAT ip saddr 10.0.1.128/25 oifname "eth0" ct status dnat snat to 192.168.0.111\n' +
        'add rule ip natops HAIRPIN_SNAT ip saddr 10.0.1.0/24 oifname "eth0" ct status dnat snat to 192.168.0.112\n' +
        'add element ip natops revision { 8 }\n',
    );
  });

  it("a table that is not only natops's is made whole; a gateway back on iptables loses it", async () => {
    const desired = compileGateway(onNftables(await seedSpec()));
    const broken = { ...desired, nftables: { ...desired.nftables!, intact: false } };
    assert.match(nftCommand(broken, desired)[0]!.stdin!, /^add table ip natops\ndelete table ip natops\n/);
    const back = changeSetCommands(diffStates(read(desired), compileGateway(await seedSpec())));
    assert.deepEqual(
      back.map((c) => c.argv[0]),
      ['iptables-legacy-restore', 'nft'],
      'iptables answers before the table goes',
    );
    assert.equal(back[1]!.stdin, 'delete table ip natops\n');
  });

  it('refuses a spec it has no form for, before anything runs', () => {
    assert.throws(
      () =>
        nftablesPayload(
          {
            kind: 'create',
            nat: {
              EXCLUSIVE_DNAT: ['-d 1.2.3.4/32 -j DNAT --to-destination 5.6.7.8\nflush ruleset'],
              EXCLUSIVE_SNAT: [],
              SHARED_DNAT: [],
              SHARED_SNAT: [],
              HAIRPIN_SNAT: [],
            },
          },
          1,
        ),
      NftablesSpecError,
    );
  });
});

describe('a probe of the table', () => {
  it('holds only when exactly the lines it expects to fail failed', () => {
    const probe = { payload: '', mustFail: [false, true, true] };
    const err = (...lines: number[]) =>
      lines
        .map((l) => `/dev/stdin:${l}:37-62: Error: Could not process rule: No such file or directory\nx\n^^\n`)
        .join('');
    assert.equal(probeHolds(probe, err(2, 3)), true);
    assert.equal(probeHolds(probe, err(1, 2, 3)), false, 'the revision is another');
    assert.equal(probeHolds(probe, err(3)), false, 'a removed element is still there');
    assert.equal(probeHolds(probe, 'sh: nft: not found\n'), false);
  });
});

describe('a probe as one line of nft -i', () => {
  const probe = nftablesProbe(5, {
    kind: 'update',
    from: 4,
    remove: [
      {
        chain: 'SHARED_DNAT',
        spec: '-d 192.168.0.121/32 -p tcp -m tcp --dport 20008 -j DNAT --to-destination 10.0.1.100:80',
      },
    ],
    add: [{ chain: 'EXCLUSIVE_DNAT', spec: '-d 192.168.0.122/32 -j DNAT --to-destination 10.0.1.7' }],
    rules: {},
  });
  const { line, columns } = nftLine(probe.payload);
  // as nft -i prints an error: the message, the line, carets under the failing command
  const error = (command: number, message = 'Could not process rule: No such file or directory') =>
    `Error: ${message}\n${line}\n${' '.repeat(columns[command]! + 7)}^^^^\n`;

  it('is the payload joined with "; ", each command at its column', () => {
    const commands = probe.payload.trim().split('\n');
    assert.equal(line, commands.join('; '));
    assert.equal(columns.length, 4);
    for (const [i, c] of commands.entries()) assert.equal(line.slice(columns[i]!, columns[i]! + c.length), c);
  });

  it('holds only when exactly the commands it expects to fail failed', () => {
    // revision, the added element, the removed one (must fail), revision 0 (must fail)
    assert.equal(lineProbeHolds(probe, error(2) + error(3)), true);
    assert.equal(lineProbeHolds(probe, error(0) + error(2) + error(3)), false, 'the revision is another');
    assert.equal(lineProbeHolds(probe, error(3)), false, 'the removed element is still there');
    assert.equal(lineProbeHolds(probe, error(1, 'Could not process rule: File exists') + error(2) + error(3)), false);
    assert.equal(lineProbeHolds(probe, `${error(2)}${error(3)}Error: something without a place\n`), false);
    assert.equal(lineProbeHolds(probe, ''), false, 'revision 0 always fails: no error at all is no table seen');
  });
});

describe("reading natops's nftables table", () => {
  const table = (extra: object[] = [], prio = -101) =>
    JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'ip', name: 'natops' } },
        { set: { name: 'revision', type: 'mark', elem: [12] } },
        { map: { name: 'floating_dnat', type: 'ipv4_addr', map: 'ipv4_addr', elem: [['192.168.0.113', '10.0.1.12']] } },
        { map: { name: 'floating_snat', type: 'ipv4_addr', map: 'ipv4_addr' } },
        {
          map: {
            name: 'forwards',
            type: ['ipv4_addr', 'inet_proto', 'inet_service'],
            map: 'ipv4_addr . inet_service',
            elem: [[{ concat: ['192.168.0.111', 'tcp', 8888] }, { concat: ['10.0.1.10', 80] }]],
          },
        },
        ...['PREROUTING', 'POSTROUTING'].map((name, i) => ({
          chain: { name, type: 'nat', hook: name.toLowerCase(), prio: i ? 99 : prio, policy: 'accept' },
        })),
        ...[
          'DNAT_FILTER',
          'SNAT_FILTER',
          'EXCLUSIVE_DNAT',
          'EXCLUSIVE_SNAT',
          'SHARED_DNAT',
          'SHARED_SNAT',
          'HAIRPIN_SNAT',
        ].map((name) => ({ chain: { name } })),
        ...[
          ['PREROUTING', 'DNAT_FILTER'],
          ['POSTROUTING', 'SNAT_FILTER'],
          ['DNAT_FILTER', 'EXCLUSIVE_DNAT'],
          ['DNAT_FILTER', 'SHARED_DNAT'],
          ['SNAT_FILTER', 'EXCLUSIVE_SNAT'],
          ['SNAT_FILTER', 'SHARED_SNAT'],
          ['SNAT_FILTER', 'HAIRPIN_SNAT'],
        ].map(([chain, target]) => ({ rule: { chain, expr: [{ jump: { target } }] } })),
        ...[
          ['EXCLUSIVE_DNAT', 'dnat', 'daddr', 'floating_dnat'],
          ['EXCLUSIVE_SNAT', 'snat', 'saddr', 'floating_snat'],
        ].map(([chain, nat, field, map]) => ({
          rule: {
            chain,
            expr: [{ [nat!]: { addr: { map: { key: { payload: { protocol: 'ip', field } }, data: `@${map}` } } } }],
          },
        })),
        {
          rule: {
            chain: 'SHARED_DNAT',
            expr: [
              {
                dnat: {
                  family: 'ip',
                  addr: {
                    map: {
                      key: {
                        concat: [
                          { payload: { protocol: 'ip', field: 'daddr' } },
                          { meta: { key: 'l4proto' } },
                          { payload: { protocol: 'th', field: 'dport' } },
                        ],
                      },
                      data: '@forwards',
                    },
                  },
                },
              },
            ],
          },
        },
        {
          rule: {
            chain: 'SHARED_SNAT',
            expr: [
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: 'ip', field: 'saddr' } },
                  right: { prefix: { addr: '10.0.1.0', len: 24 } },
                },
              },
              { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'net1' } },
              { snat: { addr: '192.168.0.111' } },
            ],
          },
        },
        ...extra,
      ],
    });

  it('reads each mapping back as the iptables rule it stands for', () => {
    const state = parseNftables(table());
    assert.equal(state.intact, true);
    assert.equal(state.revision, 12);
    assert.deepEqual(state.nat.EXCLUSIVE_DNAT, ['-d 192.168.0.113/32 -j DNAT --to-destination 10.0.1.12']);
    assert.deepEqual(state.nat.SHARED_DNAT, [
      '-d 192.168.0.111/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
    ]);
    assert.deepEqual(state.nat.SHARED_SNAT, ['-s 10.0.1.0/24 -o net1 -j SNAT --to-source 192.168.0.111']);
  });

  it('keeps a rule it did not write, so the diff takes it away', () => {
    const state = parseNftables(table([{ rule: { chain: 'SHARED_SNAT', expr: [{ accept: null }] } }]));
    assert.equal(state.intact, true);
    assert.match(state.nat.SHARED_SNAT[1]!, /^nft: \[\{"accept":null\}\]$/);
  });

  it('is not intact with another hook priority, a chain, set or element of its own', () => {
    assert.equal(parseNftables(table([], -100)).intact, false);
    assert.equal(parseNftables(table([{ chain: { name: 'MINE' } }])).intact, false);
    assert.equal(parseNftables(table([{ set: { name: 'x' } }])).intact, false);
    const sctp = JSON.parse(table()) as { nftables: { map?: { name: string; elem?: unknown[] } }[] };
    sctp.nftables
      .find((e) => e.map?.name === 'forwards')!
      .map!.elem!.push([{ concat: ['192.168.0.111', 'sctp', 9] }, { concat: ['10.0.1.10', 9] }]);
    assert.equal(parseNftables(JSON.stringify(sctp)).intact, false);
  });

  it('says what it cannot read', () => {
    assert.throws(() => parseNftables('{"nftables": 3}'), /cannot read nft -j list table ip natops/);
    assert.throws(() => parseNftables('not json'), /not JSON/);
  });
});

describe('choosing the data plane', () => {
  it('a gateway annotated natops.io/dataplane goes on it; an unknown one is an error at its line', async () => {
    const seed = await seedObjects();
    set(seed.gateway, 'metadata.annotations', { 'natops.io/dataplane': 'nftables' });
    assert.equal(validateManifests(toFiles(seed)).desired.gateways.get('ngw')?.dataplane, 'nftables');
    set(seed.gateway, 'metadata.annotations', { 'natops.io/dataplane': 'nft' });
    const files = toFiles(seed);
    const { issues, desired } = validateManifests(files);
    assert.equal(desired.gateways.size, 0);
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.field, /metadata\.annotations.*natops\.io\/dataplane/);
    assert.match(issues[0]!.message, /must be iptables or nftables/);
    const file = files.find((f) => f.path === issues[0]!.pos.file)!;
    assert.match(file.text.split('\n')[issues[0]!.pos.line - 1]!, /natops\.io\/dataplane: nft$/);
  });

  it('NATOPS_DATAPLANE sets the installation default; an annotation overrides it', async () => {
    const rules = manifestRulesFromEnv({ NATOPS_DATAPLANE: 'nftables' });
    const seed = await seedObjects();
    assert.equal(validateManifests(toFiles(seed), rules).desired.gateways.get('ngw')?.dataplane, 'nftables');
    set(seed.gateway, 'metadata.annotations', { 'natops.io/dataplane': 'iptables' });
    assert.equal(validateManifests(toFiles(seed), rules).desired.gateways.get('ngw')?.dataplane, undefined);
    assert.throws(() => manifestRulesFromEnv({ NATOPS_DATAPLANE: 'ebpf' }), /NATOPS_DATAPLANE/);
  });
});

describe('the nftables plane at its edges', () => {
  const withRevision = (s: GatewayState): GatewayState =>
    s.nftables ? { ...s, nftables: { ...s.nftables, revision: 3 } } : s;

  it('init moves a gateway off nftables even when its table holds no mapping', async () => {
    const bare = await seedSpec();
    const empty = { ...bare, dnats: [], floatingIps: [], snats: [] };
    const live = withRevision(compileGateway({ ...empty, dataplane: 'nftables' }));
    const target = partTarget('init', live, compileGateway(bare));
    assert.equal(target.nftables, undefined, 'the table goes');
    assert.deepEqual(target.nat.SHARED_DNAT, compileGateway(bare).nat.SHARED_DNAT);
  });

  it('init fills an empty table when iptables still holds the mappings (a move cut short)', async () => {
    const spec = await seedSpec();
    const onIptables = compileGateway(spec);
    const live: GatewayState = { ...onIptables, nftables: { nat: emptyMappings(), intact: true, revision: 3 } };
    const desired = compileGateway({ ...spec, dataplane: 'nftables' });
    const target = partTarget('init', live, desired);
    assert.deepEqual(target.nftables?.nat, desired.nftables?.nat);
    const cmds = changeSetCommands(diffStates(live, target), 4).map((c) => c.argv[0]);
    assert.deepEqual(cmds, ['nft', 'iptables-legacy-restore'], 'the table is filled before iptables is emptied');
  });

  it("a table that is not natops's is made again without the rules someone else added", async () => {
    const desired = compileGateway({ ...(await seedSpec()), dataplane: 'nftables' });
    const foreign = 'nft: [{"drop":null}]';
    const live: GatewayState = {
      ...desired,
      nftables: { nat: { ...desired.nftables!.nat, SHARED_DNAT: [foreign] }, intact: false, revision: 3 },
    };
    const target = partTarget('init', live, desired);
    const [nft] = changeSetCommands(diffStates(live, target), 4).filter((c) => c.argv[0] === 'nft');
    assert.match(nft!.stdin!, /^add table ip natops\n/);
    assert.doesNotMatch(nft!.stdin!, /drop/);
  });

  it('a rule repeated by hand is not taken for one that goes', async () => {
    const desired = compileGateway({ ...(await seedSpec()), dataplane: 'nftables' });
    const [snat] = desired.nftables!.nat.SHARED_SNAT;
    const live = withRevision({
      ...desired,
      nftables: { ...desired.nftables!, nat: { ...desired.nftables!.nat, SHARED_SNAT: [snat!, snat!] } },
    });
    const changes = diffStates(live, desired);
    assert.deepEqual(changes.removed, [], 'the SNAT stays: its connections are not cleaned');
    assert.ok(changes.nftables?.kind === 'update' && changes.nftables.rules.SHARED_SNAT, 'the chain is written again');
  });

  it('keeps a table no longer than maxAgeMs after it was read whole, writes included', () => {
    const cache = new NftablesCache(30_000);
    const table = { nat: emptyMappings(), intact: true, revision: 9 };
    cache.set('gw', table, Date.now() - 31_000);
    assert.equal(cache.get('gw'), undefined);
    cache.set('gw', table, Date.now() - 10_000);
    assert.equal(cache.get('gw')?.revision, 9);
    cache.set('gw', { ...table, intact: false }, Date.now());
    assert.equal(cache.get('gw'), undefined, "a table that is not natops's is not kept");
  });

  it("keeps iptables' side with the table, through writes, until natops changes iptables", () => {
    const cache = new NftablesCache(30_000);
    const table = { nat: emptyMappings(), intact: true, revision: 9 };
    const side = { nat: { PREROUTING: [], POSTROUTING: [] }, iptables: 'legacy' as const };
    cache.set('gw', table, Date.now() - 1000, side);
    assert.equal(cache.iptables('gw'), side);
    const readAt = cache.readAt('gw')!;
    cache.set('gw', { ...table, revision: 10 }, readAt);
    assert.equal(cache.iptables('gw'), side, 'a write keeps it');
    cache.forgetIptables('gw');
    assert.equal(cache.iptables('gw'), undefined);
    assert.equal(cache.get('gw')?.revision, 10, 'the table stays');
    cache.set('gw', table, Date.now() - 31_000, side);
    assert.equal(cache.iptables('gw'), undefined, 'it ages with the table');
  });

  it('is not intact when dormant, or with a base chain of another type or policy', () => {
    const json = (table: object, chain: object) =>
      JSON.stringify({
        nftables: [
          { table: { family: 'ip', name: 'natops', ...table } },
          { chain: { name: 'PREROUTING', type: 'nat', hook: 'prerouting', prio: -101, policy: 'accept', ...chain } },
        ],
      });
    assert.equal(parseNftables(json({ flags: 'dormant' }, {})).intact, false);
    assert.equal(parseNftables(json({}, { policy: 'drop' })).intact, false);
    assert.equal(parseNftables(json({}, { type: 'filter' })).intact, false);
  });
});
