import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGateway, emptyGatewayState } from '../../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet } from '../../dataplane/diff.ts';
import type { GatewayState } from '../../dataplane/model.ts';
import { changedParts, GATEWAY_PARTS, partTarget } from '../../dataplane/parts.ts';
import { push, seedSpec, set } from '../helpers/manifests.ts';

describe('gateway parts', () => {
  it('applying every part in order to a fresh gateway gives the full compiled state', async () => {
    const desired = compileGateway(await seedSpec());
    let state = emptyGatewayState();
    for (const part of GATEWAY_PARTS) {
      const before = structuredClone(state);
      state = partTarget(part, state, desired);
      assert.notDeepEqual(state, before, `${part} changed nothing on a fresh gateway`);
    }
    assert.ok(isEmptyChangeSet(diffStates(state, desired)));
  });

  it('a part leaves what other parts own as it found it', async () => {
    const live = compileGateway(await seedSpec());
    const desired = compileGateway(
      await seedSpec((s) => {
        set(s.gateway, 'spec.dnatRules.0.externalPort', 8443);
        push(s.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.1.0/25' });
      }),
    );
    const dnatOnly = partTarget('dnat', live, desired);
    assert.deepEqual(dnatOnly.nat.SHARED_DNAT, desired.nat.SHARED_DNAT);
    assert.deepEqual(dnatOnly.nat.SHARED_SNAT, live.nat.SHARED_SNAT);
    assert.notDeepEqual(desired.nat.SHARED_SNAT, live.nat.SHARED_SNAT);
  });

  it('init creates the owned chains empty but keeps rules that are there', async () => {
    const live = compileGateway(await seedSpec());
    live.nat = {
      PREROUTING: [],
      POSTROUTING: [],
      SHARED_DNAT: ['-d 192.168.0.112/32 -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.0.1.10:1'],
    };
    const t = partTarget('init', live, compileGateway(await seedSpec()));
    assert.deepEqual(t.nat.EXCLUSIVE_DNAT, []);
    assert.deepEqual(t.nat.SHARED_DNAT, live.nat.SHARED_DNAT);
    assert.deepEqual(t.nat.DNAT_FILTER, ['-j EXCLUSIVE_DNAT', '-j SHARED_DNAT']);
  });

  it('says which parts a change touches', async () => {
    const seed = await seedSpec();
    assert.deepEqual(changedParts(seed, seed), { gateway: false, parts: [] });
    assert.deepEqual(changedParts(undefined, seed), { gateway: true, parts: [...GATEWAY_PARTS] });
    assert.deepEqual(changedParts(seed, await seedSpec((s) => set(s.gateway, 'spec.dnatRules.0.internalPort', 8080))), {
      gateway: false,
      parts: ['dnat'],
    });
    assert.deepEqual(changedParts(seed, await seedSpec((s) => set(s.gateway, 'spec.snatRules', []))), {
      gateway: false,
      parts: ['snat'],
    });
    // an EIP change brings the routes along; the default route hangs on net1's addresses
    const eipChange = changedParts(
      seed,
      await seedSpec((s) => push(s.gateway, 'spec.eips', { eipCIDR: '192.168.0.120/24', gateway: '192.168.0.254' })),
    );
    assert.deepEqual(eipChange, { gateway: false, parts: ['eip', 'subnet-route'] });
    assert.equal(changedParts(seed, await seedSpec((s) => set(s.gateway, 'spec.lanIp', '10.0.1.253'))).gateway, true);
  });
});

describe('gateway parts on nftables', () => {
  /** a target as the gateway then reads back: its table has a revision */
  const applied = (s: GatewayState): GatewayState =>
    s.nftables ? { ...s, nftables: { ...s.nftables, revision: 1 } } : s;
  const onNftables = async (change?: Parameters<typeof seedSpec>[0]) =>
    compileGateway({ ...(await seedSpec(change)), dataplane: 'nftables' });

  it('every part in order on a fresh gateway gives the compiled table, and no iptables chain', async () => {
    const desired = await onNftables();
    let state = emptyGatewayState();
    for (const part of GATEWAY_PARTS) state = applied(partTarget(part, state, desired));
    assert.ok(isEmptyChangeSet(diffStates(state, desired)));
    assert.deepEqual(Object.keys(state.nat).sort(), ['POSTROUTING', 'PREROUTING']);
  });

  it('a mapping part changes only its chains of the table', async () => {
    const live = await onNftables();
    const desired = await onNftables((s) => {
      set(s.gateway, 'spec.dnatRules.0.externalPort', 8443);
      push(s.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.1.0/25' });
    });
    const dnatOnly = partTarget('dnat', live, desired);
    assert.deepEqual(dnatOnly.nftables?.nat.SHARED_DNAT, desired.nftables?.nat.SHARED_DNAT);
    assert.deepEqual(dnatOnly.nftables?.nat.SHARED_SNAT, live.nftables?.nat.SHARED_SNAT);
    assert.deepEqual(changedParts(await seedSpec(), await seedSpec()).parts, []);
  });

  it('a move between the planes is init whole: after it, every mapping is in the new plane', async () => {
    for (const [from, to] of [
      [compileGateway(await seedSpec()), await onNftables()],
      [await onNftables(), compileGateway(await seedSpec())],
    ] as const) {
      const moved = partTarget('init', applied(from), to);
      assert.ok(isEmptyChangeSet(diffStates(applied(moved), to)), 'init alone took everything');
      const changes = diffStates(applied(from), moved);
      assert.equal(changes.move, to.nftables ? 'nftables' : 'iptables');
      assert.deepEqual([changes.added, changes.removed], [[], []]);
    }
    const spec = await seedSpec();
    assert.deepEqual(changedParts(spec, { ...spec, dataplane: 'nftables' }).parts.includes('init'), true);
  });
});
