// Which Git URLs natops fetches from: https, ssh (URL or scp-like `user@host:path`) and file.
// Checked before any git runs, so nothing an operator writes can be taken by git for an option
// (`-u…`, `--upload-pack=…`) or a transport that runs commands (`ext::sh -c …`, `fd::`).
// git:// and http:// are refused: neither authenticates the server, and http sends credentials
// in the clear. Credentials never go in the URL: they come from files (remote-auth.ts).
import { PermanentError } from '../../common/errors.ts';

export type RemoteScheme = 'https' | 'ssh' | 'file';

export interface RemoteUrl {
  /** as git is given it */
  url: string;
  scheme: RemoteScheme;
}

/** A URL natops will not fetch from: the same URL is refused the same way every time. */
export class RemoteUrlError extends PermanentError {}

const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const USER = /^[A-Za-z0-9._-]+$/;
/** `[user@]host:path`, git's scp-like ssh syntax (no `//` after the colon: that is a URL) */
const SCP = /^(?:([^@/:]+)@)?([^@/:]+):(?!\/\/)(.+)$/s;

export function parseRemoteUrl(url: string): RemoteUrl {
  // (named with any password in it starred out: the message goes to logs)
  const shown = url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/, '$1:***@');
  const bad = (why: string) => new RemoteUrlError(`NATOPS_GIT_URL ${JSON.stringify(shown)}: ${why}`);
  if (url === '') throw bad('empty');
  if (url.startsWith('-')) throw bad('starts with "-", which git would read as an option');
  if (/[\s\0-\x1f\x7f]/.test(url)) throw bad('has white space or control characters');
  if (url.includes('::')) throw bad('uses the "<transport>::" form (remote helpers such as ext:: run commands)');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    const m = SCP.exec(url);
    if (!m) throw bad('not an https://, ssh://, file:// URL or user@host:path');
    const [, user, host, path] = m as unknown as [string, string | undefined, string, string];
    if (user !== undefined && !USER.test(user)) throw bad(`bad user name ${JSON.stringify(user)}`);
    if (!HOST.test(host)) throw bad(`bad host ${JSON.stringify(host)}`);
    if (path.startsWith('-')) throw bad('the path starts with "-"');
    return { url, scheme: 'ssh' };
  }
  if (scheme === 'http' || scheme === 'git')
    throw bad(`${scheme}:// is not accepted (it does not authenticate the server); use https://, ssh:// or file://`);
  if (scheme !== 'https' && scheme !== 'ssh' && scheme !== 'file')
    throw bad(`scheme ${scheme}:// is not accepted; use https://, ssh:// or file://`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad('does not parse as a URL');
  }
  if (u.password) throw bad('carries a password; give credentials in files (NATOPS_GIT_PASSWORD_FILE)');
  if (scheme === 'file') {
    if (u.host !== '' || u.username) throw bad('a file:// URL names a local path: file:///path/to/repo.git');
    if (u.pathname === '/' || u.search || u.hash)
      throw bad('a file:// URL names a repository: file:///path/to/repo.git');
    return { url, scheme };
  }
  if (!HOST.test(u.hostname) && !/^\[[0-9a-fA-F:.]+\]$/.test(u.hostname))
    throw bad(`bad host ${JSON.stringify(u.hostname)}`);
  if (u.username && (scheme === 'https' || !USER.test(decodeURIComponent(u.username))))
    throw bad(
      scheme === 'https'
        ? 'carries a user name; give it as NATOPS_GIT_USERNAME'
        : `bad user name ${JSON.stringify(u.username)}`,
    );
  if (u.pathname === '/' || u.pathname === '') throw bad('names no repository');
  if (u.hash) throw bad('has a fragment');
  // a query is where tokens get pasted (?private_token=): it would show in argv and logs
  if (u.search) throw bad('has a query; give credentials in files (NATOPS_GIT_TOKEN_FILE)');
  return { url, scheme };
}
