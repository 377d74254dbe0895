// The preview function: a pull request's head planned against where it left the base branch
// (their merge base, as GitHub's diff of a pull request), from the manifests alone: nothing live
// is read or changed. Written as ONE comment on the pull request, found again by a hidden marker
// and its author and edited in place, plus a `natops/preview` status on the head. A newer event
// of the pull request supersedes an older one still being computed, and nothing is written that
// GitHub no longer says is the pull request's state; a close (or a move to another base branch)
// marks the comment outdated; two open pull requests changing the same gateway each say so.
import type { GitHub } from '../../gitops/github/client.ts';
import type { GitSource } from '../../gitops/git/source.ts';
import { validatedAt } from '../../gitops/git/validated.ts';
import { EipAllocations } from '../../state/eip-allocations.ts';
import type { ManifestRules } from '../../gitops/manifests/validate.ts';
import type { PreviewJob } from '../../queue/jobs.ts';
import { withLock } from '../../state/lock.ts';
import type { PreviewBook, PreviewRecord, WantedPreview } from '../../state/previews.ts';
import type { Queues } from '../../queue/queues.ts';
import { PREVIEW_CONTEXT, statusText, type StatusBook } from '../../state/statuses.ts';
import { codeSpan, renderMarkdown, renderProofMarkdown } from '../../preview/markdown.ts';
import type { Proof } from '../../preview/probes.ts';
import { changedGateways, headFailed, proofSentences } from '../../preview/proof.ts';
import { SUMMARY_LIMIT } from '../github/check-run.ts';
import { provePreview, type ProveOptions } from './prove.ts';
import { previewChanges, type Preview } from '../../preview/preview.ts';
import { actionsSentence, verdict } from '../../preview/words.ts';
import type { FunctionEnv, JobContext } from '../jobs/env.ts';

/** How natops finds its own comment again (with its author: anyone could paste the marker). */
export const PREVIEW_MARKER = '<!-- natops:preview -->';
/** GitHub rejects comment bodies longer than this. */
export const COMMENT_LIMIT = 65_536;

export interface PreviewEnv extends Pick<FunctionEnv, 'statuses' | 'redis' | 'lock'> {
  github: GitHub;
  /** GitHub's trees and blobs: a fork's commits are read through the base repository */
  source: GitSource;
  previews: PreviewBook;
  queues: Pick<Queues, 'addPreview'>;
  /** the tracked branch: pull requests into it are previewed */
  branch: string;
  /** the tracked path inside the repository */
  path: string;
  /** the operator's limits and workload policy */
  limits: ManifestRules;
  /** set: each preview's sides are proven with real packets in throwaway labs (NATOPS_PREVIEW_PROVE) */
  prove?: ProveOptions | undefined;
}

/** The check run a proven preview writes on the head. */
export const PROVE_CHECK = 'natops/prove';

export type PreviewOutcome =
  | { kind: 'superseded'; why: string }
  | { kind: 'commented'; commentId: number; valid: boolean; gateways: string[] }
  | { kind: 'closed'; commentId: number }
  | { kind: 'gone' };

/** Gateways a preview touches: any it would create, change or remove, or whose manifest is broken. */
const touched = (p: Preview) => p.gateways.filter((g) => g.action !== 'unchanged').map((g) => g.name);

const superseded = (statuses: StatusBook, head: string, url: string) =>
  statuses.publish([
    {
      sha: head,
      context: PREVIEW_CONTEXT,
      state: 'success',
      description: 'not previewed: superseded by a newer push or base',
      targetUrl: url,
    },
  ]);

export async function previewPullRequest(ctx: JobContext<PreviewJob>, env: PreviewEnv): Promise<PreviewOutcome> {
  const job = ctx.data;
  // The event is claimed before the lease: a job computing an older one then sees it is no longer wanted.
  let wanted: WantedPreview | undefined;
  if (job.action === 'preview') {
    wanted = { head: job.head, base: job.base, updatedAt: job.updatedAt, closed: false };
  } else if (job.action === 'close') {
    const prev = await env.previews.get(job.number);
    if (!prev) return gone(ctx, job.number);
    wanted = { head: prev.head, base: prev.base, updatedAt: job.updatedAt, closed: true };
  }
  if (wanted && !(await env.previews.claim(job.number, wanted))) {
    const now = await env.previews.wanted(job.number);
    ctx.log.info(`#${job.number}: a newer event came first; skipped`);
    // An earlier attempt of this job may have said "computing" on its head.
    if (job.action === 'preview' && now?.head !== job.head) await superseded(env.statuses, job.head, job.url);
    return { kind: 'superseded', why: 'a newer event came first' };
  }

  return withLock(env.redis, env.previews.leaseKey(job.number), env.lock, async (lease) => {
    const prev = await env.previews.get(job.number);
    let rec: PreviewRecord;
    if (job.action === 'preview') {
      rec = {
        number: job.number,
        title: job.title,
        url: job.url,
        headLabel: job.headLabel,
        baseRef: job.baseRef,
        head: job.head,
        base: job.base,
        updatedAt: job.updatedAt,
        state: 'computing',
        gateways: prev?.gateways ?? [],
        overlaps: prev?.overlaps ?? [],
        summary: 'computing',
        at: Date.now(),
        ...(prev?.commentId ? { commentId: prev.commentId } : {}),
      };
      await env.previews.set(rec);
      await env.statuses.publish([
        {
          sha: job.head,
          context: PREVIEW_CONTEXT,
          state: 'pending',
          description: 'computing the preview',
          targetUrl: job.url,
        },
      ]);
    } else {
      if (!prev) return gone(ctx, job.number);
      rec =
        job.action === 'close'
          ? {
              ...prev,
              state: 'closed',
              merged: job.merged,
              updatedAt: job.updatedAt,
              at: Date.now(),
              ...(job.retargeted ? { retargeted: job.retargeted } : {}),
            }
          : prev;
    }

    const from = (await env.source.mergeBase(rec.base, rec.head)) ?? rec.base;
    // EIPs without v4ip as the planner allocated them (read only: a preview allocates nothing;
    // one new in the head shows the address it would get now)
    const allocations = { table: await new EipAllocations(env.redis, env.previews.prefix).table() };
    const [base, head] = await Promise.all(
      [from, rec.head].map((sha) =>
        validatedAt(env.source, sha, env.path, env.limits, (m) => ctx.log.warn(m), allocations),
      ),
    );
    const preview = previewChanges(base!, head!, { base: from.slice(0, 7), head: rec.head.slice(0, 7) });
    const gateways = touched(preview);
    const closed = rec.state === 'closed';
    // an outdated preview is not proven again; a refused or disabled head changes nothing
    if (env.prove && !closed && !preview.head.refused && preview.head.enabled)
      preview.proof = await provePreview(
        base!.desired.enabled ? base!.desired : undefined,
        head!.desired,
        changedGateways(preview),
        env.prove,
      );
    const sharing = async () =>
      closed
        ? []
        : (await env.previews.open())
            .filter((o) => o.number !== rec.number)
            .map((o) => ({
              number: o.number,
              gateways: o.gateways,
              overlaps: o.overlaps,
              shared: o.gateways.filter((g) => gateways.includes(g)),
            }));
    const overlapping = (await sharing()).filter((o) => o.shared.length);
    const outdated = rec.retargeted
      ? `the pull request now targets ${codeSpan(rec.retargeted)}, not ${codeSpan(env.branch)}`
      : `the pull request was closed${rec.merged ? ' and merged' : ' without merging'}`;
    const banner = [
      ...(closed ? [`> **Outdated:** ${outdated}; this preview is not updated any more.`] : []),
      ...overlapping.map(
        (o) =>
          `> **Also changed by #${o.number}:** ${o.shared.map((g) => `gateway ${codeSpan(g)}`).join(', ')}. Whichever merges second is planned on top of the first.`,
      ),
    ];
    const body = `${PREVIEW_MARKER}\n${renderMarkdown(preview, {
      banner,
      limit: COMMENT_LIMIT - PREVIEW_MARKER.length - 1,
      limitName: "GitHub's 65,536-character limit on a comment",
      linkTo: (path, line) =>
        `${env.github.htmlUrl}/blob/${rec.head}/${path.split('/').map(encodeURIComponent).join('/')}#L${line}`,
      fullCommand: `natops preview --base ${from.slice(0, 12)} --head ${rec.head.slice(0, 12)}`,
    })}`;

    // Nothing is written that is no longer true: a newer event claimed meanwhile, or GitHub says
    // the pull request is elsewhere now (events of one second, a close racing a push).
    const stale = await staleness(job, rec, wanted, env);
    if (stale) {
      ctx.log.info(`#${job.number}: ${stale}; not written`);
      if (job.action === 'preview') await superseded(env.statuses, rec.head, rec.url);
      return { kind: 'superseded', why: stale };
    }
    await lease.check();
    const commentId = await upsertComment(env.github, rec.number, body, rec.commentId);
    const v = verdict(preview);
    const final: PreviewRecord = {
      ...rec,
      from,
      state: closed ? 'closed' : v.ok ? 'ready' : 'invalid',
      gateways,
      overlaps: overlapping.map((o) => o.number),
      summary: `${actionsSentence(preview)} ${v.text}`,
      commentId,
      at: Date.now(),
    };
    await env.previews.set(final);
    // a rerender proved again: the check run says what the comment says
    if (job.action !== 'close' && preview.proof && env.github.checks)
      await publishProof(env.github, rec.head, preview.proof, `${rec.url}#issuecomment-${commentId}`);
    if (job.action === 'preview') {
      await env.statuses.publish([
        {
          sha: rec.head,
          context: PREVIEW_CONTEXT,
          state: v.ok ? 'success' : 'failure',
          description: statusText(`${actionsSentence(preview)}${v.ok ? '' : ` ${v.text}`}`),
          targetUrl: `${rec.url}#issuecomment-${commentId}`,
        },
      ]);
    }
    // Read again now that this record is written: a preview of another pull request computed at
    // the same time saw this one's old gateways. Each comment whose note is wrong is written again.
    let again = false;
    for (const o of await sharing()) {
      if (o.shared.length > 0 !== o.overlaps.includes(rec.number))
        await env.queues.addPreview({ action: 'rerender', number: o.number });
      again ||= o.shared.length > 0 !== final.overlaps.includes(o.number);
    }
    if (again) await env.queues.addPreview({ action: 'rerender', number: rec.number });
    if (closed)
      for (const o of await env.previews.open())
        if (o.overlaps.includes(rec.number)) await env.queues.addPreview({ action: 'rerender', number: o.number });
    ctx.log.info(
      `#${rec.number}: ${final.summary}${overlapping.length ? ` (also changed by ${overlapping.map((o) => `#${o.number}`).join(', ')})` : ''}`,
    );
    return closed ? { kind: 'closed', commentId } : { kind: 'commented', commentId, valid: v.ok, gateways };
  });
}

/** The proof as a check run on the head: failure when a mapping of the head did not answer. */
async function publishProof(github: GitHub, sha: string, proof: Proof, url: string): Promise<void> {
  const [title = 'packets'] = proofSentences(proof);
  const run = {
    status: 'completed' as const,
    conclusion: headFailed(proof) ? ('failure' as const) : ('success' as const),
    detailsUrl: url,
    output: { title: title.slice(0, 255), summary: renderProofMarkdown(proof).slice(0, SUMMARY_LIMIT) },
  };
  const found = await github.api.findCheckRun(sha, PROVE_CHECK);
  if (found)
    await github.api.updateCheckRun(found.id, { status: run.status, conclusion: run.conclusion, output: run.output });
  else await github.api.createCheckRun(sha, { name: PROVE_CHECK, ...run });
}

function gone(ctx: JobContext<PreviewJob>, number: number): PreviewOutcome {
  ctx.log.info(`#${number}: no preview to ${ctx.data.action}`);
  return { kind: 'gone' };
}

/** Why what was computed must not be written, if it must not. */
async function staleness(
  job: PreviewJob,
  rec: PreviewRecord,
  wanted: WantedPreview | undefined,
  env: PreviewEnv,
): Promise<string | undefined> {
  if (wanted && !(await env.previews.isWanted(job.number, wanted)))
    return 'superseded by a newer event while computing';
  if (job.action === 'rerender') return undefined;
  const pr = await env.github.api.pullRequest(job.number);
  if (!pr) return 'the pull request is gone';
  if (job.action === 'preview') {
    if (pr.state !== 'open') return 'the pull request was closed meanwhile';
    if (pr.head !== rec.head) return `the pull request's head is ${pr.head.slice(0, 7)} now`;
    if (pr.baseRef !== env.branch) return `the pull request targets ${pr.baseRef} now`;
  } else if (pr.state === 'open' && pr.baseRef === env.branch) {
    return 'the pull request is open again';
  }
  return undefined;
}

/**
 * natops's one comment on the pull request, edited or made: the one the preview record names
 * (one request), else found through every page by marker and author (a record lost, a comment
 * deleted), so a thread full of comments does not cost a scan on every push.
 */
async function upsertComment(github: GitHub, issue: number, body: string, known?: number): Promise<number> {
  const ours = (c: { author: string | undefined; body: string }) =>
    c.author === github.login && c.body.startsWith(PREVIEW_MARKER);
  const remembered = known === undefined ? undefined : await github.api.comment(known);
  const mine =
    remembered && remembered.issue === issue && ours(remembered)
      ? remembered
      : (await github.api.comments(issue)).find(ours);
  if (mine) {
    if (mine.body !== body) await github.api.updateComment(mine.id, body);
    return mine.id;
  }
  return github.api.createComment(issue, body);
}
