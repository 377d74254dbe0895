// `natops repo init`: a bare repository whose post-receive hook delivers each push (send.ts), with
// natops's settings in the repository's git config, where the hook finds them (repoSettings).
import { chmod, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../common/exec.ts';
import { runGit } from '../git/run-git.ts';
import type { RepoSettings } from './delivery.ts';

/**
 * The hook's entry: loads only what sending a delivery needs, so a push does not wait for the
 * whole CLI. From the sources, bin/natops-hook.js; from the bundle (this code in a file of
 * dist/cli/ or dist/chunks/), the copy in dist/bin/.
 */
const HOOK_BIN = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../../bin/natops-hook.js' : '../bin/natops-hook.js', import.meta.url),
);

/** A single-quoted sh word; the hook embeds only paths natops chose, but quote them anyway. */
function shWord(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export async function initRepo(path: string, settings: RepoSettings, branch = 'main'): Promise<string> {
  const dir = resolve(path);
  await run(['git', 'init', '--quiet', '--bare', `--initial-branch=${branch}`, '--', dir]);
  await runGit(dir, ['config', 'natops.webhookUrl', settings.webhookUrl]);
  await runGit(dir, ['config', 'natops.secretFile', resolve(settings.secretFile)]);
  await runGit(dir, ['config', 'natops.name', settings.name]);
  const hook = join(dir, 'hooks', 'post-receive');
  await writeFile(
    hook,
    [
      '#!/bin/sh',
      '# Installed by `natops repo init`: sends each pushed ref to the natops webhook as a',
      '# GitHub-format push delivery. One that cannot be made at once is kept in natops/deferred/',
      '# and sent later (by the next push, or by natops serve when it starts); the push never waits.',
      `exec ${shWord(process.execPath)} ${shWord(HOOK_BIN)} "$(pwd)"`,
      '',
    ].join('\n'),
  );
  await chmod(hook, 0o755);
  return dir;
}
