// Where the planner reads manifests: a local (bare) repository read with git (local-source.ts), or
// GitHub's API (gitops/github/source.ts). Both answer the same four questions about commits.
import { NatopsError, PermanentError } from '../../common/errors.ts';
import type { ManifestFile } from '../manifests/load.ts';
import type { ReadOptions } from '../manifests/read-dir.ts';

export interface GitSource {
  /** for messages: the git directory, or github:owner/name */
  readonly name: string;
  /** The commit a branch points at, or undefined when there is no such branch. */
  branchHead(branch: string): Promise<string | undefined>;
  hasCommit(sha: string): Promise<boolean>;
  /** True when `older` is an ancestor of (or equal to) `newer`; UnknownCommitError when either is unknown. */
  isAncestor(older: string, newer: string): Promise<boolean>;
  /** Their best common ancestor (what a pull request's changes are measured from), or undefined when they share none. */
  mergeBase(a: string, b: string): Promise<string | undefined>;
  /** Every *.yaml / *.yml under `path` at `sha`; symbolic links skipped with a warning each. */
  manifestsAt(sha: string, path: string, opts?: ReadOptions): Promise<ManifestFile[]>;
}

export class GitSourceError extends NatopsError {
  /** `source`: the git directory, or github:owner/name */
  constructor(
    readonly source: string,
    message: string,
    opts: { retryable?: boolean; cause?: unknown } = {},
  ) {
    super(`${source}: ${message}`, opts);
  }
}

/**
 * A commit the repository does not hold (history rewritten, repository replaced): asking again
 * gives the same answer, so a job that needs it must not be retried.
 */
export class UnknownCommitError extends GitSourceError {
  constructor(
    gitDir: string,
    readonly sha: string,
  ) {
    super(gitDir, `commit ${sha} is not in the repository (history rewritten or repository replaced?)`, {
      retryable: false,
    });
  }
}

/** A tracked path natops will not read: the same path fails the same way every time. */
export class TrackedPathError extends PermanentError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`tracked path ${JSON.stringify(path)} ${reason}`);
  }
}

/**
 * A tracked path inside the repository: relative, no "..", nothing git could take for an option,
 * and no pathspec magic (a leading ":", as in ":(glob)**", ":!x", ":/") or wildcard (git's glob
 * characters * ? [ \), which git would interpret instead of naming a directory.
 */
export function checkTrackedPath(path: string): string {
  const p = path === '.' ? '' : path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
  if (p.startsWith('/') || p.startsWith('-') || p.split('/').includes('..') || /[\0\n]/.test(p)) {
    throw new TrackedPathError(path, 'must be a relative path inside the repository');
  }
  if (p.startsWith(':') || /[*?[\\]/.test(p)) {
    throw new TrackedPathError(
      path,
      'uses pathspec magic or wildcards (a leading ":", or * ? [ \\); name a directory or file literally',
    );
  }
  return p;
}
