// Conntrack clean-up of removed mappings: the listing parser, the filter semantics conntrack -D
// applies, and the runner listing once for a batch. (The real-packet side, established flows
// losing their mapping, is in test/netns/updates.test.ts: a floating IP change removes two.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changeSetCommands } from '../../dataplane/commands.ts';
import { compileGateway } from '../../dataplane/compile.ts';
import {
  conntrackMatches,
  filtersWithEntries,
  parseConntrackList,
  type ConntrackFilter,
} from '../../dataplane/conntrack.ts';
import { diffStates } from '../../dataplane/diff.ts';
import { runCommands } from '../../runtime/gateway-io.ts';
import type { ExecRequest } from '../../common/exec.ts';
import { seedSpec, set } from '../helpers/manifests.ts';

const LISTING = [
  'tcp      6 119 TIME_WAIT src=192.168.0.50 dst=192.168.0.112 sport=44950 dport=8888 src=10.0.1.10 dst=192.168.0.50 sport=80 dport=44950 [ASSURED] mark=0 use=1',
  'udp      17 29 src=10.0.1.20 dst=192.168.0.50 sport=5000 dport=53 [UNREPLIED] src=192.168.0.50 dst=192.168.0.112 sport=53 dport=5000 mark=0 use=1',
  'icmp     1 29 src=10.0.1.5 dst=192.168.0.50 type=8 code=0 id=334 src=192.168.0.50 dst=192.168.0.111 type=0 code=0 id=334 mark=0 use=1',
  '',
].join('\n');

describe('conntrack', () => {
  const entries = parseConntrackList(LISTING);

  it('parses the original direction and the reply source and destination of each entry', () => {
    assert.deepEqual(entries, [
      {
        protocol: 'tcp',
        origSrc: '192.168.0.50',
        origDst: '192.168.0.112',
        origDport: 8888,
        replyDst: '192.168.0.50',
        replySrc: '10.0.1.10',
        replySport: 80,
      },
      {
        protocol: 'udp',
        origSrc: '10.0.1.20',
        origDst: '192.168.0.50',
        origDport: 53,
        replyDst: '192.168.0.112',
        replySrc: '192.168.0.50',
        replySport: 53,
      },
      {
        protocol: 'icmp',
        origSrc: '10.0.1.5',
        origDst: '192.168.0.50',
        origDport: undefined,
        replyDst: '192.168.0.111',
        replySrc: '192.168.0.50',
        replySport: undefined,
      },
    ]);
  });

  const cases: [string, ConntrackFilter, boolean[]][] = [
    ['port forward', { protocol: 'tcp', origDst: '192.168.0.112', origDport: 8888 }, [true, false, false]],
    [
      'port forward, other protocol',
      { protocol: 'udp', origDst: '192.168.0.112', origDport: 8888 },
      [false, false, false],
    ],
    ['port forward, other port', { protocol: 'tcp', origDst: '192.168.0.112', origDport: 8889 }, [false, false, false]],
    // one backend of a shared port: the reply comes from the backend the DNAT chose
    [
      'shared port, this backend',
      { protocol: 'tcp', origDst: '192.168.0.112', origDport: 8888, replySrc: '10.0.1.10', replySport: 80 },
      [true, false, false],
    ],
    [
      'shared port, another backend',
      { protocol: 'tcp', origDst: '192.168.0.112', origDport: 8888, replySrc: '10.0.1.11', replySport: 80 },
      [false, false, false],
    ],
    ['floating IP inbound', { origDst: '192.168.0.111' }, [false, false, false]],
    ['an address that is only a reply destination', { origDst: '192.168.0.50' }, [false, true, true]],
    // a SNAT's entries: the reply goes back to the address the source was translated to
    ['SNAT of a subnet', { origSrc: '10.0.1.0/24', replyDst: '192.168.0.112' }, [false, true, false]],
    ['SNAT of the subnet to another EIP', { origSrc: '10.0.1.0/24', replyDst: '192.168.0.111' }, [false, false, true]],
    ['SNAT of another subnet', { origSrc: '10.0.2.0/24', replyDst: '192.168.0.112' }, [false, false, false]],
    ['floating IP outbound', { origSrc: '10.0.1.5', replyDst: '192.168.0.111' }, [false, false, true]],
  ];
  for (const [name, filter, expected] of cases) {
    it(`matches like conntrack -D: ${name}`, () => {
      assert.deepEqual(
        entries.map((e) => conntrackMatches(filter, e)),
        expected,
      );
      assert.deepEqual(filtersWithEntries([filter], entries), [expected.some(Boolean)], 'the indexed lookup agrees');
    });
  }

  it('a change removing many mappings lists once and deletes only the ones with entries', async () => {
    const forwards = Array.from({ length: 50 }, (_, i) => ({
      eip: '192.168.0.112',
      externalPort: 8000 + i,
      protocol: 'tcp',
      internalIp: '10.0.1.10',
      internalPort: 80,
    }));
    const before = compileGateway(await seedSpec((s) => set(s.gateway, 'spec.dnatRules', forwards)));
    const after = compileGateway(await seedSpec((s) => set(s.gateway, 'spec.dnatRules', [])));
    const commands = changeSetCommands(diffStates(before, after));
    assert.equal(commands.filter((c) => c.conntrack).length, 50);
    const ran: string[][] = [];
    const exec = async (req: ExecRequest) => {
      ran.push(req.argv);
      const listing =
        'tcp 6 119 ESTABLISHED src=192.168.0.50 dst=192.168.0.112 sport=41000 dport=8017 src=10.0.1.10 dst=192.168.0.50 sport=80 dport=41000 [ASSURED] mark=0 use=1\n';
      return { stdout: req.argv[1] === '-L' ? listing : '', stderr: '', code: 0 };
    };
    await runCommands(exec, commands);
    assert.deepEqual(
      ran.filter((a) => a[0] === 'conntrack'),
      [
        ['conntrack', '-L'],
        [
          'conntrack',
          '-D',
          '-p',
          'tcp',
          '-d',
          '192.168.0.112',
          '--dport',
          '8017',
          '-r',
          '10.0.1.10',
          '--reply-port-src',
          '80',
        ],
      ],
    );
    assert.equal(
      ran[0]![0],
      'iptables-legacy-restore',
      'the rules go before the listing, so no new entry can follow it',
    );
  });

  it('a single deletion runs directly, without a listing', async () => {
    const ran: string[][] = [];
    const filter: ConntrackFilter = { origDst: '192.168.0.111' };
    await runCommands(
      async (req) => {
        ran.push(req.argv);
        return { stdout: '', stderr: '', code: 0 };
      },
      [{ argv: ['conntrack', '-D', '-d', '192.168.0.111'], okExitCodes: [0, 1], conntrack: filter }],
    );
    assert.deepEqual(ran, [['conntrack', '-D', '-d', '192.168.0.111']]);
  });
});
