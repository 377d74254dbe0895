// Kube-OVN's share DNAT (IptablesDnatRule type share): several backends on one port. Read from the
// manifests, compiled to SHARED_DNAT rules, read back from iptables-save to the same state, and
// diffed so that a backend coming or going changes only that backend's connections and words.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { changeSetCommands } from '../../dataplane/commands.ts';
import { compileGateway } from '../../dataplane/compile.ts';
import { filtersWithEntries, parseConntrackList } from '../../dataplane/conntrack.ts';
import { diffStates, isEmptyChangeSet } from '../../dataplane/diff.ts';
import type { GatewaySpec, GatewayState } from '../../dataplane/model.ts';
import { parseNatTable } from '../../dataplane/parse.ts';
import { describeChanges, renderGatewayPlan } from '../../dataplane/plan-text.ts';
import { liveSummary } from '../../functions/jobs/finalize.ts';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { previewChanges } from '../../preview/preview.ts';
import { asOneFile, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { seedObjects, type Obj } from '../helpers/manifests.ts';

const PORT = '-d 192.168.0.112/32 -p tcp -m tcp --dport 8080';
const nth = (every: number, backend: string) =>
  `${PORT} -m statistic --mode nth --every ${every} --packet 0 -j DNAT --to-destination ${backend}`;

/** An IptablesDnatRule on the seed's second EIP (192.168.0.112), port 8080. */
function dnat(name: string, internalIp: string, type?: string, internalPort = '80'): Obj {
  return {
    apiVersion: 'kubeovn.io/v1',
    kind: 'IptablesDnatRule',
    metadata: { name },
    spec: { eip: 'ngw-eip-1', externalPort: '8080', protocol: 'tcp', internalIp, internalPort, ...(type && { type }) },
  };
}

async function manifests(rules: Obj[]) {
  const file = asOneFile([...toCurrentForm(seedList(await seedObjects())), ...rules], 'share.yaml');
  return { result: validateManifests([file]), text: file.text };
}

async function gateway(...backends: string[]): Promise<GatewaySpec> {
  const { result } = await manifests(backends.map((ip, i) => dnat(`web-${i}`, ip, 'share')));
  assert.deepEqual(result.issues.map(formatIssue), []);
  return result.desired.gateways.get('ngw')!;
}

/** The nat table as iptables-legacy-save prints it (checked against the real one in test/netns/shared-dnat.test.ts). */
function save(state: GatewayState): string {
  const chains = Object.keys(state.nat) as (keyof GatewayState['nat'])[];
  return [
    '*nat',
    ...chains.map((c) => `:${c} ${c.endsWith('ROUTING') ? 'ACCEPT' : '-'} [0:0]`),
    ...chains.flatMap((c) => state.nat[c]!.map((spec) => `-A ${c} ${spec}`)),
    'COMMIT',
  ].join('\n');
}

/** The line `needle` is on, counted from the line `after` is on. */
function lineOf(text: string, after: string, needle: string): number {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.includes(after));
  return lines.findIndex((l, n) => n >= start && l.includes(needle)) + 1;
}

describe('share DNAT: one port, several backends', () => {
  it('compiles to one nth rule per backend, sorted as Kube-OVN sorts them, each once', async () => {
    const spec = await gateway('10.0.1.12', '10.0.1.10', '10.0.1.11', '10.0.1.10');
    assert.deepEqual(
      spec.dnats.filter((d) => d.shared).map((d) => d.internalIp),
      ['10.0.1.12', '10.0.1.10', '10.0.1.11', '10.0.1.10'],
    );
    assert.deepEqual(compileGateway(spec).nat.SHARED_DNAT, [
      '-d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
      nth(3, '10.0.1.10:80'),
      nth(2, '10.0.1.11:80'),
      nth(1, '10.0.1.12:80'),
    ]);
    // an exclusive forward stays as it was: records and specs from before read the same
    assert.equal('shared' in spec.dnats[0]!, false);
    // the status counts ports: the seed's forward and the shared one
    assert.equal(liveSummary(spec), '2 EIPs, 1 floating IP, 2 port forwards, 1 SNAT');
  });

  it('reads back from iptables-save to the same state: a re-apply has nothing to do', async () => {
    const desired = compileGateway(await gateway('10.0.1.10', '10.0.1.11', '10.0.1.12'));
    const live: GatewayState = { ...desired, nat: parseNatTable(save(desired)) };
    assert.deepEqual(live.nat, desired.nat);
    assert.ok(isEmptyChangeSet(diffStates(live, desired)));
  });

  it('a new shared port is said in words, with its backends', async () => {
    const before = compileGateway(await gateway());
    const after = compileGateway(await gateway('10.0.1.10', '10.0.1.11', '10.0.1.12'));
    const changes = diffStates(before, after);
    assert.deepEqual(describeChanges(changes), [
      '+ port forward tcp 192.168.0.112:8080 shared by 3 backends: 10.0.1.10:80, 10.0.1.11:80, 10.0.1.12:80',
    ]);
    assert.match(
      renderGatewayPlan('ngw', 'update', changes),
      /^gateway ngw: update\n {2}\+ port forward tcp 192\.168\.0\.112:8080 shared by 3 backends: /,
    );
    const gone = diffStates(after, before);
    assert.deepEqual(describeChanges(gone), [
      '- port forward tcp 192.168.0.112:8080 shared by 3 backends: 10.0.1.10:80, 10.0.1.11:80, 10.0.1.12:80',
    ]);
    assert.equal(changeSetCommands(gone).filter((c) => c.argv[0] === 'conntrack').length, 3);
  });

  it("removing one backend deletes only that backend's conntrack entries and says only it", async () => {
    const before = compileGateway(await gateway('10.0.1.10', '10.0.1.11', '10.0.1.12'));
    const after = compileGateway(await gateway('10.0.1.10', '10.0.1.12'));
    const changes = diffStates(before, after);
    assert.deepEqual(describeChanges(changes), [
      '~ port forward tcp 192.168.0.112:8080 shared by 2 backends (was 3): - 10.0.1.11:80',
    ]);
    assert.deepEqual(
      changeSetCommands(changes).map((c) => c.argv),
      [
        ['iptables-legacy-restore', '-w', '--noflush'],
        [
          'conntrack',
          '-D',
          '-p',
          'tcp',
          '-d',
          '192.168.0.112',
          '--dport',
          '8080',
          '-r',
          '10.0.1.11',
          '--reply-port-src',
          '80',
        ],
      ],
    );
    // only the port's own chain changes, and only its rules: the other forward is not touched
    assert.deepEqual(
      changes.chains.map((e) => e.chain),
      ['SHARED_DNAT'],
    );
    assert.ok(changes.chains[0]!.ops.every((op) => op.spec.includes('--dport 8080 ')));
    assert.equal(changes.chains[0]!.rewrite, false);
  });

  it('adding one backend deletes no conntrack entry and says only it', async () => {
    const before = compileGateway(await gateway('10.0.1.10', '10.0.1.12'));
    const after = compileGateway(await gateway('10.0.1.10', '10.0.1.11', '10.0.1.12'));
    const changes = diffStates(before, after);
    assert.deepEqual(describeChanges(changes), [
      '~ port forward tcp 192.168.0.112:8080 shared by 3 backends (was 2): + 10.0.1.11:80',
    ]);
    assert.deepEqual(
      changeSetCommands(changes).filter((c) => c.argv[0] === 'conntrack'),
      [],
    );
  });

  it("a pull request's preview lists each backend of a shared port once", async () => {
    const two = await manifests(['10.0.1.10', '10.0.1.12'].map((ip, i) => dnat(`web-${i}`, ip, 'share')));
    const three = await manifests(
      ['10.0.1.10', '10.0.1.12', '10.0.1.11'].map((ip, i) => dnat(`web-${i}`, ip, 'share')),
    );
    const [ngw] = previewChanges(two.result, three.result).gateways;
    assert.deepEqual(ngw!.changes.portForwards, [
      {
        change: 'added',
        after: 'tcp 192.168.0.112:8080 -> 10.0.1.11:80 (shared)',
        forward: {
          protocol: 'tcp',
          eip: '192.168.0.112',
          externalPort: 8080,
          internalIp: '10.0.1.11',
          internalPort: 80,
          shared: true,
        },
      },
    ]);
  });

  it("an exclusive forward made shared keeps its backend's connections", async () => {
    const exclusive = await manifests([dnat('web-0', '10.0.1.10')]);
    const before = compileGateway(exclusive.result.desired.gateways.get('ngw')!);
    const after = compileGateway(await gateway('10.0.1.10', '10.0.1.11'));
    const changes = diffStates(before, after);
    assert.deepEqual(
      changeSetCommands(changes).filter((c) => c.argv[0] === 'conntrack'),
      [],
    );
    // and back: the backend that goes loses its connections, the one that stays keeps them
    assert.deepEqual(
      changeSetCommands(diffStates(after, before))
        .filter((c) => c.argv[0] === 'conntrack')
        .map((c) => c.argv.slice(-4)),
      [['-r', '10.0.1.11', '--reply-port-src', '80']],
    );
  });

  it("an exclusive forward whose port becomes other backends' deletes only its own connections", async () => {
    const exclusive = await manifests([dnat('web-0', '10.0.1.10')]);
    const before = compileGateway(exclusive.result.desired.gateways.get('ngw')!);
    const after = compileGateway(await gateway('10.0.1.11', '10.0.1.12'));
    // the new backends' connections, made between the restore and the clean-up, are kept
    assert.deepEqual(
      changeSetCommands(diffStates(before, after))
        .filter((c) => c.argv[0] === 'conntrack')
        .map((c) => c.argv.slice(-4)),
      [['-r', '10.0.1.10', '--reply-port-src', '80']],
    );
  });

  it("the conntrack listing's reply source picks out one backend's entries", () => {
    const entries = parseConntrackList(
      [
        'tcp      6 431999 ESTABLISHED src=192.168.0.50 dst=192.168.0.112 sport=40000 dport=8080 src=10.0.1.10 dst=192.168.0.50 sport=80 dport=40000 [ASSURED] mark=0 use=1',
        'tcp      6 431999 ESTABLISHED src=192.168.0.50 dst=192.168.0.112 sport=40001 dport=8080 src=10.0.1.12 dst=192.168.0.50 sport=80 dport=40001 [ASSURED] mark=0 use=1',
      ].join('\n'),
    );
    assert.equal(entries[1]!.replySrc, '10.0.1.12');
    assert.equal(entries[1]!.replySport, 80);
    const port = { protocol: 'tcp' as const, origDst: '192.168.0.112', origDport: 8080 };
    assert.deepEqual(
      filtersWithEntries(
        [
          { ...port, replySrc: '10.0.1.11', replySport: 80 },
          { ...port, replySrc: '10.0.1.12', replySport: 80 },
          { ...port, replySrc: '10.0.1.12', replySport: 81 },
        ],
        entries,
      ),
      [false, true, false],
    );
  });
});

describe('share DNAT: exclusive and shared rules on one port are refused, as Kube-OVN refuses them', () => {
  it("a share rule on an exclusive rule's port: at its type", async () => {
    const { result, text } = await manifests([dnat('web-0', '10.0.1.10'), dnat('web-1', '10.0.1.11', 'share')]);
    assert.deepEqual(result.issues.map(formatIssue), [
      `share.yaml:${lineOf(text, 'name: web-1', 'type: share')}:9  IptablesDnatRule/web-1  spec.type: tcp 192.168.0.112:8080 is already forwarded by IptablesDnatRule/web-0 (type=exclusive), and this rule is type=share: both must be type=share to coexist, as Kube-OVN's webhook says`,
    ]);
    assert.equal(result.desired.gateways.has('ngw'), false, 'the gateway is invalid and keeps what it had');
  });

  it('an exclusive rule on a shared port: at its externalPort, also with type: exclusive written', async () => {
    for (const type of [undefined, 'exclusive']) {
      const { result, text } = await manifests([
        dnat('web-0', '10.0.1.10', 'share'),
        dnat('web-1', '10.0.1.11', 'share'),
        dnat('web-2', '10.0.1.12', type),
      ]);
      assert.deepEqual(result.issues.map(formatIssue), [
        `share.yaml:${lineOf(text, 'name: web-2', 'externalPort:')}:17  IptablesDnatRule/web-2  spec.externalPort: tcp 192.168.0.112:8080 is already forwarded by IptablesDnatRule/web-0 (type=share), and this rule is type=exclusive: both must be type=share to coexist, as Kube-OVN's webhook says`,
      ]);
    }
  });

  it("a share rule on the port of a rule without a type (exclusive, Kube-OVN's default)", async () => {
    const { result } = await manifests([
      {
        ...dnat('web-0', '10.0.1.11', 'share'),
        spec: { ...(dnat('web-0', '10.0.1.11', 'share').spec as Obj), externalPort: '8888' },
      },
    ]);
    assert.deepEqual(
      result.issues.map(formatIssue).map((m) => m.replace(/^share\.yaml:\d+:\d+ {2}/, '')),
      [
        "IptablesDnatRule/web-0  spec.type: tcp 192.168.0.112:8888 is already forwarded by IptablesDnatRule/ngw-dnat-0 (type=exclusive), and this rule is type=share: both must be type=share to coexist, as Kube-OVN's webhook says",
      ],
    );
  });

  it('two exclusive rules on one port are refused as before; the same port over udp is another port', async () => {
    const { result } = await manifests([dnat('web-0', '10.0.1.10'), dnat('web-1', '10.0.1.11')]);
    assert.match(
      formatIssue(result.issues[0]!),
      /IptablesDnatRule\/web-1 {2}spec\.externalPort: tcp 192\.168\.0\.112:8080 is already forwarded by IptablesDnatRule\/web-0$/,
    );
    const udp = dnat('web-1', '10.0.1.11', 'share');
    (udp.spec as Obj).protocol = 'udp';
    const other = await manifests([dnat('web-0', '10.0.1.10'), udp]);
    assert.deepEqual(other.result.issues.map(formatIssue), []);
  });
});
