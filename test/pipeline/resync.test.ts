// The resync goes on past a gateway it cannot read: that one is reported, the others are still
// checked and repaired. The unreadable gateway is made by a real failing command: an
// iptables-legacy-save (where its rules are) first on PATH that fails inside that gateway's
// namespace only; natops must not take that failure for an empty gateway and build the chains
// again in nf_tables.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inNamespace } from '../../runtime/netns/netns.ts';
import { IPTABLES_PROGRAMS } from '../../dataplane/model.ts';
import { run } from '../../common/exec.ts';
import { gatewayInOwnVpc, seedObjects, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('the resync and a gateway it cannot read', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;
  let bin: string;
  const path = process.env.PATH;

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    seed.extra.push(
      ...gatewayInOwnVpc({ gateway: 'ngw2', vpc: 'test-vpc-2', subnet: 'sn-b', n: 2, eip: '192.168.0.120' }),
    );
    const sha = await p.push(seed, 'two gateways');
    assert.equal((await p.settled(sha)).get('natops')?.state, 'success');
    await p.lab.host('web2', 'sn-b', '10.0.2.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web2', { tcp: [80] });
    assert.equal(await p.lab.tcp('ext', '192.168.0.120', 8000), 'web2 192.168.0.50');

    const { save } = await p.lab.gatewayIptables('ngw');
    assert.equal(save, IPTABLES_PROGRAMS.legacy.save);
    const realSave = (await run(['sh', '-c', 'command -v "$1"', 'sh', save])).stdout.trim();
    bin = await mkdtemp(join(tmpdir(), 'natops-bin-'));
    await writeFile(
      join(bin, save),
      `#!/bin/sh\nif [ "$(ip netns identify)" = "${p.lab.lab.names.gateway('ngw')}" ]; then echo "${save}: broken on purpose" >&2; exit 1; fi\nexec ${realSave} "$@"\n`,
    );
    await chmod(join(bin, save), 0o755);
  });
  after(async () => {
    process.env.PATH = path;
    await p?.cleanup();
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  it('reports the unreadable gateway and still repairs the others', async () => {
    process.env.PATH = `${bin}:${path}`;
    await inNamespace(p.lab.lab.names.gateway('ngw2'), {
      argv: [(await p.lab.gatewayIptables('ngw2')).iptables, '-t', 'nat', '-F', 'SHARED_DNAT'],
    });
    assert.equal(await p.lab.tcp('ext', '192.168.0.120', 8000), undefined, 'the hand edit took the forward away');
    await p.running!.close();
    p.config.resyncMs = 1000;
    await p.start();
    await p.until(
      'the second gateway to be repaired',
      async () => (await p.lab.tcp('ext', '192.168.0.120', 8000)) === 'web2 192.168.0.50',
      60_000,
    );
    assert.ok(
      p.logs.some((l) => /ngw: could not be read: .*broken on purpose/.test(l)),
      p.logs.slice(-20).join('\n'),
    );
    const repairs = await p.running!.store.repairs();
    assert.ok(
      repairs.some((r) => r.target === 'ngw2'),
      JSON.stringify(repairs),
    );
    assert.ok(!repairs.some((r) => r.target === 'ngw'), 'an unreadable gateway is not repaired blind');
    const nft = await inNamespace(p.lab.lab.names.gateway('ngw'), { argv: [IPTABLES_PROGRAMS.nft.save, '-t', 'nat'] });
    assert.doesNotMatch(nft.stdout, /DNAT_FILTER/, 'nor are its chains built again in the other iptables');
  });

  it('a resync asked for one gateway (its pod replaced) looks again while the gateway cannot be read, then repairs it', async () => {
    process.env.PATH = path; // (the test before leaves ngw unreadable)
    await p.running!.close();
    p.config.resyncMs = 0; // no schedule: only the asked resync and its rechecks look
    await p.start();
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.serve('web', { tcp: [80] });
    const forward = () => p.lab.tcp('ext', '192.168.0.112', 8888);
    assert.equal(await forward(), 'web 192.168.0.50');
    const { iptables } = await p.lab.gatewayIptables('ngw');
    process.env.PATH = `${bin}:${path}`;
    await inNamespace(p.lab.lab.names.gateway('ngw'), { argv: [iptables, '-t', 'nat', '-F', 'SHARED_DNAT'] });
    assert.equal(await forward(), undefined, 'the hand edit took the forward away');
    const before = p.logs.length;
    await p.running!.queues.byName.resync.add('resync', {
      gateway: 'ngw',
      reason: 'the pod of gateway ngw was replaced',
    });
    await p.until(
      'two reads that failed',
      async () => p.logs.slice(before).filter((l) => /ngw: could not be read/.test(l)).length >= 2,
      30_000,
    );
    process.env.PATH = path;
    await p.until('the forward repaired', async () => (await forward()) === 'web 192.168.0.50', 30_000);
    assert.ok((await p.running!.store.repairs()).some((r) => r.target === 'ngw'));
  });
});
