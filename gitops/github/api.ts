// natops's calls to GitHub's REST API for one repository, over an authenticated octokit (see
// client.ts). Every failure becomes a GitHubError that says whether a retry can help, and when:
// a rate limit names the moment it lifts, so the job waits for it instead of burning attempts.
import { RequestError } from '@octokit/request-error';
import type { Octokit } from 'octokit';
import { errorMessage, NatopsError, RetryLaterError } from '../../common/errors.ts';

export class GitHubError extends NatopsError {
  constructor(
    readonly operation: string,
    message: string,
    readonly status: number | undefined,
    opts: { retryable: boolean; cause?: unknown },
  ) {
    super(`GitHub ${operation}: ${message}`, opts);
  }
}

/** GitHub's rate limit: nothing is wrong with the request; it may be sent again at `retryAt`. */
export class GitHubRateLimitError extends RetryLaterError {
  constructor(
    readonly operation: string,
    message: string,
    retryAt: number,
  ) {
    super(`GitHub ${operation}: ${message} (until ${new Date(retryAt).toISOString()})`, retryAt);
  }
}

const header = (e: RequestError, name: string): string | undefined => {
  const v = e.response?.headers[name];
  return v === undefined ? undefined : String(v);
};

/** When a rate-limited request may go again: retry-after, else the window's reset, else a minute. */
function rateLimitedUntil(e: RequestError, now = Date.now()): number | undefined {
  const secondary = /secondary rate limit/i.test(e.message);
  const exhausted = header(e, 'x-ratelimit-remaining') === '0';
  if (e.status !== 429 && !(e.status === 403 && (secondary || exhausted))) return undefined;
  const after = Number(header(e, 'retry-after'));
  if (Number.isFinite(after) && after > 0) return now + after * 1000;
  const reset = Number(header(e, 'x-ratelimit-reset'));
  if (Number.isFinite(reset) && reset > 0 && exhausted) return Math.max(now, reset * 1000) + 1000;
  return now + 60_000;
}

/** GitHub's answer in a few words: its status and message. */
export function describeFailure(e: unknown): string {
  return e instanceof RequestError ? `${e.status} ${e.message}` : errorMessage(e);
}

/**
 * A failed call as natops's error: rate limits wait, 5xx and network errors (octokit reports
 * those as 500) retry, the rest do not. An error that is not GitHub's answer is a bug: no retry.
 */
export function gitHubError(operation: string, e: unknown): GitHubError | GitHubRateLimitError {
  if (!(e instanceof RequestError))
    return new GitHubError(operation, describeFailure(e), undefined, { retryable: false, cause: e });
  const until = rateLimitedUntil(e);
  if (until !== undefined) return new GitHubRateLimitError(operation, e.message, until);
  // 401 bad credentials, 403 no permission, 404, 422 invalid: the same request fails the same way.
  const retryable = e.status >= 500 || e.status === 408;
  return new GitHubError(operation, describeFailure(e), e.status, { retryable, cause: e });
}

// a type, not an interface: octokit's parameters take an index signature
export type RepoRef = {
  owner: string;
  repo: string;
};

export function parseRepository(fullName: string): RepoRef {
  const [owner, repo, ...rest] = fullName.split('/');
  if (!owner || !repo || rest.length) throw new NatopsError(`${JSON.stringify(fullName)} is not owner/name`);
  return { owner, repo };
}

export interface TreeEntry {
  path: string;
  mode: string;
  type: string;
  sha: string;
  size?: number;
}

export interface CommitStatusInput {
  state: 'pending' | 'success' | 'failure' | 'error';
  context: string;
  description: string;
  targetUrl?: string | undefined;
}

export interface IssueComment {
  id: number;
  body: string;
  author: string | undefined;
}

export interface CheckRunOutput {
  title: string;
  summary: string;
  text?: string;
  annotations?: CheckAnnotation[];
}

export interface CheckAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  message: string;
  title?: string;
}

/** One attempt at delivering a webhook event to the App's hook (GitHub keeps them three days). */
export interface HookDelivery {
  id: number;
  /** the X-GitHub-Delivery id, the same for every attempt at one event */
  guid: string;
  deliveredAt: number;
  statusCode: number;
  event: string;
  repositoryId: number | null;
}

export type CheckConclusion =
  | 'success'
  | 'failure'
  | 'neutral'
  | 'cancelled'
  | 'skipped'
  | 'timed_out'
  | 'action_required';

/** One repository's API: what natops reads (branches, commits, trees, blobs) and writes (statuses, checks, comments). */
export class GitHubApi {
  readonly fullName: string;

  constructor(
    readonly octokit: Octokit,
    readonly repoRef: RepoRef,
  ) {
    this.fullName = `${repoRef.owner}/${repoRef.repo}`;
  }

  private async call<T>(operation: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw gitHubError(operation, e);
    }
  }

  /** The branch's head, or `unchanged` when `etag` still matches (GitHub answers 304, which costs no rate limit). */
  async branch(
    branch: string,
    etag?: string,
  ): Promise<{ sha: string; etag: string | undefined } | 'unchanged' | undefined> {
    try {
      const r = await this.octokit.rest.repos.getBranch({
        ...this.repoRef,
        branch,
        ...(etag ? { headers: { 'if-none-match': etag } } : {}),
      });
      return { sha: r.data.commit.sha, etag: r.headers.etag };
    } catch (e) {
      if (e instanceof RequestError && e.status === 304) return 'unchanged';
      if (e instanceof RequestError && e.status === 404) return undefined;
      throw gitHubError(`branch ${branch}`, e);
    }
  }

  /** Whether the repository holds the commit (GitHub answers 404 or 422 for one it does not): the Git database's commit, no diff. */
  async hasCommit(sha: string): Promise<boolean> {
    try {
      await this.octokit.rest.git.getCommit({ ...this.repoRef, commit_sha: sha });
      return true;
    } catch (e) {
      if (e instanceof RequestError && (e.status === 404 || e.status === 422)) return false;
      throw gitHubError(`commit ${sha}`, e);
    }
  }

  /**
   * How `head` relates to `base` (ahead: it descends; identical, behind or diverged) and their
   * merge base; undefined when either is unknown.
   */
  async compare(
    base: string,
    head: string,
  ): Promise<{ status: 'ahead' | 'identical' | 'behind' | 'diverged'; mergeBase: string } | undefined> {
    try {
      const r = await this.octokit.rest.repos.compareCommitsWithBasehead({
        ...this.repoRef,
        basehead: `${base}...${head}`,
        per_page: 1,
      });
      return { status: r.data.status, mergeBase: r.data.merge_base_commit.sha };
    } catch (e) {
      if (e instanceof RequestError && e.status === 404) return undefined;
      throw gitHubError(`compare ${base.slice(0, 7)}...${head.slice(0, 7)}`, e);
    }
  }

  /** A pull request as GitHub has it now, or undefined when there is no such pull request. */
  async pullRequest(
    number: number,
  ): Promise<{ state: 'open' | 'closed'; head: string; baseRef: string; merged: boolean } | undefined> {
    try {
      const r = await this.octokit.rest.pulls.get({ ...this.repoRef, pull_number: number });
      return {
        state: r.data.state === 'open' ? 'open' : 'closed',
        head: r.data.head.sha,
        baseRef: r.data.base.ref,
        merged: r.data.merged,
      };
    } catch (e) {
      if (e instanceof RequestError && e.status === 404) return undefined;
      throw gitHubError(`pull request #${number}`, e);
    }
  }

  async tree(sha: string, recursive: boolean): Promise<{ entries: TreeEntry[]; truncated: boolean }> {
    const r = await this.call(`tree ${sha}`, () =>
      this.octokit.rest.git.getTree({ ...this.repoRef, tree_sha: sha, ...(recursive ? { recursive: 'true' } : {}) }),
    );
    const entries = r.data.tree.flatMap((t) =>
      t.path && t.sha && t.mode && t.type
        ? [{ path: t.path, mode: t.mode, type: t.type, sha: t.sha, ...(t.size !== undefined ? { size: t.size } : {}) }]
        : [],
    );
    return { entries, truncated: r.data.truncated };
  }

  async blob(sha: string): Promise<Buffer> {
    const r = await this.call(`blob ${sha}`, () => this.octokit.rest.git.getBlob({ ...this.repoRef, file_sha: sha }));
    return Buffer.from(r.data.content, r.data.encoding === 'base64' ? 'base64' : 'utf8');
  }

  async createStatus(sha: string, s: CommitStatusInput): Promise<void> {
    await this.call(`status ${s.context} on ${sha.slice(0, 7)}`, () =>
      this.octokit.rest.repos.createCommitStatus({
        ...this.repoRef,
        sha,
        state: s.state,
        context: s.context,
        description: s.description,
        ...(s.targetUrl ? { target_url: s.targetUrl } : {}),
      }),
    );
  }

  async createCheckRun(
    sha: string,
    c: {
      name: string;
      status: 'in_progress' | 'completed';
      conclusion?: CheckConclusion;
      detailsUrl?: string;
      output: CheckRunOutput;
    },
  ): Promise<number> {
    const r = await this.call(`check run on ${sha.slice(0, 7)}`, () =>
      this.octokit.rest.checks.create({
        ...this.repoRef,
        head_sha: sha,
        name: c.name,
        status: c.status,
        ...(c.conclusion ? { conclusion: c.conclusion } : {}),
        ...(c.detailsUrl ? { details_url: c.detailsUrl } : {}),
        output: c.output,
      }),
    );
    return r.data.id;
  }

  /** The newest check run of that name on the commit (one natops made before, a crash ago), with how many annotations it holds. */
  async findCheckRun(sha: string, name: string): Promise<{ id: number; annotations: number } | undefined> {
    const r = await this.call(`check runs on ${sha.slice(0, 7)}`, () =>
      this.octokit.rest.checks.listForRef({ ...this.repoRef, ref: sha, check_name: name, filter: 'latest' }),
    );
    const run = r.data.check_runs[0];
    return run ? { id: run.id, annotations: run.output.annotations_count } : undefined;
  }

  /** How many annotations a check run holds (GitHub adds each update's to them). */
  async checkRunAnnotations(id: number): Promise<number> {
    const r = await this.call(`check run ${id}`, () =>
      this.octokit.rest.checks.get({ ...this.repoRef, check_run_id: id }),
    );
    return r.data.output.annotations_count;
  }

  async updateCheckRun(
    id: number,
    c: { status: 'in_progress' | 'completed'; conclusion?: CheckConclusion; output: CheckRunOutput },
  ): Promise<void> {
    await this.call(`check run ${id}`, () =>
      this.octokit.rest.checks.update({
        ...this.repoRef,
        check_run_id: id,
        status: c.status,
        ...(c.conclusion ? { conclusion: c.conclusion } : {}),
        output: c.output,
      }),
    );
  }

  /** The App hook's delivery attempts since `since` (ms), newest first, through every page (the App's own JWT). */
  async hookDeliveries(since: number): Promise<HookDelivery[]> {
    const out: HookDelivery[] = [];
    await this.call('hook deliveries', async () => {
      for await (const page of this.octokit.paginate.iterator(this.octokit.rest.apps.listWebhookDeliveries, {
        per_page: 100,
      })) {
        for (const d of page.data) {
          const deliveredAt = Date.parse(d.delivered_at);
          if (deliveredAt < since) return;
          out.push({
            id: d.id,
            guid: d.guid,
            deliveredAt,
            statusCode: d.status_code,
            event: d.event,
            repositoryId: d.repository_id,
          });
        }
      }
    });
    return out;
  }

  /** Asks GitHub to send a delivery again (same X-GitHub-Delivery id). */
  async redeliver(id: number): Promise<void> {
    await this.call(`redelivery of ${id}`, () => this.octokit.rest.apps.redeliverWebhookDelivery({ delivery_id: id }));
  }

  /** Every comment of an issue or pull request, through every page. */
  async comments(issue: number): Promise<IssueComment[]> {
    const all = await this.call(`comments of #${issue}`, () =>
      this.octokit.paginate(this.octokit.rest.issues.listComments, {
        ...this.repoRef,
        issue_number: issue,
        per_page: 100,
      }),
    );
    return all.map((c) => ({ id: c.id, body: c.body ?? '', author: c.user?.login }));
  }

  /** One comment by id, with the issue or pull request it is on; undefined when it is gone (404). */
  async comment(id: number): Promise<(IssueComment & { issue: number }) | undefined> {
    try {
      const r = await this.octokit.rest.issues.getComment({ ...this.repoRef, comment_id: id });
      const issue = Number(/\/issues\/(\d+)$/.exec(r.data.issue_url)?.[1]);
      return { id: r.data.id, body: r.data.body ?? '', author: r.data.user?.login, issue };
    } catch (e) {
      if (e instanceof RequestError && e.status === 404) return undefined;
      throw gitHubError(`comment ${id}`, e);
    }
  }

  async createComment(issue: number, body: string): Promise<number> {
    const r = await this.call(`comment on #${issue}`, () =>
      this.octokit.rest.issues.createComment({ ...this.repoRef, issue_number: issue, body }),
    );
    return r.data.id;
  }

  async updateComment(id: number, body: string): Promise<void> {
    await this.call(`comment ${id}`, () =>
      this.octokit.rest.issues.updateComment({ ...this.repoRef, comment_id: id, body }),
    );
  }
}
