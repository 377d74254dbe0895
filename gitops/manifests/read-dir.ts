// Reads manifest files from disk: a directory (recursively) or a single file.
import { NatopsError } from '../../common/errors.ts';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestValidationError } from './issues.ts';
import { isManifestFileName, type ManifestFile } from './load.ts';
import { validateManifests, type Desired } from './validate.ts';

export class ManifestSourceError extends NatopsError {
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** Files are named as the user wrote the path, so error positions can be pasted into an editor. */
export async function readManifestDir(path: string): Promise<ManifestFile[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new ManifestSourceError(path, 'no such file or directory');
  if (info.isFile()) return [{ path, text: await readFile(path, 'utf8') }];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  const names = entries
    .filter((e) => e.isFile() && isManifestFileName(e.name))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
  if (names.length === 0) throw new ManifestSourceError(path, 'holds no *.yaml or *.yml files');
  return Promise.all(names.map(async (name) => ({ path: name, text: await readFile(name, 'utf8') })));
}

/** Reads and validates a manifest tree; throws ManifestValidationError listing every problem. */
export async function readDesired(path: string): Promise<Desired> {
  const { desired, issues } = validateManifests(await readManifestDir(path));
  if (issues.length) throw new ManifestValidationError(issues);
  return desired;
}
