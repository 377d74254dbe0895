// Pull requests against the GitHub stand-in, as test/pipeline/github*.test.ts make them: a head
// commit pushed on a branch, GitHub's example pull_request delivery about it, and what natops
// wrote back (its comment, its preview status).
import assert from 'node:assert/strict';
import { run } from '../../common/exec.ts';
import { PREVIEW_MARKER } from '../../functions/preview/pull-request.ts';
import { PREVIEW_CONTEXT } from '../../state/statuses.ts';
import { deliver, examplePayloads } from './app.ts';
import type { GitHubStandIn } from './github/standin.ts';
import type { SeedObjects } from './manifests.ts';
import { type PipelineHarness, SECRET } from './pipeline.ts';

/** `p` and `gh` are read when called: the harness and stand-in start in a test's before(). */
export function pullRequests(p: () => PipelineHarness, gh: () => GitHubStandIn, REPO: string) {
  let clock = Date.now();
  /** A pull request's head: a commit on `branch` (new from main, or on top of the branch), pushed. */
  async function commitOnBranch(
    branch: string,
    manifests: SeedObjects,
    fresh: boolean,
  ): Promise<{ head: string; base: string }> {
    const git = (...args: string[]) => run(['git', '-C', p().work, ...args]);
    await git('fetch', '--quiet', 'origin');
    const base = (await git('rev-parse', 'origin/main')).stdout.trim();
    await git('checkout', '--quiet', '-B', branch, fresh ? 'origin/main' : `origin/${branch}`);
    const head = await p().commitOnly(manifests, `${branch} change`);
    await git('push', '--quiet', '--force', 'origin', `${branch}:${branch}`);
    await git('checkout', '--quiet', 'main');
    return { head, base };
  }

  /** GitHub's example pull_request delivery, made about this repository's pull request. */
  async function prEvent(
    action: string,
    number: number,
    c: {
      head: string;
      base: string;
      branch: string;
      title?: string;
      fork?: boolean;
      merged?: boolean;
      /** the author's author_association; default the example's (OWNER) */
      association?: string;
      /** the pull request's labels, and for `labeled` the label just set (the last) */
      labels?: string[];
    },
  ) {
    const example = structuredClone(
      examplePayloads('pull_request').find(
        (e) => e.action === (['synchronize', 'closed', 'labeled'].includes(action) ? action : 'opened'),
      )!,
    ) as Record<string, unknown>;
    const pr = example.pull_request as Record<string, unknown>;
    const headRepo = {
      ...(pr.head as { repo: Record<string, unknown> }).repo,
      full_name: c.fork ? 'someone/gitops-fork' : REPO,
    };
    Object.assign(pr, {
      number,
      state: action === 'closed' ? 'closed' : 'open',
      title: c.title ?? `change #${number}`,
      html_url: `https://github.example/${REPO}/pull/${number}`,
      updated_at: new Date(++clock).toISOString(),
      merged: c.merged ?? false,
      head: {
        ...(pr.head as object),
        sha: c.head,
        ref: c.branch,
        label: `${c.fork ? 'someone' : 'test'}:${c.branch}`,
        repo: headRepo,
      },
      base: { ...(pr.base as object), sha: c.base, ref: 'main' },
      ...(c.association ? { author_association: c.association } : {}),
    });
    if (c.labels) {
      const model = examplePayloads('pull_request').find((e) => e.action === 'labeled')!.label as object;
      pr.labels = c.labels.map((name) => ({ ...model, name }));
      if (action === 'labeled') example.label = { ...model, name: c.labels[c.labels.length - 1] };
    }
    Object.assign(example, { action, number, repository: { ...(example.repository as object), full_name: REPO } });
    gh().setPullRequest(REPO, number, {
      head: { sha: c.head, ref: c.branch },
      base: { sha: c.base, ref: 'main' },
      state: action === 'closed' ? 'closed' : 'open',
    });
    const r = await deliver(`${p().running!.url}/webhook`, SECRET, 'pull_request', example);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body;
  }

  const botComments = (number: number) =>
    gh()
      .comments(REPO, number)
      .filter((c) => c.login === `${gh().app.slug}[bot]` && c.body.startsWith(PREVIEW_MARKER));
  const previewStatus = (head: string) =>
    p().until(`the preview of ${head.slice(0, 7)}`, async () => {
      const s = gh().latestStatuses(REPO, head).get(PREVIEW_CONTEXT);
      return s && s.state !== 'pending' ? s : undefined;
    });

  return { commitOnBranch, prEvent, botComments, previewStatus };
}
