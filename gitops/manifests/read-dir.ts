// Reads manifest files from disk: a directory (recursively) or a single file.
import { NatopsError } from '../../common/errors.ts';
import type { Dirent } from 'node:fs';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestValidationError } from './issues.ts';
import { isManifestFileName, type ManifestFile } from './load.ts';
import { validateManifests, type Desired, type ValidateOptions } from './validate.ts';

export class ManifestSourceError extends NatopsError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/** Where a skipped file is reported. */
export type Warn = (message: string) => void;

/** The default: natops's CLI and `natops serve` both print warnings on stderr. */
export const warnOnStderr: Warn = (message) => void process.stderr.write(`natops: warning: ${message}\n`);

export interface ReadOptions {
  /** told about each file skipped (symbolic links); default warnOnStderr */
  warn?: Warn;
  /** the operator's rules: what one file may hold (default DEFAULT_LOAD_LIMITS) and the workload policy (DEFAULT_WORKLOAD_POLICY) */
  limits?: ValidateOptions;
}

/**
 * A link is never read: its target may be anything on the machine (/etc/passwd) or outside the
 * reviewed tree, and a manifest must be what the tree itself holds.
 */
export function symlinkSkipped(path: string, target: string): string {
  return `${path} is a symbolic link (to ${target}); skipped: natops reads only regular files`;
}

/**
 * Files are named as the user wrote the path, so error positions can be pasted into an editor.
 * `path` itself may be a link (the user named it); links inside the tree are skipped with a warning.
 */
export async function readManifestDir(path: string, opts: ReadOptions = {}): Promise<ManifestFile[]> {
  const warn = opts.warn ?? warnOnStderr;
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new ManifestSourceError(path, 'no such file or directory');
  if (info.isFile()) return [await readManifestFile(path)];
  // Recursive readdir reports links as links (it does not follow them) and does not descend into them.
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  const at = (e: Dirent) => join(e.parentPath ?? e.path, e.name);
  const links = entries
    .filter((e) => e.isSymbolicLink())
    .map(at)
    .sort();
  for (const link of links) warn(symlinkSkipped(link, await readlink(link).catch(() => '?')));
  const names = entries
    .filter((e) => e.isFile() && isManifestFileName(e.name))
    .map(at)
    .sort();
  if (names.length === 0) {
    const skipped = links.length ? ` (${links.length} symbolic link${links.length === 1 ? '' : 's'} skipped)` : '';
    throw new ManifestSourceError(path, `holds no *.yaml or *.yml files${skipped}`);
  }
  return Promise.all(names.map(readManifestFile));
}

/** Reads and validates a manifest tree; throws ManifestValidationError listing every problem. */
export async function readDesired(path: string, opts: ReadOptions = {}): Promise<Desired> {
  const { desired, issues } = validateManifests(await readManifestDir(path, opts), opts.limits);
  if (issues.length) throw new ManifestValidationError(issues);
  return desired;
}

/** A file with its bytes, so the loader can tell a file that is not UTF-8 from one that is. */
async function readManifestFile(path: string): Promise<ManifestFile> {
  const bytes = await readFile(path);
  return { path, text: bytes.toString('utf8'), bytes };
}
