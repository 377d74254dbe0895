// Connecting to GitHub (or GitHub Enterprise Server: any base URL) as a GitHub App or with a
// token, and checking at start what natops will need, so a bad key or a missing permission is
// one clear error before anything runs rather than failures in every job later.
import { readFile } from 'node:fs/promises';
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from 'octokit';
import { z } from 'zod';
import { PermanentError } from '../../common/errors.ts';
import { describeFailure as failure, GitHubApi, parseRepository } from './api.ts';

/** Credentials or permissions GitHub refuses: natops does not start (retrying cannot help). */
export class GitHubAuthError extends PermanentError {}

export type GitHubAuth =
  | { kind: 'token'; token: string }
  | { kind: 'app'; appId: string; privateKey: string; installationId?: number | undefined };

export interface GitHubSettings {
  /** the API's base URL: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server */
  url: string;
  /** owner/name */
  repository: string;
  auth: GitHubAuth;
  /** a rate limit lifting sooner than this is waited for inside the request; a later one delays the job */
  maxInlineWaitSeconds?: number;
}

export interface GitHub {
  api: GitHubApi;
  /** the login natops's comments are written as (an App's is "<slug>[bot]") */
  login: string;
  /** check runs can only be written by an App */
  checks: boolean;
  /** the repository's web address, for links to files and lines */
  htmlUrl: string;
  /** the repository's id (an App's hook deliveries name it) */
  repositoryId: number;
}

/** What auth-app answers for an installation token: natops reads its permissions. */
const InstallationToken = z.looseObject({ permissions: z.record(z.string(), z.string()).optional() });

/** The App permissions natops needs (docs/github.md, "Creating the GitHub App"). */
export const APP_PERMISSIONS = {
  contents: 'read',
  statuses: 'write',
  checks: 'write',
  pull_requests: 'write',
  metadata: 'read',
} as const;

/** Secrets come from the environment or from files; a file's trailing newline is not part of it. */
export async function readSecret(
  what: string,
  value: string | undefined,
  file: string | undefined,
): Promise<string | undefined> {
  if (value) return value;
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new GitHubAuthError(`${what} file ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  });
  if (!text.trim()) throw new GitHubAuthError(`${what} file ${file} is empty`);
  return text.trim();
}

/**
 * Installation tokens live an hour; auth-app keeps them 59 minutes whatever GitHub said. This
 * cache (auth-app's own entry format: token|createdAt|expiresAt|...) drops one in its last
 * quarter, and at most five minutes before it expires, so a token is refreshed before it lapses.
 */
export function refreshingTokenCache(now: () => number = Date.now) {
  const entries = new Map<string, string>();
  return {
    async get(key: string): Promise<string | undefined> {
      const v = entries.get(key);
      if (!v) return undefined;
      const [, created, expires] = v.split('|');
      const start = Date.parse(created ?? '');
      const end = Date.parse(expires ?? '');
      if (!Number.isFinite(start) || !Number.isFinite(end)) return undefined;
      const margin = Math.min(5 * 60_000, (end - start) / 4);
      if (now() >= end - margin) {
        entries.delete(key);
        return undefined;
      }
      return v;
    },
    async set(key: string, value: string): Promise<void> {
      entries.set(key, value);
    },
  };
}

function client(s: GitHubSettings, auth: object, log: (line: string) => void): Octokit {
  const maxWait = s.maxInlineWaitSeconds ?? 60;
  // Short waits happen in the request; longer ones fail it with the time, and the job waits.
  const onLimit = (retryAfter: number, options: { method: string; url: string }, _o: unknown, retryCount: number) => {
    const wait = retryAfter <= maxWait && retryCount < 3;
    log(
      `github: rate limited on ${options.method} ${options.url}: ${wait ? `retrying after ${retryAfter} s` : `giving the job back for ${retryAfter} s`}`,
    );
    return wait;
  };
  return new Octokit({
    baseUrl: s.url.replace(/\/+$/, ''),
    ...auth,
    throttle: { onRateLimit: onLimit, onSecondaryRateLimit: onLimit },
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: (m: string) => log(`github: ${m}`),
      error: (m: string) => log(`github: ${m}`),
    },
  });
}

/** Connects and checks the credentials and permissions against the repository. */
export async function connectGitHub(s: GitHubSettings, log: (line: string) => void): Promise<GitHub> {
  const ref = parseRepository(s.repository);
  if (s.auth.kind === 'token') {
    const octokit = client(s, { auth: s.auth.token }, log);
    const repo = await octokit.rest.repos.get(ref).catch((e: unknown) => {
      throw new GitHubAuthError(`GitHub at ${s.url}: the token cannot read ${s.repository}: ${failure(e)}`, {
        cause: e,
      });
    });
    // Statuses and comments need push access to the repository.
    if (repo.data.permissions && !repo.data.permissions.push) {
      throw new GitHubAuthError(
        `GitHub at ${s.url}: the token has no write access to ${s.repository} (needed for statuses and comments)`,
      );
    }
    const user = await octokit.rest.users.getAuthenticated().catch((e: unknown) => {
      throw new GitHubAuthError(`GitHub at ${s.url}: the token's user cannot be read: ${failure(e)}`, { cause: e });
    });
    return {
      api: new GitHubApi(octokit, ref),
      login: user.data.login,
      checks: false,
      htmlUrl: repo.data.html_url,
      repositoryId: repo.data.id,
    };
  }

  const { appId, privateKey } = s.auth;
  const appOnly = client(s, { authStrategy: createAppAuth, auth: { appId, privateKey } }, log);
  // A key that does not belong to the App, or is not a key at all, fails here.
  const app = await appOnly.rest.apps.getAuthenticated().catch((e: unknown) => {
    throw new GitHubAuthError(
      `GitHub at ${s.url}: App ${appId} cannot authenticate with its private key: ${failure(e)}`,
      { cause: e },
    );
  });
  const slug = app.data?.slug;
  if (!slug) throw new GitHubAuthError(`GitHub at ${s.url}: App ${appId} has no slug`);
  const installationId =
    s.auth.installationId ??
    (
      await appOnly.rest.apps.getRepoInstallation(ref).catch((e: unknown) => {
        throw new GitHubAuthError(
          `GitHub at ${s.url}: App ${slug} is not installed on ${s.repository}: ${failure(e)}`,
          { cause: e },
        );
      })
    ).data.id;
  // Tokens for the tracked repository only, with natops's permissions only: an App installed on
  // a whole organization would otherwise mint tokens for every repository, with all it may do.
  // auth-app scopes a token only when asked per call (its own request hook asks for no scope),
  // so natops mints the token for each request itself.
  // (auth-app's Cache type says get() always finds a string; its code takes undefined as a miss)
  const cache = refreshingTokenCache() as NonNullable<Parameters<typeof createAppAuth>[0]['cache']>;
  // (minting goes through a client of its own: GitHub's address, natops's rate-limit handling)
  const appAuth = createAppAuth({ appId, privateKey, installationId, cache, request: client(s, {}, log).request });
  const repositoryNames = [ref.repo];
  const octokit = client(s, {}, log);
  octokit.hook.wrap('request', async (request, options) => {
    // The App's own routes (webhook deliveries) take the App's JWT, as auth-app's hook does.
    // (a route, or a whole URL when paginating)
    const path = options.url.startsWith(options.baseUrl) ? options.url.slice(options.baseUrl.length) : options.url;
    if (/^\/app([/?]|$)/.test(path)) {
      options.headers.authorization = `bearer ${(await appAuth({ type: 'app' })).token}`;
    } else {
      const { token } = await appAuth({ type: 'installation', repositoryNames, permissions: { ...APP_PERMISSIONS } });
      options.headers.authorization = `token ${token}`;
    }
    return request(options);
  });
  // What the installation may do on the repository (a token without a permission scope says).
  const token = InstallationToken.parse(
    await appAuth({ type: 'installation', repositoryNames }).catch((e: unknown) => {
      throw new GitHubAuthError(
        `GitHub at ${s.url}: no installation token for App ${slug} on ${s.repository}: ${failure(e)}`,
        { cause: e },
      );
    }),
  );
  const missing = Object.entries(APP_PERMISSIONS).filter(([name, level]) => {
    const has = token.permissions?.[name];
    return !(has === level || has === 'write' || has === 'admin');
  });
  if (missing.length) {
    throw new GitHubAuthError(
      `GitHub at ${s.url}: App ${slug} lacks permissions on ${s.repository}: ${missing.map(([n, l]) => `${n}: ${l}`).join(', ')} (it has ${JSON.stringify(token.permissions ?? {})})`,
    );
  }
  const repo = await octokit.rest.repos.get(ref).catch((e: unknown) => {
    throw new GitHubAuthError(`GitHub at ${s.url}: App ${slug} cannot read ${s.repository}: ${failure(e)}`, {
      cause: e,
    });
  });
  return {
    api: new GitHubApi(octokit, ref),
    login: `${slug}[bot]`,
    checks: true,
    htmlUrl: repo.data.html_url,
    repositoryId: repo.data.id,
  };
}
