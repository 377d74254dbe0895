// The GitHub stand-in, driven by a real Octokit: calls GitHub accepts pass, calls it would
// refuse become violations, and auth, paging, conditional requests, truncated trees and
// injected faults behave as GitHub's do.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { App, Octokit, RequestError } from 'octokit';
import { appJwt, makeTestApp, signAppJwt, type TestApp } from '../helpers/github/app-keys.ts';
import { findOperation, validateResponse } from '../helpers/github/openapi.ts';
import { GitHubStandIn, githubBase64, type FaultOptions } from '../helpers/github/standin.ts';

const OWNER = 'acme';
const REPO = 'gitops';
const FULL = `${OWNER}/${REPO}`;
const PAT = 'ghp_standinTestToken0000000000000000000';
const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-c', 'user.name=natops test', '-c', 'user.email=test@example.com', '-c', 'commit.gpgsign=false', ...args],
      { cwd },
      (err, stdout, stderr) => (err ? reject(new Error(`git ${args.join(' ')}: ${stderr}`)) : resolve(stdout.trim())),
    );
  });
}

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** An Octokit on the stand-in; throttling off unless asked (its write queue spaces writes 1-3 s apart). */
function client(baseUrl: string, auth: string | undefined, extra: Record<string, unknown> = {}): Octokit {
  return new Octokit({ baseUrl, auth, log: quiet, throttle: { enabled: false }, ...extra } as ConstructorParameters<
    typeof Octokit
  >[0]);
}

async function rejection(p: Promise<unknown>): Promise<RequestError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RequestError) return e;
    throw e;
  }
  assert.fail('the request succeeded');
}

let dir: string;
let bare: string;
let work: string;
let app: TestApp;
let standin: GitHubStandIn;
let main1: string;
let main2: string;
let feature: string;
const blobText =
  'apiVersion: natops/v1\nkind: NatGateway\nmetadata:\n  name: ngw-a\nspec:\n  vpc: vpc-a\n  lanIp: 10.0.0.254\n';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'natops-gh-standin-'));
  bare = join(dir, 'gitops.git');
  work = join(dir, 'work');
  await git(dir, ['init', '--quiet', '--bare', '--initial-branch=main', bare]);
  await git(dir, ['init', '--quiet', '--initial-branch=main', work]);
  await git(work, ['remote', 'add', 'origin', bare]);
  await writeFiles(work, {
    'README.md': '# gitops\n',
    'gateways/ngw-a.yaml': blobText,
    'gateways/ngw-b.yaml': 'kind: NatGateway\n',
    'gateways/sub/ngw-c.yaml': 'kind: NatGateway\n# c\n',
    'policies/p1.yaml': 'kind: Policy\n',
  });
  await git(work, ['add', '-A']);
  await git(work, ['commit', '--quiet', '-m', 'first']);
  main1 = await git(work, ['rev-parse', 'HEAD']);
  await git(work, ['checkout', '--quiet', '-b', 'feature/x']);
  await writeFiles(work, { 'gateways/ngw-d.yaml': 'kind: NatGateway\n# d\n' });
  await git(work, ['add', '-A']);
  await git(work, ['commit', '--quiet', '-m', 'feature']);
  feature = await git(work, ['rev-parse', 'HEAD']);
  await git(work, ['checkout', '--quiet', 'main']);
  await writeFiles(work, { 'README.md': '# gitops\nsecond\n' });
  await git(work, ['commit', '--quiet', '-am', 'second']);
  main2 = await git(work, ['rev-parse', 'HEAD']);
  await git(work, ['push', '--quiet', 'origin', 'main', 'feature/x']);

  app = makeTestApp({ appId: 4242, slug: 'natops-ci' });
  standin = await GitHubStandIn.start({
    repos: { [FULL]: bare },
    app,
    plainTokens: [PAT],
    user: { login: 'octo-dev', id: 77 },
    truncateTreesOver: 5,
    installations: [{ id: 1 }, { id: 2, permissions: { contents: 'read', metadata: 'read' } }],
  });
  standin.setPullRequest(FULL, 7, { head: { sha: feature, ref: 'feature/x' }, base: { sha: main2, ref: 'main' } });
});

after(async () => {
  await standin?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => standin.assertClean());

describe('GitHub stand-in: calls GitHub accepts', () => {
  it('answers repository, branch, commit, compare, tree, blob, status, comment, pull and user calls with no violation', async () => {
    const gh = client(standin.url, PAT);
    const repo = await gh.rest.repos.get({ owner: OWNER, repo: REPO });
    assert.equal(repo.data.full_name, FULL);
    assert.equal(repo.data.default_branch, 'main');
    assert.deepEqual(repo.data.permissions, { admin: true, maintain: true, push: true, triage: true, pull: true });

    const branch = await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'feature/x' });
    assert.equal(branch.data.commit.sha, feature);
    assert.equal(branch.data.commit.parents[0]?.sha, main1);

    const commit = await gh.rest.repos.getCommit({ owner: OWNER, repo: REPO, ref: main2 });
    assert.equal(commit.data.commit.message, 'second');
    assert.deepEqual(
      commit.data.files?.map((f) => [f.filename, f.status, f.additions]),
      [['README.md', 'modified', 1]],
    );
    const byBranch = await gh.rest.repos.getCommit({ owner: OWNER, repo: REPO, ref: 'heads/feature/x' });
    assert.equal(byBranch.data.sha, feature);
    const byAbbrev = await gh.rest.repos.getCommit({ owner: OWNER, repo: REPO, ref: main1.slice(0, 8) });
    assert.equal(byAbbrev.data.sha, main1);
    for (const ref of ['nope', 'main~1', 'f'.repeat(40)]) {
      const e = await rejection(gh.rest.repos.getCommit({ owner: OWNER, repo: REPO, ref }));
      assert.equal(e.status, 422);
      assert.match(e.message, new RegExp(`No commit found for SHA: ${ref.replace('~', '\\~')}`));
    }

    const cmp = await gh.rest.repos.compareCommitsWithBasehead({
      owner: OWNER,
      repo: REPO,
      basehead: 'main...feature/x',
    });
    assert.equal(cmp.data.status, 'diverged');
    assert.equal(cmp.data.ahead_by, 1);
    assert.equal(cmp.data.behind_by, 1);
    assert.equal(cmp.data.merge_base_commit.sha, main1);
    assert.deepEqual(
      cmp.data.commits.map((c) => c.sha),
      [feature],
    );
    assert.deepEqual(
      cmp.data.files?.map((f) => f.filename),
      ['gateways/ngw-d.yaml'],
    );
    const ahead = await gh.rest.repos.compareCommits({ owner: OWNER, repo: REPO, base: main1, head: main2 });
    assert.equal(ahead.data.status, 'ahead');
    const same = await gh.rest.repos.compareCommitsWithBasehead({
      owner: OWNER,
      repo: REPO,
      basehead: `${main2}...main`,
    });
    assert.equal(same.data.status, 'identical');

    const tree = await gh.rest.git.getTree({ owner: OWNER, repo: REPO, tree_sha: main2 });
    assert.equal(tree.data.truncated, false);
    assert.deepEqual(
      tree.data.tree.map((e) => `${e.type} ${e.path}`),
      ['blob README.md', 'tree gateways', 'tree policies'],
    );
    const gateways = tree.data.tree.find((e) => e.path === 'gateways')!;
    const sub = await gh.rest.git.getTree({ owner: OWNER, repo: REPO, tree_sha: gateways.sha! });
    const a = sub.data.tree.find((e) => e.path === 'ngw-a.yaml')!;
    assert.equal(a.mode, '100644');
    assert.equal(a.size, Buffer.byteLength(blobText));

    const blob = await gh.rest.git.getBlob({ owner: OWNER, repo: REPO, file_sha: a.sha! });
    assert.equal(Buffer.from(blob.data.content, 'base64').toString(), blobText);
    // GitHub's base64 breaks lines every 60 characters.
    const lines = blob.data.content.split('\n');
    assert.ok(lines.length > 2 && lines.slice(0, -2).every((l) => l.length === 60), blob.data.content);
    assert.equal(blob.data.content, githubBase64(Buffer.from(blobText)));
    assert.equal(standin.blobFetches.get(a.sha!), 1);

    const st = await gh.rest.repos.createCommitStatus({
      owner: OWNER,
      repo: REPO,
      sha: main2,
      state: 'pending',
      context: 'natops/plan',
      description: 'x'.repeat(140),
    });
    assert.equal(st.status, 201);
    await gh.rest.repos.createCommitStatus({
      owner: OWNER,
      repo: REPO,
      sha: main2,
      state: 'success',
      context: 'natops/plan',
      target_url: 'https://natops.example.com/r/1',
    });
    await gh.rest.repos.createCommitStatus({
      owner: OWNER,
      repo: REPO,
      sha: main2,
      state: 'failure',
      context: 'natops/apply',
    });
    assert.deepEqual(
      standin.statuses(FULL, main2).map((s) => `${s.context}=${s.state}`),
      ['natops/plan=pending', 'natops/plan=success', 'natops/apply=failure'],
    );
    assert.deepEqual(
      [...standin.latestStatuses(FULL, main2)].map(([c, s]) => `${c}=${s.state}`),
      ['natops/plan=success', 'natops/apply=failure'],
    );
    assert.equal(standin.statuses(FULL, main2)[0]?.creator, 'octo-dev');

    const c = await gh.rest.issues.createComment({
      owner: OWNER,
      repo: REPO,
      issue_number: 7,
      body: 'x'.repeat(65_536),
    });
    assert.equal(c.data.user?.login, 'octo-dev');
    assert.equal(c.data.user?.type, 'User');
    const edited = await gh.rest.issues.updateComment({
      owner: OWNER,
      repo: REPO,
      comment_id: c.data.id,
      body: 'plan: 2 to add',
    });
    assert.equal(edited.data.body, 'plan: 2 to add');
    const got = await gh.rest.issues.getComment({ owner: OWNER, repo: REPO, comment_id: c.data.id });
    assert.equal(got.data.body, 'plan: 2 to add');

    const pr = await gh.rest.pulls.get({ owner: OWNER, repo: REPO, pull_number: 7 });
    assert.equal(pr.data.head.sha, feature);
    assert.equal(pr.data.base.ref, 'main');
    const me = await gh.rest.users.getAuthenticated();
    assert.equal(me.data.login, 'octo-dev');

    assert.deepEqual(standin.violations, []);
    assert.ok(standin.count('GET', `/repos/${FULL}/branches/`) >= 1);
    const last = standin.requests.at(-1)!;
    assert.equal(last.path, '/user');
    assert.match(last.headers.authorization ?? '', /^token ghp_/);
  });

  it('lets the App authenticate with its JWT and act through an installation token as its bot', async () => {
    const gh = new App({
      appId: app.appId,
      privateKey: app.privateKeyPem,
      Octokit: Octokit.defaults({ baseUrl: standin.url, log: quiet, throttle: { enabled: false } }),
    });
    const me = await gh.octokit.request('GET /app');
    assert.equal(me.data?.slug, 'natops-ci');
    const inst = await gh.octokit.request('GET /repos/{owner}/{repo}/installation', { owner: OWNER, repo: REPO });
    assert.equal(inst.data.id, 1);
    const before = standin.tokensIssued;
    const io = await gh.getInstallationOctokit(inst.data.id);

    const run = await io.rest.checks.create({
      owner: OWNER,
      repo: REPO,
      name: 'natops/plan',
      head_sha: main2,
      status: 'in_progress',
      output: {
        title: 'Plan',
        summary: 'planning',
        annotations: [
          { path: 'gateways/ngw-a.yaml', start_line: 1, end_line: 1, annotation_level: 'warning', message: 'a' },
        ],
      },
    });
    await io.rest.checks.update({
      owner: OWNER,
      repo: REPO,
      check_run_id: run.data.id,
      conclusion: 'success',
      output: {
        title: 'Plan',
        summary: 'done',
        annotations: [
          { path: 'gateways/ngw-b.yaml', start_line: 1, end_line: 1, annotation_level: 'notice', message: 'b' },
        ],
      },
    });
    const fetched = await io.rest.checks.get({ owner: OWNER, repo: REPO, check_run_id: run.data.id });
    assert.equal(fetched.data.status, 'completed');
    assert.equal(fetched.data.conclusion, 'success');
    assert.equal(fetched.data.output.annotations_count, 2);
    assert.deepEqual(
      standin
        .checkRuns(FULL)
        .find((r) => r.id === run.data.id)
        ?.annotations.map((x) => x.message),
      ['a', 'b'],
    );

    await io.rest.repos.createCommitStatus({
      owner: OWNER,
      repo: REPO,
      sha: main1,
      state: 'success',
      context: 'natops/app',
    });
    assert.equal(standin.latestStatuses(FULL, main1).get('natops/app')?.creator, 'natops-ci[bot]');
    const c = await io.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: 'from the bot' });
    assert.equal(c.data.user?.login, 'natops-ci[bot]');
    assert.equal(c.data.user?.type, 'Bot');
    // One token for all of it: auth-app caches it.
    assert.equal(standin.tokensIssued, before + 1);
    const tokenCall = standin.requests.find((r) => r.path === '/app/installations/1/access_tokens')!;
    assert.equal(tokenCall.status, 201);
    assert.match(tokenCall.headers.authorization ?? '', /^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    // The installation token cannot read the user, as on GitHub.
    const e = await rejection(io.rest.users.getAuthenticated());
    assert.equal(e.status, 403);
    assert.match(e.message, /Resource not accessible by integration/);
  });

  it('pages webhook deliveries by cursor and records redeliveries', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++)
      ids.push(standin.addHookDelivery({ event: 'push', status_code: i === 2 ? 502 : 200, repository_id: 1 }).id);
    const gh = new App({
      appId: app.appId,
      privateKey: app.privateKeyPem,
      Octokit: Octokit.defaults({ baseUrl: standin.url, log: quiet, throttle: { enabled: false } }),
    });
    const all = await gh.octokit.paginate('GET /app/hook/deliveries', { per_page: 2 });
    assert.deepEqual(
      all.map((d) => d.id),
      [...ids].reverse(),
    );
    assert.equal(standin.count('GET', '/app/hook/deliveries'), 3);
    const failed = all.find((d) => d.status_code === 502)!;
    const detail = await gh.octokit.request('GET /app/hook/deliveries/{delivery_id}', { delivery_id: failed.id });
    assert.equal(detail.data.guid, failed.guid);
    const r = await gh.octokit.request('POST /app/hook/deliveries/{delivery_id}/attempts', { delivery_id: failed.id });
    assert.equal(r.status, 202);
    assert.deepEqual(standin.redeliveries, [failed.id]);
    const again = standin.hookDeliveries().at(-1)!;
    assert.equal(again.guid, failed.guid);
    assert.equal(again.redelivery, true);
  });
});

describe('GitHub stand-in: calls GitHub refuses become violations', () => {
  const gh = () => client(standin.url, PAT);
  const expectViolation = (pattern: RegExp) => {
    assert.throws(() => standin.assertClean(), pattern);
    const taken = standin.takeViolations();
    assert.equal(taken.length, 1, taken.join('\n'));
  };

  it('a status description of 141 characters', async () => {
    const e = await rejection(
      gh().rest.repos.createCommitStatus({
        owner: OWNER,
        repo: REPO,
        sha: main2,
        state: 'success',
        description: 'x'.repeat(141),
      }),
    );
    assert.equal(e.status, 422);
    expectViolation(/body\/description is 141 characters; GitHub allows at most 140/);
    assert.equal(standin.statuses(FULL, main2).filter((s) => s.description?.length === 141).length, 0);
  });

  it('an unknown state', async () => {
    const e = await rejection(
      gh().rest.repos.createCommitStatus({ owner: OWNER, repo: REPO, sha: main2, state: 'done' as 'success' }),
    );
    assert.equal(e.status, 422);
    expectViolation(/body\/state must be equal to one of the allowed values/);
  });

  it('a misspelt body field', async () => {
    const e = await rejection(
      gh().request('POST /repos/{owner}/{repo}/statuses/{sha}', {
        owner: OWNER,
        repo: REPO,
        sha: main2,
        state: 'success',
        descripton: 'typo',
      }),
    );
    assert.equal(e.status, 422);
    expectViolation(/body\/descripton is not a field the description declares/);
  });

  it('an unknown query parameter', async () => {
    const e = await rejection(
      gh().request('GET /repos/{owner}/{repo}/issues/{issue_number}/comments', {
        owner: OWNER,
        repo: REPO,
        issue_number: 7,
        per_pag: 10,
      }),
    );
    assert.equal(e.status, 422);
    expectViolation(/query must NOT have additional properties \(per_pag\)/);
  });

  it('a comment of 65,537 characters', async () => {
    const e = await rejection(
      gh().rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: 'y'.repeat(65_537) }),
    );
    assert.equal(e.status, 422);
    expectViolation(/body\/body is 65537 characters; GitHub allows at most 65536/);
    assert.equal(standin.comments(FULL, 7).filter((c) => c.body.length === 65_537).length, 0);
  });

  it('a path GitHub does not have', async () => {
    const e = await rejection(gh().request('GET /repos/{owner}/{repo}/gateways', { owner: OWNER, repo: REPO }));
    assert.equal(e.status, 404);
    expectViolation(/GET \/repos\/acme\/gitops\/gateways: no GitHub operation/);
  });

  it('more than 50 annotations in one check run request', async () => {
    const io = client(standin.url, standin.createInstallationToken(1));
    const annotations = Array.from({ length: 51 }, (_, i) => ({
      path: 'a.yaml',
      start_line: i + 1,
      end_line: i + 1,
      annotation_level: 'notice' as const,
      message: 'm',
    }));
    const e = await rejection(
      io.rest.checks.create({
        owner: OWNER,
        repo: REPO,
        name: 'x',
        head_sha: main2,
        output: { title: 't', summary: 's', annotations },
      }),
    );
    assert.equal(e.status, 422);
    const v = standin.takeViolations();
    assert.ok(v.length === 1 && /annotations/.test(v[0]!), v.join('\n'));
  });
});

describe('GitHub stand-in: authentication as GitHub does it', () => {
  it('refuses a forged, an expired and a too-long-lived App JWT, and takes a good one', async () => {
    const anon = client(standin.url, undefined);
    const now = Math.floor(Date.now() / 1000);
    const forger = makeTestApp({ appId: app.appId });
    const forged = signAppJwt(forger.privateKeyPem, { iat: now - 30, exp: now + 500, iss: app.appId });
    let e = await rejection(anon.request('GET /app', { headers: { authorization: `Bearer ${forged}` } }));
    assert.equal(e.status, 401);
    assert.match(e.message, /A JSON web token could not be decoded/);
    const expired = signAppJwt(app.privateKeyPem, { iat: now - 700, exp: now - 100, iss: app.appId });
    e = await rejection(anon.request('GET /app', { headers: { authorization: `Bearer ${expired}` } }));
    assert.equal(e.status, 401);
    assert.match(e.message, /'Expiration time' claim \('exp'\) must be a numeric value/);
    const tooLong = signAppJwt(app.privateKeyPem, { iat: now, exp: now + 601, iss: String(app.appId) });
    e = await rejection(anon.request('GET /app', { headers: { authorization: `Bearer ${tooLong}` } }));
    assert.equal(e.status, 401);
    assert.match(e.message, /too far in the future/);
    e = await rejection(
      anon.request('POST /app/installations/{installation_id}/access_tokens', {
        installation_id: 1,
        headers: { authorization: `token ${PAT}` },
      }),
    );
    assert.equal(e.status, 401);
    const ok = await anon.request('GET /app', { headers: { authorization: `Bearer ${appJwt(app)}` } });
    assert.equal(ok.data?.id, app.appId);
  });

  it('refuses an unknown token and an installation token past its expiry', async () => {
    const short = await GitHubStandIn.start({ repos: { [FULL]: bare }, app, installationTokenTtlMs: 1500 });
    try {
      let e = await rejection(client(short.url, 'ghs_notAToken').rest.repos.get({ owner: OWNER, repo: REPO }));
      assert.equal(e.status, 401);
      assert.match(e.message, /Bad credentials/);
      const token = short.createInstallationToken(1);
      const gh = client(short.url, token);
      assert.equal(
        (await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' })).data.commit.sha,
        main2,
      );
      await new Promise((r) => setTimeout(r, 1600));
      e = await rejection(gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' }));
      assert.equal(e.status, 401);
      assert.match(e.message, /Bad credentials/);
      short.assertClean();
    } finally {
      await short.close();
    }
  });

  it('answers 403 for a permission the installation lacks, and for check runs by a plain token', async () => {
    const reader = client(standin.url, standin.createInstallationToken(2));
    assert.equal((await reader.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' })).status, 200);
    let e = await rejection(
      reader.rest.repos.createCommitStatus({ owner: OWNER, repo: REPO, sha: main2, state: 'success' }),
    );
    assert.equal(e.status, 403);
    assert.match(e.message, /Resource not accessible by integration/);
    e = await rejection(reader.rest.issues.createComment({ owner: OWNER, repo: REPO, issue_number: 7, body: 'hi' }));
    assert.equal(e.status, 403);
    e = await rejection(
      client(standin.url, PAT).rest.checks.create({ owner: OWNER, repo: REPO, name: 'x', head_sha: main2 }),
    );
    assert.equal(e.status, 403);
    assert.match(e.message, /You must authenticate via a GitHub App/);
  });
});

describe('GitHub stand-in: paging, conditional requests, trees, faults', () => {
  it('pages 250 comments through Link headers and octokit.paginate gets them all', async () => {
    standin.setPullRequest(FULL, 9, { head: { sha: feature, ref: 'feature/x' }, base: { sha: main2, ref: 'main' } });
    for (let i = 0; i < 250; i++) standin.addComment(FULL, 9, { login: `user${i % 7}`, body: `comment ${i}` });
    const gh = client(standin.url, PAT);
    const startCount = standin.count('GET', `/repos/${FULL}/issues/9/comments`);
    const all = await gh.paginate(gh.rest.issues.listComments, {
      owner: OWNER,
      repo: REPO,
      issue_number: 9,
      per_page: 100,
    });
    assert.equal(all.length, 250);
    assert.deepEqual(
      all.map((c) => c.body),
      Array.from({ length: 250 }, (_, i) => `comment ${i}`),
    );
    assert.equal(standin.count('GET', `/repos/${FULL}/issues/9/comments`) - startCount, 3);
    const first = await gh.rest.issues.listComments({ owner: OWNER, repo: REPO, issue_number: 9, per_page: 100 });
    const base = `${standin.url}/repos/${FULL}/issues/9/comments`;
    assert.equal(
      first.headers.link,
      `<${base}?per_page=100&page=2>; rel="next", <${base}?per_page=100&page=3>; rel="last"`,
    );
    const middle = await gh.rest.issues.listComments({
      owner: OWNER,
      repo: REPO,
      issue_number: 9,
      per_page: 100,
      page: 2,
    });
    assert.equal(
      middle.headers.link,
      `<${base}?per_page=100&page=1>; rel="prev", <${base}?per_page=100&page=3>; rel="next", <${base}?per_page=100&page=3>; rel="last", <${base}?per_page=100&page=1>; rel="first"`,
    );
    const dflt = await gh.rest.issues.listComments({ owner: OWNER, repo: REPO, issue_number: 9 });
    assert.equal(dflt.data.length, 30);
    const later = await gh.rest.issues.listComments({
      owner: OWNER,
      repo: REPO,
      issue_number: 9,
      since: new Date(Date.now() + 60_000).toISOString(),
    });
    assert.equal(later.data.length, 0);
    assert.equal(later.headers.link, undefined);
  });

  it('answers 304 to If-None-Match on an unchanged branch, free of quota, and 200 once it moves', async () => {
    const gh = client(standin.url, PAT);
    const first = await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'feature/x' });
    const etag = first.headers.etag;
    assert.match(etag ?? '', /^W\/"[0-9a-f]{64}"$/);
    const e = await rejection(
      gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'feature/x', headers: { 'if-none-match': etag } }),
    );
    assert.equal(e.status, 304);
    assert.equal(e.response?.headers['x-ratelimit-used'], first.headers['x-ratelimit-used']);
    assert.equal(standin.requests.at(-1)?.status, 304);
    await git(work, ['checkout', '--quiet', 'feature/x']);
    await writeFiles(work, { 'gateways/ngw-e.yaml': 'kind: NatGateway\n' });
    await git(work, ['add', '-A']);
    await git(work, ['commit', '--quiet', '-m', 'moved']);
    await git(work, ['push', '--quiet', 'origin', 'feature/x']);
    await git(work, ['checkout', '--quiet', 'main']);
    const moved = await gh.rest.repos.getBranch({
      owner: OWNER,
      repo: REPO,
      branch: 'feature/x',
      headers: { 'if-none-match': etag },
    });
    assert.equal(moved.status, 200);
    assert.notEqual(moved.data.commit.sha, feature);
    assert.notEqual(moved.headers.etag, etag);
    await git(work, ['push', '--quiet', '--force', 'origin', `${feature}:refs/heads/feature/x`]);
  });

  it('truncates a recursive tree over the limit; walking subtrees finds every file', async () => {
    const gh = client(standin.url, PAT);
    const rec = await gh.rest.git.getTree({ owner: OWNER, repo: REPO, tree_sha: 'main', recursive: '1' });
    assert.equal(rec.data.truncated, true);
    assert.equal(rec.data.tree.length, 5);
    const files: string[] = [];
    const walk = async (sha: string, prefix: string): Promise<void> => {
      const t = await gh.rest.git.getTree({ owner: OWNER, repo: REPO, tree_sha: sha });
      assert.equal(t.data.truncated, false);
      for (const e of t.data.tree) {
        if (e.type === 'tree') await walk(e.sha!, `${prefix}${e.path}/`);
        else files.push(`${prefix}${e.path}`);
      }
    };
    await walk(main2, '');
    const expected = (await git(work, ['ls-tree', '-r', '--name-only', main2])).split('\n');
    assert.deepEqual(files.sort(), expected.sort());
  });

  it('makes octokit retry a 429 with retry-after, and a 403 secondary and primary rate limit, and succeed', async () => {
    const seen: string[] = [];
    const gh = client(standin.url, PAT, {
      throttle: {
        onRateLimit: (after: number) => {
          seen.push(`primary ${after}`);
          return true;
        },
        onSecondaryRateLimit: (after: number) => {
          seen.push(`secondary ${after}`);
          return true;
        },
      },
    });
    const on =
      (path: string): FaultOptions['match'] =>
      (_m, p) =>
        p === path;
    const branchPath = `/repos/${FULL}/branches/main`;

    standin.fail({ status: 429, retryAfterSeconds: 1, match: on(branchPath) });
    let t0 = Date.now();
    const r = await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' });
    assert.equal(r.data.commit.sha, main2);
    assert.ok(Date.now() - t0 >= 900, `retried after ${Date.now() - t0} ms`);
    // A 429 is retried by the retry plugin (1 s, 4 s, 9 s), before the throttling plugin sees it.
    assert.equal(seen.length, 0, seen.join(', '));
    const tail = standin.requests.filter((x) => x.path === branchPath).slice(-2);
    assert.deepEqual(
      tail.map((x) => x.status),
      [429, 200],
    );

    standin.fail({ status: 403, retryAfterSeconds: 1, match: on(branchPath) });
    t0 = Date.now();
    await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' });
    assert.ok(Date.now() - t0 >= 900);
    assert.ok(seen.includes('secondary 1'), seen.join(', '));

    standin.fail({ status: 403, rateLimitResetSeconds: 1, match: on(branchPath) });
    await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' });
    assert.ok(
      seen.some((s) => s.startsWith('primary ')),
      seen.join(', '),
    );
    assert.deepEqual(
      standin.requests
        .filter((x) => x.path === branchPath)
        .slice(-2)
        .map((x) => x.status),
      [403, 200],
    );
  });

  it('answers a rate limit with GitHub headers and body, and a 5xx that the retry plugin retries', async () => {
    const gh = client(standin.url, PAT, { retry: { enabled: false } });
    standin.fail({ status: 403, rateLimitResetSeconds: 30 });
    const e = await rejection(gh.rest.repos.get({ owner: OWNER, repo: REPO }));
    assert.equal(e.status, 403);
    assert.match(e.message, /^API rate limit exceeded for user ID 77\./);
    const h = e.response!.headers;
    assert.equal(h['x-ratelimit-remaining'], '0');
    assert.equal(h['x-ratelimit-resource'], 'core');
    assert.ok(Number(h['x-ratelimit-reset']) >= Math.floor(Date.now() / 1000) + 25);
    assert.ok(h['x-github-request-id']);

    const small = await GitHubStandIn.start({ repos: { [FULL]: bare }, app, plainTokens: [PAT], rateLimit: 2 });
    try {
      const capped = client(small.url, PAT, { retry: { enabled: false } });
      const r1 = await capped.rest.repos.get({ owner: OWNER, repo: REPO });
      assert.equal(r1.headers['x-ratelimit-remaining'], '1');
      await capped.rest.repos.get({ owner: OWNER, repo: REPO });
      const over = await rejection(capped.rest.repos.get({ owner: OWNER, repo: REPO }));
      assert.equal(over.status, 403);
      assert.match(over.message, /API rate limit exceeded/);
      small.assertClean();
    } finally {
      await small.close();
    }

    const retrying = client(standin.url, PAT, { retry: { retryAfterBaseValue: 10 } });
    standin.fail({ status: 502, times: 2 });
    const ok = await retrying.rest.repos.get({ owner: OWNER, repo: REPO });
    assert.equal(ok.status, 200);
    assert.deepEqual(
      standin.requests.slice(-3).map((x) => x.status),
      [502, 502, 200],
    );
  });

  it('refuses the 1,001st status for one sha and context', async () => {
    for (let i = 0; i < 999; i++)
      standin.addStatus(FULL, main1, { state: 'pending', context: 'natops/flood', description: `n${i}` });
    const gh = client(standin.url, standin.createInstallationToken(1));
    const post = (context: string) =>
      gh.rest.repos.createCommitStatus({ owner: OWNER, repo: REPO, sha: main1, state: 'success', context });
    assert.equal((await post('natops/flood')).status, 201);
    const e = await rejection(post('natops/flood'));
    assert.equal(e.status, 422);
    assert.match(e.message, /reached the maximum number of statuses/);
    assert.equal((await post('natops/other')).status, 201);
    assert.equal(standin.statuses(FULL, main1).filter((s) => s.context === 'natops/flood').length, 1000);
    assert.equal(standin.latestStatuses(FULL, main1).get('natops/flood')?.state, 'success');
    const unknown = await rejection(
      gh.rest.repos.createCommitStatus({ owner: OWNER, repo: REPO, sha: 'f'.repeat(40), state: 'success' }),
    );
    assert.equal(unknown.status, 422);
    assert.match(unknown.message, /No commit found for SHA: f{40}/);
  });

  it("holds the stand-in's own answers to the description", async () => {
    const gh = client(standin.url, PAT);
    const branch = await gh.rest.repos.getBranch({ owner: OWNER, repo: REPO, branch: 'main' });
    const match = findOperation('GET', `/repos/${FULL}/branches/main`);
    assert.ok(match && 'operation' in match);
    assert.deepEqual(validateResponse(match.operation, 200, branch.data), []);
    const broken = structuredClone(branch.data) as unknown as { commit: Record<string, unknown> };
    delete broken.commit.sha;
    broken.commit.author = { login: 'x' };
    const wrong = validateResponse(match.operation, 200, broken);
    assert.ok(
      wrong.some((w) => w.includes("/commit must have required property 'sha'")),
      wrong.join('\n'),
    );
  });
});
