// Manifests of unchanged files, not read again. A long-lived planner validates commit after
// commit of mostly the same files; reading a file (its YAML, under the limits) and checking each
// of its documents against its schema depend on the file's bytes alone, so both are kept by the
// file's path and Git blob id (the hash of its bytes) and reused as they were. What one commit's
// files say about each other (references, addresses claimed twice) is checked again every time.
import type { ManifestIssue } from './issues.ts';
import type { LoadedDoc } from './load.ts';

export interface FileLoad {
  docs: LoadedDoc[];
  issues: ManifestIssue[];
}

/**
 * Kept: what the last two validations used (the planner validates a commit again when the EIP
 * allocation table moved meanwhile, and the commit before is what the next push mostly holds).
 * Issues are handed out as copies: validation marks them afterwards (which gateway an issue
 * stops), and that depends on the whole commit. The documents and their checked values are
 * shared between validations: nothing downstream may change them.
 */
export class ManifestCache {
  private files = new Map<string, FileLoad>();
  private used = new Set<string>();
  private usedBefore = new Set<string>();
  private readonly parsed = new WeakMap<LoadedDoc, { value: unknown; issues: ManifestIssue[] }>();
  /** files read and documents checked, against those reused (for tests and metrics) */
  readonly counts = { filesRead: 0, filesReused: 0, docsChecked: 0, docsReused: 0 };

  /** Starts a validation: what the one before the last used is dropped. */
  begin(): void {
    for (const key of this.files.keys()) if (!this.used.has(key) && !this.usedBefore.has(key)) this.files.delete(key);
    this.usedBefore = this.used;
    this.used = new Set();
  }

  /** A file's documents and issues: kept ones when `key` (its path, blob and the limits) was read before. */
  file(key: string, read: () => FileLoad): FileLoad {
    this.used.add(key);
    let load = this.files.get(key);
    if (load) this.counts.filesReused++;
    else {
      this.counts.filesRead++;
      load = read();
      this.files.set(key, { docs: load.docs, issues: load.issues.map(copy) });
    }
    return { docs: load.docs, issues: load.issues.map(copy) };
  }

  /** A document's schema check: its result and the issues it reported. */
  check<T>(doc: LoadedDoc, run: (issues: ManifestIssue[]) => T): { value: T; issues: ManifestIssue[] } {
    let kept = this.parsed.get(doc);
    if (kept) this.counts.docsReused++;
    else {
      this.counts.docsChecked++;
      const issues: ManifestIssue[] = [];
      kept = { value: run(issues), issues };
      this.parsed.set(doc, kept);
    }
    return { value: kept.value as T, issues: kept.issues.map(copy) };
  }
}

const copy = (i: ManifestIssue): ManifestIssue => ({ ...i });
