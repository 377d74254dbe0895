// natops with GitHub: the manifests read through the trees and blobs APIs, statuses and check
// runs written back, pull requests previewed in one comment each. GitHub is the stand-in, which
// checks every request against GitHub's OpenAPI description (a request that does not match fails
// the test); everything else is real: redis-server, git, natops serve, the lab's namespaces.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { PREVIEW_MARKER } from '../../functions/preview/pull-request.ts';
import { PREVIEW_CONTEXT, type CommitStatus } from '../../state/statuses.ts';
import { GitHubStandIn } from '../helpers/github/standin.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { get, seedObjects, set, toFiles, type SeedObjects } from '../helpers/manifests.ts';
import { natops } from '../helpers/cli.ts';
import { pullRequests } from '../helpers/github-pr.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';

const REPO = 'test/gitops';

describe('natops with GitHub (stand-in held to the OpenAPI description; real Redis, git, namespaces)', () => {
  let p: PipelineHarness;
  let gh: GitHubStandIn;
  let seed: SeedObjects;

  before(async () => {
    p = await PipelineHarness.create({}, async ({ bare }) => {
      gh = await GitHubStandIn.start({ repos: { [REPO]: bare } });
      // A rate limit lifting later than 1 s puts the job back in the queue until then.
      return {
        source: 'github',
        repository: REPO,
        githubUrl: gh.url,
        githubAppId: String(gh.app.appId),
        githubPrivateKey: gh.app.privateKeyPem,
        githubMaxWaitS: 1,
        previewLabel: 'natops-preview',
      };
    });
    seed = await seedObjects();
  });
  after(async () => {
    await p?.cleanup();
    await gh?.close();
  });
  afterEach(() => gh.assertClean());

  /** Waits until GitHub shows, per context, exactly the status natops holds for the commit. */
  const onGitHub = (sha: string, timeoutMs = 60_000) =>
    p.until(
      `GitHub to show natops's statuses of ${sha.slice(0, 7)}`,
      async () => {
        const ours = await p.statuses(sha);
        const theirs = gh.latestStatuses(REPO, sha);
        const same = (s: CommitStatus) => {
          const t = theirs.get(s.context);
          return t && t.state === s.state && t.description === s.description && t.target_url === (s.targetUrl ?? null);
        };
        return ours.length > 0 && ours.every(same) && ours.length === theirs.size ? theirs : undefined;
      },
      timeoutMs,
    );

  const checkRunOf = (sha: string) => gh.checkRuns(REPO).filter((c) => c.head_sha === sha);

  it('a push: one status per gateway plus the summary on GitHub, identical ones never posted twice, and a check run', async () => {
    const sha = await p.push(seed, 'seed');
    const settled = await p.settled(sha);
    assert.equal(settled.get('natops')?.state, 'success', JSON.stringify([...settled.values()]));
    const theirs = await onGitHub(sha);
    assert.deepEqual([...theirs.keys()].sort(), ['natops', 'natops/ngw', 'natops:networks']);
    assert.equal(theirs.get('natops/ngw')?.state, 'success');
    assert.match(theirs.get('natops/ngw')!.description!, /^live: 2 EIPs/);
    assert.equal(theirs.get('natops/ngw')!.creator, `${gh.app.slug}[bot]`);
    for (const context of theirs.keys()) {
      const posted = gh
        .statuses(REPO, sha)
        .filter((s) => s.context === context)
        .map((s) => JSON.stringify([s.state, s.description, s.target_url]));
      for (let i = 1; i < posted.length; i++)
        assert.notEqual(posted[i], posted[i - 1], `${context}: the same status posted twice in a row`);
    }
    const run = await p.until('the check run to complete', async () =>
      checkRunOf(sha).find((c) => c.status === 'completed'),
    );
    assert.equal(checkRunOf(sha).length, 1);
    assert.equal(run.conclusion, 'success');
    assert.match(run.output.summary ?? '', /natops\/ngw/);
  });

  it('the next push fetches only the blob that changed', async () => {
    const fetchedBefore = new Map(gh.blobFetches);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8081);
    const sha = await p.push(seed, 'move the forward');
    await p.settled(sha);
    await onGitHub(sha);
    const newly = [...gh.blobFetches].filter(([blob]) => !fetchedBefore.has(blob));
    assert.equal(newly.length, 1, 'only the gateway manifest is new');
    for (const [blob, n] of gh.blobFetches) assert.equal(n, 1, `blob ${blob} fetched ${n} times`);
  });

  it('an invalid push: failure on GitHub, and the check run annotates every manifest line, 50 per request', async () => {
    const valid = structuredClone(seed.gateway);
    set(
      seed.gateway,
      'spec.dnatRules',
      Array.from({ length: 60 }, (_, i) => ({
        eip: '192.168.0.112',
        externalPort: 20000 + i,
        protocol: 'tcp',
        internalIp: '172.16.0.10',
        internalPort: 80,
      })),
    );
    const sha = await p.push(seed, 'sixty broken forwards');
    seed.gateway = valid;
    const settled = await p.settled(sha);
    assert.equal(settled.get('natops/ngw')?.state, 'failure');
    await onGitHub(sha);
    const issues = await p.running!.store.commitIssues(sha);
    assert.equal(issues.length, 60);
    const run = await p.until('every annotation', async () =>
      checkRunOf(sha).find((c) => c.status === 'completed' && c.annotations.length === 60),
    );
    assert.equal(run.conclusion, 'failure');
    assert.deepEqual(
      run.annotations.map((a) => [a.path, a.start_line]).sort(),
      issues.map((i) => [i.pos.file, i.pos.line]).sort(),
    );
    const patches = gh.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/check-runs/${run.id}`));
    assert.ok(patches.length >= 1, 'the annotations past 50 went in an update');
    // natops forgets it made the run (as after a crash right after GitHub answered): asked
    // again, it finds the run on GitHub and neither makes a second one nor sends annotations twice.
    await p.running!.store.redis.del(`natops:sys:check:${sha}`);
    await p.running!.queues.addGitHubSync({ sha }, 'again');
    await p.until(
      'the sync job to run',
      async () => (await p.running!.queues.byName.github.getJob(`statuses-${sha}-again`))?.finishedOn,
    );
    assert.equal(checkRunOf(sha).length, 1);
    assert.equal(checkRunOf(sha)[0]!.annotations.length, 60);
    await p.settled(await p.push(seed, 'valid again'));
  });

  it('rate limits and an outage delay the status writes and lose none', async () => {
    const statusWrites = (m: string, path: string) => m === 'POST' && /\/statuses\//.test(path);
    // A secondary rate limit lifting in 3 s (> 1 s: the job waits in the queue), then errors.
    gh.fail({ status: 403, kind: 'secondary', retryAfterSeconds: 3, times: 2, match: statusWrites });
    gh.fail({ status: 502, times: 5, match: statusWrites });
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8082);
    const sha = await p.push(seed, 'during an outage');
    await p.settled(sha);
    await onGitHub(sha, 120_000);
    const faulted = gh.requests.filter((r) => statusWrites(r.method, r.path) && r.status >= 400).map((r) => r.status);
    assert.ok(
      faulted.filter((s) => s === 403).length === 2 && faulted.filter((s) => s === 502).length === 5,
      JSON.stringify(faulted),
    );
    assert.ok(
      p.logs.some((l) => /rate limit.*waiting$/i.test(l)),
      'the job waited for the rate limit in the queue',
    );
  });

  // ---- pull requests ---------------------------------------------------------------------------

  const { commitOnBranch, prEvent, botComments, previewStatus } = pullRequests(
    () => p,
    () => gh,
    REPO,
  );

  it('a pull request gets one comment (found again among 250 others), edited on each push, and a natops/preview status', async () => {
    for (let i = 0; i < 250; i++)
      gh.addComment(REPO, 7, {
        login: i % 2 ? 'reviewer' : 'other-bot[bot]',
        body: i === 3 ? `${PREVIEW_MARKER} pasted by someone else` : `comment ${i}`,
      });
    const pr = structuredClone(seed);
    set(pr.gateway, 'spec.dnatRules.0.internalIp', '10.0.1.11');
    let c = await commitOnBranch('pr7', pr, true);
    await prEvent('opened', 7, { ...c, branch: 'pr7' });
    assert.equal((await previewStatus(c.head)).state, 'success');
    const port = get(pr.gateway, 'spec.dnatRules.0.externalPort');
    const listings = () =>
      gh.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/issues/7/comments')).length;
    const listed = listings();
    for (let internal = 8001; internal <= 8003; internal++) {
      set(pr.gateway, 'spec.dnatRules.0.internalPort', internal);
      c = await commitOnBranch('pr7', pr, false);
      await prEvent('synchronize', 7, { ...c, branch: 'pr7' });
      assert.equal((await previewStatus(c.head)).state, 'success');
    }
    const mine = botComments(7);
    assert.equal(mine.length, 1, 'one comment, edited in place');
    assert.equal(listings(), listed, 'later previews edit the comment they remember, with no scan of the thread');
    assert.equal(gh.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/issues/7/comments')).length, 1);
    const body = mine[0]!.body;
    assert.ok(body.length <= 65_536);
    assert.match(body, new RegExp(`NAT preview: \`${c.base.slice(0, 7)}\` → \`${c.head.slice(0, 7)}\``));
    assert.match(body, /\| gateway `ngw` \| update \|.*\| \+0 ~1 -0 \|/, 'the summary counts one changed port forward');
    assert.ok(
      body.includes(
        `| port forward | changed | \`tcp 192.168.0.112:${port} -> 10.0.1.10:80\` | \`tcp 192.168.0.112:${port} -> 10.0.1.11:8003\` |`,
      ),
      body,
    );
    assert.match(
      body,
      new RegExp(
        `<details><summary>Rule diff of gateway <code>ngw</code>[^]*\`\`\`diff\n[^]*--dport ${port} -j DNAT --to-destination 10\\.0\\.1\\.11:8003[^]*</details>`,
      ),
    );
    assert.equal(checkRunOf(c.head).length, 0, "a pull request's head gets no check run (it is not a planned commit)");
    // `natops preview` on the local repository prints the same
    const cli = await natops([
      'preview',
      '--base',
      c.base.slice(0, 7),
      '--head',
      c.head.slice(0, 7),
      '--repo',
      p.bare,
      '--format',
      'markdown',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout.trimEnd(), body.slice(PREVIEW_MARKER.length + 1).trimEnd());
    // listing went through every page: 250 others plus natops's own
    assert.ok(
      gh.requests.some((r) => r.method === 'GET' && r.path.endsWith('/issues/7/comments') && r.query.page === '3'),
    );
  });

  it('an invalid head: natops/preview fails and the comment links each error to its line at the head commit', async () => {
    const pr = structuredClone(seed);
    set(pr.gateway, 'spec.dnatRules.0.internalIp', '172.16.0.10');
    const c = await commitOnBranch('pr7', pr, false);
    await prEvent('synchronize', 7, { ...c, branch: 'pr7' });
    const s = await previewStatus(c.head);
    assert.equal(s.state, 'failure');
    assert.match(s.description ?? '', /validation error/);
    const issue = validateManifests(toFiles(pr)).issues[0]!;
    const body = botComments(7)[0]!.body;
    assert.ok(body.includes(`/blob/${c.head}/30-nat-gateway.yaml#L${issue.pos.line}`), body.slice(-800));
    assert.match(body, /spec\.dnatRules\[0\]\.internalIp/);
  });

  it('two pull requests changing the same gateway each say so; closing one marks its comment outdated and the other forgets it', async () => {
    const seven = structuredClone(seed);
    set(seven.gateway, 'spec.dnatRules.0.externalPort', 9100);
    const c7 = await commitOnBranch('pr7', seven, false);
    await prEvent('synchronize', 7, { ...c7, branch: 'pr7' });
    await previewStatus(c7.head);
    const eight = structuredClone(seed);
    set(eight.gateway, 'spec.snatRules.0.internalCIDR', get(eight.gateway, 'spec.snatRules.0.internalCIDR'));
    set(eight.gateway, 'spec.floatingIpRules', []);
    const c8 = await commitOnBranch('pr8', eight, true);
    await prEvent('opened', 8, { ...c8, branch: 'pr8', fork: true });
    await previewStatus(c8.head);
    assert.ok(
      !gh.requests.some((r) => r.path.includes('gitops-fork')),
      'nothing of the fork is read: its commits come through the base repository',
    );
    assert.match(botComments(8)[0]!.body, /Also changed by #7:\*\* gateway `ngw`/);
    await p.until('#7 to mention #8', async () =>
      /Also changed by #8:\*\* gateway `ngw`/.test(botComments(7)[0]?.body ?? ''),
    );
    await prEvent('closed', 8, { ...c8, branch: 'pr8', fork: true });
    await p.until('#8 to be marked outdated', async () =>
      /\*\*Outdated:\*\* the pull request was closed without merging/.test(botComments(8)[0]?.body ?? ''),
    );
    await p.until('#7 to forget #8', async () => !/Also changed by #8/.test(botComments(7)[0]?.body ?? ''));
    assert.equal(botComments(8).length, 1);
  });

  it('a newer push supersedes a preview still being computed: the older one writes no comment and says so on its head', async () => {
    const pr = structuredClone(seed);
    set(pr.gateway, 'spec.dnatRules.0.externalPort', 9201);
    const older = await commitOnBranch('pr7', pr, false);
    set(pr.gateway, 'spec.dnatRules.0.externalPort', 9202);
    const newer = await commitOnBranch('pr7', pr, false);
    // GitHub holds every read about the older head until the newer push is in.
    const held = gh.hold((_m, path) => path.includes(older.head));
    const from = gh.requests.length;
    await prEvent('synchronize', 7, { ...older, branch: 'pr7' });
    await p.until('the older preview to be reading', async () =>
      gh.requests.slice(from).some((r) => r.path.includes(older.head)),
    );
    await prEvent('synchronize', 7, { ...newer, branch: 'pr7' });
    await p.until(
      'the newer push to be the one wanted',
      async () => (await p.running!.previews.wanted(7))?.head === newer.head,
    );
    held.release();
    assert.equal((await previewStatus(newer.head)).state, 'success');
    const olderStatus = await p.until('the older head to be settled', async () => {
      const s = gh.latestStatuses(REPO, older.head).get(PREVIEW_CONTEXT);
      return s && s.state !== 'pending' ? s : undefined;
    });
    assert.equal(olderStatus.description, 'not previewed: superseded by a newer push or base');
    const written = gh.requests
      .slice(from)
      .filter((r) => /\/issues\/(7\/)?comments/.test(r.path) && r.method !== 'GET')
      .map((r) => JSON.stringify(r.body));
    assert.ok(
      written.length >= 1 && written.every((b) => !b.includes(older.head.slice(0, 7))),
      'no comment of the older head',
    );
    assert.ok(botComments(7)[0]!.body.includes(`\`${newer.head.slice(0, 7)}\``));
  });

  it("a reviewer's pull request: a forward moved, a floating IP removed, 5,000 forwards added; under 65,536 characters, what breaks first", async () => {
    // issue 25's example, on the seed as this test has it now
    const pr = structuredClone(seed);
    const port = Number(get(pr.gateway, 'spec.dnatRules.0.externalPort'));
    set(pr.gateway, 'spec.dnatRules.0.externalPort', 8080);
    set(pr.gateway, 'spec.floatingIpRules', []);
    const forwards = get(pr.gateway, 'spec.dnatRules') as unknown[];
    for (let i = 0; i < 5000; i++)
      forwards.push({
        eip: '192.168.0.112',
        externalPort: 20000 + i,
        protocol: 'tcp',
        internalIp: `10.0.1.${10 + (i % 200)}`,
        internalPort: 80,
      });
    const c = await commitOnBranch('pr9', pr, true);
    await prEvent('opened', 9, { ...c, branch: 'pr9' });
    assert.equal((await previewStatus(c.head)).state, 'success');
    const body = botComments(9)[0]!.body;
    assert.ok(body.length <= 65_536, `${body.length} characters`);
    assert.match(body, /\| gateway `ngw` \| update \| \+0 ~0 -0 \| \+0 ~0 -1 \| \+5,000 ~1 -0 \|/);
    const rows = body.split('\n').filter((l) => /^\| (port forwards?|floating IP|SNAT|EIP|route) \|/.test(l));
    assert.deepEqual(rows, [
      '| floating IP | removed | `192.168.0.111 -> 10.0.1.5` |  | the EIP stops reaching its address, which leaves by SNAT (if any) instead; open connections are cut |',
      `| port forward | changed | \`tcp 192.168.0.112:${port} -> 10.0.1.10:80\` | \`tcp 192.168.0.112:8080 -> 10.0.1.10:80\` | open connections through the old mapping are cut |`,
      '| port forwards | added |  | `5,000 port forwards tcp 192.168.0.112:20000-24999 -> 10.0.1.10-209:80` |  |',
    ]);
    assert.match(body, /Cut to fit GitHub's 65,536-character limit on a comment: the rule diff of gateway `ngw`/);
  });

  it('a pull request from outside (author association NONE) is not previewed and nothing of it is read; labelled with NATOPS_PREVIEW_LABEL it is, its blobs kept out of the month-long cache', async () => {
    const pr = structuredClone(seed);
    set(pr.gateway, 'spec.dnatRules.0.externalPort', 9310);
    const c = await commitOnBranch('pr10', pr, true);
    const from = gh.requests.length;
    const jobs = async () =>
      Object.values(await p.running!.queues.byName.preview.getJobCounts()).reduce((a, b) => a + b);
    const queued = await jobs();
    const outside = await prEvent('opened', 10, { ...c, branch: 'pr10', fork: true, association: 'NONE' });
    assert.equal(
      outside.outcome,
      'pull request #10 not previewed: author association NONE (NATOPS_PREVIEW_AUTHORS: OWNER,MEMBER,COLLABORATOR) and without the label "natops-preview" (NATOPS_PREVIEW_LABEL); ignored',
    );
    assert.equal(await jobs(), queued, 'no preview job');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!gh.requests.slice(from).some((r) => r.path.includes(c.head)), 'nothing of its head read');
    assert.equal(gh.comments(REPO, 10).length, 0);
    assert.ok(p.logs.some((l) => l.includes('pull request #10 not previewed: author association NONE')));
    // a maintainer labels it
    const labelled = await prEvent('labeled', 10, {
      ...c,
      branch: 'pr10',
      fork: true,
      association: 'NONE',
      labels: ['natops-preview'],
    });
    assert.match(labelled.outcome ?? '', /^queued preview of pull request #10 /);
    assert.equal((await previewStatus(c.head)).state, 'success');
    assert.equal(botComments(10).length, 1);
    const blob = (await run(['git', '--git-dir', p.bare, 'rev-parse', `${c.head}:30-nat-gateway.yaml`])).stdout.trim();
    assert.equal(await p.running!.store.blob(blob), undefined, "the pull request's blob is not kept a month");
    assert.ok(await p.running!.store.prBlob(blob), 'but for an hour, for its re-renders');
  });

  it('at start, the deliveries that failed in the last three days are redelivered, once; an unchanged branch then costs only 304s', async () => {
    const day = 24 * 3600 * 1000;
    // GitHub lists deliveries newest first (ids grow with time); natops stops at the first one past three days.
    gh.addHookDelivery({ event: 'push', status_code: 502, delivered_at: new Date(Date.now() - 4 * day).toISOString() });
    const failed = gh.addHookDelivery({ event: 'push', status_code: 502 });
    const timedOut = gh.addHookDelivery({ event: 'pull_request', action: 'opened', status_code: 0 });
    const retried = gh.addHookDelivery({ event: 'push', status_code: 503 });
    gh.addHookDelivery({ event: 'push', guid: retried.guid, status_code: 202, redelivery: true });
    const known = gh.addHookDelivery({ event: 'push', status_code: 504 });
    // natops took this one (as the webhook records a queued delivery)
    await p.running!.store.recordDelivery(
      { id: known.guid, event: 'push', at: Date.now(), outcome: 'queued' },
      { seen: true },
    );
    gh.addHookDelivery({ event: 'push', status_code: 502, repository_id: 99 });
    gh.addHookDelivery({ event: 'push', status_code: 400 });
    gh.addHookDelivery({ event: 'installation', status_code: 502 });
    await p.running!.close();
    await p.start();
    assert.deepEqual([...gh.redeliveries].sort(), [failed.id, timedOut.id].sort());
    assert.ok(p.logs.some((l) => l.includes(`redeliver 2 failed deliveries: `) && l.includes(failed.guid)));
    await p.running!.close();
    await p.start();
    assert.equal(gh.redeliveries.length, 2, 'asked once, not again at the next start');
    // The resync's catch-up asks for the branch with the ETag of the last answer: 304, no rate limit.
    const before = gh.requests.length;
    await p.running!.queues.byName.resync.add('resync', {});
    const branchReads = await p.until('the resync to read the branch', async () => {
      const reads = gh.requests.slice(before).filter((r) => r.path.endsWith('/branches/main'));
      return reads.length ? reads : undefined;
    });
    assert.deepEqual(
      branchReads.map((r) => r.status),
      [304],
    );
  });

  it('the dashboard lists the previews beside the commits', async () => {
    const r = await fetch(`${p.running!.url}/admin/commits`, {
      headers: { authorization: `Basic ${Buffer.from('admin:test-password').toString('base64')}` },
    });
    const html = await r.text();
    assert.equal(r.status, 200);
    const previews = html.slice(html.indexOf('id="previews"'));
    for (const n of [7, 8, 9]) assert.match(previews, new RegExp(`>#${n}</a>`));
    assert.match(previews, /closed/);
    assert.match(previews, /someone:pr8/);
    // secrets never reach the logs
    const secret = [gh.app.privateKeyPem.split('\n')[1]!, 'ghs_'];
    const everything = [...p.logs, ...p.logRecords.map((r) => JSON.stringify(r))];
    assert.ok(!everything.some((l) => secret.some((x) => l.includes(x))), 'a private key or token in the logs');
  });
});
