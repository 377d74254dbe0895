// The remote Git source against real git: a file:// remote, git's smart-HTTP backend behind a
// real https server asking for basic auth, and ssh through a stand-in `ssh` that runs the
// remote's command locally (no sshd here) and logs the options natops gave it. Every git that
// natops runs goes through a git on PATH that logs its argv: the credential is never in one.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { GitCredentialsError } from '../../gitops/git/remote-auth.ts';
import { RemoteGitSource } from '../../gitops/git/remote-source.ts';
import { parseRemoteUrl, RemoteUrlError } from '../../gitops/git/remote-url.ts';
import { GitSourceError, ManifestLimitError, UnknownCommitError } from '../../gitops/git/source.ts';
import { natops } from '../helpers/cli.ts';
import { ConfigError, loadConfig } from '../../server/config.ts';
import { startGitHttps, type GitHttpsServer } from '../helpers/git-https.ts';

const TOKEN = 'natops-test-token-s3cr3t';

describe('remote git source', () => {
  let dir: string;
  let origin: string;
  let work: string;
  let gitLog: string;
  let savedPath: string | undefined;
  let https: GitHttpsServer;
  const git = (...args: string[]) => run(['git', '-C', work, ...args]);
  /** a commit on main, pushed to the remote */
  const commit = async (files: Record<string, string>, message: string): Promise<string> => {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(work, path, '..'), { recursive: true });
      await writeFile(join(work, path), text);
    }
    await git('add', '-A');
    await git('commit', '--quiet', '--allow-empty', '-m', message);
    await git('push', '--quiet', '--force', 'origin', 'HEAD:main');
    return (await git('rev-parse', 'HEAD')).stdout.trim();
  };
  const gitRuns = async (f: () => Promise<unknown>): Promise<string[]> => {
    await writeFile(gitLog, '');
    await f();
    return (await readFile(gitLog, 'utf8')).split('\n').filter(Boolean);
  };
  const source = (url: string, more: Partial<ConstructorParameters<typeof RemoteGitSource>[0]> = {}) =>
    new RemoteGitSource({ url, dataDir: join(dir, 'data'), depth: 5, fetchTimeoutMs: 20_000, ...more });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-remote-'));
    origin = join(dir, 'srv', 'gitops.git');
    work = join(dir, 'work');
    await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', origin]);
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    for (const [k, v] of [
      ['user.name', 't'],
      ['user.email', 't@example.com'],
      ['commit.gpgsign', 'false'],
    ] as const)
      await git('config', k, v);
    await git('remote', 'add', 'origin', origin);
    const realGit = (await run(['sh', '-c', 'command -v git'])).stdout.trim();
    gitLog = join(dir, 'git.log');
    await mkdir(join(dir, 'bin'));
    await writeFile(
      join(dir, 'bin', 'git'),
      // (a fetch while the file `slow` exists hangs: a remote that stopped answering)
      `#!/bin/sh\nfor a in "$@"; do printf '%s ' "$a" >> '${gitLog}'; done; echo >> '${gitLog}'\n` +
        `case " $* " in *" fetch "*) [ -e '${join(dir, 'slow')}' ] && sleep 3 ;; esac\nexec '${realGit}' "$@"\n`,
      { mode: 0o755 },
    );
    // ssh stand-in: logs its argv, then runs the remote's command (`git-upload-pack '/path'`) here.
    await writeFile(
      join(dir, 'bin', 'ssh'),
      `#!/bin/sh\nprintf '%s\\n' "$*" >> '${gitLog}.ssh'\nfor last; do :; done\nexec sh -c "$last"\n`,
      { mode: 0o755 },
    );
    savedPath = process.env.PATH;
    process.env.PATH = `${join(dir, 'bin')}:${savedPath}`;
    https = await startGitHttps(join(dir, 'srv'), dir, 'natops', TOKEN);
  });
  after(async () => {
    process.env.PATH = savedPath;
    await https?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses URLs that are not https, ssh or file, and anything git could read as an option or transport', () => {
    for (const url of [
      '-uhttps://x/y',
      '--upload-pack=touch /tmp/p',
      'ext::sh -c touch% /tmp/pwned',
      'fd::17',
      'git://127.0.0.1/repo.git',
      'http://example.com/repo.git',
      'https://user:secret@example.com/repo.git',
      'https://example.com/repo.git foo',
      'https://example.com/repo.git?private_token=abc',
      'ssh://git@example.com/repo.git?x=1',
      'ftp://example.com/repo.git',
      'ssh://-oProxyCommand=x/repo',
      '-oProxyCommand=x:repo',
      'git@host:-repo',
      'file://host/repo.git',
      '/abs/path/repo.git',
      '',
    ]) {
      assert.throws(
        () => parseRemoteUrl(url),
        (e: unknown) => e instanceof RemoteUrlError && e.retryable === false && e.message.includes('NATOPS_GIT_URL'),
        url,
      );
    }
    assert.doesNotMatch(
      String(
        (() => {
          try {
            parseRemoteUrl('https://u:secret@example.com/r.git');
          } catch (e) {
            return e;
          }
        })(),
      ),
      /secret/,
      'a refused URL is named without its password',
    );
    for (const url of [
      'https://git.example.com/org/repo.git',
      'ssh://git@git.example.com:2222/org/repo.git',
      'git@github.com:org/repo.git',
      'file:///srv/git/repo.git',
    ])
      assert.equal(parseRemoteUrl(url).url, url);
  });

  it('file://: reads the branch head and its manifests after a push; a new push is seen on the next fetch', async () => {
    const first = await commit({ 'net/a.yaml': 'kind: A\n', 'net/notes.txt': 'x' }, 'one');
    const s = source(`file://${origin}`);
    assert.equal(await s.branchHead('main'), first);
    assert.deepEqual(
      (await s.manifestsAt(first, 'net')).map(({ path, text }) => ({ path, text })),
      [{ path: 'net/a.yaml', text: 'kind: A\n' }],
    );
    const second = await commit({ 'net/a.yaml': 'kind: A2\n' }, 'two');
    assert.equal(await s.branchHead('main'), second, 'fetched again');
    assert.equal((await s.manifestsAt(second, 'net'))[0]!.text, 'kind: A2\n');
    assert.equal(await s.isAncestor(first, second), true);
    assert.equal(await s.branchHead('no-such-branch'), undefined);
    assert.equal(s.name, `file://${origin}`, 'messages name the URL, not the mirror');
  });

  it('shallow: the mirror holds at most `depth` commits of history; an older ancestor is found by deepening', async () => {
    const s = source(`file://${origin}`);
    const start = await s.branchHead('main');
    const shas: string[] = [];
    for (let i = 0; i < 12; i++) shas.push(await commit({ [`net/n${i}.yaml`]: `kind: N${i}\n` }, `n${i}`));
    const head = await s.branchHead('main');
    assert.equal(head, shas.at(-1));
    assert.equal(
      (await run(['git', `--git-dir=${s.gitDir}`, 'rev-parse', '--is-shallow-repository'])).stdout.trim(),
      'true',
    );
    const count = Number((await run(['git', `--git-dir=${s.gitDir}`, 'rev-list', '--count', head!])).stdout.trim());
    assert.ok(count <= 5, `${count} commits reachable in the mirror`);
    // 12 commits later, the first is beyond the depth: deepened until found.
    assert.equal(await s.isAncestor(start!, head!), true);
    assert.equal(await s.isAncestor(head!, start!), false);
    assert.equal(await s.hasCommit(shas[0]!), true);
    // A fresh mirror: the merge base beyond the depth is found by deepening too.
    const fresh = source(`file://${origin}`, { dataDir: join(dir, 'data-fresh') });
    assert.equal(await fresh.branchHead('main'), head);
    assert.equal(await fresh.mergeBase(shas[0]!, head!), shas[0]);
  });

  it('a commit the remote no longer has: UnknownCommitError once the history is whole', async () => {
    const s = source(`file://${origin}`);
    const kept = await git('rev-parse', 'HEAD');
    const lost = await commit({ 'net/lost.yaml': 'kind: Lost\n' }, 'lost');
    await s.branchHead('main');
    await git('reset', '--quiet', '--hard', 'HEAD~1');
    const rewritten = await commit({ 'net/other.yaml': 'kind: Other\n' }, 'rewritten');
    await run(['git', `--git-dir=${s.gitDir}`, 'reflog', 'expire', '--expire=now', '--all']);
    assert.equal(await s.branchHead('main'), rewritten);
    await run(['git', `--git-dir=${s.gitDir}`, 'gc', '--quiet', '--prune=now']);
    await assert.rejects(s.isAncestor(lost, rewritten), (e: unknown) => e instanceof UnknownCommitError);
    assert.equal(await s.isAncestor(kept.stdout.trim(), rewritten), true);
    assert.equal(
      (await run(['git', `--git-dir=${s.gitDir}`, 'rev-parse', '--is-shallow-repository'])).stdout.trim(),
      'false',
    );
  });

  it('per-commit limits: refused from the tree, before any blob is read (the local reading, reused)', async () => {
    const s = source(`file://${origin}`);
    const head = (await s.branchHead('main'))!;
    const runs = await gitRuns(() =>
      assert.rejects(s.manifestsAt(head, 'net', { limits: { maxFiles: 2 } }), ManifestLimitError),
    );
    assert.ok(runs.some((r) => / ls-tree /.test(r)) && !runs.some((r) => / cat-file /.test(r)), runs.join('\n'));
  });

  it('one fetch at a time: callers arriving together share a fetch', async () => {
    const s = source(`file://${origin}`);
    const runs = await gitRuns(async () => {
      const heads = await Promise.all(Array.from({ length: 6 }, () => s.branchHead('main')));
      assert.equal(new Set(heads).size, 1);
    });
    const fetches = runs.filter((r) => / fetch /.test(r)).length;
    assert.ok(fetches >= 1 && fetches <= 2, runs.join('\n'));
  });

  it('a remote that cannot be reached: a retryable GitSourceError naming the URL', async () => {
    const s = source(`file://${dir}/no-such.git`);
    await assert.rejects(s.branchHead('main'), (e: unknown) => {
      assert.ok(e instanceof GitSourceError && e.retryable, String(e));
      assert.match(e.message, new RegExp(`^file://${dir}/no-such.git: fetching main failed`));
      return true;
    });
  });

  it('a fetch that hangs is killed at its timeout (retryable); locks a killed fetch left do not block the next', async () => {
    const s = source(`file://${origin}`, { fetchTimeoutMs: 1000 });
    const head = (await git('rev-parse', 'HEAD')).stdout.trim();
    await writeFile(join(dir, 'slow'), '');
    try {
      await assert.rejects(s.branchHead('main'), (e: unknown) => {
        assert.ok(e instanceof GitSourceError && e.retryable, String(e));
        assert.match(e.message, /fetch did not finish within 1000 ms/);
        return true;
      });
    } finally {
      await rm(join(dir, 'slow'));
    }
    // What a fetch killed mid-way leaves, found by a process starting on the same data dir.
    await writeFile(join(s.gitDir, 'shallow.lock'), '');
    await writeFile(join(s.gitDir, 'refs', 'heads', 'main.lock'), '');
    assert.equal(await source(`file://${origin}`).branchHead('main'), head);
  });

  it('https with basic auth: the token goes from its file to the server, never into an argv or a message', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const url = `${https.url}gitops.git`;
    const s = source(url, { credentials: { tokenFile, username: 'natops', caFile: https.caFile } });
    const head = (await git('rev-parse', 'HEAD')).stdout.trim();
    const runs = await gitRuns(async () => assert.equal(await s.branchHead('main'), head));
    assert.ok(https.seen.includes(`natops:${TOKEN}`), 'the server saw the credential');
    assert.ok(runs.some((r) => r.includes(url)));
    assert.ok(!runs.some((r) => r.includes(TOKEN)), runs.join('\n'));
    assert.ok((await s.manifestsAt(head, 'net')).length > 0);
    // The askpass script holds no secret, and answers for the URL's host only (a redirect elsewhere gets nothing).
    const askpass = join(dir, 'data', 'git', 'auth', 'askpass.sh');
    assert.doesNotMatch(await readFile(askpass, 'utf8'), new RegExp(TOKEN));
    const host = new URL(https.url).host;
    const ask = (prompt: string) =>
      run([askpass, prompt], {
        okExitCodes: [0, 1],
        env: { GIT_NATOPS_HOST: host, GIT_NATOPS_USERNAME: 'natops', GIT_NATOPS_PASSWORD_FILE: tokenFile },
      });
    assert.equal((await ask(`Username for 'https://${host}': `)).stdout, 'natops\n');
    assert.equal((await ask(`Password for 'https://natops@${host}': `)).stdout.trim(), TOKEN);
    for (const other of [`Password for 'https://natops@evil.example': `, `Password for 'https://${host}.evil': `]) {
      const r = await ask(other);
      assert.deepEqual([r.code, r.stdout], [1, ''], other);
    }
    // A wrong token: refused by the server, retryable, and the message does not carry it.
    const wrong = join(dir, 'wrong');
    await writeFile(wrong, 'wrong-token-value');
    const bad = new RemoteGitSource({
      url,
      dataDir: join(dir, 'data-wrong'),
      credentials: { tokenFile: wrong, username: 'natops', caFile: https.caFile },
    });
    await assert.rejects(bad.branchHead('main'), (e: unknown) => {
      assert.ok(e instanceof GitSourceError && e.retryable, String(e));
      assert.doesNotMatch(e.message, /wrong-token-value/);
      return true;
    });
    // No CA given: the self-signed server is not trusted.
    const untrusted = new RemoteGitSource({ url, dataDir: join(dir, 'data-ca'), credentials: { tokenFile } });
    await assert.rejects(untrusted.branchHead('main'), /certificate|SSL/i);
  });

  it('ssh: the key and known_hosts files go to ssh, host keys checked strictly, no agent', async () => {
    const key = join(dir, 'id_test');
    const known = join(dir, 'known_hosts');
    await writeFile(key, 'not a real key\n', { mode: 0o600 });
    await writeFile(known, '');
    await writeFile(`${gitLog}.ssh`, '');
    const s = source(`git@127.0.0.1:${origin}`, { credentials: { sshKeyFile: key, knownHostsFile: known } });
    assert.equal(await s.branchHead('main'), (await git('rev-parse', 'HEAD')).stdout.trim());
    const ssh = await readFile(`${gitLog}.ssh`, 'utf8');
    for (const opt of [
      `-i ${key}`,
      `UserKnownHostsFile=${known}`,
      'StrictHostKeyChecking=yes',
      'IdentitiesOnly=yes',
      'BatchMode=yes',
    ])
      assert.ok(ssh.includes(opt), `${opt} in ${ssh}`);
    assert.match(ssh, /git@127\.0\.0\.1/);
  });

  it('credentials that cannot work stop the start, by setting', async () => {
    const check = (url: string, credentials: object) =>
      source(url, { credentials })
        .check()
        .then(
          () => 'ok',
          (e: unknown) => (e instanceof GitCredentialsError ? e.message : `unexpected ${String(e)}`),
        );
    assert.match(await check('https://h/r.git', { tokenFile: join(dir, 'missing') }), /token file .* missing/);
    assert.match(await check(`file://${origin}`, { tokenFile: join(dir, 'token') }), /for an https:\/\/ URL/);
    assert.match(await check('https://h/r.git', { sshKeyFile: join(dir, 'id_test') }), /for an ssh URL/);
    assert.match(await check('git@h:r.git', { sshKeyFile: "/tmp/a'b" }), /absolute path of letters/);
    assert.match(await check('https://h/r.git', { passwordFile: join(dir, 'token') }), /needs NATOPS_GIT_USERNAME/);
  });
});

describe('remote git source: settings', () => {
  it('NATOPS_SOURCE=git-url with NATOPS_GIT_URL and credential files; a bad URL is a configuration error by name', () => {
    const c = loadConfig(
      {},
      {
        NATOPS_SOURCE: 'git-url',
        NATOPS_GIT_URL: 'https://git.example.com/org/gitops.git',
        NATOPS_GIT_TOKEN_FILE: '/var/run/secrets/git/token',
        NATOPS_GIT_DEPTH: '20',
      },
    );
    assert.deepEqual(
      [c.source, c.gitUrl, c.gitTokenFile, c.gitDepth, c.gitFetchTimeoutMs],
      ['git-url', 'https://git.example.com/org/gitops.git', '/var/run/secrets/git/token', 20, 120_000],
    );
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig({}, env);
        return 'accepted';
      } catch (e) {
        assert.ok(e instanceof ConfigError, String(e));
        return e.message;
      }
    };
    assert.match(bad({ NATOPS_SOURCE: 'git-url' }), /NATOPS_GIT_URL: 'git-url' needs NATOPS_GIT_URL/);
    assert.match(
      bad({ NATOPS_SOURCE: 'git-url', NATOPS_GIT_URL: 'ext::sh%20-c%20id' }),
      /NATOPS_GIT_URL: .*"<transport>::" form/,
    );
    assert.match(bad({ NATOPS_SOURCE: 'git-url', NATOPS_GIT_URL: '--upload-pack=id' }), /NATOPS_GIT_URL: .*option/);
    const withPassword = bad({ NATOPS_SOURCE: 'git-url', NATOPS_GIT_URL: 'https://u:hunter2@h/r.git' });
    assert.match(withPassword, /carries a password/);
    assert.doesNotMatch(withPassword, /hunter2/);
    assert.match(bad({ NATOPS_GIT_URL: 'https://h/r.git' }), /only with NATOPS_SOURCE=git-url/);
  });

  it('natops serve --git-url: a refused URL or a missing credential file stops the start, by name', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'natops-remote-cli-'));
    try {
      const refused = await natops(['serve', '--git-url', 'ext::sh%20-c%20id'], { env: { NATOPS_DATA_DIR: dataDir } });
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /NATOPS_GIT_URL: "ext::sh%20-c%20id": uses the "<transport>::" form/);
      const missing = await natops(
        ['serve', '--git-url', 'https://git.example.com/a/b.git', '--redis', 'redis://127.0.0.1:1'],
        {
          env: { NATOPS_DATA_DIR: dataDir, NATOPS_GIT_TOKEN_FILE: join(dataDir, 'no-token') },
        },
      );
      assert.equal(missing.code, 2, missing.stderr);
      assert.match(missing.stderr, /token file .*no-token is missing or not readable/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
