// How git reaches a remote with the credentials natops was given as files (Kubernetes Secrets
// mounted as files): the secret itself is never in an argument list (`ps` shows those), in the
// environment, in the URL, or in a log. git reads it when it needs it:
// - https: GIT_ASKPASS is a fixed script (no value written into it) that prints the user name
//   and `cat`s the password file, both named by variables, for the URL's host only; git asks
//   it only on a 401.
// - ssh: GIT_SSH_COMMAND with the key and known_hosts files, host keys checked strictly (an
//   unknown host is refused, never added), no agent or user configuration consulted.
// The remote's scheme alone is allowed (GIT_ALLOW_PROTOCOL), and the host's and user's git
// configuration is not read: no `insteadOf` rewriting, no credential helper of the machine.
import { access, chmod, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../../common/errors.ts';
import type { RemoteUrl } from './remote-url.ts';

export interface GitCredentials {
  /** https: the user name (default `x-access-token` with a token, as GitHub and Gitea take) */
  username?: string | undefined;
  /** https: a file holding the password */
  passwordFile?: string | undefined;
  /** https: a file holding an access token (sent as the password) */
  tokenFile?: string | undefined;
  /** https: the certificate authorities to trust instead of the system's (PEM) */
  caFile?: string | undefined;
  /** ssh: the private key */
  sshKeyFile?: string | undefined;
  /** ssh: the host keys accepted; unset: ~/.ssh/known_hosts (an unknown host is refused either way) */
  knownHostsFile?: string | undefined;
}

/** Credentials that cannot work: the same setting fails the same way every time. */
export class GitCredentialsError extends PermanentError {}

export interface Transport {
  /** added to git's environment (paths and names only) */
  env: Record<string, string>;
  /** `-c name=value` settings for git's argument list (paths only) */
  config: string[];
}

/**
 * The askpass program: its text is constant; what it prints comes from files and variables
 * named in its environment, so no value is ever parsed by a shell.
 */
const ASKPASS = `#!/bin/sh
# natops: answers git's credential prompts from files (see gitops/git/remote-auth.ts).
# Only for the configured host: a redirect elsewhere gets nothing. git asks
# "Username for 'https://HOST': " and "Password for 'https://USER@HOST': ".
url=\${1#*\\'}; url=\${url%\\'*}; host=\${url#*://}; host=\${host#*@}
[ "$host" = "$GIT_NATOPS_HOST" ] || [ "$host" = "$GIT_NATOPS_HOST:443" ] || exit 1
case "$1" in
  Username*) printf '%s\\n' "$GIT_NATOPS_USERNAME" ;;
  *) exec cat -- "$GIT_NATOPS_PASSWORD_FILE" ;;
esac
`;

/** ssh's options take these paths inside a shell command (GIT_SSH_COMMAND): nothing a shell would read. */
const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]+$/;

async function readable(file: string, what: string): Promise<void> {
  await access(file, constants.R_OK).catch(() => {
    throw new GitCredentialsError(`${what} ${file} is missing or not readable`);
  });
}

/**
 * Checks the settings against the URL's scheme and the files, and returns what git needs;
 * `workDir` (natops's, private) receives the askpass script.
 */
export async function transportFor(remote: RemoteUrl, c: GitCredentials, workDir: string): Promise<Transport> {
  const env: Record<string, string> = {
    GIT_ALLOW_PROTOCOL: remote.scheme,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
  };
  const config = ['credential.helper='];
  const https = [c.username, c.passwordFile, c.tokenFile, c.caFile].some((v) => v !== undefined);
  const ssh = c.sshKeyFile !== undefined || c.knownHostsFile !== undefined;
  if (https && remote.scheme !== 'https')
    throw new GitCredentialsError(
      `NATOPS_GIT_USERNAME, NATOPS_GIT_PASSWORD_FILE, NATOPS_GIT_TOKEN_FILE and NATOPS_GIT_CA_FILE are for an https:// URL, not ${remote.scheme}`,
    );
  if (ssh && remote.scheme !== 'ssh')
    throw new GitCredentialsError(
      `NATOPS_GIT_SSH_KEY_FILE and NATOPS_GIT_KNOWN_HOSTS_FILE are for an ssh URL, not ${remote.scheme}`,
    );
  if (c.passwordFile && c.tokenFile)
    throw new GitCredentialsError('give NATOPS_GIT_PASSWORD_FILE or NATOPS_GIT_TOKEN_FILE, not both');
  const secretFile = c.passwordFile ?? c.tokenFile;
  if (c.username !== undefined && !secretFile)
    throw new GitCredentialsError('NATOPS_GIT_USERNAME needs NATOPS_GIT_PASSWORD_FILE or NATOPS_GIT_TOKEN_FILE');
  if (secretFile) {
    await readable(secretFile, c.tokenFile ? 'token file' : 'password file');
    if (!(await readFile(secretFile, 'utf8')).trim())
      throw new GitCredentialsError(`${c.tokenFile ? 'token' : 'password'} file ${secretFile} is empty`);
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    const askpass = join(workDir, 'askpass.sh');
    await writeFile(askpass, ASKPASS, { mode: 0o700 });
    await chmod(askpass, 0o700);
    env.GIT_ASKPASS = askpass;
    env.GIT_NATOPS_USERNAME = c.username ?? (c.tokenFile ? 'x-access-token' : '');
    env.GIT_NATOPS_PASSWORD_FILE = secretFile;
    env.GIT_NATOPS_HOST = new URL(remote.url).host;
    if (!env.GIT_NATOPS_USERNAME) throw new GitCredentialsError('NATOPS_GIT_PASSWORD_FILE needs NATOPS_GIT_USERNAME');
  }
  if (c.caFile) {
    await readable(c.caFile, 'CA file');
    // (the variable, not http.sslCAInfo: a GIT_SSL_CAINFO natops inherited would win over the setting)
    env.GIT_SSL_CAINFO = c.caFile;
  }
  if (remote.scheme === 'ssh') {
    const opts = ['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'];
    for (const [file, what] of [
      [c.sshKeyFile, 'NATOPS_GIT_SSH_KEY_FILE'],
      [c.knownHostsFile, 'NATOPS_GIT_KNOWN_HOSTS_FILE'],
    ] as const) {
      if (file === undefined) continue;
      if (!SAFE_PATH.test(file))
        throw new GitCredentialsError(
          `${what} ${JSON.stringify(file)}: an absolute path of letters, digits and ._/@+-`,
        );
      await readable(file, what);
    }
    if (c.sshKeyFile) opts.push('-i', `'${c.sshKeyFile}'`, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none');
    if (c.knownHostsFile) opts.push('-o', `UserKnownHostsFile='${c.knownHostsFile}'`);
    env.GIT_SSH_COMMAND = `ssh ${opts.join(' ')}`;
    // git's own variant guess would take ssh for plink if the command were named so; it is ssh.
    env.GIT_SSH_VARIANT = 'ssh';
  }
  return { env, config };
}
