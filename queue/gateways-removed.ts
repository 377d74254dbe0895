// `natops remove-gateways` (a Helm pre-delete hook) must keep natops from repairing the gateways it
// removes while the rest of the release goes away. BullMQ's pause is a flag in Redis, so pausing
// every queue stops every process's workers at once (serve's and each worker Deployment's), and
// what arrives meanwhile (pushes, resyncs, replaced pods) waits instead of running. A marker says
// which queues it paused, when, and whether the removal is still running; the next `natops serve`
// (a reinstall: natops should run again) resumes those and deletes it, but never while a removal
// runs (a serve pod restarted during the hook would bring the gateways back). The marker and
// every step of its life are here.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { NatopsError } from '../common/errors.ts';
import { QUEUE_NAMES, type QueueName } from './jobs.ts';

/** Under `sys:`, with natops's own keys: a gateway may have any name. */
export const removedMarkerKey = (prefix: string) => `${prefix}:sys:gateways-removed`;

export const RemovedMarker = z.object({
  /** epoch ms of the (latest) run */
  at: z.number(),
  by: z.literal('remove-gateways'),
  /** the queues remove-gateways paused (not those someone else had paused) */
  queues: z.array(z.enum(QUEUE_NAMES)),
  /** removing: a run is under way until `until` (epoch ms); removed: it ended having removed some */
  state: z.enum(['removing', 'removed']).default('removed'),
  until: z.number().default(0),
});
export type RemovedMarker = z.infer<typeof RemovedMarker>;

/** Jobs still ran when the wait ended: nothing was removed, the queues stay paused. */
export class QueuesBusyError extends NatopsError {
  constructor(
    readonly busy: { queue: QueueName; active: number }[],
    readonly timeoutMs: number,
  ) {
    super(
      `jobs still active after ${timeoutMs / 1000} s in queue(s) ${busy.map((b) => `${b.queue} (${b.active})`).join(', ')}: no gateway was removed; every queue stays paused until the next \`natops serve\` start (run remove-gateways again to retry)`,
    );
  }
}

/** The marker, or undefined; one that does not parse counts as pausing every queue (resuming one too many is harmless). */
export async function readRemovedMarker(redis: Redis, prefix: string): Promise<RemovedMarker | undefined> {
  const text = await redis.get(removedMarkerKey(prefix));
  if (text === null) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    raw = undefined;
  }
  const parsed = RemovedMarker.safeParse(raw);
  return parsed.success
    ? parsed.data
    : { at: 0, by: 'remove-gateways', queues: [...QUEUE_NAMES], state: 'removed', until: 0 };
}

/**
 * Pauses every queue not paused yet and records them in the marker (with those an earlier run
 * recorded, so running it twice loses none), as a removal under way until `untilMs`. The marker
 * is written first: a crash in between leaves a queue resumed needlessly later, never a paused
 * one nobody resumes. Returns the marker and the one it replaced (to put back: `undoPause`).
 */
export async function pauseForRemoval(
  redis: Redis,
  queues: Record<QueueName, Queue>,
  prefix: string,
  untilMs: number,
  now = Date.now(),
): Promise<{ marker: RemovedMarker; earlier: RemovedMarker | undefined }> {
  const paused = await Promise.all(QUEUE_NAMES.map((n) => queues[n].isPaused()));
  const toPause = QUEUE_NAMES.filter((_, i) => !paused[i]);
  const earlier = await readRemovedMarker(redis, prefix);
  const marker: RemovedMarker = {
    at: now,
    by: 'remove-gateways',
    queues: QUEUE_NAMES.filter((n) => earlier?.queues.includes(n) || toPause.includes(n)),
    state: 'removing',
    until: untilMs,
  };
  await redis.set(removedMarkerKey(prefix), JSON.stringify(marker));
  for (const n of toPause) await queues[n].pause();
  return { marker, earlier };
}

/** The run removed what it could: the queues stay paused until serve's next start resumes them. */
export async function markRemoved(redis: Redis, prefix: string, marker: RemovedMarker): Promise<void> {
  await redis.set(removedMarkerKey(prefix), JSON.stringify({ ...marker, state: 'removed' }));
}

/**
 * The run failed before removing anything: natops goes on as before. The queues it paused are
 * resumed and the marker it replaced is put back (or removed), so a kept release is not left
 * silently stopped.
 */
export async function undoPause(
  redis: Redis,
  queues: Record<QueueName, Queue>,
  prefix: string,
  marker: RemovedMarker,
  earlier: RemovedMarker | undefined,
): Promise<void> {
  for (const n of marker.queues.filter((q) => !earlier?.queues.includes(q))) await queues[n].resume();
  if (earlier) await redis.set(removedMarkerKey(prefix), JSON.stringify(earlier));
  else await redis.del(removedMarkerKey(prefix));
}

/**
 * Returns once no job is active in any queue (a paused queue still finishes the jobs in hand);
 * `busy` is told the first time some are. Throws QueuesBusyError after `timeoutMs`.
 */
export async function waitUntilIdle(
  queues: Record<QueueName, Queue>,
  timeoutMs: number,
  busy: (queues: { queue: QueueName; active: number }[]) => void = () => undefined,
  everyMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    const counts = await Promise.all(
      QUEUE_NAMES.map(async (queue) => ({ queue, active: await queues[queue].getActiveCount() })),
    );
    const active = counts.filter((c) => c.active > 0);
    if (!active.length) return;
    if (Date.now() >= deadline) throw new QueuesBusyError(active, timeoutMs);
    if (!told) busy(active);
    told = true;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * At serve's start: resumes the queues the marker lists, then deletes it (kept if a resume fails,
 * for the next start). A removal still under way is left alone, and looked at again when its
 * time is up (`later`). Returns the marker found, if any.
 */
export async function resumeAfterRemoval(
  redis: Redis,
  queues: Record<QueueName, Queue>,
  prefix: string,
  warn: (line: string) => void,
  later: (atMs: number) => void = () => undefined,
  now = Date.now(),
): Promise<RemovedMarker | undefined> {
  const marker = await readRemovedMarker(redis, prefix);
  if (!marker) return undefined;
  if (marker.state === 'removing' && now < marker.until) {
    warn(
      `remove-gateways is removing every gateway (until ${new Date(marker.until).toISOString()}): natops's queues stay paused until it is done`,
    );
    later(marker.until);
    return marker;
  }
  for (const n of marker.queues) await queues[n].resume();
  await redis.del(removedMarkerKey(prefix));
  const at = marker.at ? new Date(marker.at).toISOString() : 'an unknown time';
  warn(
    `gateways were removed at ${at} by remove-gateways; resumed the queues it paused (${marker.queues.join(', ') || 'none'}): the resync recreates the gateways Git holds`,
  );
  return marker;
}
