// A Git repository reached by URL (https, ssh, file), for a natops that has no repository of its
// own to be pushed to (in a pod): kept as a bare mirror under the data directory and fetched
// whenever the branch's head is asked (each push delivery's plan and each catch-up), then read
// as a local repository (GitRepo: the same per-commit limits from the tree, before any blob).
//
// Shallow, bounded by depth rather than by blob size: every fetch is `--depth` (default 50), so
// a repository's long past is never downloaded. A blob filter (`--filter=blob:limit`) is not
// used: the limits are checked from the tree's sizes (`ls-tree -l`), which in a partial clone
// make git fetch each missing blob, one network round trip each, before natops could refuse it.
// git has no cheap size bound on a fetch (receive.maxInputSize is for pushes); the timeout is
// the bound. An ancestry question the shallow history cannot answer (a push of more than
// `depth` commits, a planned commit from before the mirror) deepens it, doubling, up to the full
// history: a "no" is only said when the history is whole.
import { access, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { hexDigest } from '../../common/digest.ts';
import { CommandError, CommandTimeoutError, run, type ExecResult } from '../../common/exec.ts';
import type { ManifestFile } from '../manifests/load.ts';
import type { ReadOptions } from '../manifests/read-dir.ts';
import { GitRepo } from './local-source.ts';
import { runGit } from './run-git.ts';
import { transportFor, type GitCredentials, type Transport } from './remote-auth.ts';
import { parseRemoteUrl, type RemoteUrl } from './remote-url.ts';
import { GitSourceError, UnknownCommitError, type GitSource } from './source.ts';

export interface RemoteSourceOptions {
  url: string;
  /** natops's data directory: the mirror is kept under it */
  dataDir: string;
  credentials?: GitCredentials;
  /** commits fetched from the branch's head; default 50 */
  depth?: number;
  /** a fetch is killed after this long; default 120 s */
  fetchTimeoutMs?: number;
}

/** Deepening rounds (depth, 2×, 4×, … commits more) before the whole history is fetched. */
const DEEPEN_ROUNDS = 4;
const BRANCH = /^[A-Za-z0-9._/-]+$/;

export class RemoteGitSource implements GitSource {
  readonly name: string;
  /** the bare mirror */
  readonly gitDir: string;
  private readonly remote: RemoteUrl;
  private readonly local: GitRepo;
  private readonly depth: number;
  private readonly fetchTimeoutMs: number;
  private transport: Promise<Transport> | undefined;
  /** fetches and deepenings of the mirror, one at a time */
  private tail: Promise<unknown> = Promise.resolve();
  /** a fetch queued and not started yet: whoever asks meanwhile shares it (it starts after they asked) */
  private readonly queued = new Map<string, Promise<void>>();
  /** the branch the mirror follows (what a deepening fetches) */
  private branch: string | undefined;
  private locksCleared = false;

  /** Throws RemoteUrlError for a URL natops does not fetch from (before any git runs). */
  constructor(private readonly opts: RemoteSourceOptions) {
    this.remote = parseRemoteUrl(opts.url);
    this.name = opts.url;
    const id = hexDigest('sha256', opts.url).slice(0, 16);
    this.gitDir = join(opts.dataDir, 'git', `${id}.git`);
    this.local = new GitRepo(this.gitDir, this.name);
    this.depth = opts.depth ?? 50;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? 120_000;
  }

  /** Checks the credentials' settings and files (GitCredentialsError); at start, so a bad one stops it. */
  check(): Promise<Transport> {
    this.transport ??= transportFor(this.remote, this.opts.credentials ?? {}, join(dirname(this.gitDir), 'auth'));
    // a failed check is checked again next time (the Secret may be mounted late)
    this.transport.catch(() => (this.transport = undefined));
    return this.transport;
  }

  /** The remote branch's head, fetched now; undefined when the remote has no such branch. */
  async branchHead(branch: string): Promise<string | undefined> {
    if (!BRANCH.test(branch) || branch.startsWith('-') || branch.includes('..'))
      throw new GitSourceError(this.name, `bad branch name ${JSON.stringify(branch)}`, { retryable: false });
    await this.fetch(branch);
    return this.local.branchHead(branch);
  }

  hasCommit(sha: string): Promise<boolean> {
    return this.deepened(
      async () => ((await this.local.hasCommit(sha)) ? true : undefined),
      () => this.local.hasCommit(sha),
    );
  }

  isAncestor(older: string, newer: string): Promise<boolean> {
    return this.deepened(
      async () => {
        try {
          return (await this.local.isAncestor(older, newer)) ? true : undefined;
        } catch (e) {
          if (e instanceof UnknownCommitError) return undefined;
          throw e;
        }
      },
      () => this.local.isAncestor(older, newer),
    );
  }

  /** (a commit missing, or none shared, in a shallow mirror: asked again deeper; missing from the whole history: UnknownCommitError) */
  mergeBase(a: string, b: string): Promise<string | undefined> {
    const missing = async () => {
      for (const sha of [a, b]) if (!(await this.local.hasCommit(sha))) return sha;
      return undefined;
    };
    return this.deepened(
      async () => ((await missing()) === undefined ? this.local.mergeBase(a, b) : undefined),
      async () => {
        const sha = await missing();
        if (sha !== undefined) throw new UnknownCommitError(this.name, sha);
        return this.local.mergeBase(a, b);
      },
    );
  }

  /** Read from the mirror: the head being read was fetched by branchHead just before. */
  manifestsAt(sha: string, path: string, opts?: ReadOptions): Promise<ManifestFile[]> {
    return this.local.manifestsAt(sha, path, opts);
  }

  /** Fetches `branch` into the mirror: one fetch at a time, callers arriving before it starts share it. */
  fetch(branch: string): Promise<void> {
    const waiting = this.queued.get(branch);
    if (waiting) return waiting;
    const next = this.serial(() => {
      this.queued.delete(branch);
      return this.fetchNow(branch, [`--depth=${this.depth}`]);
    });
    this.queued.set(branch, next);
    return next;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private async fetchNow(branch: string, how: string[]): Promise<void> {
    const transport = await this.check();
    await this.ensureMirror();
    // A fetch killed (its timeout, or a process killed mid-fetch) leaves its locks behind, and
    // every later fetch would fail on them. Fetches are this process's alone and one at a time,
    // so a lock found before the first one, or after a kill, is stale.
    if (!this.locksCleared) await this.clearLocks(branch);
    this.locksCleared = true;
    const r = await this.git(
      transport,
      ['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--no-recurse-submodules', ...how],
      [`+refs/heads/${branch}:refs/heads/${branch}`],
    ).catch(async (e: unknown) => {
      if (e instanceof GitSourceError && e.cause instanceof CommandTimeoutError) await this.clearLocks(branch);
      throw e;
    });
    if (r.code === 0) {
      this.branch = branch;
      return;
    }
    // The remote has no such branch (deleted, or nothing pushed yet): neither has the mirror.
    if (/couldn't find remote ref/i.test(r.stderr)) {
      await runGit(this.gitDir, ['update-ref', '-d', `refs/heads/${branch}`], { okExitCodes: [0, 1] });
      return;
    }
    throw new GitSourceError(this.name, `fetching ${branch} failed (exit ${r.code}): ${lastLines(r.stderr)}`);
  }

  /** git fetch against the remote: its credentials in the environment as file names, the URL after `--`. */
  private async git(transport: Transport, args: string[], refspecs: string[]): Promise<ExecResult> {
    const argv = [
      'git',
      `--git-dir=${this.gitDir}`,
      ...transport.config.flatMap((c) => ['-c', c]),
      ...args,
      '--',
      this.remote.url,
      ...refspecs,
    ];
    try {
      return await run(argv, {
        env: transport.env,
        timeoutMs: this.fetchTimeoutMs,
        okExitCodes: [0, 1, 128],
        target: `git ${this.name}`,
      });
    } catch (e) {
      if (e instanceof CommandTimeoutError)
        throw new GitSourceError(this.name, `fetch did not finish within ${this.fetchTimeoutMs} ms`, { cause: e });
      if (e instanceof CommandError) throw new GitSourceError(this.name, `fetch failed: ${lastLines(e.stderr)}`);
      throw e;
    }
  }

  private async clearLocks(branch: string): Promise<void> {
    for (const lock of ['shallow.lock', 'packed-refs.lock', 'config.lock', `refs/heads/${branch}.lock`])
      await rm(join(this.gitDir, lock), { force: true });
  }

  private async ensureMirror(): Promise<void> {
    if (
      await access(join(this.gitDir, 'HEAD')).then(
        () => true,
        () => false,
      )
    )
      return;
    await mkdir(dirname(this.gitDir), { recursive: true, mode: 0o700 });
    await run(['git', 'init', '--quiet', '--bare', '--', this.gitDir]);
  }

  /**
   * `answer`'s answer, or, when it has none (undefined: a commit missing, no ancestry found) and
   * the mirror is shallow, its answer after deepening; `last` answers once the history is whole.
   * Under the fetch lock: a fetch's `--depth` must not cut the history again meanwhile.
   */
  private deepened<T>(answer: () => Promise<T | undefined>, last: () => Promise<T>): Promise<T> {
    return answer().then((first) => {
      if (first !== undefined) return first;
      return this.serial(async () => {
        for (let round = 0; ; round++) {
          const a = await answer();
          if (a !== undefined) return a;
          if (!this.branch || !(await this.shallow())) return last();
          const how = round < DEEPEN_ROUNDS ? [`--deepen=${this.depth * 2 ** round}`] : ['--unshallow'];
          await this.fetchNow(this.branch, how);
        }
      });
    });
  }

  private async shallow(): Promise<boolean> {
    const r = await runGit(this.gitDir, ['rev-parse', '--is-shallow-repository']);
    return r.stdout.trim() === 'true';
  }
}

/** git's last words, for a message (the URL in them carries no credentials: none is accepted in it). */
function lastLines(stderr: string): string {
  return stderr.trim().split('\n').slice(-3).join(' / ') || '(no message)';
}
