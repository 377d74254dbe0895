// A proven preview (NATOPS_PREVIEW_PROVE): the preview function builds each pull request's base
// and head in throwaway labs and sends real packets through every changed gateway's mappings; the
// result goes into the comment and into a `natops/prove` check run on the head. GitHub is the
// stand-in (held to the OpenAPI description); Redis, git, natops serve and the namespaces are real.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { PROVE_CHECK } from '../../functions/preview/pull-request.ts';
import { pullRequests } from '../helpers/github-pr.ts';
import { proveLabs } from '../helpers/lab-harness.ts';
import { GitHubStandIn } from '../helpers/github/standin.ts';
import { push, seedObjects, set, type SeedObjects } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

const REPO = 'test/gitops';

describe('a proven preview: real packets through throwaway labs, in the comment and a check run', () => {
  let p: PipelineHarness;
  let gh: GitHubStandIn;
  let seed: SeedObjects;
  const { commitOnBranch, prEvent, botComments, previewStatus } = pullRequests(
    () => p,
    () => gh,
    REPO,
  );
  const proveRun = (sha: string) =>
    p.until(`the ${PROVE_CHECK} check run of ${sha.slice(0, 7)}`, async () =>
      gh.checkRuns(REPO).find((c) => c.head_sha === sha && c.name === PROVE_CHECK && c.status === 'completed'),
    );

  before(async () => {
    p = await PipelineHarness.create({}, async ({ bare }) => {
      gh = await GitHubStandIn.start({ repos: { [REPO]: bare } });
      return {
        source: 'github',
        repository: REPO,
        githubUrl: gh.url,
        githubAppId: String(gh.app.appId),
        githubPrivateKey: gh.app.privateKeyPem,
        previewProve: true,
      };
    });
    seed = await seedObjects();
    await p.settled(await p.push(seed, 'seed'));
  });
  after(async () => {
    await p?.cleanup();
    await gh?.close();
  });
  afterEach(() => gh.assertClean());

  it('a port moved: every mapping answers at head, the moved one each side at its own port; the check run passes', async () => {
    const pr = structuredClone(seed);
    set(pr.gateway, 'spec.dnatRules.0.externalPort', 8080);
    const c = await commitOnBranch('moved', pr, true);
    await prEvent('opened', 21, { ...c, branch: 'moved' });
    assert.equal((await previewStatus(c.head)).state, 'success');
    const body = botComments(21)[0]!.body;
    assert.match(body, /#### Packets through a throwaway lab/);
    assert.match(body, /5 of 5 probes answered at head \(5 of 5 probes answered at base\)\./);
    assert.match(
      body,
      /^\| `ngw` \| `port forward tcp 192\.168\.0\.112:8080 -> 10\.0\.1\.10:80` \| – \| ✅ h2 answered \|$/m,
    );
    assert.match(
      body,
      /^\| `ngw` \| `port forward tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80` \| ✅ h2 answered \| – \|$/m,
    );
    const check = await proveRun(c.head);
    assert.equal(check.conclusion, 'success');
    assert.match(check.output.summary ?? '', /✅ ext answered, seeing 192\.168\.0\.112/);
    assert.deepEqual(await proveLabs(), []);
  });

  it('a forward to the router: not answered, with why, and the check run fails', async () => {
    const pr = structuredClone(seed);
    push(pr.gateway, 'spec.dnatRules', {
      eip: '192.168.0.112',
      externalPort: 8081,
      protocol: 'tcp',
      internalIp: '10.0.1.1',
      internalPort: 80,
    });
    const c = await commitOnBranch('router', pr, true);
    await prEvent('opened', 22, { ...c, branch: 'router' });
    assert.equal((await previewStatus(c.head)).state, 'success', 'the head is valid: the status says so');
    const check = await proveRun(c.head);
    assert.equal(check.conclusion, 'failure');
    assert.match(check.output.summary ?? '', /❌ no host behind it: 10\.0\.1\.1 is subnet sn's gateway/);
    assert.match(botComments(22)[0]!.body, /❌ no host behind it: 10\.0\.1\.1 is subnet sn's gateway/);
    // #21 changes ngw too: its comment is written again (and proven again) to say so; then no lab is left
    await p.until('every prove lab removed', async () => (await proveLabs()).length === 0);
  });
});
