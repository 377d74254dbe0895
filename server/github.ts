// GitHub from the configuration: the credentials (from the environment or files, never logged),
// the connection checked at start, and the status sink that turns each status change into a job.
import { connectGitHub, readSecret, type GitHub, type GitHubAuth } from '../github/client.ts';
import type { Queues } from '../queue/queues.ts';
import type { StatusSink } from '../queue/statuses.ts';
import type { ServerConfig } from './config.ts';

/** undefined when no GitHub credentials are configured. */
export async function gitHubFromConfig(c: ServerConfig, log: (line: string) => void): Promise<GitHub | undefined> {
  const token = await readSecret('NATOPS_GITHUB_TOKEN', c.githubToken, c.githubTokenFile);
  let auth: GitHubAuth | undefined;
  if (token) auth = { kind: 'token', token };
  else if (c.githubAppId) {
    const privateKey = await readSecret('NATOPS_GITHUB_PRIVATE_KEY', c.githubPrivateKey, c.githubPrivateKeyFile);
    auth = { kind: 'app', appId: c.githubAppId, privateKey: privateKey!, installationId: c.githubInstallationId };
  }
  if (!auth) return undefined;
  const github = await connectGitHub({ url: c.githubUrl, repository: c.repository!, auth, maxInlineWaitSeconds: c.githubMaxWaitS }, log);
  log(`natops: GitHub ${c.githubUrl}: ${c.repository} as ${github.login}${github.checks ? ' (App: statuses, check runs, previews)' : ' (token: statuses, previews)'}`);
  return github;
}

/** Each status natops writes becomes a job that writes it to GitHub (functions/github/publish.ts). */
export function gitHubStatusSink(queues: Queues): StatusSink {
  return { write: (sha, status) => queues.addGitHubSync({ sha }, status.updatedAt) };
}
