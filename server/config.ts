// Settings of the long-running processes (serve, worker), from NATOPS_* environment variables
// with command-line flags on top; checked with zod so a bad value stops the start, by name.
import { z } from 'zod';
import { DNS_LABEL } from '../common/dns-label.ts';
import { errorMessage, NatopsError } from '../common/errors.ts';
import { parseRemoteUrl } from '../gitops/git/remote-url.ts';
import { DEFAULT_GATEWAY_IMAGES } from '../dataplane/workload-policy.ts';
import { DATAPLANES } from '../dataplane/model.ts';
import { DEFAULT_LOAD_LIMITS } from '../gitops/manifests/load.ts';
import type { ManifestRules } from '../gitops/manifests/validate.ts';
import { NETWORK_MODES } from '../runtime/kubernetes/objects.ts';

export class ConfigError extends NatopsError {}

/** pino's levels (here, not in common/log.ts: reading the configuration does not load pino) */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const int = (min: number) => z.coerce.number().int().min(min);
/** a list: comma-separated in the environment, an array from code */
const commaList = z.union([
  z.array(z.string().min(1)),
  z.string().transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  ),
]);
// a setting's text, or (from code: tests, the CLI's own overrides) a boolean
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);
const hostPort = z.string().regex(/^[^:]+:\d+$/, 'host:port');

export const ServerConfig = z.object({
  /** redis://host:port; unset: `natops serve` starts its own redis-server */
  redisUrl: z.string().url().optional(),
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('natops'),
  /** the webhook secret, or a file holding it */
  webhookSecret: z.string().min(1).optional(),
  webhookSecretFile: z.string().optional(),
  /** the Git repository the planner reads (a bare repository, or a mirror of GitHub's) */
  repo: z.string().optional(),
  branch: z
    .string()
    .regex(/^[A-Za-z0-9._/-]+$/)
    .default('main'),
  /** owner/name of the repository deliveries must come from; unset: any (one webhook, one repository) */
  repository: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'owner/name')
    .optional(),
  /** the tracked path inside the repository */
  path: z.string().default('.'),
  lab: z.string().optional(),
  listen: hostPort.default('127.0.0.1:8080'),
  /**
   * `serve`: the dashboard, /metrics, /readyz and /healthz on a listener of their own, so the
   * webhook's (which GitHub must reach) serves the webhook only; unset: all on `listen`
   */
  dashboardListen: hostPort.optional(),
  /** the address links in statuses point at */
  publicUrl: z.string().url().optional(),
  dashboardUser: z.string().min(1).default('admin'),
  /** no password configured: the dashboard answers 401 to everyone */
  dashboardPassword: z.string().min(1).optional(),
  dashboardPasswordFile: z.string().optional(),
  resyncMs: int(0).default(60_000),
  /** the most gateways one resync removes (unset: the resync's own default); 0: the resync removes none */
  resyncMaxRemovals: int(0).optional(),
  attempts: int(1).default(5),
  backoffMs: int(10).default(1000),
  /** job lock and stall detection, and the per-gateway lease */
  lockMs: int(200).default(30_000),
  concurrency: int(1).default(4),
  /** every command run in a gateway or the lab is killed after this long (a hung one would hold its lease forever) */
  commandTimeoutMs: int(100).default(60_000),
  maxBody: z.string().default('1mb'),
  /** limits on what one manifest file may hold (gitops/manifests/load.ts) */
  manifestMaxFileBytes: int(1).default(DEFAULT_LOAD_LIMITS.maxFileBytes),
  manifestMaxDocuments: int(1).default(DEFAULT_LOAD_LIMITS.maxDocuments),
  manifestMaxDepth: int(1).default(DEFAULT_LOAD_LIMITS.maxDepth),
  manifestMaxAliasNodes: int(1).default(DEFAULT_LOAD_LIMITS.maxAliasExpansion),
  /** limits on what one commit may hold, checked from the tree before any blob is read */
  manifestMaxFiles: int(1).default(DEFAULT_LOAD_LIMITS.maxFiles),
  manifestMaxTotalBytes: int(1).default(DEFAULT_LOAD_LIMITS.maxTotalBytes),
  /** the most gateways one commit may describe */
  manifestMaxGateways: int(1).default(DEFAULT_LOAD_LIMITS.maxGateways),
  /**
   * the gateway images a ConfigMap may name (exact references or digests, comma-separated); `*`
   * allows any. Operator-side: manifests cannot widen it.
   */
  gatewayImages: commaList.default([...DEFAULT_GATEWAY_IMAGES]),
  /** whether gateways may be placed on control-plane nodes (tolerations, node selectors, affinity) */
  allowControlPlane: bool.default(false),
  /** the data plane of a gateway whose manifest names none (the annotation natops.io/dataplane) */
  dataplane: z.enum(DATAPLANES).default('iptables'),
  /** where gateways run: network namespaces of the local lab, or Deployments on Kubernetes */
  runtime: z.enum(['netns', 'kubernetes']).default('netns'),
  /** Kubernetes: one kubeconfig file; without it, client-node's default (KUBECONFIG, ~/.kube/config, the pod's service account) */
  kubeconfig: z.string().optional(),
  /** Kubernetes: the namespace of the gateway Deployments (Kube-OVN's controller uses kube-system) */
  namespace: z.string().regex(DNS_LABEL, 'a Kubernetes namespace name').default('natops-gateways'),
  /**
   * Kubernetes: the instance label on everything this natops makes; it lists, execs into and
   * prunes only objects carrying it (two installations in one namespace leave each other alone).
   * Unset: the prefix.
   */
  instance: z.string().regex(DNS_LABEL, 'a DNS label').optional(),
  /** Kubernetes: how gateway pods attach to their networks (runtime/kubernetes/objects.ts) */
  networkMode: z.enum(NETWORK_MODES).default('kube-ovn'),
  /** Kubernetes: how long a gateway pod may take to be Running and Ready */
  podReadyTimeoutMs: int(1000).default(120_000),
  /**
   * where the planner reads manifests: the local repository (`repo`), GitHub's API for
   * `repository`, or a remote Git URL (`gitUrl`) mirrored under `dataDir`
   */
  source: z.enum(['git', 'github', 'git-url']).default('git'),
  /** `git-url`: https://, ssh:// (or user@host:path) or file:// (gitops/git/remote-url.ts) */
  gitUrl: z.string().optional(),
  /** `git-url` over https: a user name and a password file, or a token file */
  gitUsername: z
    .string()
    .regex(/^[^\s:]+$/, 'a user name without spaces or ":"')
    .optional(),
  gitPasswordFile: z.string().optional(),
  gitTokenFile: z.string().optional(),
  /** `git-url` over https: the certificate authorities to trust (PEM) instead of the system's */
  gitCaFile: z.string().optional(),
  /** `git-url` over ssh: the private key, and the host keys accepted (an unknown host is refused) */
  gitSshKeyFile: z.string().optional(),
  gitKnownHostsFile: z.string().optional(),
  /** `git-url`: commits fetched from the branch's head (deepened when an ancestry question needs more) */
  gitDepth: int(1).default(50),
  /** `git-url`: a fetch is killed after this long */
  gitFetchTimeoutMs: int(1000).default(120_000),
  /** GitHub's API (GitHub Enterprise Server: https://HOST/api/v3) */
  githubUrl: z.string().url().default('https://api.github.com'),
  /** a token (or a file holding it); or a GitHub App: its id and private key (or a file holding it) */
  githubToken: z.string().min(1).optional(),
  githubTokenFile: z.string().optional(),
  githubAppId: z.string().regex(/^\d+$/, 'a number').optional(),
  githubPrivateKey: z.string().min(1).optional(),
  githubPrivateKeyFile: z.string().optional(),
  /** a GitHub rate limit lifting within this many seconds is waited out in the request; a later one puts the job back until then */
  githubMaxWaitS: int(0).default(60),
  /** the App's installation on `repository`; found by asking GitHub when unset */
  githubInstallationId: z.coerce.number().int().positive().optional(),
  /**
   * pull requests previewed: those whose author's association with the repository is one of
   * these (comma-separated), or that carry `previewLabel`. Forks of public repositories are
   * otherwise not read.
   */
  previewAuthors: commaList.default(['OWNER', 'MEMBER', 'COLLABORATOR']),
  /** a label a maintainer sets to have any pull request previewed; unset: none */
  previewLabel: z.string().min(1).optional(),
  /**
   * build each preview's base and head in a throwaway lab of network namespaces and send real
   * packets through every mapping (functions/preview/prove.ts): needs root, as the netns lab does
   */
  previewProve: bool.default(false),
  /** the most probes per side of a proven preview, sampled evenly beyond it */
  previewProveLimit: int(1).default(50),
  /** how long commit statuses and their history are kept in Redis */
  statusKeepDays: int(1).default(90),
  /** how many commits the dashboard's commit index keeps */
  commitsKeep: int(1).default(1000),
  /** how many failed jobs each queue keeps (as well as for 30 days at most) */
  failedJobsKeep: int(1).default(1000),
  /** the least severe log lines written */
  logLevel: z.enum(LOG_LEVELS).default('info'),
  /**
   * on SIGTERM, how long the jobs in hand may take to finish; after that they go back to their
   * queues and the process exits 1 (with 5 s for the rest, within Kubernetes' default 30 s grace)
   */
  shutdownMs: int(0).default(20_000),
  /** where `natops serve` keeps its Redis data and records where it runs */
  dataDir: z.string().default('/var/lib/natops'),
});
export type ServerConfig = z.infer<typeof ServerConfig>;

const ENV: Record<keyof ServerConfig, string> = {
  redisUrl: 'NATOPS_REDIS_URL',
  prefix: 'NATOPS_PREFIX',
  webhookSecret: 'NATOPS_WEBHOOK_SECRET',
  webhookSecretFile: 'NATOPS_WEBHOOK_SECRET_FILE',
  repo: 'NATOPS_REPO',
  branch: 'NATOPS_BRANCH',
  repository: 'NATOPS_REPOSITORY',
  path: 'NATOPS_PATH',
  lab: 'NATOPS_LAB',
  listen: 'NATOPS_LISTEN',
  publicUrl: 'NATOPS_PUBLIC_URL',
  dashboardUser: 'NATOPS_DASHBOARD_USER',
  dashboardPassword: 'NATOPS_DASHBOARD_PASSWORD',
  dashboardPasswordFile: 'NATOPS_DASHBOARD_PASSWORD_FILE',
  dashboardListen: 'NATOPS_DASHBOARD_LISTEN',
  resyncMs: 'NATOPS_RESYNC_MS',
  resyncMaxRemovals: 'NATOPS_RESYNC_MAX_REMOVALS',
  attempts: 'NATOPS_JOB_ATTEMPTS',
  backoffMs: 'NATOPS_JOB_BACKOFF_MS',
  lockMs: 'NATOPS_LOCK_MS',
  concurrency: 'NATOPS_CONCURRENCY',
  commandTimeoutMs: 'NATOPS_COMMAND_TIMEOUT_MS',
  maxBody: 'NATOPS_MAX_BODY',
  dataDir: 'NATOPS_DATA_DIR',
  manifestMaxFileBytes: 'NATOPS_MANIFEST_MAX_FILE_BYTES',
  manifestMaxDocuments: 'NATOPS_MANIFEST_MAX_DOCUMENTS',
  manifestMaxDepth: 'NATOPS_MANIFEST_MAX_DEPTH',
  manifestMaxAliasNodes: 'NATOPS_MANIFEST_MAX_ALIAS_NODES',
  manifestMaxFiles: 'NATOPS_MANIFEST_MAX_FILES',
  manifestMaxTotalBytes: 'NATOPS_MANIFEST_MAX_TOTAL_BYTES',
  manifestMaxGateways: 'NATOPS_MANIFEST_MAX_GATEWAYS',
  gatewayImages: 'NATOPS_GATEWAY_IMAGES',
  allowControlPlane: 'NATOPS_ALLOW_CONTROL_PLANE',
  dataplane: 'NATOPS_DATAPLANE',
  instance: 'NATOPS_INSTANCE',
  previewAuthors: 'NATOPS_PREVIEW_AUTHORS',
  previewLabel: 'NATOPS_PREVIEW_LABEL',
  previewProve: 'NATOPS_PREVIEW_PROVE',
  previewProveLimit: 'NATOPS_PREVIEW_PROVE_LIMIT',
  statusKeepDays: 'NATOPS_STATUS_KEEP_DAYS',
  commitsKeep: 'NATOPS_COMMITS_KEEP',
  failedJobsKeep: 'NATOPS_FAILED_JOBS_KEEP',
  runtime: 'NATOPS_RUNTIME',
  kubeconfig: 'NATOPS_KUBECONFIG',
  namespace: 'NATOPS_NAMESPACE',
  networkMode: 'NATOPS_NETWORK_MODE',
  podReadyTimeoutMs: 'NATOPS_POD_READY_TIMEOUT_MS',
  source: 'NATOPS_SOURCE',
  gitUrl: 'NATOPS_GIT_URL',
  gitUsername: 'NATOPS_GIT_USERNAME',
  gitPasswordFile: 'NATOPS_GIT_PASSWORD_FILE',
  gitTokenFile: 'NATOPS_GIT_TOKEN_FILE',
  gitCaFile: 'NATOPS_GIT_CA_FILE',
  gitSshKeyFile: 'NATOPS_GIT_SSH_KEY_FILE',
  gitKnownHostsFile: 'NATOPS_GIT_KNOWN_HOSTS_FILE',
  gitDepth: 'NATOPS_GIT_DEPTH',
  gitFetchTimeoutMs: 'NATOPS_GIT_FETCH_TIMEOUT_MS',
  githubUrl: 'NATOPS_GITHUB_URL',
  githubToken: 'NATOPS_GITHUB_TOKEN',
  githubTokenFile: 'NATOPS_GITHUB_TOKEN_FILE',
  githubAppId: 'NATOPS_GITHUB_APP_ID',
  githubPrivateKey: 'NATOPS_GITHUB_PRIVATE_KEY',
  githubPrivateKeyFile: 'NATOPS_GITHUB_PRIVATE_KEY_FILE',
  githubInstallationId: 'NATOPS_GITHUB_INSTALLATION_ID',
  githubMaxWaitS: 'NATOPS_GITHUB_MAX_WAIT_S',
  logLevel: 'NATOPS_LOG_LEVEL',
  shutdownMs: 'NATOPS_SHUTDOWN_MS',
};

/** Environment first, then the given overrides (flags); undefined values do not override. */
export function loadConfig(
  overrides: Partial<Record<keyof ServerConfig, unknown>> = {},
  env: NodeJS.ProcessEnv = process.env,
): ServerConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV)) if (env[name] !== undefined && env[name] !== '') raw[key] = env[name];
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) raw[key] = value;
  const parsed = ServerConfig.superRefine((c, ctx) => {
    if (c.dashboardPassword && c.dashboardPasswordFile)
      ctx.addIssue({
        code: 'custom',
        path: ['dashboardPasswordFile'],
        message: 'give NATOPS_DASHBOARD_PASSWORD or NATOPS_DASHBOARD_PASSWORD_FILE, not both',
      });
    const token = c.githubToken || c.githubTokenFile;
    const app = c.githubAppId || c.githubPrivateKey || c.githubPrivateKeyFile;
    if (token && app)
      ctx.addIssue({ code: 'custom', path: ['githubToken'], message: 'give a token or a GitHub App, not both' });
    if (app && !c.githubAppId)
      ctx.addIssue({ code: 'custom', path: ['githubAppId'], message: 'a GitHub App needs its id' });
    if (c.githubAppId && !c.githubPrivateKey && !c.githubPrivateKeyFile)
      ctx.addIssue({ code: 'custom', path: ['githubPrivateKeyFile'], message: 'a GitHub App needs its private key' });
    // Statuses link to the dashboard: an address of every interface is nobody's to click.
    const linked = listenAddress(c.dashboardListen ?? c.listen).host;
    if ((token || app) && !c.publicUrl && ['0.0.0.0', '::', '[::]'].includes(linked))
      ctx.addIssue({
        code: 'custom',
        path: ['publicUrl'],
        message: `GitHub's statuses link to the dashboard, which listens on ${linked}: give the address people reach it at`,
      });
    if ((token || app) && !c.repository)
      ctx.addIssue({ code: 'custom', path: ['repository'], message: 'GitHub needs the repository (owner/name)' });
    if (c.source === 'github' && !token && !app)
      ctx.addIssue({
        code: 'custom',
        path: ['source'],
        message: "'github' needs a token or a GitHub App (NATOPS_GITHUB_TOKEN, NATOPS_GITHUB_APP_ID)",
      });
    if (c.source === 'git-url' && !c.gitUrl)
      ctx.addIssue({ code: 'custom', path: ['gitUrl'], message: "'git-url' needs NATOPS_GIT_URL" });
    if (c.gitUrl) {
      try {
        parseRemoteUrl(c.gitUrl);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['gitUrl'], message: errorMessage(e).replace(/^NATOPS_GIT_URL /, '') });
      }
      if (c.source !== 'git-url')
        ctx.addIssue({ code: 'custom', path: ['gitUrl'], message: 'is read only with NATOPS_SOURCE=git-url' });
    }
  }).safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0]) as keyof ServerConfig;
      return `${ENV[key] ?? key}: ${i.message}`;
    });
    throw new ConfigError(`bad configuration:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}

/** A `host:port` setting (`listen`, `dashboardListen`) as host and port. */
export function listenAddress(at: string): { host: string; port: number } {
  const i = at.lastIndexOf(':');
  return { host: at.slice(0, i), port: Number(at.slice(i + 1)) };
}

/** The manifest limits and workload policy a configuration sets. */
export function manifestRules(
  c: Pick<
    ServerConfig,
    | 'manifestMaxFileBytes'
    | 'manifestMaxDocuments'
    | 'manifestMaxDepth'
    | 'manifestMaxAliasNodes'
    | 'manifestMaxFiles'
    | 'manifestMaxTotalBytes'
    | 'manifestMaxGateways'
    | 'gatewayImages'
    | 'allowControlPlane'
    | 'dataplane'
  >,
): ManifestRules {
  return {
    maxFileBytes: c.manifestMaxFileBytes,
    maxDocuments: c.manifestMaxDocuments,
    maxDepth: c.manifestMaxDepth,
    maxAliasExpansion: c.manifestMaxAliasNodes,
    maxFiles: c.manifestMaxFiles,
    maxTotalBytes: c.manifestMaxTotalBytes,
    maxGateways: c.manifestMaxGateways,
    policy: { images: c.gatewayImages, allowControlPlane: c.allowControlPlane },
    dataplane: c.dataplane,
  };
}

/** Just the manifest rules from the environment (for the commands that read manifests, not serve). */
export function manifestRulesFromEnv(env: NodeJS.ProcessEnv = process.env): ManifestRules {
  const only = ServerConfig.pick({
    manifestMaxFileBytes: true,
    manifestMaxDocuments: true,
    manifestMaxDepth: true,
    manifestMaxAliasNodes: true,
    manifestMaxFiles: true,
    manifestMaxTotalBytes: true,
    manifestMaxGateways: true,
    gatewayImages: true,
    allowControlPlane: true,
    dataplane: true,
  });
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(only.shape) as (keyof ServerConfig)[]) if (env[ENV[key]]) raw[key] = env[ENV[key]];
  const parsed = only.safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(
      `bad configuration:\n  ${parsed.error.issues.map((i) => `${ENV[String(i.path[0]) as keyof ServerConfig]}: ${i.message}`).join('\n  ')}`,
    );
  return manifestRules(parsed.data);
}
