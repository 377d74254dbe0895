// One natops serve per data directory: the lock file, its refusal, and taking over a stale one.
// The directory is private (0700): it holds secrets and the Redis append-only file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DataDirBusyError, LOCK_FILE, lockDataDir, PrivateDirError } from '../../server/data-dir.ts';

const modeOf = async (path: string) => ((await stat(path)).mode & 0o7777).toString(8);

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('lockDataDir', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'natops-datadir-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('refuses a second holder with a message naming the holder, and succeeds after release', async () => {
    const dir = join(root, 'twice');
    const lock = await lockDataDir(dir);
    assert.equal((await readFile(join(dir, LOCK_FILE), 'utf8')).split('\n')[0], String(process.pid));
    await assert.rejects(lockDataDir(dir), (e: unknown) => {
      assert.ok(e instanceof DataDirBusyError);
      assert.equal(e.pid, process.pid);
      assert.match(e.message, new RegExp(`^another natops serve \\(pid ${process.pid}\\) is using ${dir}`));
      return true;
    });
    await lock.release();
    await lock.release(); // twice is harmless
    const again = await lockDataDir(dir);
    await again.release();
  });

  it('takes over a lock whose holder is dead, or whose pid now belongs to another process', async () => {
    const dir = join(root, 'stale');
    await mkdir(dir);
    await writeFile(join(dir, LOCK_FILE), `${await deadPid()}\n`);
    const lock = await lockDataDir(dir);
    await lock.release();

    // Our own pid, but a start time that is not ours: the recorded holder is gone, the pid was reused.
    await writeFile(join(dir, LOCK_FILE), `${process.pid}\n00000000-0000-0000-0000-000000000000:1\n`);
    const again = await lockDataDir(dir);
    await again.release();

    // An unreadable lock file (not written by natops) is stale too.
    await writeFile(join(dir, LOCK_FILE), 'garbage');
    await (await lockDataDir(dir)).release();
  });

  it('another process holding it: refused naming that pid; after it is killed with SIGKILL, taken over', async () => {
    const dir = join(root, 'process');
    const holder = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        [
          `import { lockDataDir } from ${JSON.stringify(new URL('../../server/data-dir.ts', import.meta.url).pathname)};`,
          `await lockDataDir(${JSON.stringify(dir)});`,
          'process.stdout.write("locked\\n"); setInterval(() => undefined, 1000);',
        ].join('\n'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
        holder.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
      });
      await assert.rejects(
        lockDataDir(dir),
        new RegExp(`^DataDirBusyError: another natops serve \\(pid ${holder.pid}\\) is using ${dir}`),
      );
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) =>
        holder.exitCode !== null || holder.signalCode !== null ? r(undefined) : holder.once('exit', r),
      );
    }
    await (await lockDataDir(dir)).release();
  });

  it('makes the directory 0700: a new one (with its missing parents), and an existing 0755 one', async () => {
    const fresh = join(root, 'private', 'new');
    await (await lockDataDir(fresh)).release();
    assert.equal(await modeOf(fresh), '700');
    assert.equal(await modeOf(join(root, 'private')), '700');

    const existing = join(root, 'private', 'was-open');
    await mkdir(existing);
    await chmod(existing, 0o755);
    await (await lockDataDir(existing)).release();
    assert.equal(await modeOf(existing), '700');
  });

  it('refuses a shared directory (world-writable or sticky, like /tmp) rather than make it 0700', async () => {
    const shared = join(root, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o1777);
    await assert.rejects(lockDataDir(shared), (e: unknown) => {
      assert.ok(e instanceof PrivateDirError);
      assert.match(e.message, /shared/);
      return true;
    });
    assert.equal(await modeOf(shared), '1777');
  });

  it('release() leaves a lock that is no longer its own alone', async () => {
    const dir = join(root, 'stolen');
    const lock = await lockDataDir(dir);
    const other = `${process.pid}\nsomeone-else:1\n`;
    await writeFile(join(dir, LOCK_FILE), other);
    await lock.release();
    assert.equal(await readFile(join(dir, LOCK_FILE), 'utf8'), other);
  });
});
