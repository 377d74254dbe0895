// The Git source against a real repository, and the push payload against GitHub's examples.
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import examples from '@octokit/webhooks-examples';
import { runGit } from '../../gitops/git/run-git.ts';
import { parseRefUpdates } from '../../gitops/hook/delivery.ts';
import { localPushPayload } from '../../gitops/git/local-push.ts';
import { PushPayload, pushedBranch } from '../../gitops/git/push-event.ts';
import { GitRepo } from '../../gitops/git/local-source.ts';
import {
  checkTrackedPath,
  GitSourceError,
  ManifestLimitError,
  TrackedPathError,
  UnknownCommitError,
} from '../../gitops/git/source.ts';
import { isRetryable, PermanentError } from '../../common/errors.ts';
import { run } from '../../common/exec.ts';

const githubPushes = () =>
  (examples as unknown as { name: string; examples: Record<string, unknown>[] }[]).find((e) => e.name === 'push')!
    .examples;

describe('git source', () => {
  let dir: string;
  let repo: GitRepo;
  const commits: string[] = [];
  const git = (...args: string[]) => run(['git', '-C', join(dir, 'work'), ...args]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-git-'));
    await run(['git', 'init', '--quiet', '--initial-branch=main', join(dir, 'work')]);
    await git('config', 'user.email', 't@example.com');
    await git('config', 'user.name', 't');
    await mkdir(join(dir, 'work', 'net', 'sub'), { recursive: true });
    await writeFile(join(dir, 'work', 'net', 'a.yaml'), 'kind: A\n');
    await writeFile(join(dir, 'work', 'net', 'sub', 'b.yml'), 'kind: B # ü\n');
    await writeFile(join(dir, 'work', 'net', 'notes.txt'), 'not a manifest');
    await writeFile(join(dir, 'work', 'other.yaml'), 'kind: Other\n');
    await git('add', '-A');
    await git('commit', '--quiet', '-m', 'one');
    commits.push((await git('rev-parse', 'HEAD')).stdout.trim());
    await writeFile(join(dir, 'work', 'net', 'a.yaml'), 'kind: A2\n');
    await git('commit', '--quiet', '-am', 'two');
    commits.push((await git('rev-parse', 'HEAD')).stdout.trim());
    repo = new GitRepo(join(dir, 'work', '.git'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads the manifests under the tracked path at a commit, and only those', async () => {
    const files = await repo.manifestsAt(commits[0]!, 'net');
    assert.deepEqual(
      files.map(({ path, text }) => ({ path, text })),
      [
        { path: 'net/a.yaml', text: 'kind: A\n' },
        { path: 'net/sub/b.yml', text: 'kind: B # ü\n' },
      ],
    );
    assert.deepEqual(files[1]!.bytes, Buffer.from('kind: B # ü\n'), 'the bytes as committed go along');
    assert.equal((await repo.manifestsAt(commits[1]!, './net/'))[0]!.text, 'kind: A2\n');
    assert.deepEqual(
      (await repo.manifestsAt(commits[1]!, '.')).map((f) => f.path),
      ['net/a.yaml', 'net/sub/b.yml', 'other.yaml'],
    );
  });

  it('tells which commit came first', async () => {
    assert.equal(await repo.isAncestor(commits[0]!, commits[1]!), true);
    assert.equal(await repo.isAncestor(commits[1]!, commits[0]!), false);
    assert.equal(await repo.branchHead('main'), commits[1]);
  });

  it('knows which commits it holds: hasCommit', async () => {
    assert.equal(await repo.hasCommit(commits[0]!), true);
    assert.equal(await repo.hasCommit('f'.repeat(40)), false);
    const blob = (await git('rev-parse', 'HEAD:other.yaml')).stdout.trim();
    assert.equal(await repo.hasCommit(blob), false, 'a blob is not a commit');
    // A repository git cannot read is not "a repository without the commit": that may pass.
    const gone = new GitRepo(join(dir, 'no-such.git'));
    await assert.rejects(gone.hasCommit(commits[0]!), (e: unknown) => e instanceof GitSourceError && isRetryable(e));
  });

  it('an unknown commit in isAncestor is an UnknownCommitError, not retried; an unreadable repository is retried', async () => {
    // History rewritten: a commit that was pushed, then reset away and pruned.
    await writeFile(join(dir, 'work', 'other.yaml'), 'kind: Rewritten\n');
    await git('commit', '--quiet', '-am', 'three');
    const rewritten = (await git('rev-parse', 'HEAD')).stdout.trim();
    await git('reset', '--quiet', '--hard', commits[1]!);
    await git('reflog', 'expire', '--expire=now', '--all');
    await git('gc', '--quiet', '--prune=now');
    assert.equal(await repo.hasCommit(rewritten), false);
    for (const [older, newer] of [
      [rewritten, commits[1]!],
      [commits[0]!, rewritten],
    ] as const) {
      await assert.rejects(repo.isAncestor(older, newer), (e: unknown) => {
        assert.equal((e as Error).name, 'UnknownCommitError', String(e));
        assert.ok(e instanceof UnknownCommitError);
        assert.equal(e.sha, rewritten);
        assert.equal(e.retryable, false);
        assert.match(e.message, new RegExp(`commit ${rewritten} is not in the repository`));
        return true;
      });
    }
    const gone = new GitRepo(join(dir, 'no-such.git'));
    await assert.rejects(gone.isAncestor(commits[0]!, commits[1]!), (e: unknown) => {
      assert.ok(!(e instanceof UnknownCommitError), String(e));
      assert.ok(e instanceof GitSourceError && e.retryable, String(e));
      return true;
    });
  });

  it('refuses ids and paths that are not plain', async () => {
    await assert.rejects(repo.manifestsAt('HEAD', 'net'), /not a full commit id/);
    await assert.rejects(repo.manifestsAt('--output=/tmp/x', 'net'), /not a full commit id/);
    await assert.rejects(repo.manifestsAt('f'.repeat(40), 'net'), /not in the repository/);
    assert.throws(() => checkTrackedPath('../etc'), /relative path inside/);
    assert.throws(() => checkTrackedPath('--upload-pack=x'), /relative path inside/);
    assert.throws(() => checkTrackedPath('/abs'), /relative path inside/);
  });

  it('refuses pathspec magic and wildcards in the tracked path, and git reads paths literally anyway', async () => {
    for (const path of [
      ':(glob)**',
      ':!x',
      ':/',
      ':(top)net',
      './:(icase)NET',
      'net/*.yaml',
      'n?t',
      '[n]et',
      'net\\sub',
    ]) {
      assert.throws(
        () => checkTrackedPath(path),
        (e: unknown) => {
          assert.equal((e as Error).name, 'TrackedPathError', `${path}: ${String(e)}`);
          assert.ok(e instanceof TrackedPathError && e instanceof PermanentError && e.retryable === false);
          assert.equal(e.path, path);
          assert.match(e.message, /pathspec magic or wildcards/);
          return true;
        },
      );
      await assert.rejects(repo.manifestsAt(commits[0]!, path), TrackedPathError);
    }
    // Every refusal is permanent: the same path fails the same way on every attempt.
    assert.throws(() => checkTrackedPath('../etc'), TrackedPathError);
    // Plain names with other punctuation are fine.
    assert.equal(checkTrackedPath('./net:prod/'), 'net:prod');
    // The second guard: magic that reaches git through the shared runner names only a file of
    // that name (plain git would list net/ for ":(top)net").
    const listed = await runGit(repo.gitDir, ['ls-tree', '-r', '--name-only', commits[0]!, '--', ':(top)net']);
    assert.equal(listed.stdout, '');
  });

  it("makes push payloads GitHub's shape: every example parses, and ours has the same top-level fields", () => {
    for (const ex of githubPushes()) assert.ok(PushPayload.safeParse(ex).success, JSON.stringify(ex).slice(0, 200));
    const ours = localPushPayload({
      repository: 'local/gitops',
      url: 'file:///srv/gitops.git',
      ref: 'refs/heads/main',
      before: '0'.repeat(40),
      after: commits[0]!,
      forced: false,
      commits: [
        {
          id: commits[0]!,
          message: 'one',
          timestamp: '2026-11-25T00:00:00Z',
          author: { name: 't', email: 't@example.com' },
        },
      ],
      pusher: { name: 't', email: 't@example.com' },
    });
    assert.ok(PushPayload.safeParse(ours).success);
    const branchExample = githubPushes().find((e) => e.ref === 'refs/heads/master')!;
    // installation, organization and enterprise appear only for apps and organisations
    const optional = new Set(['installation', 'organization', 'enterprise']);
    assert.deepEqual(
      Object.keys(ours).sort(),
      Object.keys(branchExample)
        .filter((k) => !optional.has(k))
        .sort(),
    );
    assert.equal(ours.created, true);
    assert.equal(pushedBranch(ours.ref), 'main');
    assert.equal(pushedBranch('refs/tags/v1'), undefined);
  });

  it("reads post-receive's ref updates and rejects anything else", () => {
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    assert.deepEqual(parseRefUpdates(`${a} ${b} refs/heads/main\n`), [{ before: a, after: b, ref: 'refs/heads/main' }]);
    assert.throws(() => parseRefUpdates('x y z\n'), /unexpected post-receive line/);
  });
});

describe('git source: per-commit limits, from the tree, before any blob is read', () => {
  let dir: string;
  let sha: string;
  let repo: GitRepo;
  const sizes = new Map<string, number>();
  const BIG = 9 * 1024 * 1024;
  /** every git command natops runs, through a git on PATH that logs its arguments */
  let gitLog: string;
  let path: string | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-git-limits-'));
    const work = join(dir, 'work');
    const git = (...args: string[]) => run(['git', '-C', work, ...args]);
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    await mkdir(join(work, 'net'), { recursive: true });
    const files: Record<string, string | Buffer> = {
      'net/a.yaml': 'kind: A\n',
      'net/b.yaml': 'kind: B\nmetadata: {}\n',
      'net/c.yml': 'kind: C\n',
      'net/big.yaml': Buffer.alloc(BIG, 0x61),
      'net/notes.txt': 'not a manifest, never counted',
    };
    for (const [path, text] of Object.entries(files)) await writeFile(join(work, path), text);
    await symlink('../elsewhere.yaml', join(work, 'net', 'link.yaml'));
    await git('add', '-A');
    await git('-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', 'limits');
    sha = (await git('rev-parse', 'HEAD')).stdout.trim();
    repo = new GitRepo(join(work, '.git'));
    for (const line of (await git('ls-tree', '-r', '-l', sha, '--', 'net')).stdout.trim().split('\n')) {
      const [meta, path] = line.split('\t') as [string, string];
      sizes.set(path, Number(meta.split(/\s+/)[3]));
    }
    const realGit = (await run(['sh', '-c', 'command -v git'])).stdout.trim();
    gitLog = join(dir, 'git.log');
    await mkdir(join(dir, 'bin'));
    await writeFile(
      join(dir, 'bin', 'git'),
      [
        '#!/bin/sh',
        `for a in "$@"; do printf '%s ' "$a" >> '${gitLog}'; done; echo >> '${gitLog}'`,
        // what cat-file is asked for comes on stdin: logged too
        `case " $* " in *" cat-file "*) tee -a '${gitLog}.stdin' | '${realGit}' "$@" ;; *) exec '${realGit}' "$@" ;; esac`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    path = process.env.PATH;
    process.env.PATH = `${join(dir, 'bin')}:${path}`;
  });
  after(async () => {
    process.env.PATH = path;
    await rm(dir, { recursive: true, force: true });
  });

  const quiet = { warn: () => undefined };
  /** The git commands `f` ran. */
  const gitRuns = async (f: () => Promise<unknown>): Promise<string[]> => {
    await writeFile(gitLog, '');
    await writeFile(`${gitLog}.stdin`, '');
    await f().catch(() => undefined);
    return (await readFile(gitLog, 'utf8')).split('\n').filter(Boolean);
  };
  const readsBlobs = (runs: string[]) => runs.some((r) => / cat-file /.test(r));

  it('the logging git sees blobs read: what the tests below rely on', async () => {
    assert.ok(readsBlobs(await gitRuns(() => repo.manifestsAt(sha, 'net', quiet))));
  });

  it('more manifest files (links count: each is read) than maxFiles: ManifestLimitError naming the setting, no blob read', async () => {
    const over = () => repo.manifestsAt(sha, 'net', { ...quiet, limits: { maxFiles: 4 } });
    await assert.rejects(over(), (e: unknown) => {
      assert.ok(e instanceof ManifestLimitError, String(e));
      assert.deepEqual([e.limit, e.setting, e.actual, e.max], ['maxFiles', 'NATOPS_MANIFEST_MAX_FILES', 5, 4]);
      assert.equal(e.retryable, false, 'the same commit fails the same way: not retried');
      assert.equal(
        e.message,
        `commit ${sha.slice(0, 7)}: 5 manifest files, more than NATOPS_MANIFEST_MAX_FILES (4); none was read`,
      );
      assert.ok(e.message.length + 'planning failed: '.length <= 140, 'fits a commit status');
      assert.deepEqual(e.issue(), {
        pos: { file: 'net', line: 1, column: 1 },
        resource: '-',
        field: '(commit)',
        message: e.message,
        unattributed: true,
      });
      return true;
    });
    const runs = await gitRuns(over);
    assert.ok(runs.length > 0 && !readsBlobs(runs), runs.join('\n'));
    const atLimit = await repo.manifestsAt(sha, 'net', { ...quiet, limits: { maxFiles: 5 } });
    assert.equal(atLimit.length, 4, 'at the limit: read (the link is warned about, not returned)');
  });

  it('more bytes than maxTotalBytes: refused before reading; a file over maxFileBytes is not read and counts no bytes', async () => {
    const read = ['net/a.yaml', 'net/b.yaml', 'net/c.yml', 'net/link.yaml'].reduce((n, p) => n + sizes.get(p)!, 0);
    const over = () => repo.manifestsAt(sha, 'net', { ...quiet, limits: { maxTotalBytes: read - 1 } });
    await assert.rejects(over(), (e: unknown) => {
      assert.ok(e instanceof ManifestLimitError, String(e));
      assert.deepEqual([e.limit, e.actual, e.max], ['maxTotalBytes', read, read - 1]);
      assert.ok(
        e.message.includes(`${read} bytes of manifests, more than NATOPS_MANIFEST_MAX_TOTAL_BYTES (${read - 1})`),
        e.message,
      );
      return true;
    });
    assert.ok(!readsBlobs(await gitRuns(over)));
    const files = await repo.manifestsAt(sha, 'net', { ...quiet, limits: { maxTotalBytes: read } });
    const big = files.find((f) => f.path === 'net/big.yaml')!;
    assert.deepEqual([big.text, big.size, big.bytes], ['', BIG, undefined], 'over maxFileBytes: its size only');
  });

  it('a file over maxFileBytes is never read: cat-file is not asked for it', async () => {
    const id = async (p: string) =>
      (await run(['git', '--git-dir', repo.gitDir, 'rev-parse', `${sha}:${p}`])).stdout.trim();
    await writeFile(`${gitLog}.stdin`, '');
    // (a reader of its own: `repo` keeps the blobs it read before)
    const files = await new GitRepo(repo.gitDir).manifestsAt(sha, 'net', quiet);
    assert.deepEqual(
      files.map((f) => [f.path, f.size ?? f.bytes?.length]),
      [
        ['net/a.yaml', sizes.get('net/a.yaml')],
        ['net/b.yaml', sizes.get('net/b.yaml')],
        ['net/big.yaml', BIG],
        ['net/c.yml', sizes.get('net/c.yml')],
      ],
    );
    const asked = await readFile(`${gitLog}.stdin`, 'utf8');
    assert.ok(asked.includes(await id('net/a.yaml')), asked);
    assert.ok(!asked.includes(await id('net/big.yaml')), asked);
  });

  it('blobs of the last two reads are not read again, and give the same files', async () => {
    const reader = new GitRepo(repo.gitDir);
    const first = await reader.manifestsAt(sha, 'net', quiet);
    await writeFile(`${gitLog}.stdin`, '');
    const again = await reader.manifestsAt(sha, 'net', quiet);
    assert.equal(await readFile(`${gitLog}.stdin`, 'utf8'), '', 'cat-file was not asked');
    const shown = (files: typeof first) => files.map((f) => [f.path, f.blob, f.text, f.size]);
    assert.deepEqual(shown(again), shown(first));
    assert.ok(first.some((f) => f.blob && f.text.length > 0));
  });

  it('a blob git cannot size (missing, broken) is an error, never a file that is not there', async () => {
    const copy = join(dir, 'broken.git');
    await cp(repo.gitDir, copy, { recursive: true });
    const id = (await run(['git', '--git-dir', copy, 'rev-parse', `${sha}:net/a.yaml`])).stdout.trim();
    await unlink(join(copy, 'objects', id.slice(0, 2), id.slice(2)));
    await assert.rejects(new GitRepo(copy).manifestsAt(sha, 'net', quiet), /cannot read net\/a\.yaml .*BAD/);
  });
});
