// The data directory belongs to one `natops serve` at a time: it holds the local Redis's
// append-only file, which two writers would corrupt. A pid file made atomically is the lock; a
// holder that died (SIGKILL, power loss) leaves it behind, and the next start takes it over.
// Also the /proc process checks that pid files need, shared with the local Redis's record.
// The directory is private (0700): it holds secrets and the AOF, which keeps manifests and jobs.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NatopsError } from '../common/errors.ts';

export const LOCK_FILE = 'natops.pid';

export class DataDirBusyError extends NatopsError {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`another natops serve (pid ${pid}) is using ${dir}; stop it first, or give this one its own NATOPS_DATA_DIR`);
  }
}

export class DataDirLockError extends NatopsError {
  constructor(
    readonly dir: string,
    reason: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`cannot lock data directory ${dir}: ${reason}`, opts);
  }
}

export class PrivateDirError extends NatopsError {
  constructor(
    readonly dir: string,
    reason: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`cannot make ${dir} private (0700): ${reason}`, opts);
  }
}

/**
 * Makes `dir` (and any missing parent) 0700, and an existing `dir` 0700 too: an earlier version
 * or a hand-made directory may have left it 0755. A shared directory (world-writable or sticky,
 * like /tmp) is refused, not changed: it is a misconfiguration, and 0700 would break it for others.
 */
export async function makePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode } = await stat(dir);
  if (mode & 0o1002)
    throw new PrivateDirError(
      dir,
      `it is shared (mode ${(mode & 0o7777).toString(8)}); give natops a directory of its own`,
    );
  if ((mode & 0o777) === 0o700) return;
  await chmod(dir, 0o700).catch((e: NodeJS.ErrnoException) => {
    throw new PrivateDirError(dir, e.message, { cause: e });
  });
}

export interface DataDirLock {
  /** Removes the lock file if it is still this holder's; safe to call twice. */
  release(): Promise<void>;
}

/**
 * When a process started: "<boot id>:<start time in ticks since boot>", or undefined when no such
 * process runs (a zombie counts as gone). A pid alone can be reused by an unrelated process
 * after a reboot or a long uptime; pid plus start identifies one process.
 */
export async function processStart(pid: number): Promise<string | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return undefined;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  return `${boot}:${fields[19]}`;
}

/** The program name of a running process (/proc/PID/comm), or undefined when it is gone. */
export async function processName(pid: number): Promise<string | undefined> {
  if (!(await processStart(pid))) return undefined;
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined))?.trim();
}

interface Holder {
  pid: number;
  start: string | undefined;
}

/** Line 1: the pid (what `kill $(head -1 natops.pid)` wants); line 2: when it started. */
function parseLock(text: string): Holder | undefined {
  const [pid = '', start] = text.split('\n');
  if (!/^[1-9]\d*$/.test(pid)) return undefined;
  return { pid: Number(pid), start: start || undefined };
}

async function holderAlive(h: Holder): Promise<boolean> {
  const now = await processStart(h.pid);
  return now !== undefined && (h.start === undefined || h.start === now);
}

/** Creates `file` holding `text` only if it does not exist, never visible half-written. */
export async function createExclusive(file: string, text: string, mode = 0o644): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode });
  try {
    await link(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Takes the data directory for this process, or throws DataDirBusyError naming the live holder.
 * A lock whose holder is gone (or whose pid now belongs to another process) is taken over.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await makePrivateDir(dir);
  const file = join(dir, LOCK_FILE);
  const ours = `${process.pid}\n${await processStart(process.pid)}\n`;
  for (let attempt = 0; attempt < 10; attempt++) {
    if (await createExclusive(file, ours)) return { release: () => releaseIfOurs(file, ours) };
    const seen = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined; // released meanwhile: try again
      throw new DataDirLockError(dir, `cannot read ${file}: ${e.message}`, { cause: e });
    });
    if (seen === undefined) continue;
    const holder = parseLock(seen);
    if (holder && (await holderAlive(holder))) throw new DataDirBusyError(dir, holder.pid);
    await moveStaleAside(file, seen);
  }
  throw new DataDirLockError(dir, `${file} kept changing while natops tried to take it`);
}

/**
 * Removes the stale lock file, but only if it is still the stale one: two starts that both saw it
 * stale must not remove the fresh lock the faster one just made. Renaming is atomic, so only one
 * of them gets the file; if what it got is a fresh lock, it is put back.
 */
async function moveStaleAside(file: string, staleText: string): Promise<void> {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await rename(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    if ((await readFile(aside, 'utf8')) !== staleText) {
      await link(aside, file).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    }
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

async function releaseIfOurs(file: string, ours: string): Promise<void> {
  const now = await readFile(file, 'utf8').catch(() => undefined);
  if (now === ours) await unlink(file).catch(() => undefined);
}
