// natops reading a remote Git URL (NATOPS_SOURCE=git-url), as it does in a pod: the repository
// is served over https by git's own http-backend behind a real TLS server that asks for basic
// auth, natops's mirror is fetched with a token from a file on each push delivery and on the
// catch-up, and the pushed manifests become live gateways. The token is never logged. Real
// redis-server, git, https, natops serve and the lab's namespaces.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { seedObjects, withPortForward, type SeedObjects } from '../helpers/manifests.ts';
import { startGitHttps, type GitHttpsServer } from '../helpers/git-https.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

const TOKEN = 'pipeline-git-token-5ecret';

describe('natops with a remote Git source over https (real git-http-backend, TLS, basic auth)', () => {
  let p: PipelineHarness;
  let https: GitHttpsServer;
  let seed: SeedObjects;

  const withForward = (port: number) => withPortForward(seed, port);
  const answers = (port: number) => p.lab.tcp('ext', '192.168.0.112', port);

  before(async () => {
    p = await PipelineHarness.create({}, async ({ dir }) => {
      https = await startGitHttps(dir, dir, 'natops', TOKEN);
      const tokenFile = join(dir, 'git-token');
      await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
      return {
        source: 'git-url',
        gitUrl: `${https.url}gitops.git`,
        gitUsername: 'natops',
        gitTokenFile: tokenFile,
        gitCaFile: https.caFile,
        gitDepth: 3,
      };
    });
    seed = await seedObjects();
    // (the lab's networks come up with the first gateway)
    const first = await p.push(seed, 'seed');
    assert.equal((await p.settled(first)).get('natops')?.state, 'success');
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });
  });
  after(async () => {
    await p?.cleanup();
    await https?.close();
  });

  it('a push delivery: the mirror is fetched over https with the token, the head planned and live', async () => {
    const sha = await p.push(withForward(7101), 'forward 7101');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(statuses.get('natops/ngw')?.state, 'success');
    assert.equal(await answers(7101), 'web 192.168.0.50');
    assert.ok(https.seen.includes(`natops:${TOKEN}`), 'the server was asked with the token');
    // The next push is seen by the next delivery's fetch.
    const next = await p.push(withForward(7102), 'forward 7102');
    assert.equal((await p.settled(next)).get('natops/ngw')?.state, 'success');
    assert.equal(await answers(7102), 'web 192.168.0.50');
  });

  it('natops stopped, pushes whose deliveries were lost: the catch-up at start fetches and plans the newest', async () => {
    await p.running!.close();
    await run(['git', `--git-dir=${p.bare}`, 'config', 'core.hooksPath', '/dev/null']);
    const shas: string[] = [];
    // more commits than the mirror's depth (3): the planned one is found by deepening, not called rewritten
    for (const port of [7111, 7112, 7113, 7114, 7115]) shas.push(await p.push(withForward(port), `forward ${port}`));
    await run(['git', `--git-dir=${p.bare}`, 'config', '--unset', 'core.hooksPath']);
    await p.start();
    const statuses = await p.settled(shas.at(-1)!);
    assert.equal(statuses.get('natops/ngw')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(await answers(7115), 'web 192.168.0.50');
    assert.ok(
      p.logs.some((l) => /catch-up: main is at/.test(l)),
      p.logs.join('\n'),
    );
    assert.ok(!p.logs.some((l) => /history rewritten/.test(l)), p.logs.join('\n'));
  });

  it('natops running, a delivery lost: the resync catches up, fetching the remote', async () => {
    await p.running!.close();
    p.config.resyncMs = 1000;
    await p.start();
    await run(['git', `--git-dir=${p.bare}`, 'config', 'core.hooksPath', '/dev/null']);
    const sha = await p.push(withForward(7121), 'forward 7121, delivery lost');
    await run(['git', `--git-dir=${p.bare}`, 'config', '--unset', 'core.hooksPath']);
    assert.equal((await p.settled(sha, 30_000)).get('natops/ngw')?.state, 'success');
    assert.equal(await answers(7121), 'web 192.168.0.50');
    await p.running!.close();
    p.config.resyncMs = 0;
    await p.start();
  });

  it('a force-push back to an older commit: the mirror follows it, and the plan says history was rewritten', async () => {
    const older = (await run(['git', '-C', p.work, 'rev-parse', 'HEAD~2'])).stdout.trim();
    const plannedBefore = (await p.running!.store.head('main'))!.gen;
    await run(['git', '-C', p.work, 'reset', '--quiet', '--hard', older]);
    await run(['git', '-C', p.work, 'push', '--quiet', '--force', 'origin', 'HEAD:main']);
    const rec = await p.until('the force-push to be applied', async () => {
      const r = await p.running!.records.get({ kind: 'gateway', name: 'ngw' });
      return r && r.condition.gen > plannedBefore && r.condition.ready === 'True' ? r : undefined;
    });
    assert.equal(rec.lastApplied?.sha, older);
    assert.equal(await answers(7121), undefined, 'the replaced commit is not live');
    assert.ok(
      p.logs.some((l) => /history rewritten/.test(l)),
      p.logs.join('\n'),
    );
  });

  it('the token is in no log line', () => {
    assert.ok(p.logs.length > 0);
    assert.ok(!p.logs.some((l) => l.includes(TOKEN)));
    assert.ok(!p.logRecords.some((r) => JSON.stringify(r).includes(TOKEN)));
  });
});
