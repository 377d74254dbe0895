// Handlers for check runs: create, update, get, and list for a ref.
import { appOnly, need, repoFor } from '../auth.ts';
import { objectType, resolveCommit } from '../git-data.ts';
import { checkRunObject } from '../objects.ts';
import { type Handler, HttpError, isRecord, iso, SHA } from '../state.ts';
import type { Annotation, StoredCheckRun } from '../types.ts';

export const checksHandlers: Record<string, Handler> = {
  'checks/create': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    appOnly(ctx);
    need(st, ctx, ['checks'], 'write');
    const b = isRecord(ctx.body) ? ctx.body : {};
    const sha = typeof b.head_sha === 'string' ? b.head_sha : '';
    if (!SHA.test(sha) || (await objectType(st, repo, sha)) !== 'commit')
      throw new HttpError(422, `No commit found for SHA: ${sha}`);
    const run: StoredCheckRun = {
      id: 4_000_000_000 + st.nextId++,
      name: String(b.name),
      head_sha: sha,
      status: 'queued',
      conclusion: null,
      started_at: iso(Date.now()),
      completed_at: null,
      details_url: null,
      external_id: null,
      output: { title: null, summary: null, text: null },
      annotations: [],
      updates: 0,
    };
    applyCheckRun(run, b);
    repo.checkRuns.set(run.id, run);
    return {
      status: 201,
      body: checkRunObject(st, repo, run),
      headers: { location: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/check-runs/${run.id}` },
    };
  },

  'checks/update': (st, ctx) => {
    const repo = repoFor(st, ctx);
    appOnly(ctx);
    need(st, ctx, ['checks'], 'write');
    const run = repo.checkRuns.get(Number(ctx.params.check_run_id));
    if (!run) throw new HttpError(404, 'Not Found');
    run.updates++;
    applyCheckRun(run, isRecord(ctx.body) ? ctx.body : {});
    return { status: 200, body: checkRunObject(st, repo, run) };
  },

  'checks/list-for-ref': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['checks'], 'read');
    const sha = await resolveCommit(st, repo, ctx.params.ref ?? '');
    if (!sha) throw new HttpError(422, `No commit found for SHA: ${ctx.params.ref ?? ''}`);
    const name = ctx.query.get('check_name')?.at(-1);
    const runs = [...repo.checkRuns.values()]
      .filter((r) => r.head_sha === sha && (name === undefined || r.name === name))
      .sort((a, b) => b.id - a.id);
    // filter=latest (the default): the newest run per name
    const latest =
      (ctx.query.get('filter')?.at(-1) ?? 'latest') === 'latest'
        ? runs.filter((r, i) => runs.findIndex((o) => o.name === r.name) === i)
        : runs;
    return {
      status: 200,
      body: { total_count: latest.length, check_runs: latest.map((r) => checkRunObject(st, repo, r)) },
    };
  },

  'checks/get': (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['checks'], 'read');
    const run = repo.checkRuns.get(Number(ctx.params.check_run_id));
    if (!run) throw new HttpError(404, 'Not Found');
    return { status: 200, body: checkRunObject(st, repo, run) };
  },
};

function applyCheckRun(run: StoredCheckRun, b: Record<string, unknown>): void {
  if (typeof b.name === 'string') run.name = b.name;
  if (typeof b.details_url === 'string') run.details_url = b.details_url;
  if (typeof b.external_id === 'string') run.external_id = b.external_id;
  if (typeof b.started_at === 'string') run.started_at = b.started_at;
  if (typeof b.status === 'string') run.status = b.status;
  if (typeof b.conclusion === 'string') {
    // GitHub: giving a conclusion completes the run.
    run.conclusion = b.conclusion;
    run.status = 'completed';
  }
  if (typeof b.completed_at === 'string') run.completed_at = b.completed_at;
  if (run.status === 'completed' && run.completed_at === null) run.completed_at = iso(Date.now());
  const output = b.output;
  if (isRecord(output)) {
    if (typeof output.title === 'string') run.output.title = output.title;
    if (typeof output.summary === 'string') run.output.summary = output.summary;
    if (typeof output.text === 'string') run.output.text = output.text;
    if (Array.isArray(output.annotations))
      for (const a of output.annotations) if (isRecord(a)) run.annotations.push(a as Annotation);
  }
}
