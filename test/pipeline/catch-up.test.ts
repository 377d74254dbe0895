// No push is lost: the hook never holds a push (a delivery natops cannot take is kept and sent
// when it is back), natops plans the tracked branch's head itself when no delivery brought it
// (at start, and on every resync), and what decides is the branch's head, so a force-push back
// to an older commit is the new truth and a late delivery of the commit it replaced is not.
// Real Redis, Git (pushes with the hook off stand for lost deliveries), namespaces and packets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { notifyPush } from '../../gitops/hook/delivery.ts';
import { GitRepo } from '../../gitops/git/local-source.ts';
import { run } from '../../common/exec.ts';
import { seedObjects, set, withPortForward, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

describe('catching up with the branch (real redis-server, git, namespaces)', () => {
  let p: PipelineHarness;
  let seed: SeedObjects;

  const hook = async (on: boolean) => {
    if (on) await run(['git', `--git-dir=${p.bare}`, 'config', '--unset', 'core.hooksPath']);
    else await run(['git', `--git-dir=${p.bare}`, 'config', 'core.hooksPath', '/dev/null']);
  };
  const withForward = (port: number) => withPortForward(seed, port);
  const answers = (port: number) => p.lab.tcp('ext', '192.168.0.112', port);

  before(async () => {
    p = await PipelineHarness.create();
    seed = await seedObjects();
    const sha = await p.push(seed, 'seed');
    assert.equal((await p.settled(sha)).get('natops')?.state, 'success');
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });
  });
  after(async () => {
    await p?.cleanup();
  });

  it('natops stopped, three pushes whose deliveries were lost: at start the newest is planned and live, no manual step', async () => {
    await p.running!.close();
    await hook(false);
    const shas: string[] = [];
    for (const port of [7001, 7002, 7003]) shas.push(await p.push(withForward(port), `forward ${port}`));
    await hook(true);
    await p.start();
    const statuses = await p.settled(shas[2]!);
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(await answers(7003), 'web 192.168.0.50');
    assert.equal(await answers(7002), undefined);
    const rec = await p.running!.records.get({ kind: 'gateway', name: 'ngw' });
    assert.equal(rec?.lastApplied?.sha, shas[2]);
    assert.ok(
      p.logs.some((l) => /catch-up: main is at/.test(l)),
      p.logs.join('\n'),
    );
  });

  it('natops stopped, three pushes: git returns saying the delivery was deferred; at start the newest is live and the older two are marked superseded', async () => {
    await p.running!.close();
    const shas: string[] = [];
    for (const port of [7011, 7012, 7013]) {
      shas.push(await p.commitOnly(withForward(port), `forward ${port}`));
      const pushed = await run(['git', '-C', p.work, 'push', 'origin', 'HEAD:main']);
      assert.match(
        pushed.stderr,
        /remote: natops: webhook unreachable; delivery \S+ for [0-9a-f]{7} deferred/,
        pushed.stderr,
      );
    }
    await p.start();
    const newest = await p.settled(shas[2]!);
    assert.match(newest.get('natops/ngw')?.description ?? '', /^live: /, JSON.stringify([...newest.values()]));
    for (const older of shas.slice(0, 2)) {
      const st = await p.settled(older);
      assert.match(
        st.get('natops')?.description ?? '',
        /^not applied: superseded by newer commit /,
        JSON.stringify([...st.values()]),
      );
    }
    assert.equal(await answers(7013), 'web 192.168.0.50');
    assert.equal(await answers(7012), undefined);
  });

  it('natops running, a delivery lost: the resync plans the head within one interval', async () => {
    await p.running!.close();
    p.config.resyncMs = 1000;
    await p.start();
    await hook(false);
    const sha = await p.push(withForward(7004), 'forward 7004, delivery lost');
    await hook(true);
    const statuses = await p.settled(sha, 30_000);
    assert.equal(statuses.get('natops/ngw')?.state, 'success');
    assert.equal(await answers(7004), 'web 192.168.0.50');
    await p.running!.close();
    p.config.resyncMs = 0;
    await p.start();
  });

  it('a force-push back to an older commit is live and says so; a late delivery of the commit it replaced is not applied', async () => {
    const older = (await run(['git', '-C', p.work, 'rev-parse', 'HEAD'])).stdout.trim();
    const replaced = await p.push(withForward(7005), 'forward 7005');
    assert.match((await p.settled(replaced)).get('natops/ngw')?.description ?? '', /^live: /);
    assert.equal(await answers(7005), 'web 192.168.0.50');

    await run(['git', '-C', p.work, 'reset', '--quiet', '--hard', older]);
    const plannedBefore = (await p.running!.store.head('main'))!.gen;
    await run(['git', '-C', p.work, 'push', '--quiet', '--force', 'origin', 'HEAD:main']);
    // `older` has statuses from before: wait for its new generation to be applied.
    const rec = await p.until('the force-push to be applied', async () => {
      const r = await p.running!.records.get({ kind: 'gateway', name: 'ngw' });
      return r && r.condition.gen > plannedBefore && r.condition.ready === 'True' ? r : undefined;
    });
    assert.deepEqual([rec.lastApplied?.sha, rec.condition.sha], [older, older]);
    const statuses = await p.settled(older);
    assert.match(statuses.get('natops/ngw')?.description ?? '', /^live: /, JSON.stringify([...statuses.values()]));
    assert.equal(await answers(7004), 'web 192.168.0.50');
    assert.equal(await answers(7005), undefined, 'the replaced commit is still live');
    assert.ok(
      p.logs.some((l) => /history rewritten/.test(l)),
      'the plan says history was rewritten',
    );

    // The replaced commit's delivery, late: it is not the branch's head, so it changes nothing.
    const late = await notifyPush(p.bare, { before: older, after: replaced, ref: 'refs/heads/main' });
    assert.equal(late.status, 202);
    await p.until('the late delivery to be planned', async () =>
      p.logs.some((l) => l.includes(`${replaced.slice(0, 7)} is not the branch's head`)),
    );
    assert.equal(await answers(7004), 'web 192.168.0.50');
    assert.equal(await answers(7005), undefined, 'a late delivery rolled the branch forward again');
  });

  it('an older commit delivered again after a newer one changes nothing', async () => {
    const first = (await run(['git', '-C', p.work, 'rev-parse', 'HEAD'])).stdout.trim();
    const newer = structuredClone(seed);
    set(newer.gateway, 'spec.dnatRules.0.externalPort', 8899);
    const sha = await p.push(newer, 'move the forward');
    assert.equal((await p.settled(sha)).get('natops/ngw')?.state, 'success');
    assert.equal(
      (await notifyPush(p.bare, { before: '0'.repeat(40), after: first, ref: 'refs/heads/main' })).status,
      202,
    );
    await p.until('the redelivery to be looked at', async () =>
      p.logs.some((l) => l.includes(`${first.slice(0, 7)} is not the branch's head`)),
    );
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8899), 'web 192.168.0.50');
    assert.equal(await p.lab.tcp('ext', '192.168.0.112', 8888), undefined);
  });

  it('a repository whose planned head is gone (history replaced, then garbage-collected) does not wedge the planner', async () => {
    const gone = (await p.running!.store.head('main'))!.sha;
    await hook(false);
    await run(['git', '-C', p.work, 'checkout', '--quiet', '--orphan', 'fresh']);
    const fresh = await p.commitOnly(withForward(7020), 'a new history');
    await run(['git', '-C', p.work, 'push', '--quiet', '--force', 'origin', 'fresh:main']);
    await run(['git', `--git-dir=${p.bare}`, 'gc', '--quiet', '--prune=now']);
    assert.equal(await new GitRepo(p.bare).hasCommit(gone), false, 'the planned head is still in the repository');
    await hook(true);
    assert.equal((await notifyPush(p.bare, { before: gone, after: fresh, ref: 'refs/heads/main' })).status, 202);
    const statuses = await p.settled(fresh);
    assert.match(statuses.get('natops/ngw')?.description ?? '', /^live: /, JSON.stringify([...statuses.values()]));
    assert.equal(await answers(7020), 'web 192.168.0.50');
    assert.ok(
      p.logs.some((l) => l.includes(`history rewritten: ${gone.slice(0, 7)} is not in it`)),
      p.logs.slice(-10).join('\n'),
    );
  });
});
