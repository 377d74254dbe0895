// A pushed ref update as a GitHub push delivery: read from the repository, signed, POSTed. A
// delivery is made once and always sent as the same bytes, now or later from the spool (spool.ts).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { sign } from '@octokit/webhooks-methods';
import { errorMessage, NatopsError } from '../../common/errors.ts';
import { isZeroSha, SHA } from '../../common/sha.ts';
import { localPushPayload, type LocalCommit } from '../git/local-push.ts';
import { runGit } from '../git/run-git.ts';

export class NotifyError extends NatopsError {}

/** A repository's natops.* git config: written by initRepo, read by the hook on every push. */
export interface RepoSettings {
  webhookUrl: string;
  secretFile: string;
  /** "owner/name" shown in statuses and the dashboard */
  name: string;
}

export async function repoSettings(gitDir: string): Promise<RepoSettings> {
  // One git run for all three (the hook runs this on every push). git prints keys in lower case.
  const r = await runGit(gitDir, ['config', '--get-regexp', '^natops\\.'], { okExitCodes: [0, 1] });
  const values = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) values.set(line.slice(0, space), line.slice(space + 1).trim());
  }
  const get = (key: string) => {
    const v = values.get(key.toLowerCase());
    if (!v) throw new NotifyError(`${gitDir}: git config ${key} is not set; was it made by \`natops repo init\`?`);
    return v;
  };
  return {
    webhookUrl: get('natops.webhookUrl'),
    secretFile: get('natops.secretFile'),
    name: values.get('natops.name') || basename(gitDir),
  };
}

/** The commits a push brought, oldest first, at most 20 (as in GitHub's payload). */
async function pushedCommits(gitDir: string, before: string, after: string): Promise<LocalCommit[]> {
  if (isZeroSha(after)) return [];
  // A `before` the repository no longer has (history replaced, then collected): list from `after`
  // as for a new branch, rather than fail the delivery.
  // (tried as a range first: one git run on every push but the first of a branch)
  const logOf = (range: string, okExitCodes: number[]) =>
    runGit(gitDir, ['log', '-z', '--max-count=20', '--format=%H%x1f%B%x1f%aI%x1f%an%x1f%ae', range, '--'], {
      okExitCodes,
    });
  let log = isZeroSha(before) ? undefined : await logOf(`${before}..${after}`, [0, 128]);
  if (log?.code !== 0) log = await logOf(after, [0]);
  return log.stdout
    .split('\0')
    .filter(Boolean)
    .reverse()
    .map((rec) => {
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
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [before = '', after = '', ref = ''] = line.split(' ');
      if (!SHA.test(before) || !SHA.test(after) || !ref)
        throw new NotifyError(`unexpected post-receive line ${JSON.stringify(line)}`);
      return { before, after, ref };
    });
}

/** A delivery ready to send: signed, not yet sent or kept. */
export interface PreparedDelivery {
  /** X-GitHub-Delivery: natops's webhook drops a repeated id, so sending one twice is harmless */
  id: string;
  /** X-GitHub-Event */
  event: 'push';
  /** for people and logs; the body says the same */
  ref: string;
  after: string;
  /** the exact JSON text that was signed, sent byte for byte */
  body: string;
  /** X-Hub-Signature-256 over body, with the secret of the time */
  signature256: string;
}

/** The headers a delivery goes with, the same for its first try and every replay. */
function deliveryHeaders(d: PreparedDelivery): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'natops-post-receive',
    'x-github-event': d.event,
    'x-github-delivery': d.id,
    'x-hub-signature-256': d.signature256,
  };
}

export async function readSecret(settings: RepoSettings): Promise<string> {
  const secret = await readFile(settings.secretFile, 'utf8').then(
    (s) => s.trim(),
    (e: unknown) => {
      throw new NotifyError(`cannot read the webhook secret ${settings.secretFile}: ${errorMessage(e)}`, { cause: e });
    },
  );
  if (!secret) throw new NotifyError(`the webhook secret file ${settings.secretFile} is empty`);
  return secret;
}

/** What the repository says of a ref update: whether it was forced, and the commits it brought. */
export async function pushFacts(gitDir: string, u: RefUpdate): Promise<{ forced: boolean; commits: LocalCommit[] }> {
  const [forced, commits] = await Promise.all([
    !isZeroSha(u.before) && !isZeroSha(u.after)
      ? runGit(gitDir, ['merge-base', '--is-ancestor', u.before, u.after], { okExitCodes: [0, 1, 128] }).then(
          (r) => r.code !== 0,
        )
      : Promise.resolve(false),
    pushedCommits(gitDir, u.before, u.after),
  ]);
  return { forced, commits };
}

/** One ref update as a signed GitHub push delivery (not sent). */
export async function prepareDelivery(
  gitDir: string,
  settings: RepoSettings,
  secret: string,
  u: RefUpdate,
  { forced, commits }: { forced: boolean; commits: LocalCommit[] },
): Promise<PreparedDelivery> {
  const body = JSON.stringify(
    localPushPayload({
      repository: settings.name,
      url: `file://${resolve(gitDir)}`,
      ref: u.ref,
      before: u.before,
      after: u.after,
      forced,
      commits,
      pusher: { name: process.env.USER ?? 'local', email: `${process.env.USER ?? 'local'}@localhost` },
    }),
  );
  return { id: randomUUID(), event: 'push', ref: u.ref, after: u.after, body, signature256: await sign(secret, body) };
}

/** The webhook's answer; status 0: none (unreachable, timed out), and body says why. */
export interface WebhookAnswer {
  status: number;
  body: string;
  /** no answer within the timeout (status 0) */
  timedOut?: boolean;
  /** the socket error's code when there was no answer, e.g. ECONNREFUSED */
  code?: string;
}

/** sent: the webhook took it (2xx). keep: try again later (no answer, 5xx, 408, 429). rejected: it never will (other 4xx). */
export type SendVerdict = 'sent' | 'keep' | 'rejected';
export interface SendResult extends WebhookAnswer {
  verdict: SendVerdict;
}

export function verdictOf(a: WebhookAnswer): SendVerdict {
  if (a.status >= 200 && a.status < 300) return 'sent';
  if (a.status === 0 || a.status >= 500 || a.status === 408 || a.status === 429) return 'keep';
  return 'rejected';
}

/**
 * One POST of a delivery; never throws (no answer is status 0, with why). node:http rather than
 * fetch: after a fetch that got an answer, Node 20 takes 250-500 ms longer to exit (undici's
 * teardown; measured), and git waits for the hook to exit. One connection per POST, closed after.
 */
export async function postOnce(url: string, d: PreparedDelivery, timeoutMs: number): Promise<SendResult> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return { status: 0, body: `not a URL: ${JSON.stringify(url)}`, verdict: 'keep' };
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:')
    return { status: 0, body: `unsupported protocol in ${url}`, verdict: 'keep' };
  // https (a remote natops) loads TLS only when it is used.
  const { request } = target.protocol === 'https:' ? await import('node:https') : await import('node:http');
  const body = Buffer.from(d.body, 'utf8');
  const answer = await new Promise<WebhookAnswer>((resolve) => {
    let settled = false;
    const settle = (a: WebhookAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(a);
    };
    const req = request(
      target,
      { method: 'POST', agent: false, headers: { ...deliveryHeaders(d), 'content-length': String(body.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => settle({ status: 0, body: `answer cut off: ${e.message}` }));
        res.on('close', () => settle({ status: 0, body: 'answer cut off: connection closed' })); // after 'end', a no-op
      },
    );
    // The timeout covers reading the answer too: a webhook that stalls mid-answer holds nothing.
    const timer = setTimeout(() => {
      settle({ status: 0, timedOut: true, body: `no answer within ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) =>
      settle({ status: 0, body: e.message, ...(e.code ? { code: e.code } : {}) }),
    );
    req.end(body);
  });
  return { ...answer, verdict: verdictOf(answer) };
}

/**
 * POSTs a kept delivery as it was made: the same body bytes, signature and delivery id. natops's
 * webhook drops a delivery id it has seen, so a replay of one that did arrive changes nothing.
 */
export function sendDeferred(url: string, d: PreparedDelivery, opts: { timeoutMs?: number } = {}): Promise<SendResult> {
  return postOnce(url, d, opts.timeoutMs ?? 10_000);
}

/** An answer as the hook prints it: the webhook's outcome, or why there was none. */
export function answerText(a: WebhookAnswer): string {
  if (!a.status) return a.timedOut ? a.body : `webhook unreachable: ${a.body}`;
  let said = a.body;
  try {
    const j = JSON.parse(a.body) as { outcome?: unknown; error?: unknown };
    said = typeof j.outcome === 'string' ? j.outcome : typeof j.error === 'string' ? j.error : a.body;
  } catch {
    // not JSON: print as it came
  }
  return `${a.status} ${said}`;
}

export interface Delivery {
  id: string;
  status: number;
  body: string;
}

/**
 * Sends one ref update now, retrying while the webhook is unreachable or answers 5xx for up to
 * `retryForMs` (30 s). For callers that must know the answer (tests, tools); the hook does not
 * wait like this: it keeps what it cannot send (notifyFromStdin).
 */
export async function notifyPush(gitDir: string, u: RefUpdate, opts: { retryForMs?: number } = {}): Promise<Delivery> {
  const settings = await repoSettings(gitDir);
  const d = await prepareDelivery(gitDir, settings, await readSecret(settings), u, await pushFacts(gitDir, u));
  const deadline = Date.now() + (opts.retryForMs ?? 30_000);
  for (let wait = 200; ; wait = Math.min(wait * 2, 3000)) {
    const answer = await postOnce(settings.webhookUrl, d, 10_000);
    if ((answer.status > 0 && answer.status < 500) || Date.now() + wait > deadline)
      return { id: d.id, status: answer.status, body: answer.body };
    await new Promise((r) => setTimeout(r, wait));
  }
}
