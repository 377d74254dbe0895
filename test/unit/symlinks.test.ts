// Symbolic links in a manifest tree are skipped with a warning, never read as manifests: in Git
// (mode 120000 entries, whose blob is the link's target path) and on disk (where reading would
// follow the link, e.g. to /etc/passwd).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GitRepo } from '../../gitops/git/local-source.ts';
import { ManifestSourceError, readManifestDir } from '../../gitops/manifests/read-dir.ts';
import { run } from '../../common/exec.ts';

/** net/a.yaml, net/sub/b.yaml, and links: net/link.yaml -> a.yaml, net/passwd.yaml -> /etc/passwd, net/linkdir -> sub */
async function tree(root: string): Promise<void> {
  await mkdir(join(root, 'net', 'sub'), { recursive: true });
  await writeFile(join(root, 'net', 'a.yaml'), 'kind: A\n');
  await writeFile(join(root, 'net', 'sub', 'b.yaml'), 'kind: B\n');
  await symlink('a.yaml', join(root, 'net', 'link.yaml'));
  await symlink('/etc/passwd', join(root, 'net', 'passwd.yaml'));
  await symlink('sub', join(root, 'net', 'linkdir'));
}

const LINKS = ['link.yaml', 'passwd.yaml', 'linkdir'];

describe('symbolic links in the manifest tree', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-symlinks-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('in a Git commit: skipped with a warning each, their target never read', async () => {
    const work = join(dir, 'work');
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    await tree(work);
    await run(['git', '-C', work, 'add', '-A']);
    await run([
      'git',
      '-C',
      work,
      '-c',
      'user.name=t',
      '-c',
      'user.email=t@example.com',
      'commit',
      '--quiet',
      '-m',
      'links',
    ]);
    const sha = (await run(['git', '-C', work, 'rev-parse', 'HEAD'])).stdout.trim();
    const mode = (await run(['git', '-C', work, 'ls-tree', sha, 'net/passwd.yaml'])).stdout;
    assert.match(mode, /^120000 blob /, 'git holds the link as a link');

    const warnings: string[] = [];
    const files = await new GitRepo(join(work, '.git')).manifestsAt(sha, 'net', { warn: (m) => warnings.push(m) });
    assert.deepEqual(
      files.map(({ path, text }) => ({ path, text })),
      [
        { path: 'net/a.yaml', text: 'kind: A\n' },
        { path: 'net/sub/b.yaml', text: 'kind: B\n' },
      ],
    );
    assert.equal(warnings.length, LINKS.length, warnings.join('\n'));
    for (const link of LINKS)
      assert.ok(
        warnings.some((w) => w.includes(`net/${link}`) && /symbolic link/.test(w) && /skipped/.test(w)),
        `${link}: ${warnings.join('\n')}`,
      );
    assert.ok(
      warnings.some((w) => w.includes('/etc/passwd')),
      'the warning names the target',
    );
  });

  it('in a directory on disk: skipped with a warning each, their target never read', async () => {
    const root = join(dir, 'disk');
    await tree(root);
    const warnings: string[] = [];
    const files = await readManifestDir(join(root, 'net'), { warn: (m) => warnings.push(m) });
    assert.deepEqual(
      files.map(({ path, text }) => ({ path, text })),
      [
        { path: join(root, 'net', 'a.yaml'), text: 'kind: A\n' },
        { path: join(root, 'net', 'sub', 'b.yaml'), text: 'kind: B\n' },
      ],
    );
    assert.equal(warnings.length, LINKS.length, warnings.join('\n'));
    for (const link of LINKS)
      assert.ok(
        warnings.some((w) => w.includes(join(root, 'net', link)) && /symbolic link/.test(w) && /skipped/.test(w)),
        `${link}: ${warnings.join('\n')}`,
      );

    // Only links: nothing to read, and the error says why.
    const onlyLinks = join(dir, 'only-links');
    await mkdir(onlyLinks);
    await symlink('/etc/passwd', join(onlyLinks, 'passwd.yaml'));
    await assert.rejects(readManifestDir(onlyLinks, { warn: () => undefined }), (e: unknown) => {
      assert.ok(e instanceof ManifestSourceError);
      assert.match(e.message, /holds no \*\.yaml or \*\.yml files \(1 symbolic link skipped\)/);
      return true;
    });
  });
});
