// The preview function: a pull request's head planned against its base from the manifests alone
// (nothing live is read or changed), written as ONE comment on the pull request, found again by
// a hidden marker and its author and edited in place, plus a `natops/preview` status on the head.
// A newer event of the pull request supersedes an older one still being computed; a close marks
// the comment outdated; two open pull requests changing the same gateway each say so.
import type { GitHub } from '../../github/client.ts';
import type { GitSource } from '../../gitops/git/source.ts';
import type { LoadLimits } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import type { PreviewJob } from '../../queue/jobs.ts';
import { withLock } from '../../queue/lock.ts';
import type { PreviewBook, PreviewRecord } from '../../queue/previews.ts';
import type { Queues } from '../../queue/queues.ts';
import { PREVIEW_CONTEXT, statusText } from '../../queue/statuses.ts';
import { codeSpan, renderMarkdown } from '../../preview/markdown.ts';
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
  /** the tracked path inside the repository */
  path: string;
  limits: LoadLimits;
}

export type PreviewOutcome =
  | { kind: 'superseded' }
  | { kind: 'commented'; commentId: number; valid: boolean; gateways: string[] }
  | { kind: 'closed'; commentId: number | undefined }
  | { kind: 'gone' };

/** Gateways a preview touches: any it would create, change or remove, or whose manifest is broken. */
const touched = (p: Preview) => p.gateways.filter((g) => g.action !== 'unchanged').map((g) => g.name);

export async function previewPullRequest(ctx: JobContext<PreviewJob>, env: PreviewEnv): Promise<PreviewOutcome> {
  const job = ctx.data;
  if (job.action === 'preview') {
    const wanted = { head: job.head, base: job.base, updatedAt: job.updatedAt };
    // Taken before the lease: a job computing an older head sees it is no longer wanted.
    if (!(await env.previews.claim(job.number, wanted))) {
      ctx.log(`#${job.number}: a newer event came first; skipped`);
      return { kind: 'superseded' };
    }
  }
  return withLock(env.redis, env.previews.leaseKey(job.number), env.lock, async (lease) => {
    const prev = await env.previews.get(job.number);
    let rec: PreviewRecord;
    if (job.action === 'preview') {
      rec = {
        number: job.number, title: job.title, url: job.url, headLabel: job.headLabel, baseRef: job.baseRef, head: job.head, base: job.base,
        updatedAt: job.updatedAt, state: 'computing', gateways: prev?.gateways ?? [], overlaps: prev?.overlaps ?? [], summary: 'computing', at: Date.now(),
        ...(prev?.commentId ? { commentId: prev.commentId } : {}),
      };
      await env.previews.set(rec);
      await env.statuses.publish([{ sha: job.head, context: PREVIEW_CONTEXT, state: 'pending', description: 'computing the preview', targetUrl: job.url }]);
    } else {
      if (!prev) {
        ctx.log(`#${job.number}: no preview to ${job.action}`);
        return { kind: 'gone' };
      }
      // A close older than what the record follows (the pull request was reopened since) changes nothing.
      if (job.action === 'close' && job.updatedAt < prev.updatedAt) return { kind: 'superseded' };
      rec = job.action === 'close' ? { ...prev, state: 'closed', merged: job.merged, updatedAt: job.updatedAt, at: Date.now() } : prev;
    }

    const [base, head] = await Promise.all([rec.base, rec.head].map(async (sha) => validateManifests(
      await env.source.manifestsAt(sha, env.path, { warn: (m) => ctx.log(`warning: ${m}`) }), env.limits)));
    const preview = previewChanges(base!, head!, { base: rec.base.slice(0, 7), head: rec.head.slice(0, 7) });
    const gateways = touched(preview);
    const closed = rec.state === 'closed';
    const others = closed ? [] : (await env.previews.open()).filter((o) => o.number !== rec.number);
    const overlapping = others.map((o) => ({ number: o.number, shared: o.gateways.filter((g) => gateways.includes(g)) })).filter((o) => o.shared.length);
    const banner = [
      ...(closed ? [`> **Outdated:** the pull request was closed${rec.merged ? ' and merged' : ' without merging'}; this preview is not updated any more.`] : []),
      ...overlapping.map((o) => `> **Also changed by #${o.number}:** ${o.shared.map((g) => `gateway ${codeSpan(g)}`).join(', ')}. Whichever merges second is planned on top of the first.`),
    ];
    const body = `${PREVIEW_MARKER}\n${renderMarkdown(preview, {
      banner, limit: COMMENT_LIMIT - PREVIEW_MARKER.length - 1, limitName: "GitHub's 65,536-character limit on a comment",
      linkTo: (path, line) => `${env.github.htmlUrl}/blob/${rec.head}/${path.split('/').map(encodeURIComponent).join('/')}#L${line}`,
      fullCommand: `natops preview --base ${rec.base.slice(0, 12)} --head ${rec.head.slice(0, 12)}`,
    })}`;

    // A newer push may have come while this one was read and planned: it writes the comment.
    if (job.action === 'preview' && !(await env.previews.isWanted(job.number, { head: rec.head, base: rec.base, updatedAt: rec.updatedAt }))) {
      ctx.log(`#${job.number}: superseded by a newer event while computing; not written`);
      // Its head was said to be computing: it must not stay pending.
      await env.statuses.publish([{ sha: rec.head, context: PREVIEW_CONTEXT, state: 'success', description: 'not previewed: superseded by a newer push or base', targetUrl: rec.url }]);
      return { kind: 'superseded' };
    }
    await lease.check();
    const commentId = await upsertComment(env.github, rec.number, body);
    const v = verdict(preview);
    const final: PreviewRecord = {
      ...rec, state: closed ? 'closed' : v.ok ? 'ready' : 'invalid', gateways, overlaps: overlapping.map((o) => o.number),
      summary: `${actionsSentence(preview)} ${v.text}`, commentId, at: Date.now(),
    };
    await env.previews.set(final);
    if (job.action === 'preview') {
      const state = v.ok ? 'success' : 'failure';
      await env.statuses.publish([{ sha: rec.head, context: PREVIEW_CONTEXT, state, description: statusText(`${actionsSentence(preview)}${v.ok ? '' : ` ${v.text}`}`), targetUrl: `${rec.url}#issuecomment-${commentId}` }]);
    }
    // The other open pull requests whose note about this one is now wrong are written again.
    if (job.action !== 'rerender') {
      for (const o of closed ? await env.previews.open() : others) {
        const shares = !closed && o.gateways.some((g) => gateways.includes(g));
        if (shares !== o.overlaps.includes(rec.number)) await env.queues.addPreview({ action: 'rerender', number: o.number });
      }
    }
    ctx.log(`#${rec.number}: ${final.summary}${overlapping.length ? ` (also changed by ${overlapping.map((o) => `#${o.number}`).join(', ')})` : ''}`);
    return closed ? { kind: 'closed', commentId } : { kind: 'commented', commentId, valid: v.ok, gateways };
  });
}

/** natops's one comment on the pull request: found through every page by marker and author, edited, or made. */
async function upsertComment(github: GitHub, issue: number, body: string): Promise<number> {
  const mine = (await github.api.comments(issue)).find((c) => c.author === github.login && c.body.startsWith(PREVIEW_MARKER));
  if (mine) {
    if (mine.body !== body) await github.api.updateComment(mine.id, body);
    return mine.id;
  }
  return github.api.createComment(issue, body);
}
