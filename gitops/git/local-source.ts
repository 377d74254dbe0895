// Reads a Git repository with the git CLI (argv only): the manifests at a commit, and which of
// two commits came first. Commit ids and paths are checked before they reach an argument list.
import { CommandError } from '../../common/exec.ts';
import { isManifestFileName, manifestFile, type ManifestFile } from '../manifests/load.ts';
import { symlinkSkipped, warnOnStderr, type ReadOptions } from '../manifests/read-dir.ts';
import { runGit } from './run-git.ts';
import { SHA } from '../../common/sha.ts';
import {
  checkTrackedPath,
  GitSourceError,
  planReads,
  UnknownCommitError,
  type GitSource,
  type ListedBlob,
} from './source.ts';

export class GitRepo implements GitSource {
  /** blob bytes of the last two manifest reads (keptBlobs) */
  private kept = new Map<string, Buffer>();
  private keptBefore = new Map<string, Buffer>();

  /** `label`: what messages name it by (a mirror is named by its remote's URL); default the git directory */
  constructor(
    readonly gitDir: string,
    private readonly label = gitDir,
  ) {}

  get name(): string {
    return this.label;
  }

  private git(args: string[], okExitCodes?: number[]) {
    return runGit(this.gitDir, args, { okExitCodes });
  }

  private checkSha(sha: string): void {
    if (!SHA.test(sha)) throw new GitSourceError(this.name, `${JSON.stringify(sha)} is not a full commit id`);
  }

  /** The commit a branch points at, or undefined. */
  async branchHead(branch: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9._/-]+$/.test(branch) || branch.startsWith('-'))
      throw new GitSourceError(this.name, `bad branch name ${JSON.stringify(branch)}`);
    const r = await this.git(['rev-parse', '--verify', '--quiet', `refs/heads/${branch}^{commit}`], [0, 1]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /**
   * A branch, tag or commit id (or rev-parse's `~`/`^` suffixes) -> the full id of the commit it
   * names. Ranges, `:path` and anything git could take for an option are refused first.
   */
  async resolveRef(ref: string): Promise<string> {
    if (!/^[A-Za-z0-9._/~^-]+$/.test(ref) || ref.startsWith('-') || ref.includes('..'))
      throw new GitSourceError(this.name, `bad ref ${JSON.stringify(ref)}`);
    const r = await this.git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], [0, 1, 128]);
    if (r.code === 128) throw new GitSourceError(this.name, `cannot read the repository: ${r.stderr.trim()}`);
    if (r.code !== 0)
      throw new GitSourceError(this.name, `${JSON.stringify(ref)} is not a branch, tag or commit of the repository`, {
        retryable: false,
      });
    return r.stdout.trim();
  }

  /**
   * Whether the repository holds the commit. rev-parse exits 1 for "no such commit" and 128 when
   * it cannot read the repository at all; the latter throws (retryable), as it may pass.
   */
  async hasCommit(sha: string): Promise<boolean> {
    this.checkSha(sha);
    const r = await this.git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${sha}^{commit}`], [0, 1, 128]);
    if (r.code === 128) throw new GitSourceError(this.name, `cannot read the repository: ${r.stderr.trim()}`);
    return r.code === 0;
  }

  /**
   * True when `older` is an ancestor of (or equal to) `newer`. Throws UnknownCommitError when
   * either is not in the repository (merge-base exits 128 for that and for other failures).
   */
  async isAncestor(older: string, newer: string): Promise<boolean> {
    this.checkSha(older);
    this.checkSha(newer);
    const r = await this.git(['merge-base', '--is-ancestor', '--end-of-options', older, newer], [0, 1, 128]);
    if (r.code !== 128) return r.code === 0;
    for (const sha of [older, newer]) if (!(await this.hasCommit(sha))) throw new UnknownCommitError(this.name, sha);
    throw new GitSourceError(
      this.name,
      `git merge-base --is-ancestor ${older} ${newer} exited 128: ${r.stderr.trim()}`,
    );
  }

  async mergeBase(a: string, b: string): Promise<string | undefined> {
    this.checkSha(a);
    this.checkSha(b);
    const r = await this.git(['merge-base', '--end-of-options', a, b], [0, 1]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  /**
   * Every *.yaml / *.yml under `path` at `sha`, named by its path in the repository. Symbolic
   * links (mode 120000, whose blob is the target's path) are skipped with a warning each. What is
   * read is decided from the tree's sizes first (planReads): a file over the size limit is not
   * read, and a commit over the count or total limits is refused before any blob is read.
   */
  async manifestsAt(sha: string, path: string, opts: ReadOptions = {}): Promise<ManifestFile[]> {
    const warn = opts.warn ?? warnOnStderr;
    this.checkSha(sha);
    const tracked = checkTrackedPath(path);
    // (whether the commit is there is asked only when ls-tree fails: one git run fewer per plan)
    const ls = await this.git(
      ['ls-tree', '-r', '-z', '-l', '--full-tree', sha, '--', ...(tracked ? [tracked] : [])],
      [0, 128],
    );
    if (ls.code !== 0) {
      if (!(await this.hasCommit(sha))) throw new GitSourceError(this.name, `commit ${sha} is not in the repository`);
      throw new GitSourceError(this.name, `git ls-tree ${sha} exited ${ls.code}: ${ls.stderr.trim()}`);
    }
    const blobs: (ListedBlob & { id: string })[] = [];
    for (const entry of ls.stdout.split('\0')) {
      if (!entry) continue;
      // "<mode> <type> <id> <size, padded; - for a submodule>\t<path>"
      const m = /^(\d+) (\w+) ([0-9a-f]+) +(\S+)\t(.+)$/s.exec(entry);
      if (!m) throw new GitSourceError(this.name, `unexpected ls-tree entry ${JSON.stringify(entry.slice(0, 200))}`);
      // Submodules (commits) are not part of this repository's manifests.
      if (m[2] !== 'blob') continue;
      // A blob git cannot size is missing or broken: never taken for a file that is not there.
      if (!/^\d+$/.test(m[4]!))
        throw new GitSourceError(this.name, `cannot read ${m[5]} at ${sha.slice(0, 7)}: ls-tree says ${m[4]}`);
      const link = m[1] === '120000';
      // Links of any name are read (their target is their text) only to say where they point.
      if (link || isManifestFileName(m[5]!.split('/').pop()!))
        blobs.push({ id: m[3]!, size: Number(m[4]), path: m[5]!, link });
    }
    const { read, tooLarge, longLinks } = planReads(sha, tracked, blobs, opts.limits);
    const files: ManifestFile[] = tooLarge.map((b) => ({ path: b.path, text: '', size: b.size }));
    for (const b of longLinks)
      warn(`${symlinkSkipped(b.path, `a target of ${b.size} bytes, not read`)} (commit ${sha.slice(0, 7)})`);
    if (read.length > 0) {
      for (const f of await this.keptBlobs(read)) {
        if (f.blob.link) warn(`${symlinkSkipped(f.blob.path, f.bytes.toString('utf8'))} (commit ${sha.slice(0, 7)})`);
        else files.push(manifestFile(f.blob.path, f.blob.id, f.bytes));
      }
    }
    return files.sort((a, b) => a.path.localeCompare(b.path));
  }

  /**
   * The blobs' bytes, those of the last two reads kept: a blob id is the hash of its bytes, and
   * a push changes few of a repository's files (a planner reads every file of each commit).
   */
  private async keptBlobs<B extends { id: string }>(blobs: readonly B[]): Promise<{ blob: B; bytes: Buffer }[]> {
    // (the kept blobs as they were before the read: another read may replace them meanwhile)
    const kept = this.kept;
    const missing = blobs.filter((b) => !kept.has(b.id));
    // each copied out of cat-file's one buffer, which would otherwise stay whole for any one kept
    const read = new Map(
      (missing.length ? await this.blobs(missing) : []).map((f) => [f.blob.id, Buffer.from(f.bytes)]),
    );
    const got = blobs.map((blob) => ({ blob, bytes: read.get(blob.id) ?? kept.get(blob.id)! }));
    const now = new Map(got.map((f) => [f.blob.id, f.bytes]));
    this.kept = new Map([...this.keptBefore, ...now]);
    this.keptBefore = now;
    return got;
  }

  /** The blobs' bytes, in one git process: cat-file --batch answers "<id> blob <size>\n<bytes>\n" per id. */
  private async blobs<B extends { id: string }>(blobs: readonly B[]): Promise<{ blob: B; bytes: Buffer }[]> {
    const out = await runGit(this.gitDir, ['cat-file', '--batch'], {
      stdin: `${blobs.map((b) => b.id).join('\n')}\n`,
    }).catch((e: unknown) => {
      throw e instanceof CommandError ? new GitSourceError(this.name, e.message) : e;
    });
    const buf = out.stdoutBytes!;
    const got: { blob: B; bytes: Buffer }[] = [];
    let at = 0;
    for (const blob of blobs) {
      const nl = buf.indexOf(0x0a, at);
      const header = buf.subarray(at, nl).toString();
      const size = Number(/^[0-9a-f]+ blob (\d+)$/.exec(header)?.[1] ?? NaN);
      if (!Number.isFinite(size))
        throw new GitSourceError(this.name, `unexpected cat-file answer ${JSON.stringify(header)}`);
      // The bytes go along: the loader tells a file that is not UTF-8 from one that is.
      got.push({ blob, bytes: buf.subarray(nl + 1, nl + 1 + size) });
      at = nl + 1 + size + 1;
    }
    return got;
  }
}
