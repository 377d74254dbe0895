// `natops preview` on a real local repository: the head commit's manifests against the base's.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { natops } from '../helpers/cli.ts';
import { seedObjects, set, toFiles, type SeedObjects } from '../helpers/manifests.ts';

describe('natops preview', () => {
  let dir: string;
  let work: string;
  const commits: Record<'seed' | 'moved' | 'invalid', string> = { seed: '', moved: '', invalid: '' };
  const git = (...args: string[]) => run(['git', '-C', work, ...args]);

  async function commit(seed: SeedObjects, message: string): Promise<string> {
    for (const f of toFiles(seed)) await writeFile(join(work, 'net', f.path), f.text);
    await git('add', '-A');
    await git('commit', '--quiet', '-m', message);
    return (await git('rev-parse', 'HEAD')).stdout.trim();
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-preview-'));
    work = join(dir, 'work');
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    await git('config', 'user.email', 't@example.com');
    await git('config', 'user.name', 't');
    await mkdir(join(work, 'net'));
    await writeFile(join(work, 'README.md'), 'not a manifest\n');
    const seed = await seedObjects();
    commits.seed = await commit(seed, 'seed');
    await git('tag', 'v1');
    set(seed.gateway, 'spec.dnatRules.0.internalIp', '10.0.1.11');
    commits.moved = await commit(seed, 'move the port forward');
    await git('branch', 'moved');
    set(seed.gateway, 'spec.snatRules.0.eip', '192.168.0.200');
    commits.invalid = await commit(seed, 'an SNAT on an EIP the gateway does not have');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('--format text: the gateway, the changed port forward and the exact rule diff', async () => {
    const r = await natops([
      'preview',
      '--repo',
      work,
      '--path',
      'net',
      '--base',
      'v1',
      '--head',
      'moved',
      '--format',
      'text',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'NAT preview v1 -> moved',
        '',
        'The head is valid. 1 gateway: 1 to update.',
        '',
        '  gateway ngw  update  EIPs +0 ~0 -0, floating IPs +0 ~0 -0, port forwards +0 ~1 -0, SNATs +0 ~0 -0, routes +0 ~0 -0',
        '',
        'gateway ngw: update',
        '  ~ port forward tcp 192.168.0.112:8888 -> 10.0.1.10:80 => tcp 192.168.0.112:8888 -> 10.0.1.11:80  (open connections through the old mapping are cut)',
        '  rule diff (2 lines):',
        '    + -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.11:80',
        '    - -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
        '',
      ].join('\n'),
    );
  });

  it('--format markdown: the summary row, the table and the rule diff block; commit ids work as refs', async () => {
    const r = await natops([
      'preview',
      '--repo',
      join(work, '.git'),
      '--path',
      'net',
      '--base',
      commits.seed,
      '--head',
      commits.moved,
      '--format',
      'markdown',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.stdout.startsWith(
        `### NAT preview: \`${commits.seed}\` → \`${commits.moved}\`\n\n✅ **The head is valid.** 1 gateway: 1 to update.\n`,
      ),
      r.stdout,
    );
    assert.match(
      r.stdout,
      /^\| gateway `ngw` \| update \| \+0 ~0 -0 \| \+0 ~0 -0 \| \+0 ~1 -0 \| \+0 ~0 -0 \| \+0 ~0 -0 \|$/m,
    );
    assert.match(
      r.stdout,
      /^\| port forward \| changed \| `tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.10:80` \| `tcp 192\.168\.0\.112:8888 -> 10\.0\.1\.11:80` \| open connections through the old mapping are cut \|$/m,
    );
    assert.ok(
      r.stdout.includes(
        [
          '<details><summary>Rule diff of gateway <code>ngw</code> (2 lines)</summary>',
          '',
          '```diff',
          '+ -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.11:80',
          '- -t nat -A SHARED_DNAT -d 192.168.0.112/32 -p tcp -m tcp --dport 8888 -j DNAT --to-destination 10.0.1.10:80',
          '```',
          '',
          '</details>',
        ].join('\n'),
      ),
    );
  });

  it('--limit cuts the Markdown and names the command that shows all of it', async () => {
    const r = await natops([
      'preview',
      '--repo',
      work,
      '--path',
      'net',
      '--base',
      'v1',
      '--head',
      'moved',
      '--format',
      'markdown',
      '--limit',
      '600',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.length <= 601, `${r.stdout.length} characters`);
    assert.match(
      r.stdout,
      /Cut to fit the 600-character limit: the rule diff of gateway `ngw` \(2 lines\) and the 1 removal or change of gateway `ngw`\. Run `natops preview --base v1 --head moved --path net` for all of it\./,
    );
  });

  it('an invalid head: the preview still printed, the error at file:line, exit 1', async () => {
    const r = await natops(['preview', '--repo', work, '--path', 'net', '--base', 'moved', '--head', 'main']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^ {2}gateway ngw {2}invalid \(1 validation error\): keeps what it has live$/m);
    assert.match(
      r.stdout,
      /^ {2}net\/30-nat-gateway\.yaml:\d+:\d+ {2}VpcNatGateway\/ngw {2}spec\.snatRules\[0\]\.eip: 192\.168\.0\.200 is not one of this gateway's EIPs/m,
    );
    assert.doesNotMatch(r.stdout, /delete/);
  });

  it('a head over NATOPS_MANIFEST_MAX_FILES: refused as a whole, the setting named, exit 1', async () => {
    const r = await natops(['preview', '--repo', work, '--path', 'net', '--base', 'v1', '--head', 'moved'], {
      env: { NATOPS_MANIFEST_MAX_FILES: '2' },
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /manifest files, more than NATOPS_MANIFEST_MAX_FILES \(2\); none was read/);
    assert.match(r.stdout, /refused as a whole/);
  });

  it('an unknown ref or a directory outside any repository: a clear error, exit 2, nothing printed', async () => {
    const r = await natops(['preview', '--repo', work, '--base', 'v1', '--head', 'no-such-branch']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^natops: .*: "no-such-branch" is not a branch, tag or commit of the repository\n$/);
    const bad = await natops(['preview', '--repo', work, '--base', '--upload-pack=x', '--head', 'main']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad ref "--upload-pack=x"/);
    const nowhere = await natops(['preview', '--repo', dir, '--base', 'v1', '--head', 'main']);
    assert.equal(nowhere.code, 2);
    assert.match(nowhere.stderr, /is not in a git repository/);
    const usage = await natops(['preview', '--base', 'v1']);
    assert.equal(usage.code, 2, 'a usage error is not "invalid head" (1)');
  });

  it("without --repo, the current directory's repository", async () => {
    // natops runs in the project's own checkout, whose seed is the same at any commit
    const r = await natops(['preview', '--path', 'examples/seed', '--base', 'HEAD', '--head', 'HEAD']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}gateway ngw {2}unchanged {2}EIPs \+0 ~0 -0/m);
  });
});
