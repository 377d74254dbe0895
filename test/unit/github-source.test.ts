// natops's GitHub client and its Git source against the stand-in, which checks every request
// against GitHub's OpenAPI description: the same manifests as the local repository gives, a
// blob fetched once, truncated trees walked, conditional branch reads, and the checks at start.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { APP_PERMISSIONS, connectGitHub, GitHubAuthError, type GitHub } from '../../gitops/github/client.ts';
import { GitHubSource } from '../../gitops/github/source.ts';
import { GitRepo } from '../../gitops/git/local-source.ts';
import { ManifestLimitError, UnknownCommitError } from '../../gitops/git/source.ts';
import { makeTestApp } from '../helpers/github/app-keys.ts';
import { GitHubStandIn } from '../helpers/github/standin.ts';

const REPO = 'natops/gitops';

/** A bare repository with commits made through a work tree: returns their ids. */
/** natops connected to the stand-in as its App, on REPO. */
const connectApp = (gh: GitHubStandIn, log: (line: string) => void = () => undefined) =>
  connectGitHub(
    {
      url: gh.url,
      repository: REPO,
      auth: { kind: 'app', appId: String(gh.app.appId), privateKey: gh.app.privateKeyPem },
    },
    log,
  );

async function repository(dir: string): Promise<{ bare: string; commits: string[] }> {
  const bare = join(dir, 'gitops.git');
  const work = join(dir, 'work');
  await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', bare]);
  await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
  for (const [k, v] of [
    ['user.name', 't'],
    ['user.email', 't@example.com'],
    ['commit.gpgsign', 'false'],
  ])
    await run(['git', '-C', work, 'config', k!, v!]);
  const commits: string[] = [];
  const commit = async (files: Record<string, string>, links: Record<string, string> = {}) => {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(work, path, '..'), { recursive: true });
      await writeFile(join(work, path), text);
    }
    for (const [path, target] of Object.entries(links)) await symlink(target, join(work, path));
    await run(['git', '-C', work, 'add', '-A']);
    await run(['git', '-C', work, 'commit', '--quiet', '-m', `c${commits.length}`]);
    commits.push((await run(['git', '-C', work, 'rev-parse', 'HEAD'])).stdout.trim());
  };
  await commit(
    {
      'gateways/a.yaml': 'a: 1\n',
      'gateways/deep/b.yml': 'b: 2\n',
      'gateways/notes.txt': 'not a manifest\n',
      'other/c.yaml': 'c: 3\n',
      'top.yaml': 't: 0\n',
    },
    { 'gateways/link.yaml': '../top.yaml' },
  );
  await commit({ 'gateways/a.yaml': 'a: changed\n' });
  await run(['git', '-C', work, 'push', '--quiet', bare, 'HEAD:main']);
  return { bare, commits };
}

describe('GitHub as the Git source (stand-in held to the OpenAPI description)', () => {
  let dir: string;
  let gh: GitHubStandIn;
  let github: GitHub;
  let repo: { bare: string; commits: string[] };
  const blobs = new Map<string, Buffer>();
  const cache = {
    get: async (sha: string) => blobs.get(sha),
    set: async (sha: string, b: Buffer) => void blobs.set(sha, b),
  };
  const logs: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-github-'));
    repo = await repository(dir);
    gh = await GitHubStandIn.start({ repos: { [REPO]: repo.bare } });
    github = await connectApp(gh, (l) => logs.push(l));
  });
  after(async () => {
    await gh?.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => gh.assertClean());

  it('an App: its bot login, check runs allowed, the repository address', () => {
    assert.equal(github.login, `${gh.app.slug}[bot]`);
    assert.equal(github.checks, true);
    assert.match(github.htmlUrl, /natops\/gitops$/);
  });

  it('reads the same manifests as the local repository, symbolic links skipped with a warning; each blob fetched once', async () => {
    const source = new GitHubSource(github.api, cache);
    const local = new GitRepo(repo.bare);
    for (const sha of repo.commits) {
      for (const path of ['.', 'gateways', 'gateways/deep', 'gateways/a.yaml', 'missing']) {
        const warnings: string[] = [];
        const localWarnings: string[] = [];
        const got = await source.manifestsAt(sha, path, { warn: (w) => warnings.push(w) });
        const want = await local.manifestsAt(sha, path, { warn: (w) => localWarnings.push(w) });
        assert.deepEqual(
          got.map((f) => [f.path, f.text]),
          want.map((f) => [f.path, f.text]),
          `${sha.slice(0, 7)} ${path}`,
        );
        assert.deepEqual(warnings, localWarnings);
      }
    }
    assert.ok(blobs.size >= 5);
    for (const [sha, n] of gh.blobFetches) assert.equal(n, 1, `blob ${sha} fetched ${n} times`);
  });

  it('a commit over maxFiles or maxTotalBytes is refused from the tree alone: no blob fetched, none taken from the cache', async () => {
    const cacheReads: string[] = [];
    const counting = {
      get: async (sha: string) => {
        cacheReads.push(sha);
        return undefined;
      },
      set: async () => undefined,
    };
    const source = new GitHubSource(github.api, counting);
    const fetched = new Map(gh.blobFetches);
    const sha = repo.commits[1]!;
    // gateways/: a.yaml, deep/b.yml and the link (links count: each is read)
    await assert.rejects(
      source.manifestsAt(sha, 'gateways', { warn: () => undefined, limits: { maxFiles: 2 } }),
      (e: unknown) =>
        e instanceof ManifestLimitError &&
        e.setting === 'NATOPS_MANIFEST_MAX_FILES' &&
        e.actual === 3 &&
        /3 manifest files, more than NATOPS_MANIFEST_MAX_FILES \(2\); none was read$/.test(e.message),
    );
    // 'a: changed\n' (11) + 'b: 2\n' (5) + the link's target '../top.yaml' (11)
    await assert.rejects(
      source.manifestsAt(sha, 'gateways', { warn: () => undefined, limits: { maxTotalBytes: 26 } }),
      (e: unknown) =>
        e instanceof ManifestLimitError &&
        e.setting === 'NATOPS_MANIFEST_MAX_TOTAL_BYTES' &&
        e.actual === 27 &&
        e.max === 26,
    );
    assert.deepEqual(cacheReads, [], 'no blob asked of the cache');
    assert.deepEqual([...gh.blobFetches], [...fetched], 'no blob fetched from GitHub');
    const atLimits = { maxFiles: 3, maxTotalBytes: 27 };
    const files = await source.manifestsAt(sha, 'gateways', { warn: () => undefined, limits: atLimits });
    assert.deepEqual(
      files.map((f) => f.path),
      ['gateways/a.yaml', 'gateways/deep/b.yml'],
    );
    assert.equal(cacheReads.length, 3, 'at the limits, every one is read');
  });

  it('a file over maxFileBytes is not fetched: its size goes to validation', async () => {
    const source = new GitHubSource(github.api, { get: async () => undefined, set: async () => undefined });
    const before = gh.count('GET', /\/git\/blobs\//);
    const files = await source.manifestsAt(repo.commits[1]!, 'gateways', {
      warn: () => undefined,
      limits: { maxFileBytes: 5 },
    });
    assert.deepEqual(
      files.map((f) => [f.path, f.text, f.size]),
      [
        ['gateways/a.yaml', '', 11],
        ['gateways/deep/b.yml', 'b: 2\n', undefined],
      ],
    );
    assert.equal(gh.count('GET', /\/git\/blobs\//) - before, 2, 'b.yml and the link only');
  });

  it('walks a tree GitHub truncated one directory at a time, and finds the same files', async () => {
    const truncating = await GitHubStandIn.start({ repos: { [REPO]: repo.bare }, truncateTreesOver: 2 });
    try {
      const g = await connectApp(truncating);
      const files = await new GitHubSource(g.api, cache).manifestsAt(repo.commits[1]!, '.', { warn: () => undefined });
      assert.deepEqual(
        files.map((f) => f.path),
        ['gateways/a.yaml', 'gateways/deep/b.yml', 'other/c.yaml', 'top.yaml'],
      );
      assert.ok(
        truncating.requests.some((r) => /\/git\/trees\//.test(r.path) && r.query.recursive === undefined),
        'non-recursive listings',
      );
      truncating.assertClean();
    } finally {
      await truncating.close();
    }
  });

  it('a truncated tree is walked only until it holds more manifest files than maxFiles', async () => {
    const truncating = await GitHubStandIn.start({ repos: { [REPO]: repo.bare }, truncateTreesOver: 2 });
    try {
      const g = await connectApp(truncating);
      const levels = () =>
        truncating.requests.filter((r) => /\/git\/trees\//.test(r.path) && r.query.recursive === undefined).length;
      const before = levels();
      await assert.rejects(
        new GitHubSource(g.api, cache).manifestsAt(repo.commits[1]!, '.', {
          warn: () => undefined,
          limits: { maxFiles: 1 },
        }),
        (e: unknown) => e instanceof ManifestLimitError && e.setting === 'NATOPS_MANIFEST_MAX_FILES',
      );
      // four directories in all: the root and one more hold two manifests, so the walk stops there
      assert.ok(levels() - before <= 2, `${levels() - before} directory listings`);
      assert.equal(truncating.count('GET', /\/git\/blobs\//), 0);
    } finally {
      await truncating.close();
    }
  });

  it('an unchanged branch costs a conditional request answered 304', async () => {
    const source = new GitHubSource(github.api, cache);
    const before = gh.requests.length;
    assert.equal(await source.branchHead('main'), repo.commits[1]);
    assert.equal(await source.branchHead('main'), repo.commits[1]);
    assert.equal(await source.branchHead('main'), repo.commits[1]);
    const branchReads = gh.requests.slice(before).filter((r) => r.path.endsWith('/branches/main'));
    assert.deepEqual(
      branchReads.map((r) => r.status),
      [200, 304, 304],
    );
    assert.ok(branchReads.slice(1).every((r) => r.headers['if-none-match']));
    assert.equal(await source.branchHead('nope'), undefined);
  });

  it('ancestry through compare; an unknown commit is UnknownCommitError', async () => {
    const source = new GitHubSource(github.api, cache);
    const [c0, c1] = repo.commits as [string, string];
    assert.equal(await source.isAncestor(c0, c1), true);
    assert.equal(await source.isAncestor(c1, c0), false);
    assert.equal(await source.isAncestor(c1, c1), true);
    assert.equal(await source.hasCommit(c0), true);
    assert.equal(await source.hasCommit('f'.repeat(40)), false);
    await assert.rejects(source.isAncestor('f'.repeat(40), c1), UnknownCommitError);
  });
});

describe('connecting to GitHub: a clear error at start', () => {
  let dir: string;
  let bare: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-github-auth-'));
    bare = (await repository(dir)).bare;
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("a private key that is not the App's", async () => {
    const gh = await GitHubStandIn.start({ repos: { [REPO]: bare } });
    try {
      const other = makeTestApp();
      await assert.rejects(
        connectGitHub(
          {
            url: gh.url,
            repository: REPO,
            auth: { kind: 'app', appId: String(gh.app.appId), privateKey: other.privateKeyPem },
          },
          () => undefined,
        ),
        (e: Error) => e instanceof GitHubAuthError && /cannot authenticate with its private key: 401/.test(e.message),
      );
      gh.assertClean();
    } finally {
      await gh.close();
    }
  });

  it("an App installed on many repositories: every token natops mints holds only the tracked one, with natops's permissions", async () => {
    const gh = await GitHubStandIn.start({ repos: { [REPO]: bare, 'natops/other': bare } });
    try {
      const g = await connectApp(gh);
      // a call through octokit's own auth hook mints (or reuses) a token too
      assert.ok(
        await new GitHubSource(g.api, { get: async () => undefined, set: async () => undefined }).branchHead('main'),
      );
      const mints = gh.requests.filter((r) => r.method === 'POST' && /\/access_tokens$/.test(r.path));
      const scoped = { repositories: ['gitops'], permissions: { ...APP_PERMISSIONS } };
      // the first reads what the installation may do on the repository; every other is the scoped one
      assert.deepEqual(mints[0]?.body, { repositories: ['gitops'] });
      assert.ok(mints.length >= 2);
      for (const m of mints.slice(1)) assert.deepEqual(m.body, scoped, JSON.stringify(m.body));
      gh.assertClean();
    } finally {
      await gh.close();
    }
  });

  it('an App installed without the checks permission names it', async () => {
    const gh = await GitHubStandIn.start({
      repos: { [REPO]: bare },
      installations: [
        { id: 7, permissions: { contents: 'read', statuses: 'write', pull_requests: 'write', metadata: 'read' } },
      ],
    });
    try {
      await assert.rejects(
        connectApp(gh),
        (e: Error) =>
          e instanceof GitHubAuthError && /lacks permissions on natops\/gitops: checks: write/.test(e.message),
      );
      gh.assertClean();
    } finally {
      await gh.close();
    }
  });

  it('a token: accepted with write access, its user the comment author; refused without it; a wrong token is bad credentials', async () => {
    const gh = await GitHubStandIn.start({
      repos: { [REPO]: bare },
      plainTokens: ['ghp_good'],
      user: { login: 'octo-natops' },
    });
    const readOnly = await GitHubStandIn.start({
      repos: { [REPO]: bare },
      plainTokens: ['ghp_good'],
      repoPermissions: { admin: false, push: false, pull: true },
    });
    try {
      const g = await connectGitHub(
        { url: gh.url, repository: REPO, auth: { kind: 'token', token: 'ghp_good' } },
        () => undefined,
      );
      assert.deepEqual([g.login, g.checks], ['octo-natops', false]);
      await assert.rejects(
        connectGitHub({ url: gh.url, repository: REPO, auth: { kind: 'token', token: 'ghp_wrong' } }, () => undefined),
        /cannot read natops\/gitops: 401/,
      );
      await assert.rejects(
        connectGitHub(
          { url: readOnly.url, repository: REPO, auth: { kind: 'token', token: 'ghp_good' } },
          () => undefined,
        ),
        /no write access/,
      );
      gh.assertClean();
      readOnly.assertClean();
    } finally {
      await gh.close();
      await readOnly.close();
    }
  });

  it('installation tokens are refreshed before they expire: no request is refused', async () => {
    const gh = await GitHubStandIn.start({ repos: { [REPO]: bare }, installationTokenTtlMs: 2000 });
    try {
      const g = await connectApp(gh);
      const issued = gh.tokensIssued;
      const end = Date.now() + 4500;
      while (Date.now() < end) {
        assert.ok(await g.api.branch('main'));
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(gh.tokensIssued >= issued + 2, `tokens issued: ${gh.tokensIssued}`);
      assert.equal(gh.requests.filter((r) => r.status === 401).length, 0);
      gh.assertClean();
    } finally {
      await gh.close();
    }
  });
});
