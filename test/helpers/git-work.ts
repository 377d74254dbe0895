// A Git work tree for a test: clone a repository, write manifests as the whole tracked tree,
// commit, push. The pipeline harness and the chart's end-to-end test push through it.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../common/exec.ts';
import { toFiles, type SeedObjects } from './manifests.ts';

export type Tree = SeedObjects | { path: string; text: string }[];

export class WorkTree {
  /** epoch ms around the last `git push` (with a local bare repository it returns once the hook has delivered) */
  lastPush = { start: 0, end: 0 };

  private constructor(readonly dir: string) {}

  /** A clone of `remote` (a path or URL) at `dir`, with a committer of its own. */
  static async clone(remote: string, dir: string): Promise<WorkTree> {
    await run(['git', 'clone', '--quiet', remote, dir]);
    for (const [k, v] of [
      ['user.name', 'natops test'],
      ['user.email', 'test@example.com'],
      ['commit.gpgsign', 'false'],
    ] as const) {
      await run(['git', '-C', dir, 'config', k, v]);
    }
    return new WorkTree(dir);
  }

  /** Writes the manifests as the whole tracked tree and commits, without pushing; returns the commit. */
  async commit(tree: Tree, message: string): Promise<string> {
    for (const f of await readdir(this.dir))
      if (f !== '.git') await rm(join(this.dir, f), { recursive: true, force: true });
    for (const f of Array.isArray(tree) ? tree : toFiles(tree)) {
      await mkdir(dirname(join(this.dir, f.path)), { recursive: true });
      await writeFile(join(this.dir, f.path), f.text);
    }
    await run(['git', '-C', this.dir, 'add', '-A']);
    await run(['git', '-C', this.dir, 'commit', '--quiet', '--allow-empty', '-m', message]);
    return (await run(['git', '-C', this.dir, 'rev-parse', 'HEAD'])).stdout.trim();
  }

  /** Commits and pushes to origin's main; returns the commit. */
  async push(tree: Tree, message = 'change'): Promise<string> {
    const sha = await this.commit(tree, message);
    const start = performance.timeOrigin + performance.now();
    await run(['git', '-C', this.dir, 'push', '--quiet', 'origin', 'HEAD:main']);
    this.lastPush = { start, end: performance.timeOrigin + performance.now() };
    return sha;
  }
}
