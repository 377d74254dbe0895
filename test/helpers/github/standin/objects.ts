// Builders of the JSON objects GitHub answers (users, the App, installations, repositories,
// statuses, check runs, comments, pull requests), each with every field the description requires.
import { createHash } from 'node:crypto';
import { repoPermissions } from './auth.ts';
import { listRefs } from './git-data.ts';
import {
  type Ctx,
  type InstallationState,
  type IssueState,
  iso,
  nodeId,
  numericId,
  type RepoState,
  type State,
  WEB,
} from './state.ts';
import {
  DEFAULT_INSTALLATION_PERMISSIONS,
  type PostedStatus,
  type PullRequestConfig,
  type StoredCheckRun,
  type StoredComment,
} from './types.ts';

export function userObject(
  st: State,
  login: string,
  type: 'User' | 'Bot' | 'Organization',
  id = numericId(login),
): Record<string, unknown> {
  const api = `${st.baseUrl}/users/${encodeURIComponent(login)}`;
  return {
    login,
    id,
    node_id: nodeId(type === 'Bot' ? 'Bot' : type === 'Organization' ? 'Organization' : 'User', id),
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: '',
    url: api,
    html_url:
      type === 'Bot'
        ? `${WEB}/apps/${encodeURIComponent(login.replace(/\[bot\]$/, ''))}`
        : `${WEB}/${encodeURIComponent(login)}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type,
    user_view_type: 'public',
    site_admin: false,
  };
}

function botLogin(st: State): string {
  return `${st.app.slug}[bot]`;
}

function botId(st: State): number {
  return 9_000_000 + st.app.appId;
}

/** The caller as a user object: the App's bot for an installation token, else the configured user. */
export function caller(st: State, ctx: Ctx): { login: string; type: 'User' | 'Bot'; object: Record<string, unknown> } {
  if (ctx.principal.kind === 'installation')
    return { login: botLogin(st), type: 'Bot', object: userObject(st, botLogin(st), 'Bot', botId(st)) };
  return { login: st.user.login, type: 'User', object: userObject(st, st.user.login, 'User', st.user.id) };
}

function userByLogin(st: State, login: string, type?: 'User' | 'Bot'): Record<string, unknown> {
  if (login === botLogin(st)) return userObject(st, login, 'Bot', botId(st));
  if (login === st.user.login) return userObject(st, login, 'User', st.user.id);
  return userObject(st, login, type ?? (login.endsWith('[bot]') ? 'Bot' : 'User'));
}

export function integrationObject(st: State): Record<string, unknown> {
  const inst = [...st.installations.values()][0];
  const created = iso(st.startedAt - 30 * 86_400_000);
  return {
    id: st.app.appId,
    slug: st.app.slug,
    client_id: `Iv1.${createHash('sha256').update(String(st.app.appId)).digest('hex').slice(0, 16)}`,
    node_id: nodeId('App', st.app.appId),
    owner: userObject(st, inst?.account ?? 'natops', 'Organization'),
    name: st.app.slug,
    description: 'natops test App',
    external_url: 'https://natops.example.com',
    html_url: `${WEB}/apps/${st.app.slug}`,
    created_at: created,
    updated_at: created,
    permissions: { ...(inst?.permissions ?? DEFAULT_INSTALLATION_PERMISSIONS) },
    events: ['check_run', 'pull_request', 'push'],
    installations_count: st.installations.size,
  };
}

export function installationObject(st: State, inst: InstallationState): Record<string, unknown> {
  const accountId = numericId(inst.account);
  return {
    id: inst.id,
    account: userObject(st, inst.account, 'Organization', accountId),
    repository_selection: inst.repositories ? 'selected' : 'all',
    access_tokens_url: `${st.baseUrl}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${st.baseUrl}/installation/repositories`,
    html_url: `${WEB}/organizations/${inst.account}/settings/installations/${inst.id}`,
    app_id: st.app.appId,
    app_slug: st.app.slug,
    client_id: `Iv1.${createHash('sha256').update(String(st.app.appId)).digest('hex').slice(0, 16)}`,
    target_id: accountId,
    target_type: 'Organization',
    permissions: { ...inst.permissions },
    events: ['check_run', 'pull_request', 'push'],
    created_at: inst.createdAt,
    updated_at: inst.createdAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: null,
    suspended_at: null,
  };
}

export async function repositoryObject(
  st: State,
  repo: RepoState,
  withPermissions: boolean,
): Promise<Record<string, unknown>> {
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  const html = `${WEB}/${repo.owner}/${repo.name}`;
  const refs = await listRefs(repo);
  const defaultBranch = refs.head?.replace(/^refs\/heads\//, '') ?? 'main';
  const pushedSeconds = refs.newestCommitSeconds;
  const created = iso(st.startedAt - 365 * 86_400_000);
  const openIssues = [...repo.issues.values()].filter((i) => (i.pull?.state ?? 'open') === 'open').length;
  const out: Record<string, unknown> = {
    id: repo.id,
    node_id: nodeId('Repository', repo.id),
    name: repo.name,
    full_name: `${repo.owner}/${repo.name}`,
    private: true,
    owner: userObject(st, repo.owner, 'Organization'),
    html_url: html,
    description: null,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `git://github.com/${repo.owner}/${repo.name}.git`,
    hooks_url: `${api}/hooks`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@github.com:${repo.owner}/${repo.name}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${html}.git`,
    mirror_url: null,
    svn_url: html,
    homepage: null,
    language: 'YAML',
    forks: 0,
    forks_count: 0,
    stargazers_count: 0,
    watchers: 0,
    watchers_count: 0,
    size: 1,
    default_branch: defaultBranch,
    open_issues: openIssues,
    open_issues_count: openIssues,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: false,
    has_wiki: false,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: 'private',
    license: null,
    allow_forking: false,
    web_commit_signoff_required: false,
    pushed_at: Number.isFinite(pushedSeconds) && pushedSeconds > 0 ? iso(pushedSeconds * 1000) : created,
    created_at: created,
    updated_at: created,
    network_count: 0,
    subscribers_count: 1,
  };
  if (withPermissions) {
    const r = repoPermissions(st);
    out.permissions = { admin: r.admin, maintain: r.admin, push: r.push, triage: r.push, pull: r.pull };
  }
  return out;
}

export function statusObject(st: State, repo: RepoState, s: PostedStatus): Record<string, unknown> {
  const creator = userByLogin(st, s.creator);
  return {
    url: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
    avatar_url: creator.avatar_url,
    id: s.id,
    node_id: nodeId('StatusContext', s.id),
    state: s.state,
    description: s.description,
    target_url: s.target_url,
    context: s.context,
    created_at: s.created_at,
    updated_at: s.created_at,
    creator,
  };
}

export function checkRunObject(st: State, repo: RepoState, run: StoredCheckRun): Record<string, unknown> {
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  return {
    id: run.id,
    head_sha: run.head_sha,
    node_id: nodeId('CheckRun', run.id),
    external_id: run.external_id ?? '',
    url: `${api}/check-runs/${run.id}`,
    html_url: `${WEB}/${repo.owner}/${repo.name}/runs/${run.id}`,
    details_url: run.details_url ?? `${WEB}/apps/${st.app.slug}`,
    status: run.status,
    conclusion: run.conclusion,
    started_at: run.started_at,
    completed_at: run.completed_at,
    output: {
      title: run.output.title,
      summary: run.output.summary,
      text: run.output.text,
      annotations_count: run.annotations.length,
      annotations_url: `${api}/check-runs/${run.id}/annotations`,
    },
    name: run.name,
    check_suite: { id: 5_000_000 + run.id },
    app: integrationObject(st),
    pull_requests: [],
  };
}

export function commentObject(
  st: State,
  repo: RepoState,
  issue: IssueState,
  c: StoredComment,
): Record<string, unknown> {
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  const bot = c.login === botLogin(st);
  return {
    id: c.id,
    node_id: nodeId('IssueComment', c.id),
    url: `${api}/issues/comments/${c.id}`,
    html_url: `${WEB}/${repo.owner}/${repo.name}/${issue.pull ? 'pull' : 'issues'}/${issue.number}#issuecomment-${c.id}`,
    body: c.body,
    user: userByLogin(st, c.login, c.type),
    created_at: c.created_at,
    updated_at: c.updated_at,
    issue_url: `${api}/issues/${issue.number}`,
    author_association: c.author_association,
    performed_via_github_app: bot ? integrationObject(st) : null,
    reactions: {
      url: `${api}/issues/comments/${c.id}/reactions`,
      total_count: 0,
      '+1': 0,
      '-1': 0,
      laugh: 0,
      confused: 0,
      heart: 0,
      hooray: 0,
      eyes: 0,
      rocket: 0,
    },
  };
}

export async function pullObject(
  st: State,
  repo: RepoState,
  issue: IssueState,
  pr: PullRequestConfig,
): Promise<Record<string, unknown>> {
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  const html = `${WEB}/${repo.owner}/${repo.name}/pull/${issue.number}`;
  const id = 80_000_000 + repo.id + issue.number;
  const repoObj = await repositoryObject(st, repo, false);
  const author = userByLogin(st, pr.user ?? st.user.login);
  const owner = userObject(st, repo.owner, 'Organization');
  const state = pr.state ?? 'open';
  const merged = pr.merged ?? false;
  const link = (href: string) => ({ href });
  return {
    url: `${api}/pulls/${issue.number}`,
    id,
    node_id: nodeId('PullRequest', id),
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${issue.number}`,
    commits_url: `${api}/pulls/${issue.number}/commits`,
    review_comments_url: `${api}/pulls/${issue.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${issue.number}/comments`,
    statuses_url: `${api}/statuses/${pr.head.sha}`,
    number: issue.number,
    state,
    locked: false,
    title: pr.title ?? `Pull request #${issue.number}`,
    user: author,
    body: null,
    labels: [],
    milestone: null,
    active_lock_reason: null,
    created_at: issue.createdAt,
    updated_at: issue.createdAt,
    closed_at: state === 'closed' ? issue.createdAt : null,
    merged_at: merged ? issue.createdAt : null,
    merge_commit_sha: null,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: { label: `${repo.owner}:${pr.head.ref}`, ref: pr.head.ref, sha: pr.head.sha, user: owner, repo: repoObj },
    base: { label: `${repo.owner}:${pr.base.ref}`, ref: pr.base.ref, sha: pr.base.sha, user: owner, repo: repoObj },
    _links: {
      self: link(`${api}/pulls/${issue.number}`),
      html: link(html),
      issue: link(`${api}/issues/${issue.number}`),
      comments: link(`${api}/issues/${issue.number}/comments`),
      review_comments: link(`${api}/pulls/${issue.number}/comments`),
      review_comment: link(`${api}/pulls/comments{/number}`),
      commits: link(`${api}/pulls/${issue.number}/commits`),
      statuses: link(`${api}/statuses/${pr.head.sha}`),
    },
    author_association: 'MEMBER',
    auto_merge: null,
    draft: pr.draft ?? false,
    merged,
    mergeable: null,
    rebaseable: null,
    mergeable_state: 'unknown',
    merged_by: null,
    comments: issue.comments.length,
    review_comments: 0,
    maintainer_can_modify: false,
    commits: 1,
    additions: 0,
    deletions: 0,
    changed_files: 0,
  };
}
