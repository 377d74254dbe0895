// The local Git source: `natops repo init` makes a bare repository whose post-receive hook runs
// `natops repo notify`, which sends each pushed ref to the webhook as a signed GitHub push
// delivery. Settings live in the repository's git config, where the hook finds them.
//
// The hook never holds a push: it tries the webhook about a second at most; a delivery it cannot
// make then is kept in a spool beside the repository (<git-dir>/natops/deferred/), exactly as it
// would have been sent, and sent later: by the next push's hook (before its own delivery) or by
// `natops serve` when it starts (drainDeferred + sendDeferred).
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sign } from '@octokit/webhooks-methods';
import { errorMessage, NatopsError } from '../../common/errors.ts';
import { run, type ExecResult } from '../../common/exec.ts';
import { localPushPayload, type LocalCommit } from './local-push.ts';
import { writeFileAtomic } from '../../common/fs.ts';
import { isZeroSha, SHA } from '../../common/sha.ts';

/**
 * The hook's entry: loads only what sending a delivery needs, so a push does not wait for the
 * whole CLI. From the sources, bin/natops-hook.js; from the bundle (this code in a file of
 * dist/cli/ or dist/chunks/), the copy in dist/bin/.
 */
const HOOK_BIN = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../../bin/natops-hook.js' : '../bin/natops-hook.js', import.meta.url),
);

export class NotifyError extends NatopsError {}

/** A spool file that cannot be read back as a delivery (truncated, edited, another format). */
export class DeferredFileError extends NatopsError {
  constructor(
    readonly file: string,
    reason: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`deferred delivery ${file}: ${reason}`, { ...opts, retryable: false });
  }
}

/** Keeping a delivery failed (disk full, permissions): the push is not delivered, and the hook says so. */
export class DeferError extends NatopsError {
  constructor(
    readonly file: string,
    opts: { cause?: unknown } = {},
  ) {
    super(`could not keep the delivery in ${file}: ${errorMessage(opts.cause)}`, opts);
  }
}

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
export function runGit(
  gitDir: string,
  args: string[],
  opts: { okExitCodes?: number[]; stdin?: string } = {},
): Promise<ExecResult> {
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

// ---- Deliveries: made once, sent now or kept and sent later, always the same bytes ----

/** Delivery ids become file names: GitHub's and ours are UUIDs. */
const DELIVERY_ID = /^[0-9A-Za-z][0-9A-Za-z-]{0,99}$/;

/**
 * A delivery kept in the spool (one JSON file): exactly what the hook would have sent, and when
 * and why it was kept. Written by deferDelivery, read back by readDeferred.
 */
export interface DeferredDelivery {
  /** of this format */
  version: 1;
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
  /** when it was kept (ISO 8601, UTC) */
  deferredAt: string;
  /** why it was not sent then */
  reason: string;
}
/** A delivery ready to send: signed, not yet sent or kept. */
export type PreparedDelivery = Omit<DeferredDelivery, 'version' | 'deferredAt' | 'reason'>;

const SIGNATURE_256 = /^sha256=[0-9a-f]{64}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/**
 * Checks a spool file's JSON, field by field. By hand rather than with zod: the hook reads the
 * spool on every push while natops is down, and loading zod there costs ~0.5 s (measured on a
 * loaded 2-CPU machine), half the hook's budget. Returns the problems; none means `json` is one.
 */
export function deferredDeliveryProblems(json: unknown): string[] {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return ['(file): not a JSON object'];
  const o = json as Record<string, unknown>;
  const problems: string[] = [];
  const want = (key: keyof DeferredDelivery, ok: (v: unknown) => boolean, what: string) => {
    if (!ok(o[key])) problems.push(`${key}: ${o[key] === undefined ? 'missing' : `not ${what}`}`);
  };
  const str = (re?: RegExp) => (v: unknown) => typeof v === 'string' && (re ? re.test(v) : true);
  want('version', (v) => v === 1, '1');
  want('id', str(DELIVERY_ID), 'a delivery id');
  want('event', (v) => v === 'push', '"push"');
  want('ref', (v) => typeof v === 'string' && v.length > 0, 'a ref');
  want('after', str(SHA), 'a commit id');
  want('body', (v) => typeof v === 'string' && v.length > 0, 'a non-empty string');
  want('signature256', str(SIGNATURE_256), 'sha256=<64 hex digits>');
  want(
    'deferredAt',
    (v) => typeof v === 'string' && ISO_UTC.test(v) && !Number.isNaN(Date.parse(v)),
    'an ISO 8601 UTC time',
  );
  want('reason', str(), 'a string');
  return problems;
}

/** Where a repository's deferred deliveries wait, one JSON file each. */
export function deferredDir(gitDir: string): string {
  return join(resolve(gitDir), 'natops', 'deferred');
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

async function readSecret(settings: RepoSettings): Promise<string> {
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
async function pushFacts(gitDir: string, u: RefUpdate): Promise<{ forced: boolean; commits: LocalCommit[] }> {
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
async function prepareDelivery(
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
async function postOnce(url: string, d: PreparedDelivery, timeoutMs: number): Promise<SendResult> {
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

/**
 * How long the hook waits for an answer: natops's webhook answers in milliseconds (it only
 * verifies and enqueues), so a second means it is not there; waiting longer would hold the push.
 */
export const HOOK_ATTEMPT_TIMEOUT_MS = 1000;
/**
 * One more try this much later when the first failed fast in a way a moment may mend: a quick 5xx
 * (Redis blinked) or a reset connection. Not for a refused connection: natops is not running, and
 * does not start within 150 ms.
 */
const HOOK_RETRY_DELAY_MS = 150;

/** The hook's try: one attempt, and at most one quick retry; never longer than timeoutMs in all. */
async function quickSend(url: string, d: PreparedDelivery, timeoutMs: number): Promise<SendResult> {
  const start = Date.now();
  const first = await postOnce(url, d, timeoutMs);
  const left = timeoutMs - (Date.now() - start) - HOOK_RETRY_DELAY_MS;
  const mendable = first.status >= 500 || first.code === 'ECONNRESET';
  if (first.verdict !== 'keep' || !mendable || left < timeoutMs / 2) return first;
  await new Promise((r) => setTimeout(r, HOOK_RETRY_DELAY_MS));
  return postOnce(url, d, left);
}

/** The order of spool files made in one process within one millisecond. */
let spoolSeq = 0;

/**
 * Keeps a delivery in the spool, atomically and durably (the temp file is a dot name the drain
 * ignores), so a crash leaves the whole file or none. Names sort oldest first. Returns the file.
 */
export async function deferDelivery(
  gitDir: string,
  d: PreparedDelivery,
  reason: string,
  at = new Date(),
): Promise<string> {
  if (!DELIVERY_ID.test(d.id)) throw new NotifyError(`delivery id ${JSON.stringify(d.id)} cannot name a file`);
  const dir = deferredDir(gitDir);
  const stamp = at.toISOString().replace(/[-:]/g, ''); // 20260325T123456.789Z: sorts by time
  const file = join(dir, `${stamp}-${String(spoolSeq++ % 10_000).padStart(4, '0')}-${d.id}.json`);
  const kept: DeferredDelivery = { version: 1, ...d, deferredAt: at.toISOString(), reason };
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomic(file, `${JSON.stringify(kept, null, 2)}\n`);
    return file;
  } catch (e) {
    throw new DeferError(file, { cause: e });
  }
}

/** The spool's files, oldest first (temp files and files set aside are not). */
export async function listDeferred(gitDir: string): Promise<string[]> {
  const names = await readdir(deferredDir(gitDir)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw new NotifyError(`cannot read ${deferredDir(gitDir)}: ${e.message}`, { cause: e });
  });
  return names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
    .sort()
    .map((n) => join(deferredDir(gitDir), n));
}

/** Reads a spool file back; a file that is not one is a DeferredFileError. */
export async function readDeferred(file: string): Promise<DeferredDelivery> {
  const text = await readFile(file, 'utf8'); // ENOENT passes through: another sender took it
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DeferredFileError(file, `not JSON (${errorMessage(e)})`, { cause: e });
  }
  const problems = deferredDeliveryProblems(json);
  if (problems.length) throw new DeferredFileError(file, problems.join('; '));
  const d = json as DeferredDelivery;
  // Only the fields of the format go on, whatever else the file holds.
  return {
    version: 1,
    id: d.id,
    event: d.event,
    ref: d.ref,
    after: d.after,
    body: d.body,
    signature256: d.signature256,
    deferredAt: d.deferredAt,
    reason: d.reason,
  };
}

export interface DrainResult {
  /** sent and removed from the spool */
  sent: number;
  /** still in the spool: the one the sender said to keep, and every later one (not tried, to keep the order) */
  kept: number;
  /** moved aside, never to be tried again: unreadable (`.bad`) or refused for good by the webhook (`.rejected`) */
  setAside: number;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const describeD = (d: DeferredDelivery) =>
  `deferred delivery ${d.id} (${d.ref} ${d.after.slice(0, 7)}, kept ${d.deferredAt})`;

async function setAside(file: string, suffix: string, log: (line: string) => void): Promise<void> {
  await rename(file, `${file}${suffix}`).catch((e: unknown) => log(`could not move ${file} aside: ${errorMessage(e)}`));
}

/**
 * Hands the spool's deliveries to `send`, oldest first, and removes each one sent. A send that
 * says 'keep' (natops not there) stops the drain: the later ones stay too, in order. A file that
 * does not read back is moved aside as `<file>.bad`, and one the webhook refused for good (4xx:
 * a changed secret, another repository) as `<file>.rejected`, each with a log line; neither
 * blocks the ones after it. Never rejects: every problem is a log line.
 */
export async function drainDeferred(
  gitDir: string,
  send: (d: DeferredDelivery) => Promise<SendVerdict | SendResult>,
  log: (line: string) => void,
  opts: { verbose?: boolean } = {},
): Promise<DrainResult> {
  const verbose = opts.verbose ?? true;
  const result: DrainResult = { sent: 0, kept: 0, setAside: 0 };
  let files: string[];
  try {
    files = await listDeferred(gitDir);
  } catch (e) {
    log(errorMessage(e));
    return result;
  }
  for (const [i, file] of files.entries()) {
    let d: DeferredDelivery;
    try {
      d = await readDeferred(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // sent meanwhile by another drain
      if (e instanceof DeferredFileError) {
        log(`${e.message}; moved aside to ${basename(file)}.bad`);
        await setAside(file, '.bad', log);
        result.setAside++;
      } else {
        log(`cannot read ${file}: ${errorMessage(e)}; left in place`);
        result.kept++;
      }
      continue;
    }
    let verdict: SendVerdict;
    let said = '';
    try {
      const answer = await send(d);
      verdict = typeof answer === 'string' ? answer : answer.verdict;
      if (typeof answer !== 'string') said = `: ${answerText(answer)}`;
    } catch (e) {
      verdict = 'keep'; // a sender that fails is a delivery not made: it waits for the next drain
      said = `: ${errorMessage(e)}`;
    }
    if (verdict === 'keep') {
      result.kept += files.length - i;
      if (verbose)
        log(
          `${describeD(d)} not sent${said}; kept${files.length - i > 1 ? `, with ${plural(files.length - i - 1, 'later one', 'later ones')}` : ''}`,
        );
      break;
    }
    if (verdict === 'rejected') {
      log(`${describeD(d)} refused for good${said}; moved aside to ${basename(file)}.rejected`);
      await setAside(file, '.rejected', log);
      result.setAside++;
      continue;
    }
    result.sent++;
    if (verbose) log(`${describeD(d)} sent${said}`);
    await unlink(file).catch((e: NodeJS.ErrnoException) => {
      // Sent twice later at worst, which the webhook drops.
      if (e.code !== 'ENOENT') log(`could not remove ${file} after sending it: ${e.message}`);
    });
  }
  return result;
}

/** An answer as the hook prints it: the webhook's outcome, or why there was none. */
function answerText(a: WebhookAnswer): string {
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

/** Why a delivery was kept, as the hook's line starts. */
function deferredLead(a: SendResult | undefined): string {
  if (!a) return 'webhook unreachable';
  if (!a.status) return a.timedOut ? `webhook unreachable (${a.body})` : 'webhook unreachable';
  return `webhook answered ${answerText(a)}`;
}

/**
 * Sends each ref update on stdin, after any deliveries an earlier push had to keep (oldest
 * first, so natops sees the pushes in order). What cannot be sent at once is kept for later
 * (deferDelivery), and the hook returns. Prints one line per ref (git shows them as
 * "remote: ..."). False if a delivery was refused (4xx) or could not be kept.
 */
export async function notifyFromStdin(
  gitDir: string,
  print: (line: string) => void,
  opts: { attemptTimeoutMs?: number } = {},
): Promise<boolean> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return notifyRefs(gitDir, parseRefUpdates(Buffer.concat(chunks).toString()), print, opts);
}

/** notifyFromStdin's work, for ref updates already read. */
export async function notifyRefs(
  gitDir: string,
  updates: RefUpdate[],
  print: (line: string) => void,
  opts: { attemptTimeoutMs?: number } = {},
): Promise<boolean> {
  const timeoutMs = opts.attemptTimeoutMs ?? HOOK_ATTEMPT_TIMEOUT_MS;
  // The settings and the pushed commits are read at once (each read is a git run; the push waits).
  const [{ settings, secret }, facts] = await Promise.all([
    repoSettings(gitDir).then(async (settings) => ({ settings, secret: await readSecret(settings) })),
    Promise.all(updates.map((u) => pushFacts(gitDir, u))),
  ]);
  // Signed before anything is tried: a delivery kept later is the one that would have been sent.
  const deliveries = await Promise.all(updates.map((u, i) => prepareDelivery(gitDir, settings, secret, u, facts[i]!)));
  let lastFailure: SendResult | undefined;
  const attempt = async (d: PreparedDelivery) => {
    const a = await quickSend(settings.webhookUrl, d, timeoutMs);
    if (a.verdict === 'keep') lastFailure = a;
    return a;
  };

  let ok = true;
  // The backlog first. If the webhook does not take the oldest, nothing more is tried this push:
  // the new deliveries join the backlog behind it, and the push returns.
  if ((await listDeferred(gitDir).catch(() => [])).length) {
    const drained = await drainDeferred(gitDir, attempt, (line) => print(`natops: ${line}`), { verbose: false });
    if (drained.sent)
      print(`natops: sent ${plural(drained.sent, 'deferred delivery', 'deferred deliveries')} of earlier pushes first`);
    if (drained.setAside) ok = false;
  }

  for (const [i, d] of deliveries.entries()) {
    const u = updates[i]!;
    const answer = lastFailure ? undefined : await attempt(d);
    if (answer && answer.verdict !== 'keep') {
      print(`natops: ${u.ref} ${u.after.slice(0, 7)}: ${answerText(answer)} (delivery ${d.id})`);
      if (answer.verdict !== 'sent') ok = false;
      continue;
    }
    const lead = deferredLead(answer ?? lastFailure);
    try {
      await deferDelivery(gitDir, d, answer ? answerText(answer) : `not tried: ${lead}`);
      print(
        `natops: ${lead}; delivery ${d.id} for ${u.after.slice(0, 7)} deferred (natops sends it when it starts, or catches up with the branch by itself)`,
      );
    } catch (e) {
      print(
        `natops: ${lead}; delivery ${d.id} for ${u.after.slice(0, 7)} NOT sent: ${errorMessage(e)}; send it by hand: echo '${u.before} ${u.after} ${u.ref}' | natops repo notify --git-dir ${resolve(gitDir)}`,
      );
      ok = false;
    }
  }
  return ok;
}
