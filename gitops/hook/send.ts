// The post-receive hook's work, and the module it loads (bundled as dist/cli/push-sender.js). It
// never holds a push: it tries the webhook about a second at most, and a delivery it cannot make
// then is kept in the spool and sent later: by the next push's hook (before its own delivery) or
// by `natops serve` when it starts (drainDeferred + sendDeferred).
import { resolve } from 'node:path';
import { errorMessage } from '../../common/errors.ts';
import {
  answerText,
  parseRefUpdates,
  postOnce,
  prepareDelivery,
  pushFacts,
  readSecret,
  repoSettings,
  type PreparedDelivery,
  type RefUpdate,
  type SendResult,
} from './delivery.ts';
import { deferDelivery, drainDeferred, listDeferred, plural } from './spool.ts';

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
