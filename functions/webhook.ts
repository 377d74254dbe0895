// The webhook function: verifies a GitHub-format delivery, drops repeats, records it and enqueues
// a plan job. Nothing slow happens here; the planner does the work.
import { Webhooks } from '@octokit/webhooks';
import express, { type ErrorRequestHandler, type Router } from 'express';
import { pushedBranch, PushPayload } from '../gitops/git/push-event.ts';
import type { Queues } from '../queue/queues.ts';
import type { DeliveryRecord, Store } from '../queue/store.ts';

export interface WebhookEnv {
  secret: string;
  /** the tracked branch */
  branch: string;
  store: Store;
  queues: Queues;
  /** largest body accepted, e.g. "1mb" (GitHub caps payloads at 25 MB; pushes are far smaller) */
  maxBody: string;
  /** Redis slower than this: answer 503 so the sender retries, rather than hang */
  enqueueTimeoutMs: number;
  log: (line: string) => void;
}

class Unavailable extends Error {}

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Unavailable(`queue did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function webhookRouter(env: WebhookEnv): Router {
  const webhooks = new Webhooks({ secret: env.secret });
  const router = express.Router();

  router.post('/', express.raw({ type: () => true, limit: env.maxBody }), async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    const signature = req.get('x-hub-signature-256');
    if (!signature || !(await webhooks.verify(body, signature).catch(() => false))) {
      res.status(401).json({ error: 'missing or wrong X-Hub-Signature-256' });
      return;
    }
    const id = req.get('x-github-delivery');
    const event = req.get('x-github-event');
    if (!id || !event) {
      res.status(400).json({ error: 'missing X-GitHub-Delivery or X-GitHub-Event' });
      return;
    }
    const answer = (status: number, outcome: string, extra: Partial<DeliveryRecord> = {}) => {
      res.status(status).json({ delivery: id, outcome });
      if (status < 500) env.store.recordDelivery({ id, event, at: Date.now(), outcome, ...extra }).catch(() => undefined);
    };

    try {
      if (await within(env.enqueueTimeoutMs, env.store.seenDelivery(id))) return answer(200, 'duplicate delivery; dropped');
      if (event === 'ping') return answer(200, 'pong');
      if (event !== 'push') return answer(202, `event ${event} is not handled; ignored`);

      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        return answer(400, 'body is not JSON');
      }
      const parsed = PushPayload.safeParse(json);
      if (!parsed.success) return answer(400, `not a push payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      const push = parsed.data;
      const meta = { ref: push.ref, after: push.after };
      const branch = pushedBranch(push.ref);
      if (branch === undefined) return answer(202, `${push.ref} is not a branch; ignored`, meta);
      if (branch !== env.branch) return answer(202, `branch ${branch} is not tracked (${env.branch} is); ignored`, meta);
      if (push.deleted) return answer(202, `branch ${branch} deleted; ignored (live gateways stay as they are)`, meta);

      await within(env.enqueueTimeoutMs, env.queues.addPlan({
        delivery: id, repository: push.repository.full_name, branch, before: push.before, after: push.after, forced: push.forced, receivedAt: Date.now(),
      }));
      await within(env.enqueueTimeoutMs, env.store.markDelivery(id));
      return answer(202, `queued plan of ${push.after.slice(0, 7)}`, meta);
    } catch (e) {
      env.log(`webhook: delivery ${id}: ${e instanceof Error ? e.message : String(e)}`);
      return answer(503, 'queue unavailable; deliver again later');
    }
  });

  const tooBig: ErrorRequestHandler = (err: { type?: string; status?: number }, _req, res, next) => {
    if (err.type === 'entity.too.large') res.status(413).json({ error: `body larger than ${env.maxBody}` });
    else next(err);
  };
  router.use(tooBig);
  return router;
}
