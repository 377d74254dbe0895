// Where the planner reads manifests: a local (bare) repository read with git (repo.ts), or
// GitHub's API (github/source.ts). Both answer the same four questions about commits.
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
  /** Every *.yaml / *.yml under `path` at `sha`; symbolic links skipped with a warning each. */
  manifestsAt(sha: string, path: string, opts?: ReadOptions): Promise<ManifestFile[]>;
}
