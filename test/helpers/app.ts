// natops's HTTP app (webhook and dashboard) on a real redis-server, with workers only for the
// queues asked for (none by default, so what the webhook enqueues stays queued to be looked at).
// Plus a signed-delivery sender.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sign } from '@octokit/webhooks-methods';
import examples from '@octokit/webhooks-examples';
import { run } from '../../common/exec.ts';
import { collectLogs, type LogRecord } from './logs.ts';
import { loadConfig, type ServerConfig } from '../../server/config.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { serve, type Running } from '../../server/serve.ts';
import type { QueueName } from '../../queue/jobs.ts';

export const APP_SECRET = 'webhook-test-secret';
export const DASHBOARD = { username: 'admin', password: 'pw' };

export const examplePayloads = (name: string) =>
  (examples as unknown as { name: string; examples: Record<string, unknown>[] }[]).find((e) => e.name === name)!
    .examples;

/** GitHub's example push to refs/heads/master, as a push to the tracked branch. */
export const branchPush = (): Record<string, unknown> => ({
  ...examplePayloads('push').find((p) => p.ref === 'refs/heads/master')!,
  ref: 'refs/heads/main',
});

/** A delivery as GitHub makes it: JSON, signed with the secret (or with `signature`, or unsigned for null). */
export async function deliver(
  url: string,
  secret: string,
  event: string,
  payload: unknown,
  opts: { id?: string; signature?: string | null } = {},
): Promise<{ status: number; body: { outcome?: string; error?: string } }> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': opts.id ?? randomUUID(),
  };
  const signature = opts.signature === undefined ? await sign(secret, body) : opts.signature;
  if (signature !== null) headers['x-hub-signature-256'] = signature;
  const r = await fetch(url, { method: 'POST', headers, body });
  return { status: r.status, body: (await r.json()) as { outcome?: string; error?: string } };
}

export interface TestApp {
  app: Running;
  deliver(
    event: string,
    payload: unknown,
    opts?: { id?: string; signature?: string | null },
  ): Promise<{ status: number; body: { outcome?: string; error?: string } }>;
  close(): Promise<void>;
}

export async function startApp(
  overrides: Partial<ServerConfig> = {},
  queues: readonly QueueName[] = [],
  logs: string[] = [],
  records: LogRecord[] = [],
): Promise<TestApp> {
  const dir = await mkdtemp(join(tmpdir(), 'natops-app-'));
  // An empty repository: a delivery names commits it does not have.
  await run(['git', 'init', '--quiet', '--bare', join(dir, 'none.git')]);
  const redis = await LocalRedis.start(join(dir, 'redis'));
  const config = loadConfig(
    {
      redisUrl: redis.url,
      webhookSecret: APP_SECRET,
      repo: join(dir, 'none.git'),
      listen: '127.0.0.1:0',
      dashboardPassword: DASHBOARD.password,
      resyncMs: 0,
      dataDir: dir,
      ...overrides,
    },
    {},
  );
  const app = await serve(config, { queues, http: true, log: (await collectLogs(logs, records)).logger });
  return {
    app,
    deliver: (event, payload, opts = {}) => deliver(`${app.url}/webhook`, APP_SECRET, event, payload, opts),
    async close() {
      await app.close();
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
