// The local Git source: `natops repo init` makes a bare repository whose post-receive hook runs
// `natops repo notify`, which sends each pushed ref to the webhook as a signed GitHub push
// delivery. Settings live in the repository's git config, where the hook finds them.
import { randomUUID } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sign } from '@octokit/webhooks-methods';
import { NatopsError } from '../../common/errors.ts';
import { run, type ExecResult } from '../../common/exec.ts';
import { localPushPayload, type LocalCommit } from './local-push.ts';
import { isZeroSha, SHA } from '../../common/sha.ts';

/** The hook's entry: loads only what sending a delivery needs, so a push does not wait for the whole CLI. */
const HOOK_BIN = fileURLToPath(new URL('../../bin/natops-hook.js', import.meta.url));

export class NotifyError extends NatopsError {}

export interface RepoSettings {
  webhookUrl: string;
  secretFile: string;
  /** "owner/name" shown in statuses and the dashboard */
  name: string;
}

/**
 * natops's one way to run git on a repository (argv only). Pathspecs are always literal: a path
 * natops passes is a file or directory name, never `:(glob)`, `:/` or a wildcard (the tracked
 * path is checked for those first; this is the second guard).
 */
export function runGit(gitDir: string, args: string[], opts: { okExitCodes?: number[]; stdin?: string } = {}): Promise<ExecResult> {
  return run(['git', '--literal-pathspecs', `--git-dir=${gitDir}`, ...args], { ...opts, target: `git ${gitDir}` });
}

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
  await writeFile(hook, [
    '#!/bin/sh',
    '# Installed by `natops repo init`: sends each pushed ref to the natops webhook as a',
    '# GitHub-format push delivery. A failed delivery does not undo the push; `natops repo notify`',
    '# can send it again.',
    `exec ${shWord(process.execPath)} ${shWord(HOOK_BIN)} "$(pwd)"`,
    '',
  ].join('\n'));
  await chmod(hook, 0o755);
  return dir;
}

export async function repoSettings(gitDir: string): Promise<RepoSettings> {
  const get = async (key: string) => {
    const r = await runGit(gitDir, ['config', '--get', key], { okExitCodes: [0, 1] });
    const v = r.stdout.trim();
    if (!v) throw new NotifyError(`${gitDir}: git config ${key} is not set; was it made by \`natops repo init\`?`);
    return v;
  };
  return { webhookUrl: await get('natops.webhookUrl'), secretFile: await get('natops.secretFile'), name: await get('natops.name').catch(() => basename(gitDir)) };
}

/** The commits a push brought, oldest first, at most 20 (as in GitHub's payload). */
async function pushedCommits(gitDir: string, before: string, after: string): Promise<LocalCommit[]> {
  if (isZeroSha(after)) return [];
  const range = isZeroSha(before) ? [after] : [`${before}..${after}`];
  const log = await runGit(gitDir, ['log', '-z', '--max-count=20', '--format=%H%x1f%B%x1f%aI%x1f%an%x1f%ae', ...range, '--']);
  return log.stdout.split('\0').filter(Boolean).reverse().map((rec) => {
    const [id = '', message = '', timestamp = '', name = '', email = ''] = rec.split('\x1f');
    return { id, message: message.trim(), timestamp, author: { name, email } };
  });
}

export interface RefUpdate {
  before: string;
  after: string;
  ref: string;
}

/** post-receive's stdin: "<old> <new> <ref>" per line. */
export function parseRefUpdates(text: string): RefUpdate[] {
  return text.split('\n').filter(Boolean).map((line) => {
    const [before = '', after = '', ref = ''] = line.split(' ');
    if (!SHA.test(before) || !SHA.test(after) || !ref) throw new NotifyError(`unexpected post-receive line ${JSON.stringify(line)}`);
    return { before, after, ref };
  });
}

export interface Delivery {
  id: string;
  status: number;
  body: string;
}

/** Sends one ref update; retries while the webhook is unreachable or answers 5xx. */
export async function notifyPush(gitDir: string, u: RefUpdate, opts: { retryForMs?: number } = {}): Promise<Delivery> {
  const settings = await repoSettings(gitDir);
  const secret = (await readFile(settings.secretFile, 'utf8')).trim();
  const forced = !isZeroSha(u.before) && !isZeroSha(u.after) &&
    (await runGit(gitDir, ['merge-base', '--is-ancestor', u.before, u.after], { okExitCodes: [0, 1, 128] })).code !== 0;
  const payload = localPushPayload({
    repository: settings.name, url: `file://${resolve(gitDir)}`, ref: u.ref, before: u.before, after: u.after, forced,
    commits: await pushedCommits(gitDir, u.before, u.after),
    pusher: { name: process.env.USER ?? 'local', email: `${process.env.USER ?? 'local'}@localhost` },
  });
  const body = JSON.stringify(payload);
  const id = randomUUID();
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'natops-post-receive',
    'x-github-event': 'push',
    'x-github-delivery': id,
    'x-hub-signature-256': await sign(secret, body),
  };
  const deadline = Date.now() + (opts.retryForMs ?? 30_000);
  for (let wait = 200; ; wait = Math.min(wait * 2, 3000)) {
    const answer = await fetch(settings.webhookUrl, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) })
      .then(async (r) => ({ status: r.status, body: await r.text() }))
      .catch((e: unknown) => ({ status: 0, body: e instanceof Error ? String(e.cause ?? e.message) : String(e) }));
    if ((answer.status > 0 && answer.status < 500) || Date.now() + wait > deadline) return { id, ...answer };
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Sends every ref update on stdin; prints one line each (git shows them as "remote: ..."). False if any failed. */
export async function notifyFromStdin(gitDir: string, print: (line: string) => void): Promise<boolean> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  let ok = true;
  for (const u of parseRefUpdates(Buffer.concat(chunks).toString())) {
    const d = await notifyPush(gitDir, u);
    let said = d.body;
    try {
      said = (JSON.parse(d.body) as { outcome?: string }).outcome ?? d.body;
    } catch {
      // not JSON: print as it came
    }
    print(`natops: ${u.ref} ${u.after.slice(0, 7)}: ${d.status ? `${d.status} ${said}` : `webhook unreachable: ${said}`} (delivery ${d.id})`);
    if (d.status < 200 || d.status >= 300) ok = false;
  }
  return ok;
}
