// Handlers for repositories and their Git data: the repository, branches, commits, comparisons,
// trees and blobs, all read from the bare repository behind it.
import { need, repoFor } from '../auth.ts';
import {
  branchHead,
  cached,
  commitObject,
  diffFiles,
  git,
  githubBase64,
  objectType,
  rawCommit,
  resolveCommit,
} from '../git-data.ts';
import { repositoryObject } from '../objects.ts';
import { type Ctx, type Handler, HttpError, nodeId, type Reply, SHA, type State, WEB } from '../state.ts';

export const gitHandlers: Record<string, Handler> = {
  'repos/get': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['metadata'], 'read');
    return { status: 200, body: await repositoryObject(st, repo, ctx.principal.kind === 'plain') };
  },

  'repos/get-branch': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['contents'], 'read');
    const name = ctx.params.branch ?? '';
    const sha = await branchHead(repo, name);
    if (!sha) throw new HttpError(404, 'Branch not found');
    const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
    return {
      status: 200,
      body: {
        name,
        commit: await commitObject(st, repo, sha, false),
        _links: {
          self: `${api}/branches/${encodeURIComponent(name)}`,
          html: `${WEB}/${repo.owner}/${repo.name}/tree/${name}`,
        },
        protected: false,
        protection: {
          enabled: false,
          required_status_checks: { enforcement_level: 'off', contexts: [], checks: [] },
        },
        protection_url: `${api}/branches/${encodeURIComponent(name)}/protection`,
      },
    };
  },

  'repos/get-commit': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['contents'], 'read');
    const ref = ctx.params.ref ?? '';
    const sha = await resolveCommit(st, repo, ref);
    if (!sha) throw new HttpError(422, `No commit found for SHA: ${ref}`);
    return { status: 200, body: await commitObject(st, repo, sha, true) };
  },

  // The Git database's commit: no diff, so a cheap "does the repository hold it?".
  'git/get-commit': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['contents'], 'read');
    const sha = ctx.params.commit_sha ?? '';
    if ((await objectType(st, repo, sha)) !== 'commit') throw new HttpError(404, 'Not Found');
    const c = await rawCommit(st, repo, sha);
    const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
    return {
      status: 200,
      body: {
        sha,
        node_id: nodeId('Commit', sha),
        url: `${api}/git/commits/${sha}`,
        html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${sha}`,
        author: c.author,
        committer: c.committer,
        message: c.message,
        tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
        parents: c.parents.map((p) => ({
          sha: p,
          url: `${api}/git/commits/${p}`,
          html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${p}`,
        })),
        verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
      },
    };
  },

  'repos/compare-commits': (st, ctx) => compare(st, ctx, ctx.params.base ?? '', ctx.params.head ?? ''),

  'repos/compare-commits-with-basehead': (st, ctx) => {
    const bh = ctx.params.basehead ?? '';
    const i = bh.indexOf('...');
    if (i < 0) throw new HttpError(404, 'Not Found');
    return compare(st, ctx, bh.slice(0, i), bh.slice(i + 3));
  },

  'git/get-tree': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['contents'], 'read');
    const wanted = ctx.params.tree_sha ?? '';
    let tree: string | undefined;
    const type = await objectType(st, repo, wanted);
    if (type === 'tree') tree = wanted;
    else if (type === 'commit') tree = (await rawCommit(st, repo, wanted)).tree;
    else if (type === undefined && !SHA.test(wanted)) {
      const c = await resolveCommit(st, repo, wanted);
      if (c) tree = (await rawCommit(st, repo, c)).tree;
    }
    if (!tree) throw new HttpError(404, 'Not Found');
    // Any value of `recursive` (even 0 or false) asks for the whole tree, as GitHub documents.
    const recursive = ctx.query.has('recursive');
    const args = ['ls-tree', '-z', '--long', '--full-tree', ...(recursive ? ['-r', '-t'] : []), tree];
    const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
    const listing = await cached(st, `tree\0${repo.gitDir}\0${tree}\0${recursive}`, async () =>
      (await git(repo.gitDir, args)).stdout.toString('utf8'),
    );
    let entries = listing
      .split('\0')
      .filter((l) => l.length > 0)
      .map((line) => {
        const tab = line.indexOf('\t');
        const [mode, kind, sha, size] = line.slice(0, tab).split(/\s+/) as [string, string, string, string];
        const e: Record<string, unknown> = { path: line.slice(tab + 1), mode, type: kind, sha };
        if (kind === 'blob') {
          e.size = Number(size);
          e.url = `${api}/git/blobs/${sha}`;
        } else if (kind === 'tree') e.url = `${api}/git/trees/${sha}`;
        return e;
      });
    let truncated = false;
    const limit = st.options.truncateTreesOver;
    if (recursive && limit !== undefined && entries.length > limit) {
      entries = entries.slice(0, limit);
      truncated = true;
    }
    return { status: 200, body: { sha: tree, url: `${api}/git/trees/${tree}`, tree: entries, truncated } };
  },

  'git/get-blob': async (st, ctx) => {
    const repo = repoFor(st, ctx);
    need(st, ctx, ['contents'], 'read');
    const sha = ctx.params.file_sha ?? '';
    if (!SHA.test(sha))
      throw new HttpError(422, 'The sha parameter must be exactly 40 characters and contain only [0-9a-f].');
    if ((await objectType(st, repo, sha)) !== 'blob') throw new HttpError(404, 'Not Found');
    const bytes = await cached(
      st,
      `blob\0${repo.gitDir}\0${sha}`,
      async () => (await git(repo.gitDir, ['cat-file', 'blob', sha])).stdout,
    );
    st.blobFetches.set(sha, (st.blobFetches.get(sha) ?? 0) + 1);
    return {
      status: 200,
      body: {
        sha,
        node_id: nodeId('Blob', sha),
        size: bytes.length,
        url: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/git/blobs/${sha}`,
        content: githubBase64(bytes),
        encoding: 'base64',
      },
    };
  },
};

export async function compare(st: State, ctx: Ctx, baseRef: string, headRef: string): Promise<Reply> {
  const repo = repoFor(st, ctx);
  need(st, ctx, ['contents'], 'read');
  // USER:branch compares across forks; the stand-in has no forks.
  if (baseRef.includes(':') || headRef.includes(':')) throw new HttpError(404, 'Not Found');
  const base = await resolveCommit(st, repo, baseRef);
  const head = await resolveCommit(st, repo, headRef);
  if (!base || !head) throw new HttpError(404, 'Not Found');
  const mb = await git(repo.gitDir, ['merge-base', base, head], [0, 1]);
  const mergeBase = mb.stdout.toString().trim();
  if (mb.code !== 0 || !SHA.test(mergeBase))
    throw new HttpError(404, `No common ancestor between ${baseRef} and ${headRef}.`);
  const countOf = async (range: string) =>
    Number((await git(repo.gitDir, ['rev-list', '--count', range])).stdout.toString().trim());
  const ahead = await countOf(`${base}..${head}`);
  const behind = await countOf(`${head}..${base}`);
  const status =
    ahead === 0 && behind === 0 ? 'identical' : behind === 0 ? 'ahead' : ahead === 0 ? 'behind' : 'diverged';
  const shas = (await git(repo.gitDir, ['rev-list', '--reverse', `${base}..${head}`])).stdout
    .toString()
    .split('\n')
    .filter((s) => SHA.test(s))
    .slice(0, 250);
  const commits = [];
  for (const s of shas) commits.push(await commitObject(st, repo, s, false));
  const html = `${WEB}/${repo.owner}/${repo.name}/compare/${baseRef}...${headRef}`;
  return {
    status: 200,
    body: {
      url: `${st.baseUrl}/repos/${repo.owner}/${repo.name}/compare/${encodeURIComponent(baseRef)}...${encodeURIComponent(headRef)}`,
      html_url: html,
      permalink_url: `${WEB}/${repo.owner}/${repo.name}/compare/${repo.owner}:${base.slice(0, 7)}...${repo.owner}:${head.slice(0, 7)}`,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      base_commit: await commitObject(st, repo, base, false),
      merge_base_commit: await commitObject(st, repo, mergeBase, false),
      status,
      ahead_by: ahead,
      behind_by: behind,
      total_commits: ahead,
      commits,
      files: await diffFiles(st, repo, mergeBase, head),
    },
  };
}
