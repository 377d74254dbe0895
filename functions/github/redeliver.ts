// GitHub does not redeliver a failed webhook delivery by itself. When natops starts as an App, it
// asks for each event of its repository that never reached it in the last three days (every
// attempt failed: no answer or a 5xx, and natops never recorded its delivery id), once: the webhook then takes the
// redelivery like any delivery, and a delivery id is still processed once.
import type { Logger } from '../../common/log.ts';
import type { GitHub } from '../../gitops/github/client.ts';
import type { Store } from '../../state/store.ts';

/** How far back GitHub keeps hook deliveries. */
export const REDELIVERY_WINDOW_MS = 3 * 24 * 3600 * 1000;
const EVENTS = new Set(['push', 'pull_request']);

export interface RedeliverEnv {
  github: GitHub;
  store: Pick<Store, 'seenDelivery' | 'claimRedelivery'>;
  log: Logger;
  now?: number;
}

export async function redeliverFailed(env: RedeliverEnv): Promise<string[]> {
  const since = (env.now ?? Date.now()) - REDELIVERY_WINDOW_MS;
  const attempts = (await env.github.api.hookDeliveries(since)).filter(
    (d) => EVENTS.has(d.event) && (d.repositoryId === null || d.repositoryId === env.github.repositoryId),
  );
  // Any answer below 500 reached natops, which decided on it (a 4xx would be refused again).
  const reached = new Set(attempts.filter((d) => d.statusCode > 0 && d.statusCode < 500).map((d) => d.guid));
  const asked: string[] = [];
  // Newest attempt first: one redelivery per event.
  for (const d of attempts) {
    if (reached.has(d.guid) || asked.includes(d.guid) || (await env.store.seenDelivery(d.guid))) continue;
    if (!(await env.store.claimRedelivery(d.guid))) continue;
    await env.github.api.redeliver(d.id);
    asked.push(d.guid);
  }
  if (asked.length)
    env.log.info(
      `asked GitHub to redeliver ${asked.length} failed deliver${asked.length === 1 ? 'y' : 'ies'}: ${asked.join(', ')}`,
    );
  return asked;
}
