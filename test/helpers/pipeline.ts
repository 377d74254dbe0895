// The whole GitOps loop for a test: a real redis-server, a real bare Git repository whose hook
// delivers pushes to a real `natops serve` app, and a lab of the test's own. Removed after.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { initRepo } from '../../gitops/hook/init.ts';
import { run } from '../../common/exec.ts';
import { loadConfig, type ServerConfig } from '../../server/config.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { serve, type Running } from '../../server/serve.ts';
import { QUEUE_NAMES, type QueueName } from '../../queue/jobs.ts';
import { SUMMARY_CONTEXT, type CommitStatus, type StatusBook } from '../../state/statuses.ts';
import { LabHarness } from './lab-harness.ts';
import { collectLogs, type LogRecord } from './logs.ts';
import { WorkTree, type Tree } from './git-work.ts';
import { TEST_GATEWAY_IMAGES } from './manifests.ts';

const NATOPS = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));
export const SECRET = 'pipeline-test-secret';

export class PipelineHarness {
  running: Running | undefined;
  private readonly children: ChildProcess[] = [];
  /** the messages natops logged (worker processes' prefixed with `[worker PID]`) */
  readonly logs: string[] = [];
  /** the serve process's log lines, as written */
  readonly logRecords: LogRecord[] = [];
  private tree: WorkTree | undefined;

  private constructor(
    readonly lab: LabHarness,
    readonly redis: LocalRedis,
    readonly dir: string,
    readonly config: ServerConfig,
  ) {}

  get bare(): string {
    return join(this.dir, 'gitops.git');
  }
  get work(): string {
    return join(this.dir, 'work');
  }

  /**
   * `prepare` runs before natops starts, with the (empty) bare repository in place, and adds to
   * the configuration: e.g. a GitHub stand-in serving that repository.
   */
  static async create(
    overrides: Partial<ServerConfig> = {},
    prepare?: (paths: { dir: string; bare: string }) => Promise<Partial<ServerConfig>>,
  ): Promise<PipelineHarness> {
    const lab = await LabHarness.create();
    const dir = await mkdtemp(join(tmpdir(), 'natops-pipeline-'));
    const redis = await LocalRedis.start(join(dir, 'redis'));
    const bare = join(dir, 'gitops.git');
    if (prepare) await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', bare]);
    const prepared = prepare ? await prepare({ dir, bare }) : {};
    const config = loadConfig(
      {
        redisUrl: redis.url,
        prefix: 'natops',
        webhookSecret: SECRET,
        repo: bare,
        lab: lab.prefix,
        listen: '127.0.0.1:0',
        dashboardPassword: 'test-password',
        resyncMs: 0,
        attempts: 5,
        backoffMs: 200,
        lockMs: 2000,
        dataDir: join(dir, 'data'),
        // the test cluster's image too (test/k8s/gitops.test.ts); as the setting's text, which loadConfig parses
        gatewayImages: TEST_GATEWAY_IMAGES.join(','),
        ...prepared,
        ...overrides,
      },
      {},
    );
    const h = new PipelineHarness(lab, redis, dir, config);
    await h.start();
    const secretFile = join(dir, 'secret');
    await writeFile(secretFile, SECRET);
    await initRepo(h.bare, { webhookUrl: `${h.running!.url}/webhook`, secretFile, name: 'test/gitops' });
    h.tree = await WorkTree.clone(h.bare, h.work);
    return h;
  }

  /** Starts the in-process server (webhook, dashboard, workers for `queues`). */
  async start(queues: readonly QueueName[] = QUEUE_NAMES): Promise<void> {
    this.running = await serve(this.config, {
      queues,
      http: true,
      log: (await collectLogs(this.logs, this.logRecords)).logger,
    });
    // A restart listens where the repository's hook delivers.
    this.config.listen = new URL(this.running.url).host;
  }

  /** A worker in its own process, as `natops worker` runs. */
  startWorkerProcess(handlers: readonly QueueName[]): ChildProcess {
    const child = spawn(
      process.execPath,
      [
        NATOPS,
        'worker',
        '--handlers',
        handlers.join(','),
        '--redis',
        this.redis.url,
        '--repo',
        this.bare,
        '--lab',
        this.lab.prefix,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: {
          ...process.env,
          NATOPS_LOCK_MS: String(this.config.lockMs),
          NATOPS_JOB_BACKOFF_MS: String(this.config.backoffMs),
          NATOPS_PREFIX: this.config.prefix,
          NATOPS_GATEWAY_IMAGES: this.config.gatewayImages.join(','),
          NATOPS_ALLOW_CONTROL_PLANE: String(this.config.allowControlPlane),
        },
      },
    );
    let partial = '';
    child.stderr!.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        let msg = line;
        try {
          msg = (JSON.parse(line) as { msg: string }).msg;
        } catch {
          // not a log line (a crash's stack): kept as it is
        }
        this.logs.push(`[worker ${child.pid}] ${msg}`);
      }
    });
    this.children.push(child);
    return child;
  }

  /** Writes the manifests as the whole tracked tree, commits and pushes; returns the commit. */
  push(tree: Tree, message = 'change'): Promise<string> {
    return this.tree!.push(tree, message);
  }

  /** Writes the manifests as the whole tracked tree and commits, without pushing (to deliver by hand). */
  commitOnly(tree: Tree, message: string): Promise<string> {
    return this.tree!.commit(tree, message);
  }

  /** epoch ms around the last `git push` (it returns once the hook has delivered the push) */
  get lastPush(): { start: number; end: number } {
    return this.tree!.lastPush;
  }

  async statuses(sha: string): Promise<CommitStatus[]> {
    return this.running!.statuses.get(sha);
  }

  /** Waits until the commit's summary status is settled (not pending); returns every status. */
  settled(sha: string, timeoutMs = 60_000): Promise<Map<string, CommitStatus>> {
    return settledStatuses(this.running!.statuses, sha, timeoutMs, () => this.logs.slice(-30).join('\n'));
  }

  async until<T>(
    what: string,
    probe: () => Promise<T | undefined | false>,
    timeoutMs = 60_000,
    everyMs = 200,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.logs.slice(-30).join('\n')}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    await this.running?.close().catch(() => undefined);
    await this.redis.stop('SIGKILL');
    await this.lab.cleanup();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export const yamlFile = (path: string, obj: unknown) => ({ path, text: stringify(obj) });

/**
 * Waits until the commit's summary status is settled (not pending); returns every status.
 * `context`: what to add to the timeout's message (the logs).
 */
export async function settledStatuses(
  statuses: StatusBook,
  sha: string,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<Map<string, CommitStatus>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await statuses.get(sha);
    const summary = list.find((s) => s.context === SUMMARY_CONTEXT);
    if (summary && summary.state !== 'pending') return new Map(list.map((s) => [s.context, s]));
    if (Date.now() > deadline)
      throw new Error(
        `commit ${sha.slice(0, 7)} not settled after ${timeoutMs} ms: ${JSON.stringify(list)}\n${context()}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}
