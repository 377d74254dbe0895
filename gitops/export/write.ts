// Writes `natops export`'s files: one per object, `<kind folder>/<name>.yaml`, into a directory
// that is empty or made here, or (with force) one that already holds an export.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NatopsError } from '../../common/errors.ts';
import { EXPORT_KINDS, exportPath, renderManifest, type ClusterObject } from './clean.ts';

export class ExportTargetError extends NatopsError {
  constructor(
    readonly dir: string,
    reason: string,
  ) {
    super(`${dir}: ${reason}`, { retryable: false });
  }
}

export interface ExportFile {
  /** relative to the output directory */
  path: string;
  text: string;
  kind: string;
}

/** The files of an export, sorted by path; an object whose name cannot be a file name is refused. */
export function exportFiles(objects: readonly ClusterObject[]): ExportFile[] {
  const files = new Map<string, ExportFile>();
  for (const obj of objects) {
    const path = exportPath(obj);
    if (!path)
      throw new NatopsError(
        `${obj.kind}/${obj.metadata.name}: not a kind export writes, or a name that is not a Kubernetes name`,
        { retryable: false },
      );
    if (files.has(path)) throw new NatopsError(`${path}: two objects would be written to it`, { retryable: false });
    files.set(path, { path, text: renderManifest(obj), kind: obj.kind });
  }
  return [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Writes the files under `dir`. A directory that holds anything is refused unless `force`; then
 * the export's own folders lose the *.yaml files this export does not write (objects gone from
 * the cluster), and nothing else in `dir` is touched.
 */
export async function writeExport(dir: string, files: readonly ExportFile[], force: boolean): Promise<void> {
  const existing = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new ExportTargetError(dir, `cannot read it: ${e.message}`);
  });
  if (existing.length && !force)
    throw new ExportTargetError(
      dir,
      'is not empty; give an empty or new directory, or --force to write over an earlier export',
    );
  await mkdir(dir, { recursive: true });
  const keep = new Set(files.map((f) => f.path));
  if (force)
    for (const k of EXPORT_KINDS) {
      const names = await readdir(join(dir, k.dir)).catch(() => [] as string[]);
      for (const n of names)
        if (n.endsWith('.yaml') && !keep.has(`${k.dir}/${n}`)) await rm(join(dir, k.dir, n), { force: true });
    }
  for (const f of files) {
    const path = join(dir, f.path);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, f.text);
  }
}
