// The webhook function's decision, pure: a verified delivery (event, id, body) -> what to answer
// and whether to plan. The HTTP side (signature check, the duplicate check in Redis, enqueueing)
// is server/webhook.ts.
import { previewAction, PullRequestPayload } from '../gitops/git/pull-request-event.ts';
import { pushedBranch, PushPayload } from '../gitops/git/push-event.ts';
import type { PlanJob, PreviewJob } from '../queue/jobs.ts';

export interface DeliveryDecision {
  status: 200 | 202 | 400 | 415;
  outcome: string;
  /** what the delivery names, for the deliveries list */
  ref?: string;
  after?: string;
  /** the plan job to enqueue (less its receive time) */
  plan?: Omit<PlanJob, 'receivedAt'>;
  /** the pull request's preview job to enqueue */
  preview?: PreviewJob;
  /** a pull request not previewed for who opened it (worth a log line: someone may wonder why) */
  gated?: true;
}

// A ref as git allows it (git check-ref-format): no "..", no control characters, no spaces or
// the characters git reserves. A push never carries anything else; anything else is not from git.
const BAD_REF = /\.\.|[\x00-\x20\x7f~^:?*[\\]|@\{|\/\/|\/$|\.lock$|^\/|\.$/;

export interface Tracked {
  branch: string;
  /** owner/name; undefined: deliveries from any repository are taken */
  repository?: string | undefined;
  /** pull requests are previewed (natops talks to GitHub) */
  previews?: boolean;
  /** whose pull requests are previewed, by author_association; default DEFAULT_PREVIEW_AUTHORS */
  previewAuthors?: readonly string[] | undefined;
  /** a label that has any pull request previewed (a maintainer sets it) */
  previewLabel?: string | undefined;
}

/** Whose pull requests are previewed when not configured (NATOPS_PREVIEW_AUTHORS's default). */
export const DEFAULT_PREVIEW_AUTHORS: readonly string[] = ['OWNER', 'MEMBER', 'COLLABORATOR'];

export function classifyDelivery(
  d: { id: string; event: string; body: string; contentType?: string | undefined },
  tracked: Tracked,
): DeliveryDecision {
  const { branch } = tracked;
  // GitHub can send form-encoded payloads; natops reads JSON only, and says how to fix the hook.
  if (d.contentType && !/^application\/json\b/i.test(d.contentType)) {
    return {
      status: 415,
      outcome: `content type ${d.contentType.slice(0, 80)} is not handled: set the webhook's content type to application/json`,
    };
  }
  if (d.event === 'ping') return { status: 200, outcome: 'pong' };
  if (d.event !== 'push' && d.event !== 'pull_request')
    return { status: 202, outcome: `event ${d.event.slice(0, 80)} is not handled; ignored` };
  let json: unknown;
  try {
    json = JSON.parse(d.body);
  } catch {
    return { status: 400, outcome: 'body is not JSON' };
  }
  if (d.event === 'pull_request') {
    return tracked.previews
      ? classifyPullRequest(d.id, json, tracked)
      : { status: 202, outcome: 'pull requests are previewed when natops talks to GitHub (NATOPS_GITHUB_*); ignored' };
  }
  const parsed = PushPayload.safeParse(json);
  if (!parsed.success) return { status: 400, outcome: `not a push payload: ${issuesOf(parsed.error)}` };
  const push = parsed.data;
  const elsewhere = otherRepository(push.repository.full_name, tracked);
  if (elsewhere) return elsewhere;
  if (BAD_REF.test(push.ref))
    return { status: 400, outcome: `${JSON.stringify(push.ref).slice(0, 200)} is not a valid ref` };
  const meta = { ref: push.ref, after: push.after };
  const pushed = pushedBranch(push.ref);
  if (pushed === undefined) return { status: 202, outcome: `${push.ref} is not a branch; ignored`, ...meta };
  if (pushed !== branch)
    return { status: 202, outcome: `branch ${pushed} is not tracked (${branch} is); ignored`, ...meta };
  if (push.deleted)
    return { status: 202, outcome: `branch ${pushed} deleted; ignored (live gateways stay as they are)`, ...meta };
  return {
    status: 202,
    outcome: `queued plan of ${push.after.slice(0, 7)}`,
    ...meta,
    plan: {
      delivery: d.id,
      repository: push.repository.full_name,
      branch: pushed,
      before: push.before,
      after: push.after,
      forced: push.forced,
      cause: 'push',
    },
  };
}

const issuesOf = (e: { issues: { path: PropertyKey[]; message: string }[] }) =>
  e.issues
    .map((i) => `${i.path.map(String).join('.')}: ${i.message}`)
    .join('; ')
    .slice(0, 480);

function otherRepository(fullName: string, tracked: Tracked): DeliveryDecision | undefined {
  // GitHub's owner and repository names are case-insensitive
  if (tracked.repository === undefined || fullName.toLowerCase() === tracked.repository.toLowerCase()) return undefined;
  return {
    status: 400,
    outcome: `delivery for repository ${fullName.slice(0, 100)}; natops tracks ${tracked.repository}`,
  };
}

/** A pull request into the tracked branch: its preview (opened, reopened, new commits, new base) or its close. */
function classifyPullRequest(id: string, json: unknown, tracked: Tracked): DeliveryDecision {
  const parsed = PullRequestPayload.safeParse(json);
  if (!parsed.success) return { status: 400, outcome: `not a pull_request payload: ${issuesOf(parsed.error)}` };
  const p = parsed.data;
  const elsewhere = otherRepository(p.repository.full_name, tracked);
  if (elsewhere) return elsewhere;
  const pr = p.pull_request;
  const label = tracked.previewLabel;
  // A maintainer labelling a pull request asks for its preview.
  const labelled = label !== undefined && p.action === 'labeled' && p.label?.name === label;
  const what = labelled ? 'preview' : previewAction(p);
  const meta = { ref: `pull/${p.number}`, after: pr.head.sha };
  if (!what)
    return { status: 202, outcome: `pull request #${p.number} ${p.action.slice(0, 40)}; nothing to preview`, ...meta };
  const updatedAt = Date.parse(pr.updated_at);
  if (!Number.isFinite(updatedAt))
    return {
      status: 400,
      outcome: `pull_request.updated_at ${JSON.stringify(pr.updated_at).slice(0, 60)} is not a time`,
    };
  // Moved to another base: its preview (if it had one) is outdated, as if closed.
  if (pr.base.ref !== tracked.branch && p.action === 'edited') {
    return {
      status: 202,
      outcome: `pull request #${p.number} now targets ${pr.base.ref.slice(0, 100)}; its preview marked outdated`,
      ...meta,
      preview: { action: 'close', delivery: id, number: p.number, merged: false, updatedAt, retargeted: pr.base.ref },
    };
  }
  if (pr.base.ref !== tracked.branch)
    return {
      status: 202,
      outcome: `pull request #${p.number} is into ${pr.base.ref.slice(0, 100)}, not ${tracked.branch}; ignored`,
      ...meta,
    };
  if (what === 'close') {
    return {
      status: 202,
      outcome: `queued: pull request #${p.number} closed, its preview marked outdated`,
      ...meta,
      preview: { action: 'close', delivery: id, number: p.number, merged: pr.merged === true, updatedAt },
    };
  }
  const gate = previewGate(p, tracked);
  if (gate) return { status: 202, outcome: `pull request #${p.number} ${gate}`, ...meta, gated: true };
  return {
    status: 202,
    outcome: `queued preview of pull request #${p.number} at ${pr.head.sha.slice(0, 7)}`,
    ...meta,
    preview: {
      action: 'preview',
      delivery: id,
      number: p.number,
      head: pr.head.sha,
      base: pr.base.sha,
      baseRef: pr.base.ref,
      headLabel: pr.head.label ?? pr.head.ref,
      title: pr.title,
      url: pr.html_url,
      updatedAt,
    },
  };
}

/**
 * Why a pull request is not previewed, if it is not. A preview reads the head's manifests, and on
 * a public repository anyone can open a pull request: only those whose author's association is
 * one of NATOPS_PREVIEW_AUTHORS, or that carry NATOPS_PREVIEW_LABEL, are read.
 */
function previewGate(p: PullRequestPayload, tracked: Tracked): string | undefined {
  const authors = (tracked.previewAuthors ?? DEFAULT_PREVIEW_AUTHORS).map((a) => a.toUpperCase());
  const association = (p.pull_request.author_association ?? 'NONE').toUpperCase();
  if (authors.includes(association)) return undefined;
  const label = tracked.previewLabel;
  const labels = [...(p.pull_request.labels ?? []), ...(p.action === 'labeled' && p.label ? [p.label] : [])];
  if (label !== undefined && labels.some((l) => l.name === label)) return undefined;
  const orLabel = label === undefined ? '' : ` and without the label ${JSON.stringify(label)} (NATOPS_PREVIEW_LABEL)`;
  return `not previewed: author association ${association.slice(0, 40)} (NATOPS_PREVIEW_AUTHORS: ${authors.join(',')})${orLabel}; ignored`;
}
