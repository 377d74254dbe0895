// EIPs without v4ip through the whole loop (real redis-server, git, namespaces, packets): the
// address natops allocates goes live, stays the EIP's across commits that add other EIPs, across
// a natops restart and a Redis restart, shows in statuses and `natops plan`, and is freed only
// once the EIP has left Git and its gateway no longer holds it.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { validatedAllocating } from '../../functions/planner/allocate.ts';
import type { AllocationChanges, AllocationInput } from '../../gitops/manifests/eip-allocation.ts';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { EipAllocations } from '../../state/eip-allocations.ts';
import { natops } from '../helpers/cli.ts';
import { asOneFile, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { seedObjects, type Obj } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

const KEY = (eip: string) => `ovn-vpc-external-network/${eip}`;

const eip = (name: string): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind: 'IptablesEIP',
  metadata: { name },
  spec: { natGwDp: 'ngw' }, // no v4ip: natops allocates one
});
const forward = (name: string, eipName: string, port: number): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind: 'IptablesDnatRule',
  metadata: { name },
  spec: { eip: eipName, externalPort: String(port), protocol: 'tcp', internalIp: '10.0.1.10', internalPort: '80' },
});

/** The seed in the current form with `extra` resources, as one file (so their order is the file's). */
async function manifests(...extra: Obj[]): Promise<{ path: string; text: string }[]> {
  const seed = await seedObjects();
  const nic = (seed.config.data as Record<string, string>).nic;
  const objects = toCurrentForm(seedList(seed));
  (objects[0]!.data as Record<string, string>).nic = nic!; // the lab's underlay, as in the 1.7 form
  return [asOneFile([...objects, ...extra], 'manifests.yaml')];
}

describe('EIPs without v4ip (real redis-server, git, namespaces)', () => {
  let p: PipelineHarness;
  let table: EipAllocations;
  let conn: Redis;
  /** the commits of the first two steps, for the preview */
  const shas: string[] = [];
  const answers = (ip: string, port: number) => p.lab.tcp('ext', ip, port);

  before(async () => {
    p = await PipelineHarness.create();
    conn = new Redis(p.redis.url);
    conn.on('error', () => {}); // while the Redis restart step has it down; it reconnects
    table = new EipAllocations(conn, p.config.prefix);
  });
  after(async () => {
    conn?.disconnect();
    await p?.cleanup();
  });

  it('goes live with the lowest free address, and statuses say it is allocated', async () => {
    const sha = await p.push(await manifests(eip('eip-a'), forward('fwd-a', 'eip-a', 9001)), 'eip-a');
    shas.push(sha);
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.match(statuses.get('natops/ngw')!.description, /; EIP eip-a: 192\.168\.0\.1 \(allocated\)$/);
    assert.deepEqual(Object.fromEntries(await table.table()), { [KEY('eip-a')]: '192.168.0.1' });
    // hosts once the first push has built the lab
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });
    assert.equal(await answers('192.168.0.1', 9001), 'web 192.168.0.50');
  });

  it('stays the same when another EIP comes before it in the files', async () => {
    const sha = await p.push(
      await manifests(eip('eip-b'), forward('fwd-b', 'eip-b', 9002), eip('eip-a'), forward('fwd-a', 'eip-a', 9001)),
      'eip-b first',
    );
    shas.push(sha);
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.match(
      statuses.get('natops/ngw')!.description,
      /EIP eip-b: 192\.168\.0\.2 \(allocated\); EIP eip-a: 192\.168\.0\.1 \(allocated\)/,
    );
    assert.equal(await answers('192.168.0.1', 9001), 'web 192.168.0.50');
    assert.equal(await answers('192.168.0.2', 9002), 'web 192.168.0.50');
  });

  it('stays the same across a natops restart and a Redis restart', async () => {
    await p.running!.close();
    await p.redis.stop('SIGKILL'); // its append-only file is what keeps the table
    await p.redis.restart();
    await p.start();
    const sha = await p.push(
      await manifests(
        eip('eip-c'),
        eip('eip-b'),
        forward('fwd-b', 'eip-b', 9002),
        eip('eip-a'),
        forward('fwd-a', 'eip-a', 9001),
      ),
      'eip-c',
    );
    assert.equal((await p.settled(sha)).get('natops/ngw')?.state, 'success');
    assert.deepEqual(Object.fromEntries(await table.table()), {
      [KEY('eip-a')]: '192.168.0.1',
      [KEY('eip-b')]: '192.168.0.2',
      [KEY('eip-c')]: '192.168.0.3',
    });
    assert.equal(await answers('192.168.0.1', 9001), 'web 192.168.0.50');
  });

  it('natops plan reads the allocations with --redis, and says what happens at apply without', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'natops-plan-alloc-'));
    const [file] = await manifests(eip('eip-d'), eip('eip-a'));
    await writeFile(join(dir, 'm.yaml'), file!.text);
    const noServe = { NATOPS_DATA_DIR: join(dir, 'data') };
    const withRedis = await natops(['plan', dir, '--against', dir, '--redis', p.redis.url], { env: noServe });
    assert.equal(withRedis.code, 0, withRedis.stderr);
    assert.match(withRedis.stdout, /^IptablesEIP\/eip-a: 192\.168\.0\.1 \(allocated\)$/m);
    // eip-d is new: the lowest address no EIP has (.1-.3 are allocated)
    assert.match(
      withRedis.stdout,
      /^IptablesEIP\/eip-d: 192\.168\.0\.4 \(allocated at apply: the lowest free address of Subnet ovn-vpc-external-network; none is allocated to it in redis:\/\/[^ ]+ yet\)$/m,
    );
    const without = await natops(['plan', dir, '--against', dir], { env: noServe });
    assert.equal(without.code, 0, without.stderr);
    assert.match(
      without.stdout,
      /^IptablesEIP\/eip-d: 192\.168\.0\.1 if nothing else is allocated by then \(allocated at apply: `natops serve` gives an EIP without v4ip the lowest free address of Subnet ovn-vpc-external-network, .*pass --redis URL\)$/m,
    );
    // and a running serve's Redis, from the record `natops serve` leaves, when no --redis is given
    const record = { url: p.running!.url, redisUrl: p.redis.url, prefix: p.config.prefix, pid: process.pid };
    await writeFile(join(dir, 'serve.json'), JSON.stringify(record));
    const served = await natops(['plan', dir, '--against', dir], { env: { NATOPS_DATA_DIR: dir } });
    assert.equal(served.code, 0, served.stderr);
    assert.match(served.stdout, /^IptablesEIP\/eip-a: 192\.168\.0\.1 \(allocated\)$/m);
  });

  it('natops preview names the EIP and its allocated address', async () => {
    const args = ['preview', '--repo', p.bare, '--base', shas[0]!, '--head', shas[1]!, '--redis', p.redis.url];
    const r = await natops(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /eip-b: 192\.168\.0\.2\/24 via 192\.168\.0\.254 \(allocated\)/);
    assert.doesNotMatch(r.stdout, /eip-a:/); // unchanged
  });

  it('a v4ip written equal to an allocated address is refused at its line; the gateway keeps what it had', async () => {
    const taken: Obj = { ...eip('eip-x'), spec: { natGwDp: 'ngw', v4ip: '192.168.0.2' } };
    const sha = await p.push(
      await manifests(
        eip('eip-c'),
        eip('eip-b'),
        forward('fwd-b', 'eip-b', 9002),
        eip('eip-a'),
        forward('fwd-a', 'eip-a', 9001),
        taken,
      ),
      'eip-x takes eip-b address',
    );
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops/ngw')?.state, 'failure');
    assert.match(
      statuses.get('natops/ngw')!.description,
      /spec\.v4ip: 192\.168\.0\.2 is the address natops allocated to IptablesEIP eip-b/,
    );
    assert.equal(await answers('192.168.0.2', 9002), 'web 192.168.0.50');
  });

  it('an EIP that leaves Git is freed once its gateway no longer holds it, and its address goes to the next new EIP', async () => {
    const first = await p.push(await manifests(eip('eip-a'), forward('fwd-a', 'eip-a', 9001)), 'b and c leave');
    assert.equal((await p.settled(first)).get('natops/ngw')?.state, 'success');
    // planned while the gateway still held .2 and .3: kept until a plan sees them gone
    assert.deepEqual([...(await table.table()).keys()].sort(), [KEY('eip-a'), KEY('eip-b'), KEY('eip-c')]);
    // this plan frees them (the gateway holds neither now); what it allocates skips what it frees
    const second = await p.push(await manifests(eip('eip-a'), forward('fwd-a', 'eip-a', 9001), eip('eip-e')), 'eip-e');
    assert.equal((await p.settled(second)).get('natops/ngw')?.state, 'success');
    assert.deepEqual(Object.fromEntries(await table.table()), {
      [KEY('eip-a')]: '192.168.0.1',
      [KEY('eip-e')]: '192.168.0.4',
    });
    const third = await p.push(
      await manifests(eip('eip-a'), forward('fwd-a', 'eip-a', 9001), eip('eip-e'), eip('eip-f')),
      'eip-f',
    );
    assert.equal((await p.settled(third)).get('natops/ngw')?.state, 'success');
    assert.equal((await table.table()).get(KEY('eip-f')), '192.168.0.2');
    assert.equal(await answers('192.168.0.1', 9001), 'web 192.168.0.50');
  });

  it('two planners cannot give one address twice: the second write fails whole, and one EIP is not allocated twice', async () => {
    const redis = new Redis(p.redis.url);
    try {
      const a = new EipAllocations(redis, 'race');
      const b = new EipAllocations(redis, 'race');
      assert.equal(await a.commit({ set: [{ key: KEY('x'), address: '10.0.0.9' }], free: [] }), true);
      assert.equal(await b.commit({ set: [{ key: KEY('y'), address: '10.0.0.9' }], free: [] }), false);
      assert.equal(await b.commit({ set: [{ key: KEY('x'), address: '10.0.0.10' }], free: [] }), false);
      assert.equal(
        await b.commit({
          set: [
            { key: KEY('y'), address: '10.0.0.10' },
            { key: KEY('z'), address: '10.0.0.9' },
          ],
          free: [],
        }),
        false,
      );
      assert.deepEqual(Object.fromEntries(await a.table()), { [KEY('x')]: '10.0.0.9' });
      // freeing only what still holds the address it was read with
      assert.equal(await b.commit({ set: [], free: [{ key: KEY('x'), address: '10.0.0.1' }] }), true);
      assert.equal((await a.table()).size, 1);
    } finally {
      redis.disconnect();
    }
  });

  it('two planners racing on one address: the later write fails, and its planner validates again and takes the next', async () => {
    const redis = new Redis(p.redis.url);
    const validate = (files: ManifestFile[]) => (allocations?: AllocationInput) =>
      validateManifests(files, allocations ? { allocations } : {});
    try {
      const worker = new EipAllocations(redis, 'race2');
      // the worker plans a commit with eip-y; serve a newer one that adds eip-x before it
      const [x, y] = [await manifests(eip('eip-x'), eip('eip-y')), await manifests(eip('eip-y'))];
      let raced = 0;
      // serve's planner: between its read of the table and its write, the worker's planner allocates
      class Interrupted extends EipAllocations {
        override async commit(changes: AllocationChanges): Promise<boolean> {
          if (raced++ === 0) await validatedAllocating(validate(y), worker, new Set());
          return super.commit(changes);
        }
      }
      const v = await validatedAllocating(validate(x), new Interrupted(redis, 'race2'), new Set());
      assert.equal(raced, 2, 'written twice: once refused, once after validating again');
      // alone it would have given eip-x .1 and eip-y .2; after the race eip-y keeps the worker's .1
      assert.deepEqual(
        v.allocation!.eips.map((a) => [a.id, a.address, a.fresh]),
        [
          ['IptablesEIP/eip-x', '192.168.0.2', true],
          ['IptablesEIP/eip-y', '192.168.0.1', false],
        ],
      );
      assert.deepEqual(
        v.desired.gateways
          .get('ngw')!
          .eips.slice(-2)
          .map((e) => e.cidr),
        ['192.168.0.2/24', '192.168.0.1/24'],
      );
      assert.deepEqual(Object.fromEntries(await worker.table()), {
        [KEY('eip-y')]: '192.168.0.1',
        [KEY('eip-x')]: '192.168.0.2',
      });
    } finally {
      redis.disconnect();
    }
  });
});
