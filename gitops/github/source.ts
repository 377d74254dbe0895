// The manifests at a commit through GitHub's trees and blobs APIs. Blobs are addressed by their
// content, so a cache keyed by blob id is never stale: a file unchanged between commits is
// fetched once. A recursive tree GitHub truncated is walked again one directory at a time.
import {
  checkRead,
  checkTrackedPath,
  GitSourceError,
  ManifestLimitError,
  planReads,
  UnknownCommitError,
  type GitSource,
} from '../git/source.ts';
import { DEFAULT_LOAD_LIMITS, isManifestFileName, manifestFile, type ManifestFile } from '../manifests/load.ts';
import { symlinkSkipped, warnOnStderr, type ReadOptions } from '../manifests/read-dir.ts';
import { SHA } from '../../common/sha.ts';
import type { GitHubApi, TreeEntry } from './api.ts';

/** Blob bytes by blob id (Redis in natops: state/store.ts). */
export interface BlobCache {
  get(sha: string): Promise<Buffer | undefined>;
  set(sha: string, bytes: Buffer): Promise<void>;
}

const SYMLINK_MODE = '120000';

export class GitHubSource implements GitSource {
  readonly name: string;
  /** the last answer per branch, for conditional requests: an unchanged branch costs a 304 */
  private readonly branches = new Map<string, { sha: string; etag: string }>();

  constructor(
    private readonly api: GitHubApi,
    private readonly blobs: BlobCache,
  ) {
    this.name = `github:${api.fullName}`;
  }

  private checkSha(sha: string): void {
    if (!SHA.test(sha))
      throw new GitSourceError(this.name, `${JSON.stringify(sha)} is not a full commit id`, { retryable: false });
  }

  async branchHead(branch: string): Promise<string | undefined> {
    const known = this.branches.get(branch);
    const r = await this.api.branch(branch, known?.etag);
    if (r === 'unchanged' && known) return known.sha;
    if (r === 'unchanged') return this.branchHead(branch);
    if (!r) {
      this.branches.delete(branch);
      return undefined;
    }
    if (r.etag) this.branches.set(branch, { sha: r.sha, etag: r.etag });
    return r.sha;
  }

  hasCommit(sha: string): Promise<boolean> {
    this.checkSha(sha);
    return this.api.hasCommit(sha);
  }

  async isAncestor(older: string, newer: string): Promise<boolean> {
    this.checkSha(older);
    this.checkSha(newer);
    if (older === newer) return true;
    return ['ahead', 'identical'].includes((await this.comparison(older, newer)).status);
  }

  async mergeBase(a: string, b: string): Promise<string | undefined> {
    this.checkSha(a);
    this.checkSha(b);
    return (await this.comparison(a, b)).mergeBase || undefined;
  }

  private async comparison(base: string, head: string) {
    const c = await this.api.compare(base, head);
    if (c) return c;
    for (const sha of [base, head]) if (!(await this.api.hasCommit(sha))) throw new UnknownCommitError(this.name, sha);
    throw new GitSourceError(this.name, `GitHub cannot compare ${base} and ${head}`);
  }

  /**
   * Blob entries under `dir` (a tree id), each with its path from the repository's root. A tree
   * GitHub truncated is walked a level at a time, and only until it holds more manifest files
   * than `maxFiles` (each level is an API call: a huge tree must not cost thousands).
   */
  private async entriesUnder(sha: string, treeSha: string, prefix: string, maxFiles: number): Promise<TreeEntry[]> {
    const full = await this.api.tree(treeSha, true);
    const at = (e: TreeEntry) => ({ ...e, path: prefix ? `${prefix}/${e.path}` : e.path });
    if (!full.truncated) return full.entries.filter((e) => e.type === 'blob').map(at);
    // Truncated (over 100,000 entries or 7 MB): one level at a time, which GitHub never truncates.
    const out: TreeEntry[] = [];
    let manifests = 0;
    const dirs = [{ sha: treeSha, path: prefix }];
    for (let d = dirs.pop(); d; d = dirs.pop()) {
      const level = await this.api.tree(d.sha, false);
      for (const e of level.entries) {
        const path = d.path ? `${d.path}/${e.path}` : e.path;
        if (e.type === 'tree') dirs.push({ sha: e.sha, path });
        else if (e.type === 'blob') {
          out.push({ ...e, path });
          if (e.mode === SYMLINK_MODE || isManifestFileName(e.path)) manifests++;
        }
      }
      if (manifests > maxFiles) throw new ManifestLimitError(sha, prefix, 'maxFiles', manifests, maxFiles, true);
    }
    return out;
  }

  /** What `path` names at commit `sha` (a directory's tree, or one file), walked from the root one level at a time. */
  private async lookup(sha: string, path: string): Promise<{ tree: string } | { file: TreeEntry } | undefined> {
    let tree = sha;
    const parts = path ? path.split('/') : [];
    for (const [i, part] of parts.entries()) {
      const next = (await this.api.tree(tree, false)).entries.find((e) => e.path === part);
      if (!next) return undefined;
      if (next.type !== 'tree') return i === parts.length - 1 ? { file: { ...next, path } } : undefined;
      tree = next.sha;
    }
    return { tree };
  }

  private async bytes(sha: string): Promise<Buffer> {
    const cached = await this.blobs.get(sha);
    if (cached) return cached;
    const bytes = await this.api.blob(sha);
    await this.blobs.set(sha, bytes);
    return bytes;
  }

  async manifestsAt(sha: string, path: string, opts: ReadOptions = {}): Promise<ManifestFile[]> {
    const warn = opts.warn ?? warnOnStderr;
    this.checkSha(sha);
    const tracked = checkTrackedPath(path);
    if (!(await this.api.hasCommit(sha))) throw new GitSourceError(this.name, `commit ${sha} is not in the repository`);
    const where = await this.lookup(sha, tracked);
    if (!where) return [];
    const maxFiles = opts.limits?.maxFiles ?? DEFAULT_LOAD_LIMITS.maxFiles;
    const entries = 'file' in where ? [where.file] : await this.entriesUnder(sha, where.tree, tracked, maxFiles);
    const listed = entries
      .filter((e) => e.mode === SYMLINK_MODE || isManifestFileName(e.path.split('/').pop()!))
      .map((e) => ({ ...e, link: e.mode === SYMLINK_MODE }));
    // Decided from the tree's sizes, before any blob is fetched: a pull request from anyone could
    // add a 100 MB file, or thousands of them. Files too large are left for validation to report.
    const { read, tooLarge, longLinks } = planReads(sha, tracked, listed, opts.limits);
    const maxFileBytes = opts.limits?.maxFileBytes ?? DEFAULT_LOAD_LIMITS.maxFileBytes;
    const files: ManifestFile[] = tooLarge.map((e) => ({ path: e.path, text: '', size: e.size }));
    for (const e of longLinks)
      warn(`${symlinkSkipped(e.path, `a target of ${e.size} bytes, not read`)} (commit ${sha.slice(0, 7)})`);
    let total = 0;
    for (const e of read) {
      const bytes = await this.bytes(e.sha);
      // (a size the tree did not give is checked on the bytes)
      if (e.size === undefined) {
        total += bytes.length;
        checkRead(sha, tracked, total, opts.limits);
        if (!e.link && bytes.length > maxFileBytes) {
          files.push({ path: e.path, text: '', size: bytes.length });
          continue;
        }
      }
      // A link's blob is its target's path: said, never followed.
      if (e.link) warn(`${symlinkSkipped(e.path, bytes.toString('utf8'))} (commit ${sha.slice(0, 7)})`);
      else files.push(manifestFile(e.path, e.sha, bytes));
    }
    return files.sort((a, b) => a.path.localeCompare(b.path));
  }
}
