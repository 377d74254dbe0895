// The GitOps loop's commands: serve, worker, repo init/notify, status. Each loads its modules
// when it runs (the server, BullMQ, Redis, the hook's sender), not when natops starts.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { NatopsError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { QueueName } from '../queue/jobs.ts';
import type { CommitStatus } from '../state/statuses.ts';
import type { RecordSnapshot } from '../state/records.ts';
import type { ServerConfig } from '../server/config.ts';
import type { Running } from '../server/serve.ts';

const out = (text: string) => process.stdout.write(`${text}\n`);
const logger = async (c: ServerConfig): Promise<Logger> =>
  (await import('../common/log.ts')).createLogger({ level: c.logLevel });

/** What a running `natops serve` leaves for `natops status` and friends to find it (zod is loaded with the command). */
async function parseServeRecord(text: string): Promise<{ url: string; redisUrl: string; prefix: string; pid: number }> {
  const { z } = await import('zod');
  return z
    .object({ url: z.string(), redisUrl: z.string(), prefix: z.string(), pid: z.number() })
    .parse(JSON.parse(text));
}
const serveRecordPath = (c: ServerConfig) => join(c.dataDir, 'serve.json');

interface ServeFlags {
  repo?: string;
  gitUrl?: string;
  branch?: string;
  path?: string;
  listen?: string;
  lab?: string;
  redis?: string;
  resyncMs?: string;
  publicUrl?: string;
  runtime?: string;
  namespace?: string;
  networkMode?: string;
}

const serverOptions = (cmd: Command) =>
  cmd
    .option('--repo <git-dir>', 'repository the planner reads manifests from (NATOPS_REPO)')
    .option(
      '--git-url <url>',
      'remote repository (https, ssh, file) the planner fetches and reads instead (NATOPS_GIT_URL; sets NATOPS_SOURCE=git-url)',
    )
    .option('--branch <name>', 'tracked branch (NATOPS_BRANCH, default main)')
    .option('--path <dir>', 'tracked path inside the repository (NATOPS_PATH, default the whole tree)')
    .option('--runtime <kind>', 'where gateways run: netns or kubernetes (NATOPS_RUNTIME, default netns)')
    .option(
      '--namespace <ns>',
      'kubernetes: namespace of the gateway Deployments (NATOPS_NAMESPACE, default natops-gateways)',
    )
    .option('--network-mode <mode>', 'kubernetes: kube-ovn or multus (NATOPS_NETWORK_MODE, default kube-ovn)')
    .option(
      '--lab <name>',
      'lab whose namespaces the netns runtime uses; with kubernetes, the lab that provides the networks (NATOPS_LAB)',
    )
    .option('--redis <url>', 'Redis to use (NATOPS_REDIS_URL); serve starts a local redis-server without it')
    .option('--resync-ms <ms>', 'resync interval, 0 to turn it off (NATOPS_RESYNC_MS, default 60000)');

const config = async (f: ServeFlags) =>
  (await import('../server/config.ts')).loadConfig({
    repo: f.repo,
    ...(f.gitUrl ? { gitUrl: f.gitUrl, source: 'git-url' } : {}),
    branch: f.branch,
    path: f.path,
    listen: f.listen,
    lab: f.lab,
    redisUrl: f.redis,
    resyncMs: f.resyncMs,
    publicUrl: f.publicUrl,
    runtime: f.runtime,
    namespace: f.namespace,
    networkMode: f.networkMode,
  });

/** How much longer than the jobs' deadline the rest of a shutdown may take before the process just exits. */
const SHUTDOWN_GRACE_MS = 5000;

/**
 * Runs until SIGTERM or SIGINT, then lets the jobs in hand finish within NATOPS_SHUTDOWN_MS. Jobs
 * still running then go back to their queues, and the process exits 1: whatever watches it
 * should know the stop was not clean.
 */
async function runUntilSignal(
  running: Running,
  c: ServerConfig,
  log: Logger,
  onStop: () => Promise<void> = async () => undefined,
): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info(`${sig}: finishing the jobs in hand (at most ${c.shutdownMs} ms)`);
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // Whatever else hangs (Redis gone, a socket that never closes), the process ends.
  setTimeout(() => {
    log.error(`shutdown took longer than ${c.shutdownMs + SHUTDOWN_GRACE_MS} ms; exiting`);
    process.exit(1);
  }, c.shutdownMs + SHUTDOWN_GRACE_MS).unref();
  const { late, handedBack } = await running.close(c.shutdownMs);
  await onStop();
  if (late) process.exitCode = 1;
  log.info(late ? `stopped late, ${handedBack.length} job(s) handed back` : 'stopped');
  log.flush();
}

/** The Redis configured, else the one a running `natops serve` records (status, remove-gateways). */
export async function redisFor(c: ServerConfig): Promise<{ url: string; prefix: string }> {
  if (c.redisUrl) return { url: c.redisUrl, prefix: c.prefix };
  const text = await readFile(serveRecordPath(c), 'utf8').catch(() => undefined);
  if (!text)
    throw new NatopsError(
      `no Redis: set NATOPS_REDIS_URL, or start \`natops serve\` (it records its Redis in ${serveRecordPath(c)})`,
    );
  const rec = await parseServeRecord(text);
  return { url: rec.redisUrl, prefix: rec.prefix };
}

function renderStatuses(sha: string, list: CommitStatus[]): string {
  const lines = [`commit ${sha}`];
  for (const s of list)
    lines.push(
      `  ${s.state.padEnd(8)} ${s.context.padEnd(24)} ${s.description}${s.targetUrl ? `\n  ${''.padEnd(8)} ${''.padEnd(24)} ${s.targetUrl}` : ''}`,
    );
  return lines.join('\n');
}

/** Each gateway's record: what is live and whether the newest plan got there. */
function renderRecords(snap: RecordSnapshot): string {
  const rows = [
    ...(snap.networks ? [['(networks)', snap.networks] as const] : []),
    ...[...snap.gateways].map(([n, r]) => [n, r] as const),
  ];
  if (!rows.length) return 'gateways: none yet';
  const gen = (r?: { sha: string; gen: number }) => (r ? `${r.sha.slice(0, 7)}/${r.gen}` : '-');
  return [
    'gateways (ready, reason, wanted, last applied, message):',
    ...rows.map(
      ([name, r]) =>
        `  ${name.padEnd(16)} ${r.condition.ready.padEnd(7)} ${`${r.condition.reason}${r.condition.cause === 'push' ? '' : ` (${r.condition.cause})`}`.padEnd(11)} ${gen(r.desired).padEnd(12)} ${gen(r.lastApplied).padEnd(12)} ${r.condition.message}`,
    ),
  ].join('\n');
}

/** `--handlers`: the queues named (every queue when none is), refused by name when unknown. */
async function queueNames(handlers: string | undefined): Promise<QueueName[]> {
  const { QUEUE_NAMES } = await import('../queue/jobs.ts');
  const kinds = (handlers ?? QUEUE_NAMES.join(','))
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const unknown = kinds.filter((k) => !(QUEUE_NAMES as readonly string[]).includes(k));
  if (unknown.length || !kinds.length)
    throw new NatopsError(`unknown handler kind(s) ${unknown.join(', ')}; choose from ${QUEUE_NAMES.join(', ')}`);
  return kinds as QueueName[];
}

export function addGitopsCommands(program: Command): void {
  serverOptions(
    program
      .command('serve')
      .description('run the webhook, every worker, the resync and the dashboard in one process')
      .option('--listen <host:port>', 'where the webhook and dashboard listen (NATOPS_LISTEN, default 127.0.0.1:8080)')
      .option('--public-url <url>', 'address that links in statuses use (NATOPS_PUBLIC_URL)')
      .option(
        '--handlers <kinds>',
        'run workers for these queues only (comma-separated; default every queue): the rest to `natops worker`s',
      ),
  ).action(async (flags: ServeFlags & { handlers?: string }) => {
    const kinds = await queueNames(flags.handlers);
    const c = await config(flags);
    const [{ serve }, { writeFileAtomic }, log] = await Promise.all([
      import('../server/serve.ts'),
      import('../common/fs.ts'),
      logger(c),
    ]);
    const running = await serve(c, { queues: kinds, http: true, log });
    await mkdir(c.dataDir, { recursive: true, mode: 0o700 });
    // 0600: the Redis URL carries its password. A new file each time (not rewritten in place), so
    // one a crash left behind with other modes is replaced.
    await writeFileAtomic(
      serveRecordPath(c),
      JSON.stringify({ url: running.url, redisUrl: running.redisUrl, prefix: c.prefix, pid: process.pid }),
      0o600,
    );
    await runUntilSignal(running, c, log, () => rm(serveRecordPath(c), { force: true }));
  });

  // The queue names come with queue/jobs.ts (zod and the dataplane model), which `natops --help`
  // and the other commands should not wait for: the hook below puts them in --handlers's help
  // when `worker` is the command chosen (commander runs it before `natops worker --help` is
  // parsed; `natops help worker` shows the shorter text).
  const handlers = new Option('--handlers <kinds>', 'comma-separated queue names (default: every queue)');
  const worker = serverOptions(
    program
      .command('worker')
      .description('run workers for some queues only, e.g. --handlers dnat,snat')
      .addOption(handlers)
      .option(
        '--listen <host:port>',
        'serve /healthz, /readyz and /metrics here (NATOPS_LISTEN when given; default: none)',
      ),
  ).action(async (flags: ServeFlags & { handlers?: string }) => {
    const kinds = await queueNames(flags.handlers);
    const c = await config(flags);
    if (!c.redisUrl) throw new NatopsError('natops worker needs a Redis to share: set NATOPS_REDIS_URL or --redis');
    const [{ serve }, log] = await Promise.all([import('../server/serve.ts'), logger(c)]);
    // Only an address asked for here, not serve's default: two workers on one machine must not collide.
    const ops = flags.listen !== undefined || process.env.NATOPS_LISTEN !== undefined;
    await runUntilSignal(await serve(c, { queues: kinds, http: false, ops, log }), c, log);
  });
  program.hook('preSubcommand', async (_program, chosen) => {
    if (chosen !== worker) return;
    const { QUEUE_NAMES } = await import('../queue/jobs.ts');
    handlers.description = `comma-separated: ${QUEUE_NAMES.join(', ')}`;
    handlers.default(QUEUE_NAMES.join(','));
  });

  const repo = program.command('repo').description('a local Git repository that drives the pipeline on git push');
  repo
    .command('init')
    .description('make a bare repository whose post-receive hook sends signed push deliveries to the webhook')
    .argument('<path>')
    .requiredOption('--webhook <url>', 'the webhook address, e.g. http://127.0.0.1:8080/webhook')
    .requiredOption('--secret-file <file>', 'file holding the webhook secret')
    .option('--name <owner/name>', 'repository name shown in statuses', 'local/gitops')
    .option('--branch <name>', 'initial branch', 'main')
    .action(async (path: string, opts: { webhook: string; secretFile: string; name: string; branch: string }) => {
      const { initRepo } = await import('../gitops/hook/init.ts');
      const dir = await initRepo(
        path,
        { webhookUrl: opts.webhook, secretFile: opts.secretFile, name: opts.name },
        opts.branch,
      );
      out(`initialized ${dir}; push to it to drive natops`);
    });
  repo
    .command('notify')
    .description(
      'send ref updates ("<old> <new> <ref>" lines on stdin) as push deliveries; the post-receive hook runs this',
    )
    .requiredOption('--git-dir <dir>', 'the repository')
    .action(async (opts: { gitDir: string }) => {
      const { notifyFromStdin } = await import('../gitops/hook/send.ts');
      if (!(await notifyFromStdin(opts.gitDir, out))) process.exitCode = 1;
    });

  program
    .command('status')
    .description("a commit's statuses (default: the newest commit natops has seen)")
    .argument('[sha]')
    .option('--wait <seconds>', 'wait until the summary is no longer pending')
    .option('--redis <url>', 'Redis (NATOPS_REDIS_URL; default: the one `natops serve` records)')
    .action(async (sha: string | undefined, opts: { wait?: string; redis?: string }) => {
      const [{ loadConfig }, { redisConnection }, { StatusBook, SUMMARY_CONTEXT }, { Records }, { Store }] =
        await Promise.all([
          import('../server/config.ts'),
          import('../queue/queues.ts'),
          import('../state/statuses.ts'),
          import('../state/records.ts'),
          import('../state/store.ts'),
        ]);
      const c = loadConfig({ redisUrl: opts.redis });
      const { url, prefix } = await redisFor(c);
      const redis = redisConnection(url);
      try {
        const statuses = new StatusBook(redis, prefix);
        const deadline = Date.now() + Number(opts.wait ?? 0) * 1000;
        for (;;) {
          const target = sha ?? (await statuses.commits(1))[0]?.sha;
          const list = target ? await statuses.get(target) : [];
          const summary = list.find((s) => s.context === SUMMARY_CONTEXT);
          if ((!summary || summary.state === 'pending') && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 200));
            continue;
          }
          if (!target) throw new NatopsError('no commit has statuses yet');
          out(renderStatuses(target, list));
          out(renderRecords(await new Records(redis, prefix).snapshot()));
          const repairs = (await new Store(redis, prefix).repairs()).slice(0, 5);
          if (repairs.length)
            out(
              `recent repairs by the resync:\n${repairs.map((r) => `  ${new Date(r.at).toISOString()} ${r.target}: ${r.what.join('; ')}`).join('\n')}`,
            );
          if (summary?.state !== 'success') process.exitCode = summary?.state === 'pending' ? 3 : 1;
          return;
        }
      } finally {
        redis.disconnect();
      }
    });
}
