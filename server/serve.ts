// Assembles the long-running parts from the configuration: Redis (started locally when none is
// configured), the workers for the chosen queues, the resync scheduler, and one express app
// with the webhook and the dashboard (or two: NATOPS_DASHBOARD_LISTEN puts the dashboard and the
// ops endpoints on their own). `natops serve` runs it all; `natops worker` a subset.
// Both may serve /healthz, /readyz and /metrics, and both stop by a deadline.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createServer, STATUS_CODES, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Worker } from 'bullmq';
import express, { type ErrorRequestHandler } from 'express';
import { errorMessage, NatopsError } from '../common/errors.ts';
import { redactUrl } from '../common/redact.ts';
import { within } from '../common/time.ts';
import { outageLog, type Logger } from '../common/log.ts';
import { redeliverFailed } from '../functions/github/redeliver.ts';
import { catchUp } from '../functions/planner/planner.ts';
import { PROVE_DEFAULTS } from '../functions/preview/prove.ts';
import type { ResyncRequest } from '../functions/resync.ts';
import { webhookRouter } from './webhook.ts';
import { sendDeferred } from '../gitops/hook/delivery.ts';
import { drainDeferred } from '../gitops/hook/spool.ts';
import { GitRepo } from '../gitops/git/local-source.ts';
import { RemoteGitSource } from '../gitops/git/remote-source.ts';
import type { GitSource } from '../gitops/git/source.ts';
import { GitHubSource } from '../gitops/github/source.ts';
import type { QueueName } from '../queue/jobs.ts';
import { HANDLER_KINDS } from '../dataplane/kinds.ts';
import { resumeAfterRemoval } from '../queue/gateways-removed.ts';
import { Queues, redisConnection } from '../queue/queues.ts';
import { PreviewBook } from '../state/previews.ts';
import { StatusBook } from '../state/statuses.ts';
import { Records } from '../state/records.ts';
import { Store } from '../state/store.ts';
import { ManifestCache } from '../gitops/manifests/cache.ts';
import { listenAddress, manifestRules, type ServerConfig } from './config.ts';
import {
  bullBoardWrites,
  commitsRouter,
  COMMITS_PATH,
  dashboardAuth,
  dashboardRouter,
  DASHBOARD_PATH,
  jobUrl,
  noFraming,
} from './dashboard.ts';
import { lockDataDir } from './data-dir.ts';
import { LocalRedis } from './redis-server.ts';
import { dispatchStatuses, gitHubFromConfig } from './github.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { cachedReadiness, opsRouter, type Readiness } from './ops.ts';
import { makeRuntimes } from '../runtime/select.ts';
import { checkRedis } from '../state/redis-check.ts';
import { startWorkers, type Shutdown } from './workers.ts';

/** How often a running natops looks for deliveries its repository's hook had to keep. */
const DRAIN_INTERVAL_MS = 2000;

export interface ServeOptions {
  queues: readonly QueueName[];
  /** webhook, dashboard and the resync scheduler (and the ops endpoints) */
  http: boolean;
  /** /healthz, /readyz and /metrics on the listen address, without the rest (`natops worker --listen`) */
  ops?: boolean;
  log: Logger;
}

export interface Running {
  /** the webhook's address (with one listener, the dashboard's too) */
  url: string;
  /** the dashboard's and the ops endpoints' address */
  dashboardUrl: string;
  redisUrl: string;
  store: Store;
  records: Records;
  statuses: StatusBook;
  previews: PreviewBook;
  queues: Queues;
  workers: Worker[];
  metrics: Metrics;
  ready(): Promise<Readiness>;
  /**
   * Finishes the jobs in hand, then stops. Past `deadlineMs` (default NATOPS_SHUTDOWN_MS) the jobs
   * still in hand go back to their queues instead.
   */
  close(deadlineMs?: number): Promise<Shutdown>;
}

/** The webhook secret: configured, in a file, or (the local default) made once in the data dir. */
export async function webhookSecret(c: ServerConfig, log: Logger): Promise<string> {
  if (c.webhookSecret) return c.webhookSecret;
  if (c.webhookSecretFile) {
    const secret = (await readFile(c.webhookSecretFile, 'utf8').catch(() => '')).trim();
    if (!secret) throw new NatopsError(`webhook secret file ${c.webhookSecretFile} is missing or empty`);
    return secret;
  }
  const file = join(c.dataDir, 'webhook-secret');
  log.warn(`no webhook secret configured; using ${file} (give it to \`natops repo init --secret-file\`)`);
  return ensureSecretFile(file);
}

/**
 * The remote Git source (NATOPS_SOURCE=git-url): its URL and credential files checked now, so a
 * missing Secret stops the start by name; the first fetch is the start's catch-up.
 */
async function remoteSource(c: ServerConfig): Promise<RemoteGitSource> {
  const source = new RemoteGitSource({
    url: c.gitUrl ?? '',
    dataDir: c.dataDir,
    depth: c.gitDepth,
    fetchTimeoutMs: c.gitFetchTimeoutMs,
    credentials: {
      username: c.gitUsername,
      passwordFile: c.gitPasswordFile,
      tokenFile: c.gitTokenFile,
      caFile: c.gitCaFile,
      sshKeyFile: c.gitSshKeyFile,
      knownHostsFile: c.gitKnownHostsFile,
    },
  });
  await source.check();
  return source;
}

/** The dashboard's password: configured, or read from its file; none: the dashboard lets nobody in. */
export async function dashboardPassword(c: ServerConfig): Promise<string | undefined> {
  if (c.dashboardPassword || !c.dashboardPasswordFile) return c.dashboardPassword;
  const password = (await readFile(c.dashboardPasswordFile, 'utf8').catch(() => '')).trim();
  if (!password) throw new NatopsError(`dashboard password file ${c.dashboardPasswordFile} is missing or empty`);
  return password;
}

/**
 * The last error handler: a short JSON answer (a client error's own message, else the status's
 * name), never Express's error page, which shows the stack outside NODE_ENV=production.
 */
function errorAnswer(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    // Too late for an answer: Express ends the connection.
    if (res.headersSent) return next(err);
    const e = (typeof err === 'object' && err !== null ? err : {}) as {
      status?: unknown;
      statusCode?: unknown;
      expose?: unknown;
      message?: unknown;
    };
    const given = Number(e.status ?? e.statusCode);
    const status = given >= 400 && given < 600 ? given : 500;
    if (status >= 500) log.error({ err }, `${req.method} ${req.path}: ${errorMessage(err)}`);
    const text = status < 500 && e.expose === true && typeof e.message === 'string' ? e.message : undefined;
    res.status(status).json({ error: text ?? STATUS_CODES[status] ?? 'error' });
  };
}

/**
 * An app listening on host:port, once it does. The webhook's port must be reachable by GitHub,
 * so by anyone: a client gets 10 s for its headers and 15 s for its whole request (Node's
 * defaults, 60 s and 5 min, let slow clients hold sockets and buffers), checked every second.
 */
function listen(app: express.Express, host: string, port: number): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const s = createServer({ headersTimeout: 10_000, requestTimeout: 15_000, connectionsCheckingInterval: 1000 }, app);
    s.maxConnections = MAX_CONNECTIONS;
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
}
/** connections one listener holds at most; more are closed at once */
const MAX_CONNECTIONS = 1024;

/** A secret file under the state dir, made on first use (0600). */
async function ensureSecretFile(path: string): Promise<string> {
  const existing = await readFile(path, 'utf8').catch(() => undefined);
  if (existing?.trim()) return existing.trim();
  const secret = randomBytes(24).toString('hex');
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

export async function serve(c: ServerConfig, opts: ServeOptions): Promise<Running> {
  // Only the planner reads Git; a handler-only worker needs no repository.
  if (c.source === 'git' && !c.repo && opts.queues.includes('plan'))
    throw new NatopsError('no repository to read manifests from: set NATOPS_REPO or --repo (or NATOPS_SOURCE=github)');
  // First what can fail on configuration alone (a bad kubeconfig, a bad GitHub key), before anything is held.
  const runtimes = await makeRuntimes(c, (m) => opts.log.warn(m));
  const github = await gitHubFromConfig(c, opts.log);
  const password = opts.http ? await dashboardPassword(c) : undefined;
  // The planner reads it, and the resync's catch-up asks it for the branch's head.
  const remote =
    c.source === 'git-url' && opts.queues.some((q) => q === 'plan' || q === 'resync')
      ? await remoteSource(c)
      : undefined;
  // One natops serve per data directory: its Redis's append-only file and webhook secret live there.
  const dataDirLock = opts.http || !c.redisUrl ? await lockDataDir(c.dataDir) : undefined;
  const localRedis = c.redisUrl
    ? undefined
    : await LocalRedis.start(join(c.dataDir, 'redis')).catch(async (e: unknown) => {
        await dataDirLock?.release();
        throw e;
      });
  const redisUrl = c.redisUrl ?? localRedis!.url;
  const connection = redisConnection(redisUrl);
  const redisOutage = outageLog(opts.log, `redis ${redactUrl(redisUrl)}`);
  connection.on('error', (e) => redisOutage.failed(e.message));
  connection.on('ready', () => redisOutage.recovered());
  // A Redis that can lose natops's records is worth a warning at every start (the records are its
  // memory). Not awaited: a Redis that is down must not hold the start (readiness says so).
  checkRedis(connection).then(
    (findings) => {
      for (const f of findings) opts.log.warn({ setting: f.setting }, f.message);
    },
    (e: unknown) => opts.log.warn(`could not check the Redis settings: ${errorMessage(e)}`),
  );
  const { host, port } = listenAddress(c.listen);
  // Only serve has a dashboard to put apart; a worker's --listen serves the ops endpoints alone.
  const apart = opts.http && c.dashboardListen ? listenAddress(c.dashboardListen) : undefined;
  // Statuses link to the dashboard.
  const publicUrl = c.publicUrl ?? `http://${apart?.host ?? host}:${apart?.port ?? port}`;
  const link = (queue: string, id: string) => jobUrl(publicUrl, queue, id);

  const store = new Store(connection, c.prefix);
  const records = new Records(connection, c.prefix);
  const queues = new Queues(
    connection,
    { redisUrl, prefix: c.prefix, attempts: c.attempts, backoffMs: c.backoffMs, failedJobsKeep: c.failedJobsKeep },
    // the flow producer's connection to the same Redis: its retries are the same outage
    (m) => redisOutage.failed(m),
  );
  // `natops remove-gateways` paused every queue; serve starting again (a reinstall) means natops should run.
  // A removal still under way is looked at again when its time is up.
  let resumeTimer: NodeJS.Timeout | undefined;
  const resume = (): Promise<unknown> =>
    resumeAfterRemoval(
      connection,
      queues.byName,
      c.prefix,
      (m) => opts.log.warn(m),
      (at) => {
        resumeTimer = setTimeout(() => void resume(), Math.max(0, at - Date.now()) + 1000);
        resumeTimer.unref();
      },
    ).catch((e: unknown) => opts.log.error(`could not resume the queues remove-gateways paused: ${errorMessage(e)}`));
  if (opts.http) await resume();
  const statuses = new StatusBook(
    connection,
    c.prefix,
    (sha) => `${publicUrl.replace(/\/$/, '')}${COMMITS_PATH}#c-${sha}`,
    { days: c.statusKeepDays, commits: c.commitsKeep },
  );
  // The process that serves the webhook decides whether statuses go to GitHub; every process then marks them.
  if (opts.http) await statuses.trackForGitHub(github !== undefined);
  // Pull requests' blobs are cached apart from the branch's: an hour, byte-capped (store.ts).
  const onGitHub = github ? new GitHubSource(github.api, store.trackedBlobs()) : undefined;
  const forPreviews = github ? new GitHubSource(github.api, store.pullRequestBlobs()) : undefined;
  const source: GitSource | undefined =
    c.source === 'github' ? onGitHub : c.source === 'git-url' ? remote : c.repo ? new GitRepo(c.repo) : undefined;
  const previews = new PreviewBook(connection, c.prefix);
  const metrics = createMetrics({ queues, records, workerQueues: opts.queues, deployment: opts.http });
  const lock = {
    ttlMs: c.lockMs,
    waitMs: Math.max(5 * c.lockMs, 10_000),
    waited: (ms: number, taken: boolean) => metrics.leaseWait(ms / 1000, taken ? 'taken' : 'timeout'),
  };
  const env = {
    clients: { runtime: runtimes.runtime, network: runtimes.network },
    records,
    store,
    statuses,
    queues,
    redis: connection,
    lock,
    jobUrl: link,
    log: opts.log,
    branch: c.branch,
    repo: source ?? new GitRepo('(no repository configured)'),
    path: c.path,
    limits: manifestRules(c),
    manifestCache: new ManifestCache(),
    github,
    previews,
    previewSource: forPreviews,
    prove: c.previewProve ? { ...PROVE_DEFAULTS, limit: c.previewProveLimit } : undefined,
    maxRemovals: c.resyncMaxRemovals,
  };
  const catchUpEnv = { repo: env.repo, store, queues, branch: c.branch, log: opts.log };
  const withCatchUp = source ? { ...env, catchUp: () => catchUp(catchUpEnv) } : env;
  const pool = startWorkers(opts.queues, withCatchUp, {
    connection,
    prefix: c.prefix,
    concurrency: c.concurrency,
    lockMs: c.lockMs,
    backoffMs: c.backoffMs,
    metrics,
  });
  const { workers } = pool;
  const dispatch = github && opts.queues.includes('github') ? dispatchStatuses(statuses, queues, opts.log) : undefined;
  for (const w of workers) w.on('error', (e) => opts.log.error({ queue: w.name }, `worker ${w.name}: ${e.message}`));
  const usesRuntime = opts.queues.some((q) => q === 'resync' || (HANDLER_KINDS as readonly string[]).includes(q));
  const ready = cachedReadiness({ redis: connection, workers: pool, runtime: runtimes.runtime, usesRuntime });

  let server: Server | undefined;
  let dashboardServer: Server | undefined;
  if (opts.http || opts.ops) {
    const app = express();
    app.disable('x-powered-by');
    const dashboard = apart ? express() : app;
    dashboard.disable('x-powered-by');
    dashboard.use(opsRouter({ ready, metrics: metrics.registry, log: opts.log }));
    if (opts.http) await webhookAndDashboard(app, dashboard);
    for (const a of new Set([app, dashboard])) a.use(errorAnswer(opts.log));
    server = await listen(app, host, port);
    if (apart)
      dashboardServer = await listen(dashboard, apart.host, apart.port).catch((e: unknown) => {
        server?.close();
        throw e;
      });
  }
  async function webhookAndDashboard(app: express.Express, dashboard: express.Express): Promise<void> {
    if (c.resyncMs > 0)
      await queues.byName.resync.upsertJobScheduler('resync', { every: c.resyncMs }, { name: 'resync' });
    else await queues.byName.resync.removeJobScheduler('resync');
    app.use(
      '/webhook',
      webhookRouter({
        secret: await webhookSecret(c, opts.log),
        branch: c.branch,
        repository: c.repository,
        previews: github !== undefined,
        previewAuthors: c.previewAuthors,
        previewLabel: c.previewLabel,
        store,
        queues,
        maxBody: c.maxBody,
        enqueueTimeoutMs: 2000,
        log: opts.log,
        observe: (result, seconds) => metrics.webhook(result, seconds),
      }),
    );
    const auth = dashboardAuth(c.dashboardUser, password);
    // bull-board's API is checked before bull-board sees it: reads, retries and promotions only.
    dashboard.use(DASHBOARD_PATH, noFraming, auth, bullBoardWrites, dashboardRouter(queues));
    dashboard.use(COMMITS_PATH, noFraming, auth, commitsRouter(statuses, store, records, previews));
    dashboard.get('/', (_req, res) => res.redirect(COMMITS_PATH));
  }
  const urlOf = (s: Server | undefined, at: string) => {
    const address = s?.address();
    return address && typeof address === 'object' ? `http://${at}:${address.port}` : publicUrl;
  };
  const url = urlOf(server, host);
  const dashboardUrl = apart ? urlOf(dashboardServer, apart.host) : url;
  // Deliveries the local repository's hook could not make (natops down, or too slow to answer
  // within its second) are kept beside the repository: sent now, in order, and every few seconds
  // after, so a push is planned as a push. Then a push made with no delivery at all is caught up.
  let draining: Promise<unknown> | undefined;
  const drain = () => {
    if (!opts.http || !c.repo || draining) return draining;
    draining = drainDeferred(
      c.repo,
      (d) => sendDeferred(`${url}/webhook`, d),
      (l) => opts.log.warn(`deferred: ${l}`),
    )
      .then((d) => {
        if (d.sent || d.kept || d.setAside)
          opts.log.info(`deferred deliveries: ${d.sent} sent, ${d.kept} kept, ${d.setAside} set aside`);
      })
      .finally(() => (draining = undefined));
    return draining;
  };
  await drain();
  const drainTimer = setInterval(() => void drain(), DRAIN_INTERVAL_MS);
  drainTimer.unref();
  // GitHub does not redeliver what failed while natops was down; an App can ask it to.
  if (opts.http && github?.checks)
    await redeliverFailed({ github, store, log: opts.log }).catch((e: unknown) =>
      opts.log.error(`redelivery: ${errorMessage(e)}`),
    );
  if (source && opts.queues.includes('plan'))
    await catchUp(catchUpEnv).catch((e: unknown) => opts.log.error(`catch-up: ${errorMessage(e)}`));
  // A gateway pod replaced behind natops's back (deleted, evicted, node restarted) starts empty:
  // the resync finds it drifted and repairs it at once, not at its next interval.
  const replacements =
    opts.http && runtimes.watchReplacements
      ? runtimes.watchReplacements(
          (gateway) => {
            opts.log.warn({ gateway, repair: true }, `the pod of gateway ${gateway} was replaced; resyncing`);
            const request: ResyncRequest = { gateway, reason: `the pod of gateway ${gateway} was replaced` };
            void queues.byName.resync
              .add('resync', request)
              .catch((e: unknown) => opts.log.error(`resync: ${errorMessage(e)}`));
          },
          (m) => opts.log.warn(m),
        )
      : undefined;
  opts.log.info(
    `${opts.queues.join(', ') || 'no queues'} on ${redactUrl(redisUrl)}, gateways on ${runtimes.describe}${server ? `; ${opts.http ? `webhook ${url}/webhook, dashboard ${dashboardUrl}${DASHBOARD_PATH}, ` : ''}health and metrics ${dashboardUrl}/readyz, ${dashboardUrl}/metrics` : ''}`,
  );

  return {
    url,
    dashboardUrl,
    redisUrl,
    store,
    records,
    statuses,
    previews,
    queues,
    workers,
    metrics,
    ready,
    async close(deadlineMs = c.shutdownMs) {
      // Everything starts stopping at once, and everything is bounded by the one deadline: the
      // workers take no new job and finish theirs, no new connection is taken (requests in
      // flight are answered), the status dispatch and a drain of kept deliveries end.
      const deadline = Date.now() + deadlineMs;
      replacements?.stop();
      clearInterval(drainTimer);
      clearTimeout(resumeTimer);
      const jobs = pool.close(deadlineMs);
      const servers = [server, dashboardServer].filter((s): s is Server => s !== undefined);
      const stopListening = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of servers) s.closeIdleConnections();
      const rest = Promise.all([dispatch?.stop(), draining, stopListening]);
      const shutdown = await jobs;
      const { handedBack } = shutdown;
      if (shutdown.late)
        opts.log.error(
          { durationMs: deadlineMs },
          `shutdown: the jobs in hand did not finish within ${deadlineMs} ms; handed back to their queues: ${handedBack.join(', ') || 'none'}`,
        );
      if (
        await within(
          Math.max(0, deadline - Date.now()),
          rest.then(() => false),
          () => true,
        )
      ) {
        opts.log.warn(
          'shutdown: requests, the status dispatch or a drain of kept deliveries still running at the deadline; cut',
        );
      }
      for (const s of servers) s.closeAllConnections();
      await stopListening;
      metrics.close();
      // (with Redis gone, closing the queues or quitting would wait for it to come back)
      if (connection.status === 'ready') {
        await queues.close();
        await connection.quit().catch(() => undefined);
      } else {
        void queues.close().catch(() => undefined);
        connection.disconnect();
      }
      await localRedis?.stop();
      await dataDirLock?.release();
      return shutdown;
    },
  };
}
