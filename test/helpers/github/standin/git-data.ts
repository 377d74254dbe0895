// Git data served from the real bare repositories: refs, commits, diffs and object types read
// through git (argv only, never a shell), cached since Git objects never change.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { iso, nodeId, type RepoState, SHA, type State, WEB } from './state.ts';

const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

/** git with an argv array (no shell); answers stdout bytes and the exit code. */
export function git(
  gitDir: string,
  args: string[],
  okCodes: number[] = [0],
): Promise<{ stdout: Buffer; code: number }> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'git',
      ['--git-dir', gitDir, ...args],
      { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (okCodes.includes(code)) resolvePromise({ stdout, code });
        else reject(new Error(`git ${args.join(' ')} (in ${gitDir}) exited ${code}: ${stderr.toString().trim()}`));
      },
    );
  });
}

interface RawCommit {
  sha: string;
  tree: string;
  parents: string[];
  author: { name: string; email: string; date: string };
  committer: { name: string; email: string; date: string };
  message: string;
}

function parsePerson(line: string): { name: string; email: string; date: string } {
  const m = /^(.*) <(.*)> (\d+) ([+-]\d{4})$/.exec(line);
  if (!m) return { name: line, email: '', date: iso(0) };
  return { name: m[1] ?? '', email: m[2] ?? '', date: iso(Number(m[3]) * 1000) };
}

/**
 * Git objects never change, so what git said about one is kept: spawning git costs tens of
 * milliseconds here, and a client under test may fetch the same objects many times.
 */
export async function cached<T>(st: State, key: string, make: () => Promise<T>): Promise<T> {
  const hit = st.objectCache.get(key);
  if (hit !== undefined) return hit as T;
  const value = await make();
  st.objectCache.set(key, value);
  return value;
}

/** Every ref with the commit it points at (tags peeled), HEAD's target, and the newest commit time. */
export async function listRefs(
  repo: RepoState,
): Promise<{ refs: Map<string, string>; head: string | undefined; newestCommitSeconds: number }> {
  const out = (
    await git(repo.gitDir, [
      'for-each-ref',
      '--format=%(refname)%00%(objectname)%00%(*objectname)%00%(committerdate:unix)%00%(*committerdate:unix)',
    ])
  ).stdout.toString('utf8');
  const refs = new Map<string, string>();
  let newest = 0;
  for (const line of out.split('\n')) {
    const [name, obj, peeled, date, peeledDate] = line.split('\0');
    if (!name || !obj) continue;
    const sha = peeled && SHA.test(peeled) ? peeled : obj;
    if (SHA.test(sha)) refs.set(name, sha);
    newest = Math.max(newest, Number(peeledDate || date) || 0);
  }
  // A bare repository's HEAD file names the default branch ("ref: refs/heads/main").
  const head = /^ref: (\S+)/.exec(await readFile(join(repo.gitDir, 'HEAD'), 'utf8').catch(() => ''))?.[1];
  return { refs, head, newestCommitSeconds: newest };
}

export function rawCommit(st: State, repo: RepoState, sha: string): Promise<RawCommit> {
  return cached(st, `commit\0${repo.gitDir}\0${sha}`, () => readCommit(repo, sha));
}

async function readCommit(repo: RepoState, sha: string): Promise<RawCommit> {
  if (!SHA.test(sha)) throw new Error(`not a sha: ${sha}`);
  const text = (await git(repo.gitDir, ['cat-file', 'commit', sha])).stdout.toString('utf8');
  const split = text.indexOf('\n\n');
  const head = split >= 0 ? text.slice(0, split) : text;
  const message = split >= 0 ? text.slice(split + 2) : '';
  const out: RawCommit = {
    sha,
    tree: '',
    parents: [],
    author: parsePerson(''),
    committer: parsePerson(''),
    message: message.replace(/\n$/, ''),
  };
  for (const line of head.split('\n')) {
    const sp = line.indexOf(' ');
    const key = line.slice(0, sp);
    const value = line.slice(sp + 1);
    if (key === 'tree') out.tree = value;
    else if (key === 'parent') out.parents.push(value);
    else if (key === 'author') out.author = parsePerson(value);
    else if (key === 'committer') out.committer = parsePerson(value);
  }
  return out;
}

export function diffFiles(
  st: State,
  repo: RepoState,
  from: string | undefined,
  to: string,
): Promise<Record<string, unknown>[]> {
  return cached(st, `diff\0${repo.gitDir}\0${from}\0${to}`, () => readDiff(st, repo, from, to));
}

async function readDiff(
  st: State,
  repo: RepoState,
  from: string | undefined,
  to: string,
): Promise<Record<string, unknown>[]> {
  const a = from ?? EMPTY_TREE;
  const rawOut = (await git(repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--raw', a, to])).stdout
    .toString('utf8')
    .split('\0');
  const numOut = (await git(repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--numstat', a, to])).stdout
    .toString('utf8')
    .split('\0');
  const counts = new Map<string, { add: number; del: number }>();
  for (const entry of numOut) {
    const m = /^(\d+|-)\t(\d+|-)\t(.*)$/s.exec(entry);
    if (m) counts.set(m[3]!, { add: m[1] === '-' ? 0 : Number(m[1]), del: m[2] === '-' ? 0 : Number(m[2]) });
  }
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  const files: Record<string, unknown>[] = [];
  for (let i = 0; i + 1 < rawOut.length; i += 2) {
    const meta = /^:(\d+) (\d+) ([0-9a-f]+) ([0-9a-f]+) ([A-Z])/.exec(rawOut[i] ?? '');
    const path = rawOut[i + 1];
    if (!meta || path === undefined) continue;
    const c = counts.get(path) ?? { add: 0, del: 0 };
    const status = meta[5] === 'A' ? 'added' : meta[5] === 'D' ? 'removed' : meta[5] === 'M' ? 'modified' : 'changed';
    const blob = status === 'removed' ? meta[3]! : meta[4]!;
    const ref = status === 'removed' ? (from ?? to) : to;
    files.push({
      sha: blob,
      filename: path,
      status,
      additions: c.add,
      deletions: c.del,
      changes: c.add + c.del,
      blob_url: `${WEB}/${repo.owner}/${repo.name}/blob/${ref}/${encodeURI(path)}`,
      raw_url: `${WEB}/${repo.owner}/${repo.name}/raw/${ref}/${encodeURI(path)}`,
      contents_url: `${api}/contents/${encodeURI(path)}?ref=${ref}`,
    });
    if (files.length >= 300) break; // GitHub lists at most 300 files
  }
  return files;
}

export async function commitObject(
  st: State,
  repo: RepoState,
  sha: string,
  withFiles: boolean,
): Promise<Record<string, unknown>> {
  const c = await rawCommit(st, repo, sha);
  const api = `${st.baseUrl}/repos/${repo.owner}/${repo.name}`;
  const out: Record<string, unknown> = {
    sha,
    node_id: nodeId('Commit', sha),
    url: `${api}/commits/${sha}`,
    html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${sha}`,
    comments_url: `${api}/commits/${sha}/comments`,
    commit: {
      url: `${api}/git/commits/${sha}`,
      author: c.author,
      committer: c.committer,
      message: c.message,
      tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
      comment_count: 0,
      verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
    },
    // Commits by addresses that are no GitHub account carry no user.
    author: null,
    committer: null,
    parents: c.parents.map((p) => ({
      sha: p,
      url: `${api}/commits/${p}`,
      html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${p}`,
    })),
  };
  if (withFiles) {
    const files = await diffFiles(st, repo, c.parents[0], sha);
    const additions = files.reduce((n, f) => n + (f.additions as number), 0);
    const deletions = files.reduce((n, f) => n + (f.deletions as number), 0);
    out.stats = { total: additions + deletions, additions, deletions };
    out.files = files;
  }
  return out;
}

/** The type of an object by full sha; an absent object is asked again next time (it may be pushed). */
export async function objectType(st: State, repo: RepoState, sha: string): Promise<string | undefined> {
  if (!SHA.test(sha)) return undefined;
  const key = `type\0${repo.gitDir}\0${sha}`;
  const hit = st.objectCache.get(key);
  if (typeof hit === 'string') return hit;
  const r = await git(repo.gitDir, ['cat-file', '-t', sha], [0, 1, 128]);
  if (r.code !== 0) return undefined;
  const type = r.stdout.toString().trim();
  st.objectCache.set(key, type);
  return type;
}

/**
 * A commit sha for a ref as GitHub takes them: a sha (full or abbreviated), branch, tag,
 * heads/x, tags/x, refs/... Names are matched against the ref list, so no client text ever
 * reaches git as revision syntax (~, ^, @{...}).
 */
export async function resolveCommit(st: State, repo: RepoState, ref: string): Promise<string | undefined> {
  if (SHA.test(ref)) {
    const type = await objectType(st, repo, ref);
    if (type === 'commit') return ref;
    if (type === 'tag') return peel(repo, ref);
    return undefined;
  }
  if (ref.length === 0) return undefined;
  const { refs } = await listRefs(repo);
  const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`, `refs/${ref}`];
  for (const cand of candidates) {
    const sha = refs.get(cand);
    if (sha && (await objectType(st, repo, sha)) === 'commit') return sha;
  }
  if (/^[0-9a-f]{7,39}$/.test(ref)) {
    const r = await git(
      repo.gitDir,
      ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`],
      [0, 1, 128],
    );
    const sha = r.stdout.toString().trim();
    if (r.code === 0 && SHA.test(sha)) return sha;
  }
  return undefined;
}

async function peel(repo: RepoState, tagSha: string): Promise<string | undefined> {
  const r = await git(
    repo.gitDir,
    ['rev-parse', '--verify', '--quiet', '--end-of-options', `${tagSha}^{commit}`],
    [0, 1, 128],
  );
  const sha = r.stdout.toString().trim();
  return r.code === 0 && SHA.test(sha) ? sha : undefined;
}

export async function branchHead(repo: RepoState, branch: string): Promise<string | undefined> {
  return (await listRefs(repo)).refs.get(`refs/heads/${branch}`);
}

/** Base64 as GitHub's blobs carry it (Ruby's encode64): a newline after every 60 characters. */
export function githubBase64(bytes: Buffer): string {
  const b64 = bytes.toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += 60) out += `${b64.slice(i, i + 60)}\n`;
  return out;
}
