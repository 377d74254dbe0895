// EIPs without v4ip: the pure choice of address (held to a plain reference over every small
// case), and validation giving each such EIP its address from the allocation table or anew.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipv4FromInt, ipv4ToInt } from '../../common/ipv4.ts';
import { liveSummary } from '../../functions/jobs/finalize.ts';
import { heldAddresses } from '../../functions/planner/allocate.ts';
import {
  allocatableCount,
  chooseAddress,
  excludeRange,
  isAllocatable,
  type AddressPool,
} from '../../gitops/manifests/eip-address.ts';
import { allocatedNote, allocationChanges } from '../../gitops/manifests/eip-allocation.ts';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import { validateManifests, type ValidateOptions } from '../../gitops/manifests/validate.ts';
import { previewChanges } from '../../preview/preview.ts';
import type { GatewayRecord, RecordSnapshot } from '../../state/records.ts';
import { asOneFile, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { gatewayInOwnVpc, seedObjects, type Obj } from '../helpers/manifests.ts';

/** The reference: every address of the network in order, filtered by the rules one by one. */
function reference(pool: AddressPool, taken: ReadonlySet<string>): string[] {
  const [net, bits] = pool.cidr.split('/');
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const first = ipv4ToInt(net!);
  const out: string[] = [];
  for (let n = first; n < first + size; n++) {
    if (prefix < 31 && (n === first || n === first + size - 1)) continue;
    const a = ipv4FromInt(n);
    if (a === pool.gateway || taken.has(a)) continue;
    if ((pool.excludeIps ?? []).some((e) => n >= excludeRange(e)!.from && n <= excludeRange(e)!.to)) continue;
    out.push(a);
  }
  return out;
}

describe('chooseAddress: the lowest free address, exhaustively', () => {
  it('every gateway, exclusion range and taken set of every /29 to /32', () => {
    let cases = 0;
    for (const prefix of [29, 30, 31, 32]) {
      const size = 2 ** (32 - prefix);
      const base = ipv4ToInt('10.9.8.0') + 8; // aligned for every prefix here
      const cidr = `${ipv4FromInt(base)}/${prefix}`;
      const addrs = Array.from({ length: size }, (_, i) => ipv4FromInt(base + i));
      const ranges: (string | undefined)[] = [undefined];
      for (let a = 0; a < size; a++)
        for (let b = a; b < size; b++) ranges.push(a === b ? addrs[a] : `${addrs[a]}..${addrs[b]}`);
      for (const gateway of [...addrs, '10.9.9.1'])
        for (const range of ranges)
          for (let mask = 0; mask < 2 ** size; mask++) {
            const taken = new Set(addrs.filter((_, i) => mask & (1 << i)));
            const pool = { cidr, gateway, ...(range && { excludeIps: [range] }) };
            const want = reference(pool, taken);
            assert.equal(chooseAddress(pool, taken), want[0], JSON.stringify({ pool, taken: [...taken] }));
            if (mask === 0) assert.equal(allocatableCount(pool), want.length, JSON.stringify(pool));
            cases++;
          }
    }
    assert.ok(cases > 50_000, `${cases} cases`);
  });

  it('a /28 with two exclusion ranges, every taken set of its first ten hosts', () => {
    const pool = {
      cidr: '192.168.0.0/28',
      gateway: '192.168.0.14',
      excludeIps: ['192.168.0.3..192.168.0.5', '192.168.0.9'],
    };
    for (let mask = 0; mask < 2 ** 10; mask++) {
      const taken = new Set(
        Array.from({ length: 10 }, (_, i) => `192.168.0.${i + 1}`).filter((_, i) => mask & (1 << i)),
      );
      assert.equal(chooseAddress(pool, taken), reference(pool, taken)[0]);
    }
    assert.equal(allocatableCount(pool), 9); // 14 hosts, not .14, .3-.5, .9
  });

  it('a /8 excluded but for its last host is quick, and exhausted is undefined', () => {
    const pool = { cidr: '10.0.0.0/8', gateway: '10.0.0.1', excludeIps: ['10.0.0.2..10.255.255.253'] };
    assert.equal(chooseAddress(pool, new Set()), '10.255.255.254');
    assert.equal(chooseAddress(pool, new Set(['10.255.255.254'])), undefined);
    assert.equal(allocatableCount(pool), 1);
    // overlapping ranges count once
    assert.equal(
      allocatableCount({
        cidr: '10.0.0.0/29',
        gateway: '10.0.0.1',
        excludeIps: ['10.0.0.2..10.0.0.4', '10.0.0.3..10.0.0.5'],
      }),
      1,
    );
  });

  it("excludeIps' forms, and what may ever be allocated", () => {
    assert.deepEqual(excludeRange('192.168.0.1'), { from: ipv4ToInt('192.168.0.1'), to: ipv4ToInt('192.168.0.1') });
    assert.deepEqual(excludeRange('192.168.0.1..192.168.0.3'), {
      from: ipv4ToInt('192.168.0.1'),
      to: ipv4ToInt('192.168.0.3'),
    });
    for (const bad of [
      '192.168.0.3..192.168.0.1',
      '192.168.0.1..',
      '192.168.0.0/24',
      'x',
      '1.2.3.4..5.6.7.8..9.9.9.9',
      '01.2.3.4',
    ])
      assert.equal(excludeRange(bad), undefined, bad);
    const pool = { cidr: '192.168.0.0/24', gateway: '192.168.0.254', excludeIps: ['192.168.0.10'] };
    for (const [a, ok] of [
      ['192.168.0.1', true],
      ['192.168.0.0', false],
      ['192.168.0.255', false],
      ['192.168.0.254', false],
      ['192.168.0.10', false],
      ['192.168.1.1', false],
    ] as const)
      assert.equal(isAllocatable(pool, a), ok, a);
  });
});

/** The seed in the current form, with `change` made, validated with `options`. */
async function validated(change: (objects: Obj[]) => void, options: ValidateOptions = {}) {
  const objects = toCurrentForm(seedList(await seedObjects()));
  change(objects);
  const file = asOneFile(objects, 'current.yaml');
  return { ...validateManifests([file], options), text: file.text };
}
const named = (objects: Obj[], name: string) => objects.find((o) => (o.metadata as { name: string }).name === name)!;
const specOf = (objects: Obj[], name: string) => named(objects, name).spec as Obj;
const eip = (name: string, spec: Obj): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind: 'IptablesEIP',
  metadata: { name },
  spec: { natGwDp: 'ngw', ...spec },
});
const external = (objects: Obj[]) => specOf(objects, 'ovn-vpc-external-network');
const lineOf = (text: string, after: string, needle: string) => {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.includes(after));
  return lines.findIndex((l, n) => n >= start && l.includes(needle)) + 1;
};

describe('validation gives an EIP without v4ip its address', () => {
  it('the lowest free one: not the gateway, excludeIps, nor another EIP v4ip', async () => {
    const v = await validated((o) => {
      external(o).excludeIps = ['192.168.0.1..192.168.0.3', '192.168.0.5'];
      o.push(eip('eip-a', {}), eip('eip-b', { v4ip: '192.168.0.4' }));
    });
    assert.deepEqual(v.issues, []);
    const [a] = v.allocation!.eips;
    assert.equal(a!.address, '192.168.0.6');
    assert.equal(a!.fresh, true);
    assert.equal(a!.key, 'ovn-vpc-external-network/eip-a');
    const spec = v.desired.gateways.get('ngw')!;
    assert.deepEqual(spec.eips.at(-2), { cidr: '192.168.0.6/24', gateway: '192.168.0.254', allocatedFor: 'eip-a' });
    assert.match(
      liveSummary(spec),
      /^4 EIPs, 1 floating IP, 1 port forward, 1 SNAT; EIP eip-a: 192\.168\.0\.6 \(allocated\)$/,
    );
    assert.equal(allocatedNote(spec), '; EIP eip-a: 192.168.0.6 (allocated)');
  });

  it('the table entry, whatever was added since, and a departed EIP freed once no gateway holds it', async () => {
    const table = new Map([
      ['ovn-vpc-external-network/eip-a', '192.168.0.7'],
      ['ovn-vpc-external-network/gone', '192.168.0.1'],
      ['ovn-vpc-external-network/gone-held', '192.168.0.2'],
    ]);
    const held = new Set(['192.168.0.2']);
    const v = await validated((o) => o.push(eip('eip-new', {}), eip('eip-a', {})), { allocations: { table, held } });
    assert.deepEqual(v.issues, []);
    const by = Object.fromEntries(v.allocation!.eips.map((a) => [a.id, [a.address, a.fresh]]));
    // eip-new comes first in the file, and takes none of the table's addresses nor a held one
    assert.deepEqual(by, { 'IptablesEIP/eip-new': ['192.168.0.3', true], 'IptablesEIP/eip-a': ['192.168.0.7', false] });
    assert.deepEqual(allocationChanges(v.allocation!, table, held), {
      set: [{ key: 'ovn-vpc-external-network/eip-new', address: '192.168.0.3' }],
      free: [{ key: 'ovn-vpc-external-network/gone', address: '192.168.0.1' }],
    });
  });

  it('an EIP with a problem keeps its entry: only leaving Git frees it', async () => {
    const table = new Map([['ovn-vpc-external-network/eip-a', '192.168.0.7']]);
    const v = await validated((o) => o.push(eip('eip-a', { natGwDp: 'ngw', qosPolicy: 'BAD NAME' })), {
      allocations: { table },
    });
    assert.equal(v.issues.length, 1);
    assert.deepEqual(allocationChanges(v.allocation!, table, new Set()).free, []);
  });

  it('an entry its subnet can no longer give (cidrBlock changed) is replaced', async () => {
    const table = new Map([['ovn-vpc-external-network/eip-a', '192.168.5.7']]);
    const v = await validated((o) => o.push(eip('eip-a', {})), { allocations: { table } });
    assert.deepEqual(v.issues, []);
    assert.deepEqual(allocationChanges(v.allocation!, table, new Set()).set, [
      { key: 'ovn-vpc-external-network/eip-a', address: '192.168.0.1', replaces: '192.168.5.7' },
    ]);
  });

  it('collision: a v4ip written equal to an address allocated to an EIP still in Git is refused at its line', async () => {
    const table = new Map([['ovn-vpc-external-network/eip-a', '192.168.0.7']]);
    const v = await validated((o) => o.push(eip('eip-a', {}), eip('eip-b', { v4ip: '192.168.0.7' })), {
      allocations: { table },
    });
    assert.equal(v.issues.length, 1, v.issues.map(formatIssue).join('\n'));
    assert.equal(
      formatIssue(v.issues[0]!),
      `current.yaml:${lineOf(v.text, 'name: eip-b', 'v4ip:')}:9  IptablesEIP/eip-b  spec.v4ip: 192.168.0.7 is the address natops allocated to IptablesEIP eip-a (it has no v4ip), which keeps it while it exists; write another address`,
    );
    assert.equal(v.issues[0]!.gateway, 'ngw'); // the gateway keeps what it had
    // the EIP itself may write its allocated address: then it is its v4ip, and the entry goes
    const own = await validated((o) => o.push(eip('eip-a', { v4ip: '192.168.0.7' })), { allocations: { table } });
    assert.deepEqual(own.issues, []);
    assert.deepEqual(allocationChanges(own.allocation!, table, new Set(['192.168.0.7'])).free, []);
    assert.deepEqual(allocationChanges(own.allocation!, table, new Set()).free, [
      { key: 'ovn-vpc-external-network/eip-a', address: '192.168.0.7' },
    ]);
  });

  it('an exhausted subnet is a problem at the EIP, with what took the addresses', async () => {
    const v = await validated((o) => {
      external(o).excludeIps = ['192.168.0.1..192.168.0.110', '192.168.0.113..192.168.0.253'];
      o.push(eip('eip-a', {}));
    });
    assert.equal(v.issues.length, 1);
    assert.equal(
      formatIssue(v.issues[0]!),
      `current.yaml:${lineOf(v.text, 'name: eip-a', 'natGwDp:')}:3  IptablesEIP/eip-a  spec.externalSubnet: no v4ip, and Subnet ovn-vpc-external-network (192.168.0.0/24) has no free address left to allocate: all 2 it can give (not its network, broadcast or gateway 192.168.0.254, nor its excludeIps) are other EIPs' or held by a gateway; write a v4ip, or widen the subnet`,
    );
    assert.equal(v.issues[0]!.gateway, 'ngw');
  });

  it('an excludeIps entry that is no address or range is a problem at its line', async () => {
    const v = await validated((o) => void (external(o).excludeIps = ['192.168.0.9..192.168.0.1']));
    assert.ok(v.issues.length >= 1); // and what depends on the Subnet says so
    assert.match(
      formatIssue(v.issues[0]!),
      /Subnet\/ovn-vpc-external-network {2}spec\.excludeIps\[0\]: must be an address or a range/,
    );
  });

  it('previews name the EIP and say allocated', async () => {
    const base = await validated(() => {});
    const head = await validated((o) => o.push(eip('eip-a', {})));
    const p = previewChanges(base, head, { base: 'a', head: 'b' });
    const gw = p.gateways.find((g) => g.name === 'ngw')!;
    assert.deepEqual(gw.changes.eips, [
      { change: 'added', after: 'eip-a: 192.168.0.1/24 via 192.168.0.254 (allocated)' },
    ]);
  });

  it('heldAddresses: what the records have applied or are applying', () => {
    const spec = (a: string) => ({ eips: [{ cidr: `${a}/24`, gateway: '192.168.0.254' }] }) as never;
    const rec = (applied: string, desired: string) =>
      ({ lastApplied: { state: spec(applied) }, desired: { state: spec(desired) } }) as unknown as GatewayRecord;
    const snap = { gateways: new Map([['g', rec('192.168.0.1', '192.168.0.2')]]) } as unknown as RecordSnapshot;
    assert.deepEqual([...heldAddresses(snap)].sort(), ['192.168.0.1', '192.168.0.2']);
  });
});

describe('an allocated address written elsewhere in the 1.7 form', () => {
  it('is refused at the eipCIDR, not taken from the EIP that has it', async () => {
    const table = new Map([['ovn-vpc-external-network/eip-a', '192.168.0.7']]);
    const v = await validated(
      (o) =>
        o.push(
          eip('eip-a', {}),
          ...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn-2', n: 2, eip: '192.168.0.7' }),
        ),
      { allocations: { table } },
    );
    assert.deepEqual(
      v.issues.map((i) => [i.resource, i.field, i.message]),
      [['VpcNatGateway/gw2', 'spec.eips[0].eipCIDR', 'EIP 192.168.0.7 already belongs to VpcNatGateway/ngw']],
    );
    assert.equal(v.desired.gateways.get('ngw')!.eips.at(-1)!.cidr, '192.168.0.7/24');
  });
});
