// The webhook's HTTP side: verifies X-Hub-Signature-256 over the raw body, drops repeated
// deliveries, takes the pure decision (functions/webhook.ts), enqueues a plan job and records
// the delivery. Nothing slow happens here; the planner does the work.
import { Webhooks } from '@octokit/webhooks';
import express, { type ErrorRequestHandler, type Router } from 'express';
import { errorMessage } from '../common/errors.ts';
import { within } from '../common/time.ts';
import type { Logger } from '../common/log.ts';
import { classifyDelivery } from '../functions/webhook.ts';
import type { Queues } from '../queue/queues.ts';
import type { DeliveryRecord, Store } from '../state/store.ts';

export interface WebhookEnv {
  secret: string;
  /** the tracked branch */
  branch: string;
  /** owner/name deliveries must come from (unset: any) */
  repository?: string | undefined;
  /** pull requests are previewed */
  previews: boolean;
  /** whose pull requests are previewed (author_association), and the label that has any previewed */
  previewAuthors?: readonly string[] | undefined;
  previewLabel?: string | undefined;
  store: Store;
  queues: Queues;
  /** largest body accepted, e.g. "1mb" (GitHub caps payloads at 25 MB; pushes are far smaller) */
  maxBody: string;
  /** Redis slower than this: answer 503 so the sender retries, rather than hang */
  enqueueTimeoutMs: number;
  log: Logger;
  /** each answer, once sent: what became of the delivery, and how long the answer took */
  observe?: (result: DeliveryResult, seconds: number) => void;
}

/** What became of a delivery, for the metrics (the outcome text says it for people). */
export type DeliveryResult = 'queued' | 'ignored' | 'duplicate' | 'refused' | 'unauthorized' | 'unavailable';

const DELIVERY_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

class Unavailable extends Error {}

/** Redis slower than `ms`: the sender is told to come back (503) rather than kept waiting. */
const enqueued = <T>(ms: number, p: Promise<T>): Promise<T> =>
  within(ms, p, (): T => {
    throw new Unavailable(`queue did not answer within ${ms} ms`);
  });

export function webhookRouter(env: WebhookEnv): Router {
  const webhooks = new Webhooks({ secret: env.secret });
  const router = express.Router();

  // Timed from the first byte seen to the answer's last, whatever the answer was.
  router.use((req, res, next) => {
    const observe = env.observe;
    if (observe && req.method === 'POST') {
      const started = process.hrtime.bigint();
      res.once('finish', () => {
        const result =
          (res.locals.result as DeliveryResult | undefined) ??
          (res.statusCode === 401 ? 'unauthorized' : res.statusCode >= 500 ? 'unavailable' : 'refused');
        try {
          observe(result, Number(process.hrtime.bigint() - started) / 1e9);
        } catch (e) {
          env.log.error(`webhook: metrics: ${errorMessage(e)}`);
        }
      });
    }
    next();
  });

  // Before the body is read: a request that cannot be signed costs no buffering and no HMAC.
  router.post('/', (req, res, next) => {
    if (!SIGNATURE.test(req.get('x-hub-signature-256') ?? '')) {
      res.status(401).json({ error: 'missing or wrong X-Hub-Signature-256' });
      return;
    }
    next();
  });
  // GitHub never compresses deliveries; inflating would let a small body cost a large one's work.
  router.post('/', express.raw({ type: () => true, limit: env.maxBody, inflate: false }), async (req, res) => {
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
    // GitHub's delivery ids are UUIDs; the id names a job, and BullMQ refuses some characters.
    if (!DELIVERY_ID.test(id)) {
      res.status(400).json({ error: 'X-GitHub-Delivery is not a delivery id' });
      return;
    }
    const answer = (status: number, outcome: string, extra: Partial<DeliveryRecord> = {}, result?: DeliveryResult) => {
      if (result) res.locals.result = result;
      res.status(status).json({ delivery: id, outcome });
      // The list of deliveries is for people; a failure to write it is logged, not hidden. A
      // queued delivery's id is remembered in the same write, after the answer: the Redis natops
      // starts fsyncs every write, and the answer need not wait for a second one. The id is
      // still written before this process reads for any later delivery (one connection, commands
      // in order), and a repeat that comes first finds the plan job by its id and adds nothing.
      if (status < 500) {
        const seen = result === 'queued';
        env.store
          .recordDelivery({ id, event, at: Date.now(), outcome, ...extra }, { seen })
          .catch((e: unknown) =>
            env.log[seen ? 'error' : 'warn'](
              { delivery: id },
              `webhook: delivery ${id}: could not record it${seen ? ' (a redelivery of it would be planned again)' : ''}: ${errorMessage(e)}`,
            ),
          );
      }
    };

    try {
      if (await enqueued(env.enqueueTimeoutMs, env.store.seenDelivery(id)))
        return answer(200, 'duplicate delivery; dropped', {}, 'duplicate');
      const d = classifyDelivery(
        { id, event, body, contentType: req.get('content-type') },
        {
          branch: env.branch,
          repository: env.repository,
          previews: env.previews,
          previewAuthors: env.previewAuthors,
          previewLabel: env.previewLabel,
        },
      );
      if (d.gated) env.log.info({ delivery: id }, `webhook: ${d.outcome}`);
      const meta = { ...(d.ref ? { ref: d.ref } : {}), ...(d.after ? { after: d.after } : {}) };
      if (d.plan) await enqueued(env.enqueueTimeoutMs, env.queues.addPlan({ ...d.plan, receivedAt: Date.now() }));
      if (d.preview) await enqueued(env.enqueueTimeoutMs, env.queues.addPreview(d.preview));
      return answer(d.status, d.outcome, meta, d.plan || d.preview ? 'queued' : d.status < 300 ? 'ignored' : 'refused');
    } catch (e) {
      env.log.error({ delivery: id }, `webhook: delivery ${id}: ${errorMessage(e)}`);
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
