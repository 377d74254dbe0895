// The webhook function's decision, pure: a verified delivery (event, id, body) -> what to answer
// and whether to plan. The HTTP side (signature check, the duplicate check in Redis, enqueueing)
// is server/webhook.ts.
import { pushedBranch, PushPayload } from '../gitops/git/push-event.ts';
import type { PlanJob } from '../queue/jobs.ts';

export interface DeliveryDecision {
  status: 200 | 202 | 400 | 415;
  outcome: string;
  /** what the delivery names, for the deliveries list */
  ref?: string;
  after?: string;
  /** the plan job to enqueue (less its receive time) */
  plan?: Omit<PlanJob, 'receivedAt'>;
}

// A ref as git allows it (git check-ref-format): no "..", no control characters, no spaces or
// the characters git reserves. A push never carries anything else; anything else is not from git.
const BAD_REF = /\.\.|[\x00-\x20\x7f~^:?*[\\]|@\{|\/\/|\/$|\.lock$|^\/|\.$/;

export interface Tracked {
  branch: string;
  /** owner/name; undefined: deliveries from any repository are taken */
  repository?: string | undefined;
}

export function classifyDelivery(d: { id: string; event: string; body: string; contentType?: string | undefined }, tracked: Tracked): DeliveryDecision {
  const { branch } = tracked;
  // GitHub can send form-encoded payloads; natops reads JSON only, and says how to fix the hook.
  if (d.contentType && !/^application\/json\b/i.test(d.contentType)) {
    return { status: 415, outcome: `content type ${d.contentType.slice(0, 80)} is not handled: set the webhook's content type to application/json` };
  }
  if (d.event === 'ping') return { status: 200, outcome: 'pong' };
  if (d.event !== 'push') return { status: 202, outcome: `event ${d.event.slice(0, 80)} is not handled; ignored` };
  let json: unknown;
  try {
    json = JSON.parse(d.body);
  } catch {
    return { status: 400, outcome: 'body is not JSON' };
  }
  const parsed = PushPayload.safeParse(json);
  if (!parsed.success) return { status: 400, outcome: `not a push payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`.slice(0, 500) };
  const push = parsed.data;
  if (tracked.repository !== undefined && push.repository.full_name !== tracked.repository) {
    return { status: 400, outcome: `delivery for repository ${push.repository.full_name.slice(0, 100)}; natops tracks ${tracked.repository}` };
  }
  if (BAD_REF.test(push.ref)) return { status: 400, outcome: `${JSON.stringify(push.ref).slice(0, 200)} is not a valid ref` };
  const meta = { ref: push.ref, after: push.after };
  const pushed = pushedBranch(push.ref);
  if (pushed === undefined) return { status: 202, outcome: `${push.ref} is not a branch; ignored`, ...meta };
  if (pushed !== branch) return { status: 202, outcome: `branch ${pushed} is not tracked (${branch} is); ignored`, ...meta };
  if (push.deleted) return { status: 202, outcome: `branch ${pushed} deleted; ignored (live gateways stay as they are)`, ...meta };
  return {
    status: 202, outcome: `queued plan of ${push.after.slice(0, 7)}`, ...meta,
    plan: { delivery: d.id, repository: push.repository.full_name, branch: pushed, before: push.before, after: push.after, forced: push.forced, cause: 'push' },
  };
}
