// GitHub from the configuration: the credentials (from the environment or files, never logged),
// the connection checked at start, and the loop that turns status changes into GitHub jobs.
import { connectGitHub, readSecret, type GitHub, type GitHubAuth } from '../gitops/github/client.ts';
import type { Queues } from '../queue/queues.ts';
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { StatusBook } from '../state/statuses.ts';
import type { ServerConfig } from './config.ts';

/** undefined when no GitHub credentials are configured. */
export async function gitHubFromConfig(c: ServerConfig, log: Logger): Promise<GitHub | undefined> {
  const token = await readSecret('NATOPS_GITHUB_TOKEN', c.githubToken, c.githubTokenFile);
  let auth: GitHubAuth | undefined;
  if (token) auth = { kind: 'token', token };
  else if (c.githubAppId) {
    const privateKey = await readSecret('NATOPS_GITHUB_PRIVATE_KEY', c.githubPrivateKey, c.githubPrivateKeyFile);
    auth = { kind: 'app', appId: c.githubAppId, privateKey: privateKey!, installationId: c.githubInstallationId };
  }
  if (!auth) return undefined;
  const github = await connectGitHub(
    { url: c.githubUrl, repository: c.repository!, auth, maxInlineWaitSeconds: c.githubMaxWaitS },
    (m) => log.warn(m),
  );
  log.info(
    `GitHub ${c.githubUrl}: ${c.repository} as ${github.login}${github.checks ? ' (App: statuses, check runs, previews)' : ' (token: statuses, previews)'}`,
  );
  return github;
}

/** How often the commits GitHub is behind on are turned into jobs. */
const DISPATCH_MS = 250;

/**
 * Turns each commit marked for GitHub (state/statuses.ts marks it with every status write, in any
 * process) into a job of the `github` queue, one per version of its statuses: a job made for an
 * older version finds nothing new and costs no request. Runs where the GitHub jobs run.
 */
export function dispatchStatuses(statuses: StatusBook, queues: Queues, log: Logger): { stop(): Promise<void> } {
  let round: Promise<void> | undefined;
  const once = async () => {
    for (const d of await statuses.dirty()) {
      await queues.addGitHubSync({ sha: d.sha }, d.version);
      await statuses.settleDirty(d.sha, d.version);
    }
  };
  const timer = setInterval(() => {
    round ??= once()
      .catch((e: unknown) => log.error(`github: statuses: ${errorMessage(e)}`))
      .finally(() => (round = undefined));
  }, DISPATCH_MS);
  return {
    async stop() {
      clearInterval(timer);
      await round;
    },
  };
}
