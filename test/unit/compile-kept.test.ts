// compileGateway keeps the forwards' specs of a big gateway between compiles (a forward unchanged
// at its place gets its string again). What it returns must be what a fresh compile returns,
// whatever changed: each field, a forward becoming shared, forwards shifting place.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import type { DnatSpec, GatewaySpec } from '../../dataplane/model.ts';
import { portForward } from '../../dataplane/rules.ts';
import { seedSpec } from '../helpers/manifests.ts';

const forward = (i: number): DnatSpec => ({
  eip: '192.168.0.112',
  protocol: 'tcp',
  externalPort: 20000 + i,
  internalIp: '10.0.1.10',
  internalPort: 80,
});

/** The exclusive forwards' specs, made here from the spec alone. */
const expected = (spec: GatewaySpec) =>
  spec.dnats
    .filter((d) => !d.shared)
    .map((d) => portForward(d.eip, d.protocol, d.externalPort, d.internalIp, d.internalPort));

describe('compiling a big gateway again', () => {
  it('gives what a fresh compile gives after each kind of change', async () => {
    const seed = await seedSpec();
    const many = Array.from({ length: 1500 }, (_, i) => forward(i));
    const at = (i: number, change: Partial<DnatSpec>) => many.map((d, k) => (k === i ? { ...d, ...change } : d));
    const steps: [string, DnatSpec[]][] = [
      ['the first compile', many],
      ['the same again', many.map((d) => ({ ...d }))],
      ['an internal port', at(0, { internalPort: 81 })],
      ['an internal IP', at(700, { internalIp: '10.0.1.11' })],
      ['an external port', at(1499, { externalPort: 9 })],
      ['a protocol', at(3, { protocol: 'udp' })],
      ['an EIP', at(4, { eip: '192.168.0.113' })],
      ['a forward made shared', [...at(5, { shared: true }), { ...many[5]!, internalIp: '10.0.1.12', shared: true }]],
      ['the shared forward exclusive again', many],
      ['one inserted first: every place shifts', [forward(-1), ...many]],
      ['one removed', many.filter((_, k) => k !== 10)],
      ['back to the start', many],
    ];
    for (const [what, dnats] of steps) {
      const spec = { ...seed, dnats: [...seed.dnats, ...dnats] };
      const nat = compileGateway(spec).nat.SHARED_DNAT!;
      const exclusive = expected(spec);
      assert.deepEqual(nat.slice(0, exclusive.length), exclusive, what);
      const fresh = compileGateway({ ...spec, name: `fresh-${what}` });
      assert.deepEqual(compileGateway(spec), fresh, what);
    }
  });
});
