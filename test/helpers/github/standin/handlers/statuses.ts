// Handlers for commit statuses, and the one place a status is stored (GitHub's 1,000 per sha and
// context included), shared with the stand-in's addStatus.
import { need, repoFor } from '../auth.ts';
import { objectType } from '../git-data.ts';
import { caller, statusObject } from '../objects.ts';
import { type Handler, HttpError, isRecord, iso, type RepoState, SHA, type State } from '../state.ts';
import type { PostedStatus, StatusInput } from '../types.ts';

const MAX_STATUSES_PER_CONTEXT = 1000;

export const statusesHandlers: Record<string, Handler> = {
  'repos/create-commit-status': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['statuses'], 'write');
    const sha = ctx.params.sha ?? '';
    if (!SHA.test(sha) || (await objectType(st, repo, sha)) !== 'commit')
      throw new HttpError(422, `No commit found for SHA: ${sha}`);
    const b = isRecord(ctx.body) ? ctx.body : {};
    const s = pushStatus(st, repo, sha, {
      state: b.state as PostedStatus['state'],
      context: typeof b.context === 'string' ? b.context : undefined,
      description: typeof b.description === 'string' ? b.description : undefined,
      target_url: typeof b.target_url === 'string' ? b.target_url : undefined,
      creator: caller(st, ctx).login,
    });
    return {
      status: 201,
      body: statusObject(st, repo, s),
      headers: { location: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/statuses/${sha}` },
    };
  },
};

export function pushStatus(st: State, repo: RepoState, sha: string, input: StatusInput): PostedStatus {
  const context = input.context ?? 'default';
  const list = repo.statuses.get(sha) ?? [];
  if (list.filter((x) => x.context === context).length >= MAX_STATUSES_PER_CONTEXT) {
    throw new HttpError(422, 'Validation Failed', [
      {
        resource: 'Status',
        code: 'custom',
        field: 'context',
        message: 'This SHA and context has reached the maximum number of statuses.',
      },
    ]);
  }
  const s: PostedStatus = {
    id: st.nextId++,
    sha,
    state: input.state,
    description: input.description ?? null,
    target_url: input.target_url ?? null,
    context,
    created_at: iso(Date.now()),
    creator: input.creator ?? st.user.login,
  };
  list.push(s);
  repo.statuses.set(sha, list);
  return s;
}
