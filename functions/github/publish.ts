// Writes what natops's status book says about a commit to GitHub: each status that GitHub does
// not show yet (an identical one is never written again: GitHub keeps at most 1,000 per context),
// and, as an App, the commit's check run with the manifest problems as annotations, 50 a request.
// One job per change; each writes whatever is newest when it runs, under the commit's lease.
import type { GitHub } from '../../gitops/github/client.ts';
import type { GitHubSyncJob } from '../../queue/jobs.ts';
import { withLock, type Lease } from '../../state/lock.ts';
import { statusFingerprint, SUMMARY_CONTEXT, type CommitStatus } from '../../state/statuses.ts';
import type { FunctionEnv, JobContext } from '../jobs/env.ts';
import { annotationsOf, ANNOTATIONS_PER_REQUEST, CHECK_NAME, checkRunContent } from './check-run.ts';

export interface GitHubEnv extends Pick<FunctionEnv, 'statuses' | 'store' | 'redis' | 'lock'> {
  github: GitHub;
}

export interface Published {
  statuses: number;
  checkRun: 'created' | 'updated' | 'unchanged' | 'none';
}

export async function publishCommit(ctx: JobContext<GitHubSyncJob>, env: GitHubEnv): Promise<Published> {
  const { sha } = ctx.data;
  return withLock(env.redis, env.store.commitLeaseKey(sha), env.lock, async (lease) => {
    const current = await env.statuses.get(sha);
    const posted = await env.statuses.posted(sha);
    // The summary last: it should never claim more than the gateways' statuses show.
    const order = [
      ...current.filter((s) => s.context !== SUMMARY_CONTEXT),
      ...current.filter((s) => s.context === SUMMARY_CONTEXT),
    ];
    let written = 0;
    for (const status of order) {
      // GitHub gets the public form where there is one (an error's text stays on natops's pages)
      const s = { ...status, description: status.publicDescription ?? status.description };
      const fp = statusFingerprint(s);
      if (posted.get(s.context) === fp) continue;
      await lease.check();
      await env.github.api.createStatus(sha, {
        state: s.state,
        context: s.context,
        description: s.description,
        targetUrl: s.targetUrl,
      });
      await env.statuses.markPosted(sha, s.context, fp);
      written++;
    }
    // A check run is about a planned commit (it has a summary); a pull request's head that only
    // carries its preview status gets none, or it would stay in progress forever.
    const planned = current.some((s) => s.context === SUMMARY_CONTEXT);
    const checkRun = env.github.checks && planned ? await syncCheckRun(sha, current, env, lease) : 'none';
    if (written || (checkRun !== 'unchanged' && checkRun !== 'none'))
      ctx.log.info(
        `GitHub: ${written} status${written === 1 ? '' : 'es'} written${checkRun === 'none' ? '' : `, check run ${checkRun}`}`,
      );
    return { statuses: written, checkRun };
  });
}

async function syncCheckRun(
  sha: string,
  statuses: CommitStatus[],
  env: GitHubEnv,
  lease: Lease,
): Promise<Published['checkRun']> {
  const issues = await env.store.commitIssues(sha);
  const content = checkRunContent(statuses, issues);
  const annotations = annotationsOf(issues);
  const fingerprint = JSON.stringify([content.status, content.conclusion ?? null, content.output]);
  let rec = await env.store.checkRun(sha);
  if (rec && rec.fingerprint === fingerprint && rec.annotated >= annotations.length) return 'unchanged';
  const api = env.github.api;
  await lease.check();
  // Not on record: a run made before a crash (or a lost answer) is found on GitHub, never made twice.
  if (!rec) {
    const found = await api.findCheckRun(sha, CHECK_NAME);
    if (found) rec = { id: found.id, annotated: found.annotations, fingerprint: '' };
  }
  const result = rec ? 'updated' : 'created';
  if (!rec) {
    const first = annotations.slice(0, ANNOTATIONS_PER_REQUEST);
    const id = await api.createCheckRun(sha, {
      name: CHECK_NAME,
      ...content,
      output: { ...content.output, annotations: first },
    });
    rec = { id, annotated: first.length, fingerprint };
    await env.store.setCheckRun(sha, rec);
  }
  // GitHub adds each update's annotations to those the run has: how many it has is asked first,
  // so an update whose answer was lost is not sent twice.
  for (let verified = false; ; ) {
    if (rec.annotated < annotations.length && !verified) {
      rec = { ...rec, annotated: await api.checkRunAnnotations(rec.id) };
      verified = true;
    }
    const next = annotations.slice(rec.annotated, rec.annotated + ANNOTATIONS_PER_REQUEST);
    if (rec.fingerprint === fingerprint && !next.length) break;
    await lease.check();
    await api.updateCheckRun(rec.id, {
      ...content,
      output: { ...content.output, ...(next.length ? { annotations: next } : {}) },
    });
    rec = { id: rec.id, annotated: rec.annotated + next.length, fingerprint };
    await env.store.setCheckRun(sha, rec);
    if (rec.annotated >= annotations.length) break;
  }
  return result;
}
