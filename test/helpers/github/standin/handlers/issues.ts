// Handlers for issue comments and pull requests, with GitHub's page links.
import { need, repoFor } from '../auth.ts';
import { caller, commentObject, pullObject } from '../objects.ts';
import {
  type Handler,
  HttpError,
  type IssueState,
  isRecord,
  issueOf,
  iso,
  knownRepo,
  type RepoState,
  type State,
} from '../state.ts';
import type { StoredComment } from '../types.ts';

export const issuesHandlers: Record<string, Handler> = {
  'issues/list-comments': (st, ctx) => {
    const repo = repoFor(st, ctx);
    const issue = repo.issues.get(Number(ctx.params.issue_number));
    if (!issue) throw new HttpError(404, 'Not Found');
    need(st, ctx, issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'read');
    const perPage = Math.min(100, Math.max(1, Number(ctx.query.get('per_page')?.at(-1) ?? 30) || 30));
    const page = Math.max(1, Number(ctx.query.get('page')?.at(-1) ?? 1) || 1);
    const since = ctx.query.get('since')?.at(-1);
    const all = issue.comments.filter((c) => since === undefined || c.updated_at >= iso(Date.parse(since)));
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const items = all.slice((page - 1) * perPage, page * perPage).map((c) => commentObject(st, repo, issue, c));
    const headers: Record<string, string> = {};
    const link = linkHeader(`${st.baseUrl}${ctx.rawPath}`, ctx.rawQuery, page, last, all.length > 0);
    if (link) headers.link = link;
    return { status: 200, body: items, headers };
  },

  'issues/create-comment': (st, ctx) => {
    const repo = repoFor(st, ctx);
    const issue = repo.issues.get(Number(ctx.params.issue_number));
    if (!issue) throw new HttpError(404, 'Not Found');
    need(st, ctx, issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'write');
    const b = isRecord(ctx.body) ? ctx.body : {};
    const now = iso(Date.now());
    const who = caller(st, ctx);
    const c: StoredComment = {
      id: st.nextId++,
      issue: issue.number,
      body: String(b.body),
      login: who.login,
      type: who.type,
      author_association: who.type === 'Bot' ? 'NONE' : 'MEMBER',
      created_at: now,
      updated_at: now,
    };
    issue.comments.push(c);
    return {
      status: 201,
      body: commentObject(st, repo, issue, c),
      headers: { location: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/issues/comments/${c.id}` },
    };
  },

  'issues/get-comment': (st, ctx) => {
    const repo = repoFor(st, ctx);
    const found = findComment(repo, Number(ctx.params.comment_id));
    need(st, ctx, found.issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'read');
    return { status: 200, body: commentObject(st, repo, found.issue, found.comment) };
  },

  'issues/update-comment': (st, ctx) => {
    const repo = repoFor(st, ctx);
    const found = findComment(repo, Number(ctx.params.comment_id));
    need(st, ctx, found.issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'write');
    const b = isRecord(ctx.body) ? ctx.body : {};
    found.comment.body = String(b.body);
    found.comment.updated_at = iso(Math.max(Date.now(), Date.parse(found.comment.updated_at) + 1000));
    return { status: 200, body: commentObject(st, repo, found.issue, found.comment) };
  },

  'pulls/get': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['pull_requests'], 'read');
    const issue = repo.issues.get(Number(ctx.params.pull_number));
    if (!issue?.pull) throw new HttpError(404, 'Not Found');
    return { status: 200, body: await pullObject(st, repo, issue, issue.pull) };
  },
};

function findComment(repo: RepoState, id: number): { issue: IssueState; comment: StoredComment } {
  for (const issue of repo.issues.values()) {
    const comment = issue.comments.find((c) => c.id === id);
    if (comment) return { issue, comment };
  }
  throw new HttpError(404, 'Not Found');
}

/** A comment by someone else (or anyone), as if posted on GitHub; the issue comes into being. */
export function addComment(
  st: State,
  fullName: string,
  issue: number,
  c: { login: string; body: string; type?: 'User' | 'Bot'; authorAssociation?: string },
): StoredComment {
  const now = iso(Date.now());
  const comment: StoredComment = {
    id: st.nextId++,
    issue,
    body: c.body,
    login: c.login,
    type: c.type ?? (c.login.endsWith('[bot]') ? 'Bot' : 'User'),
    author_association: c.authorAssociation ?? 'NONE',
    created_at: now,
    updated_at: now,
  };
  issueOf(knownRepo(st, fullName), issue).comments.push(comment);
  return comment;
}

/**
 * GitHub's Link header: prev, next, last, first, each the request URL with `page` set last.
 * (GitHub itself links through /repositories/{id}/..., a path its description does not list;
 * the stand-in keeps /repos/{owner}/{repo}/... so the followed links stay checkable.)
 */
export function linkHeader(
  base: string,
  rawQuery: string,
  page: number,
  last: number,
  nonEmpty: boolean,
): string | undefined {
  if (!nonEmpty) return undefined;
  const at = (p: number) => {
    const q = new URLSearchParams(rawQuery);
    q.delete('page');
    q.append('page', String(p));
    return `<${base}?${q.toString()}>`;
  };
  const parts: string[] = [];
  if (page > 1) parts.push(`${at(page - 1)}; rel="prev"`);
  if (page < last) parts.push(`${at(page + 1)}; rel="next"`, `${at(last)}; rel="last"`);
  if (page > 1) parts.push(`${at(1)}; rel="first"`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}
