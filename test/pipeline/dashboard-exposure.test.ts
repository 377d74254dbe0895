// What the dashboard and the ops endpoints let a client do, against a real redis-server: bull-board
// reads, retries and promotes but adds, edits and destroys nothing; the pages refuse framing; bad
// logins are throttled; the password may come from a file; the dashboard may listen apart from the
// webhook; an error answers without a stack.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Job, Worker } from 'bullmq';
import { run } from '../../common/exec.ts';
import { bullPrefix, redisConnection } from '../../queue/queues.ts';
import { loadConfig } from '../../server/config.ts';
import { LocalRedis } from '../../server/redis-server.ts';
import { serve, type Running } from '../../server/serve.ts';
import { APP_SECRET, DASHBOARD, examplePayloads, startApp, type TestApp } from '../helpers/app.ts';
import { collectLogs } from '../helpers/logs.ts';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const AUTH = basic(DASHBOARD.username, DASHBOARD.password);

/** One request with the dashboard's credentials (or the given ones); a JSON body when given. */
async function call(url: string, method = 'GET', body?: unknown, authorization = AUTH) {
  const headers: Record<string, string> = { authorization };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe("bull-board through natops's dashboard: reads, retry and promote only", () => {
  let t: TestApp;
  let api: string;
  let failed: Job;

  before(async () => {
    t = await startApp();
    api = `${t.app.url}/admin/queues/api`;
    // A job that failed for good, by a worker of the test's own (the app runs none).
    const dnat = t.app.queues.byName.dnat;
    const connection = redisConnection(t.app.redisUrl);
    const worker = new Worker(
      'dnat',
      async () => {
        throw new Error('boom');
      },
      { connection, prefix: bullPrefix('natops') },
    );
    const done = new Promise<void>((r) => worker.once('failed', () => r()));
    failed = await dnat.add('dnat absent', { gateway: 'absent', marker: 'original' }, { attempts: 1 });
    await done;
    await worker.close();
    await connection.quit();
    assert.equal(await failed.getState(), 'failed');
  });
  after(() => t?.close());

  it('lists the queues and reads a job', async () => {
    assert.equal((await call(`${api}/queues`)).status, 200);
    const job = await call(`${api}/queues/dnat/${failed.id}`);
    assert.equal(job.status, 200, job.text);
  });

  it('adding a job, changing its data and every other write to jobs or queues answer 403', async () => {
    const id = failed.id!;
    const counts = await t.app.queues.byName.dnat.getJobCounts();
    const writes: [string, string, unknown?][] = [
      ['POST', '/queues/dnat/add', { name: 'dnat evil', data: { gateway: 'x' }, options: {} }],
      ['POST', '/queues/dnat/ADD', { name: 'dnat evil', data: { gateway: 'x' }, options: {} }],
      ['PATCH', `/queues/dnat/${id}/update-data`, { data: { gateway: 'x', marker: 'changed' } }],
      ['PUT', '/queues/dnat/obliterate', {}],
      ['PUT', '/queues/dnat/empty'],
      ['PUT', '/queues/dnat/clean/failed'],
      ['PUT', `/queues/dnat/${id}/clean`],
      ['PUT', '/queues/dnat/concurrency', { concurrency: 1 }],
      ['PUT', '/queues/dnat/rate-limit', { max: 1, duration: 60_000 }],
      ['PUT', '/queues/dnat/rate-limit/release'],
      ['PUT', '/queues/dnat/pause'],
      ['PUT', '/queues/pause'],
      ['PUT', '/queues/resync/job-schedulers/resync/remove'],
      ['PATCH', '/queues/resync/job-schedulers/resync', { every: 1 }],
      ['PUT', '/queues/resync/job-schedulers/resync/run'],
      ['PATCH', `/queues/dnat/${id}/delay`, { delay: 1 }],
      ['PATCH', `/queues/dnat/${id}/priority`, { priority: 1 }],
      ['PUT', `/queues/dnat/${id}/remove-unprocessed-children`],
      ['POST', '/metrics/history/purge', {}],
      ['DELETE', `/queues/dnat/${id}`],
    ];
    for (const [method, path, body] of writes) {
      const r = await call(`${api}${path}`, method, body);
      assert.equal(r.status, 403, `${method} ${path}: ${r.status} ${r.text}`);
    }
    const job = (await t.app.queues.byName.dnat.getJob(id))!;
    assert.equal(await job.getState(), 'failed');
    assert.deepEqual(job.data, { gateway: 'absent', marker: 'original' });
    assert.deepEqual(await t.app.queues.byName.dnat.getJobCounts(), counts);
    assert.equal(await t.app.queues.byName.dnat.isPaused(), false);
  });

  it('retry puts a failed job back in its queue', async () => {
    const r = await call(`${api}/queues/dnat/${failed.id}/retry`, 'PUT');
    assert.equal(r.status, 204, r.text);
    assert.equal(await (await t.app.queues.byName.dnat.getJob(failed.id!))!.getState(), 'waiting');
  });

  it('promote runs a delayed job now', async () => {
    const delayed = await t.app.queues.byName.snat.add('snat later', { gateway: 'later' }, { delay: 600_000 });
    const r = await call(`${api}/queues/snat/${delayed.id}/promote`, 'PUT');
    assert.equal(r.status, 204, r.text);
    assert.equal(await (await t.app.queues.byName.snat.getJob(delayed.id!))!.getState(), 'waiting');
  });

  it('a write from another site (Origin, Sec-Fetch-Site) answers 403; one from the page itself passes', async () => {
    const snat = t.app.queues.byName.snat;
    const delayed = await snat.add('snat later', { gateway: 'cross-site' }, { delay: 600_000 });
    const promote = (headers: Record<string, string>) =>
      fetch(`${api}/queues/snat/${delayed.id}/promote`, {
        method: 'PUT',
        headers: { authorization: AUTH, ...headers },
      });
    const crossSite: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of crossSite) {
      const r = await promote(headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
    }
    assert.equal(await (await snat.getJob(delayed.id!))!.getState(), 'delayed');
    // the page itself, behind a proxy that rewrote Host: the browser's Sec-Fetch-Site decides
    const own = await promote({ origin: 'https://natops.example.org', 'sec-fetch-site': 'same-origin' });
    assert.equal(own.status, 204);
    assert.equal(await (await snat.getJob(delayed.id!))!.getState(), 'waiting');
  });

  it('links on the commits page are http(s) only: a javascript: URL from Redis is shown as text', async () => {
    await t.app.previews.set({
      number: 7,
      title: 'evil',
      url: 'javascript:alert(document.cookie)',
      headLabel: 'fork:x',
      baseRef: 'main',
      head: 'a'.repeat(40),
      base: 'b'.repeat(40),
      updatedAt: Date.now(),
      state: 'ready',
      gateways: [],
      overlaps: [],
      summary: 'no change',
      commentId: 1,
      at: Date.now(),
    });
    const page = await call(`${t.app.url}/admin/commits`);
    assert.equal(page.status, 200);
    assert.match(page.text, /#7/);
    assert.doesNotMatch(page.text, /href="javascript:/i);
  });

  it('the pages may not be framed', async () => {
    for (const path of ['/admin/commits', '/admin/queues', '/admin/queues/queue/dnat']) {
      const r = await call(`${t.app.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    }
  });

  it('an error (an unknown Content-Encoding on /webhook) answers briefly, without a stack', async () => {
    const res = await fetch(`${t.app.url}/webhook`, {
      method: 'POST',
      // (a signature of the right form, so the body is read)
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'bogus',
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
      body: '{}',
    });
    const text = await res.text();
    assert.equal(res.status, 415, text);
    assert.doesNotMatch(text, /node_modules|\n\s+at |<pre>/);
    assert.ok(text.length < 200, text);
  });
});

describe('bad logins', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp();
  });
  after(() => t?.close());

  it('after 10 bad logins from one address the next answers 429, even with the right password', async () => {
    const wrong = basic(DASHBOARD.username, 'guess');
    for (let i = 0; i < 10; i++) {
      const path = i % 2 ? '/admin/commits' : '/admin/queues';
      assert.equal((await call(`${t.app.url}${path}`, 'GET', undefined, wrong)).status, 401, `bad login ${i + 1}`);
    }
    const eleventh = await call(`${t.app.url}/admin/commits`, 'GET', undefined, wrong);
    assert.equal(eleventh.status, 429);
    assert.ok(Number(eleventh.headers.get('retry-after')) > 0);
    assert.equal((await call(`${t.app.url}/admin/commits`)).status, 429);
    // the webhook is not the dashboard: it still answers
    assert.equal((await t.deliver('ping', examplePayloads('ping')[0])).status, 200);
  });
});

describe('the dashboard password from a file', () => {
  let dir: string;
  let redis: LocalRedis;
  let app: Running;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-pwfile-'));
    await run(['git', 'init', '--quiet', '--bare', join(dir, 'none.git')]);
    redis = await LocalRedis.start(join(dir, 'redis'));
    await writeFile(join(dir, 'dashboard-password'), 'from-a-file\n', { mode: 0o600 });
    const config = loadConfig(
      {
        redisUrl: redis.url,
        webhookSecret: APP_SECRET,
        repo: join(dir, 'none.git'),
        listen: '127.0.0.1:0',
        dashboardPasswordFile: join(dir, 'dashboard-password'),
        resyncMs: 0,
        dataDir: dir,
      },
      {},
    );
    app = await serve(config, { queues: [], http: true, log: (await collectLogs()).logger });
  });
  after(async () => {
    await app?.close();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("lets in the file's password (without its newline), nobody else", async () => {
    assert.equal((await call(`${app.url}/admin/commits`, 'GET', undefined, basic('admin', 'from-a-file'))).status, 200);
    assert.equal((await call(`${app.url}/admin/commits`, 'GET', undefined, basic('admin', 'pw'))).status, 401);
  });

  it('a password and a password file both given stop the start', () => {
    assert.throws(
      () => loadConfig({ dashboardPassword: 'a', dashboardPasswordFile: '/x' }, {}),
      /NATOPS_DASHBOARD_PASSWORD/,
    );
  });
});

describe('NATOPS_DASHBOARD_LISTEN: the dashboard and ops endpoints on their own listener', () => {
  let t: TestApp;
  before(async () => {
    t = await startApp({ dashboardListen: '127.0.0.1:0' });
  });
  after(() => t?.close());

  it('serves the webhook on one port, the dashboard, /metrics, /readyz and /healthz on the other only', async () => {
    const web = t.app.url;
    const dash = t.app.dashboardUrl;
    assert.notEqual(dash, web);
    for (const path of [
      '/admin/commits',
      '/admin/queues',
      '/admin/queues/api/queues',
      '/metrics',
      '/readyz',
      '/healthz',
    ])
      assert.equal((await call(`${web}${path}`)).status, 404, `${path} on the webhook's port`);
    for (const path of ['/admin/commits', '/admin/queues', '/metrics', '/readyz', '/healthz'])
      assert.equal((await call(`${dash}${path}`)).status, 200, `${path} on the dashboard's port`);
    assert.equal((await t.deliver('ping', examplePayloads('ping')[0])).status, 200);
    const onDashboard = await fetch(`${dash}/webhook`, { method: 'POST', body: '{}' });
    assert.equal(onDashboard.status, 404);
  });
});
