// Where the planner reads manifests: a local (bare) repository read with git (local-source.ts), or
// GitHub's API (gitops/github/source.ts). Both answer the same four questions about commits.
import { NatopsError, PermanentError } from '../../common/errors.ts';
import type { ManifestIssue } from '../manifests/issues.ts';
import { DEFAULT_LOAD_LIMITS, type LoadLimits, type ManifestFile } from '../manifests/load.ts';
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

/** The per-commit limits, by the setting an operator raises them with. */
const COMMIT_LIMITS = {
  maxFiles: { setting: 'NATOPS_MANIFEST_MAX_FILES', what: (n: number) => `${n} manifest files` },
  maxTotalBytes: { setting: 'NATOPS_MANIFEST_MAX_TOTAL_BYTES', what: (n: number) => `${n} bytes of manifests` },
} as const;

/**
 * A commit holding more manifests than natops reads (counted from the tree, before any blob is
 * read). The same commit is refused the same way every time: raising the setting is the fix.
 */
export class ManifestLimitError extends PermanentError {
  readonly setting: string;
  constructor(
    readonly sha: string,
    /** the tracked path, as given */
    readonly path: string,
    readonly limit: keyof typeof COMMIT_LIMITS,
    readonly actual: number,
    readonly max: number,
    /** found while reading (a tree without sizes), not from the tree before it */
    whileReading = false,
  ) {
    const l = COMMIT_LIMITS[limit];
    // Short enough for a commit status (140 characters) after "planning failed: ".
    const end = whileReading ? 'reading stopped' : 'none was read';
    super(`commit ${sha.slice(0, 7)}: ${l.what(actual)}, more than ${l.setting} (${max}); ${end}`);
    this.setting = l.setting;
  }

  /** As a validation problem that refuses the whole commit (for a check run's annotations and a preview). */
  issue(): ManifestIssue {
    return {
      pos: { file: this.path === '' ? '.' : this.path, line: 1, column: 1 },
      resource: '-',
      field: '(commit)',
      message: this.message,
      unattributed: true,
    };
  }
}

/** A symbolic link's blob is its target's path: longer than this is not read (PATH_MAX is 4096). */
export const MAX_LINK_BYTES = 4096;

/** A blob the tree lists under the tracked path, with its size when the tree gives it. */
export interface ListedBlob {
  path: string;
  size?: number | undefined;
  link: boolean;
}

/**
 * What a source reads of a commit, decided from the tree alone: files over `maxFileBytes` and
 * links over MAX_LINK_BYTES are not read; throws ManifestLimitError when the files to read are
 * more than `maxFiles` or their bytes more than `maxTotalBytes`. A blob without a size (GitHub
 * always gives one) counts as empty here; its reader checks its bytes (checkRead).
 */
export function planReads<T extends ListedBlob>(
  sha: string,
  path: string,
  blobs: readonly T[],
  limits: Partial<LoadLimits> = {},
): { read: T[]; tooLarge: T[]; longLinks: T[] } {
  const maxFileBytes = limits.maxFileBytes ?? DEFAULT_LOAD_LIMITS.maxFileBytes;
  const maxFiles = limits.maxFiles ?? DEFAULT_LOAD_LIMITS.maxFiles;
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_LOAD_LIMITS.maxTotalBytes;
  const read: T[] = [];
  const tooLarge: T[] = [];
  const longLinks: T[] = [];
  let bytes = 0;
  for (const b of blobs) {
    if (b.link && b.size !== undefined && b.size > MAX_LINK_BYTES) longLinks.push(b);
    else if (!b.link && b.size !== undefined && b.size > maxFileBytes) tooLarge.push(b);
    else {
      read.push(b);
      bytes += b.size ?? 0;
    }
  }
  // Links count as files: each is read (for its warning), whatever its name.
  const files = read.length + tooLarge.length + longLinks.length;
  if (files > maxFiles) throw new ManifestLimitError(sha, path, 'maxFiles', files, maxFiles);
  if (bytes > maxTotalBytes) throw new ManifestLimitError(sha, path, 'maxTotalBytes', bytes, maxTotalBytes);
  return { read, tooLarge, longLinks };
}

/**
 * For a reader whose tree lacked sizes: the bytes read so far against `maxTotalBytes`, checked
 * after each blob (so at most one blob past the limit is ever held).
 */
export function checkRead(sha: string, path: string, bytesSoFar: number, limits: Partial<LoadLimits> = {}): void {
  const maxTotalBytes = limits.maxTotalBytes ?? DEFAULT_LOAD_LIMITS.maxTotalBytes;
  if (bytesSoFar > maxTotalBytes)
    throw new ManifestLimitError(sha, path, 'maxTotalBytes', bytesSoFar, maxTotalBytes, true);
}
