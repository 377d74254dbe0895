// A GitHub-format push payload for a push to a local repository, so a bare repository drives
// the same pipeline as GitHub does. No dependencies: the post-receive hook loads this.
import type { PushPayload } from './push-event.ts';
import { isZeroSha } from '../../common/sha.ts';

export interface LocalCommit {
  id: string;
  message: string;
  timestamp: string;
  author: { name: string; email: string };
}

export interface LocalPush {
  /** "owner/name" as the dashboard and statuses show it */
  repository: string;
  /** file:// address of the bare repository */
  url: string;
  ref: string;
  before: string;
  after: string;
  forced: boolean;
  /** oldest first, at most 20 as GitHub sends */
  commits: LocalCommit[];
  pusher: { name: string; email: string };
}

/** A GitHub-format push payload for a push to a local repository. */
export function localPushPayload(p: LocalPush): PushPayload & Record<string, unknown> {
  const [owner = 'local', name = p.repository] = p.repository.split('/');
  const commit = (c: LocalCommit) => ({
    id: c.id,
    tree_id: '',
    distinct: true,
    message: c.message,
    timestamp: c.timestamp,
    url: `${p.url}#${c.id}`,
    author: { ...c.author, username: c.author.name },
    committer: { ...c.author, username: c.author.name },
    added: [],
    removed: [],
    modified: [],
  });
  const head = p.commits.at(-1);
  return {
    ref: p.ref,
    before: p.before,
    after: p.after,
    created: isZeroSha(p.before),
    deleted: isZeroSha(p.after),
    forced: p.forced,
    base_ref: null,
    compare: `${p.url}#${p.before.slice(0, 12)}...${p.after.slice(0, 12)}`,
    commits: p.commits.map(commit),
    head_commit: head ? commit(head) : null,
    repository: {
      id: 0,
      name,
      full_name: p.repository,
      private: true,
      html_url: p.url,
      url: p.url,
      default_branch: 'main',
      owner: { login: owner, name: owner, id: 0, type: 'User' },
    },
    pusher: p.pusher,
    sender: { login: p.pusher.name, id: 0, type: 'User' },
  };
}
