// The newest commit wins in every interleaving, driven through the real planner and real worker
// processes: push A (adds a port forward), then B (reverts it) while A's jobs are held in the
// queue; then release the jobs in each order, to two worker processes. Whatever runs first,
// the live gateway is B's and A's status says it was superseded. Real Redis, Git, packets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { push, seedObjects, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('a revert pushed before the change it reverts has run (real planner, two worker processes)', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;
  let workers: ChildProcess[] = [];

  const stopWorkers = async () => {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) => {
            if (w.exitCode !== null) return resolve(undefined);
            w.once('exit', resolve);
            w.kill('SIGTERM');
          }),
      ),
    );
    workers = [];
  };

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    const sha = await p.push(seed, 'seed');
    assert.equal((await p.settled(sha)).get('natops/ngw')?.state, 'success');
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });
    // From here on this process plans; the handlers run in worker processes started per case.
    await p.running!.close();
    await p.start(['plan']);
  });
  after(async () => {
    await stopWorkers();
    await p?.cleanup();
  });

  const orders = ['the change first', 'the revert first', 'both at once'] as const;
  for (const [i, order] of orders.entries()) {
    it(`${order}: the revert is what is live`, async () => {
      const port = 7000 + i;
      const withForward = structuredClone(seed);
      push(withForward.gateway, 'spec.dnatRules', {
        eip: '192.168.0.112',
        externalPort: port,
        protocol: 'tcp',
        internalIp: '10.0.1.10',
        internalPort: 80,
      });
      const dnat = p.running!.queues.byName.dnat;
      const a = await p.push(withForward, `A: forward ${port}`);
      await p.until("A's DNAT job to be queued", async () => (await dnat.getWaitingCount()) === 1);
      const [jobA] = await dnat.getWaiting();
      const b = await p.push(seed, `B: revert A`);
      // B is planned once its gateway has a status on B.
      await p.until('B to be planned', async () => (await p.statuses(b)).some((s) => s.context === 'natops/ngw'));
      const waiting = await dnat.getWaiting();
      const jobB = waiting.find((j) => j.id !== jobA!.id);

      if (order === 'the revert first') await jobB?.changePriority({ lifo: true });
      if (order === 'the change first') await jobA!.changePriority({ lifo: true });
      workers.push(p.startWorkerProcess(HANDLER_KINDS));
      if (order === 'both at once') workers.push(p.startWorkerProcess(HANDLER_KINDS));

      const statuses = await p.settled(b);
      assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
      // Whatever of A's ran was undone: the seed's forward answers, A's does not.
      assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8888), 'web 192.168.0.50');
      assert.equal(
        await p.lab.tcp('ext', '192.168.0.112', port),
        undefined,
        `A's forward ${port} is live while Git holds B`,
      );
      const older = await p.settled(a);
      assert.match(older.get('natops/ngw')!.description, /superseded by newer commit/);
      await stopWorkers();
    });
  }
});
