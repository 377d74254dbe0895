// The spool of deferred deliveries (<git-dir>/natops/deferred/, one JSON file each): what the hook
// could not send at once, kept exactly as it would have been sent, and sent later in push order.
import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { errorMessage, NatopsError } from '../../common/errors.ts';
import { writeFileAtomic } from '../../common/fs.ts';
import { SHA } from '../../common/sha.ts';
import { answerText, NotifyError, type PreparedDelivery, type SendResult, type SendVerdict } from './delivery.ts';

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

/** Delivery ids become file names: GitHub's and ours are UUIDs. */
const DELIVERY_ID = /^[0-9A-Za-z][0-9A-Za-z-]{0,99}$/;

/**
 * A delivery kept in the spool (one JSON file): exactly what the hook would have sent (the fields
 * of a PreparedDelivery), and when and why it was kept. Written by deferDelivery, read back by
 * readDeferred.
 */
export interface DeferredDelivery extends PreparedDelivery {
  /** of this format */
  version: 1;
  /** when it was kept (ISO 8601, UTC) */
  deferredAt: string;
  /** why it was not sent then */
  reason: string;
}

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

export const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
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
