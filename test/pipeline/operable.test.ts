// What an operator sees of a running natops: structured log lines with each job's fields, the
// metrics after a push and a repair, /healthz and /readyz (serve and `worker --listen`), and a
// shutdown that keeps its deadline. Real Redis, git, namespaces and worker processes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { inNamespace } from '../../runtime/netns/netns.ts';
import type { HandlerJob } from '../../queue/jobs.ts';
import { Records } from '../../state/records.ts';
import { recordPendingDnat } from '../helpers/fixtures.ts';
import { Queues, redisConnection } from '../../queue/queues.ts';
import { Store } from '../../state/store.ts';
import { freePort, LocalRedis } from '../../server/redis-server.ts';
import { seedObjects, seedSpec } from '../helpers/manifests.ts';
import { PipelineHarness } from '../helpers/pipeline.ts';
import { startApp } from '../helpers/app.ts';
import type { LogRecord } from '../helpers/logs.ts';

const NATOPS = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));

/** The value of one sample of a scrape, e.g. `natops_repairs_total` or `natops_gateways{reason="Applied"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const get = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
};

describe('operable: logs, metrics, health, shutdown', () => {
  let p: PipelineHarness;
  let sha: string;

  before(async () => {
    p = await PipelineHarness.create();
    sha = await p.push(await seedObjects(), 'seed');
    const statuses = await p.settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
  });
  after(() => p?.cleanup());

  it("every job's start and finish is one JSON line with its commit, gateway, job id, kind, generation and duration", () => {
    const dnat = p.logRecords.filter((r) => r.kind === 'dnat' && r.gateway === 'ngw' && r.commit === sha);
    const started = dnat.find((r) => r.msg.startsWith('started'));
    const finished = dnat.find((r) => r.msg.startsWith('finished'));
    assert.ok(started && finished, JSON.stringify(dnat));
    assert.equal(finished.job, started.job);
    assert.equal(typeof finished.job, 'string');
    assert.equal(finished.queue, 'dnat');
    assert.equal(typeof finished.gen, 'number');
    assert.equal(finished.cause, 'push');
    assert.equal(typeof finished.durationMs, 'number');
    assert.equal(finished.level, 'info');
    assert.match(finished.msg, /^finished: /);
    assert.match(String(finished.time), /^\d{4}-\d\d-\d\dT/);
    // the plan's job carries its commit too
    assert.ok(
      p.logRecords.some(
        (r) =>
          r.queue === 'plan' && r.commit === sha && r.msg.startsWith('finished') && typeof r.durationMs === 'number',
      ),
    );
  });

  it('a scrape after a push counts the delivery, the plan, each job by kind, queue depths, gateways by state and the commands', async () => {
    const { status, text } = await get(`${p.running!.url}/metrics`);
    assert.equal(status, 200);
    assert.equal(sample(text, 'natops_webhook_deliveries_total{result="queued"}'), 1);
    assert.equal(sample(text, 'natops_webhook_answer_seconds_count{result="queued"}'), 1);
    assert.equal(sample(text, 'natops_plan_duration_seconds_count'), 1);
    assert.ok(sample(text, 'natops_job_duration_seconds_count{kind="dnat",result="completed"}')! >= 1, text);
    assert.ok(sample(text, 'natops_job_duration_seconds_count{kind="gateway-init",result="completed"}')! >= 1);
    assert.equal(sample(text, 'natops_queue_jobs{queue="dnat",state="waiting"}'), 0);
    assert.equal(sample(text, 'natops_queue_jobs{queue="plan",state="failed"}'), 0);
    assert.equal(sample(text, 'natops_gateways{reason="Applied"}'), 1);
    assert.ok(
      sample(text, 'natops_command_duration_seconds_count{program="iptables-legacy-restore",result="ok"}')! >= 1,
      'the nat transactions are timed',
    );
    // every handler job and the plan took a lease
    const jobs = [
      ...text.matchAll(/^natops_job_duration_seconds_count\{kind="[^"]+",result="completed"\} (\d+)$/gm),
    ].reduce((n, m) => n + Number(m[1]), 0);
    assert.ok(jobs >= 8, text);
    assert.ok(sample(text, 'natops_lease_wait_seconds_count{result="taken"}')! >= jobs, text);
    assert.equal(sample(text, 'natops_repairs_total'), 0);
    assert.equal(sample(text, 'natops_convergence_failures_total'), 0, 'no gateway failed to converge');
  });

  it('a hand edit repaired by the resync is counted, and logged as a repair', async () => {
    await inNamespace(p.lab.lab.names.gateway('ngw'), {
      argv: [(await p.lab.gatewayIptables('ngw')).iptables, '-t', 'nat', '-F', 'SHARED_DNAT'],
    });
    await p.running!.queues.byName.resync.add('resync', {});
    await p.until(
      'the repair to be counted',
      async () => sample((await get(`${p.running!.url}/metrics`)).text, 'natops_repairs_total') === 1,
      60_000,
    );
    const line = p.logRecords.find((r) => r.repair === true && r.gateway === 'ngw');
    assert.ok(line, p.logs.slice(-10).join('\n'));
    assert.equal(line.commit, sha);
    assert.equal(line.level, 'warn');
    assert.match(line.msg, /drifted/);
  });

  it('/healthz answers; /readyz checks Redis, the workers and the runtime', async () => {
    assert.deepEqual(JSON.parse((await get(`${p.running!.url}/healthz`)).text), { ok: true });
    const ready = await get(`${p.running!.url}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(JSON.parse(ready.text), { ready: true, checks: { redis: 'ok', workers: 'ok', runtime: 'ok' } });
  });
});

describe('a job that will be retried and one that fails for good each say so in one line', () => {
  it('warn for a retry, error for the last attempt, with the job fields', async () => {
    const logs: string[] = [];
    const records: LogRecord[] = [];
    const t = await startApp(
      { attempts: 2, backoffMs: 50, lab: `r${randomBytes(4).toString('hex')}` },
      ['dnat'],
      logs,
      records,
    );
    try {
      const spec = { ...(await seedSpec()), name: 'absent' };
      const sha = 'cd'.repeat(20);
      const data: HandlerJob = { kind: 'dnat', gateway: 'absent', sha, gen: 3, cause: 'push', spec, last: true };
      await recordPendingDnat(t.app.records, { ...data, gateway: 'absent', spec });
      await t.app.queues.byName.dnat.add('dnat absent', data, {
        attempts: 2,
        backoff: { type: 'exponential', delay: 50 },
      });
      const failedForGood = () => records.find((r) => r.msg.startsWith('failed for good'));
      for (let i = 0; i < 200 && !failedForGood(); i++) await new Promise((r) => setTimeout(r, 25));
      const retry = records.find((r) => r.msg.startsWith('failed (attempt 1 of 2), will retry'));
      assert.ok(retry, logs.join('\n'));
      assert.equal(retry.level, 'warn');
      assert.deepEqual(
        [retry.gateway, retry.kind, retry.gen, retry.commit, retry.attempt],
        ['absent', 'dnat', 3, 'cd'.repeat(20), 1],
      );
      assert.match(String(retry.err), /gateway absent does not exist/);
      const last = failedForGood();
      assert.equal(last?.level, 'error');
      assert.equal(last?.attempt, 2);
      const metrics = await get(`${t.app.url}/metrics`);
      assert.equal(sample(metrics.text, 'natops_job_duration_seconds_count{kind="dnat",result="retrying"}'), 1);
      assert.equal(sample(metrics.text, 'natops_job_duration_seconds_count{kind="dnat",result="failed"}'), 1);
    } finally {
      await t.close();
    }
  });
});

describe('natops worker: --listen, NATOPS_LOG_LEVEL, readiness and the shutdown deadline', () => {
  let dir: string;
  let redis: LocalRedis;
  const children: ChildProcess[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-operable-'));
    redis = await LocalRedis.start(join(dir, 'redis'));
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await redis?.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  /** A worker process; resolves once it logged where it listens. Its lines are parsed as they come. */
  function startWorker(env: Record<string, string>, redisUrl = redis.url) {
    const lines: LogRecord[] = [];
    const raw: string[] = [];
    const child = spawn(
      process.execPath,
      [
        NATOPS,
        'worker',
        '--handlers',
        'dnat',
        '--redis',
        redisUrl,
        '--lab',
        `w${randomBytes(4).toString('hex')}`,
        '--listen',
        '127.0.0.1:0',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, NATOPS_PREFIX: 'operable', NATOPS_LOCK_MS: '1000', ...env },
      },
    );
    children.push(child);
    let partial = '';
    child.stderr!.on('data', (b: Buffer) => {
      const parts = (partial + b.toString()).split('\n');
      partial = parts.pop()!;
      for (const l of parts.filter(Boolean)) {
        raw.push(l);
        // stderr is not a terminal: every log line is JSON (what is not is counted, and checked below)
        try {
          lines.push(JSON.parse(l) as LogRecord);
        } catch {
          // an error the command printed before it had a logger
        }
      }
    });
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const url = async () => {
      for (let i = 0; i < 400; i++) {
        const m = lines.map((l) => /health and metrics (http:\/\/[\d.:]+)\/readyz/.exec(l.msg)).find(Boolean);
        if (m) return m[1]!;
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`the worker did not start:\n${raw.join('\n')}`);
    };
    return { child, lines, raw, url, exited };
  }

  it('serves /healthz, /readyz and /metrics; /readyz says not ready while Redis is down', async () => {
    const own = await LocalRedis.start(join(dir, 'redis-down'));
    const w = startWorker({}, own.url);
    const url = await w.url();
    assert.equal((await get(`${url}/healthz`)).status, 200);
    const ready = await get(`${url}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.match((await get(`${url}/metrics`)).text, /natops_worker_queues\{queue="dnat"\} 1/);
    await own.stop('SIGKILL');
    // (an answer is reused for a second)
    let down = await get(`${url}/readyz`);
    for (let i = 0; i < 40 && down.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      down = await get(`${url}/readyz`);
    }
    assert.equal(down.status, 503, down.text);
    const body = JSON.parse(down.text) as { ready: boolean; checks: Record<string, string> };
    assert.equal(body.ready, false);
    assert.notEqual(body.checks.redis, 'ok');
    assert.equal(body.checks.workers, 'ok');
    w.child.kill('SIGKILL');
    assert.equal(w.raw.length, w.lines.length, `lines that are not JSON:\n${w.raw.join('\n')}`);
  });

  it("the start-up line names the Redis it uses without the URL's password, and warns it keeps nothing", async () => {
    const port = await freePort();
    const password = randomBytes(12).toString('hex');
    const secured = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    try {
      const w = startWorker({ NATOPS_PREFIX: 'operable-secret' }, `redis://:${password}@127.0.0.1:${port}`);
      await w.url();
      const started = w.lines.find((l) => /^dnat on /.test(l.msg));
      assert.ok(started, w.raw.join('\n'));
      assert.match(started.msg, new RegExp(`^dnat on redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(w.raw.join('\n'), new RegExp(password));
      // that Redis keeps nothing on disk: natops says what it risks, once, at the start
      let warned: LogRecord | undefined;
      for (let i = 0; i < 50 && !warned; i++) {
        warned = w.lines.find((l) => l.setting === 'appendonly');
        if (!warned) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(warned?.level, 'warn', w.raw.join('\n'));
      w.child.kill('SIGKILL');
    } finally {
      secured.kill('SIGKILL');
    }
  });

  it('NATOPS_LOG_LEVEL=warn keeps the info lines out; a bad level stops the start by name', async () => {
    const quiet = startWorker({ NATOPS_LOG_LEVEL: 'warn', NATOPS_PREFIX: 'operable-quiet' });
    // A job that fails and will be retried: its warning is written, its start (info) is not.
    const connection = redisConnection(redis.url);
    const queues = new Queues(connection, {
      redisUrl: redis.url,
      prefix: 'operable-quiet',
      attempts: 3,
      backoffMs: 100,
    });
    try {
      const spec = { ...(await seedSpec()), name: 'absent' };
      const sha = '12'.repeat(20);
      const data = {
        kind: 'dnat',
        gateway: 'absent',
        sha,
        gen: 1,
        cause: 'push',
        spec,
        last: true,
      } satisfies HandlerJob;
      await recordPendingDnat(new Records(connection, 'operable-quiet'), data);
      await queues.byName.dnat.add('dnat absent', data, { attempts: 3 });
      for (let i = 0; i < 400 && !quiet.lines.some((l) => l.level === 'warn'); i++)
        await new Promise((r) => setTimeout(r, 25));
      assert.ok(
        quiet.lines.some((l) => l.level === 'warn' && /will retry/.test(l.msg)),
        quiet.raw.join('\n'),
      );
      assert.deepEqual(
        quiet.lines.filter((l) => l.level === 'info'),
        [],
      );
    } finally {
      quiet.child.kill('SIGKILL');
      await queues.close();
      await connection.quit();
    }
    const bad = startWorker({ NATOPS_LOG_LEVEL: 'loud' });
    assert.notEqual(await bad.exited, 0);
    assert.match(bad.raw.join('\n'), /NATOPS_LOG_LEVEL: .*"warn"/);
  });

  it('SIGTERM with nothing in hand: exits 0', async () => {
    const w = startWorker({ NATOPS_SHUTDOWN_MS: '2000' });
    await w.url();
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.raw.join('\n'));
    assert.ok(w.lines.some((l) => l.msg === 'stopped'));
  });

  it('SIGTERM past NATOPS_SHUTDOWN_MS: the job in hand goes back to its queue, unspent, and the process exits 1 (then another worker runs it)', async () => {
    const connection = redisConnection(redis.url);
    const queues = new Queues(connection, { redisUrl: redis.url, prefix: 'operable', attempts: 3, backoffMs: 100 });
    try {
      const w = startWorker({ NATOPS_SHUTDOWN_MS: '500' });
      await w.url();
      // The gateway's lease is held elsewhere: the job waits for it, in hand, well past the deadline.
      await connection.set(
        new Store(connection, 'operable').leaseKey({ kind: 'gateway', name: 'held' }),
        'someone else',
        'PX',
        60_000,
      );
      const spec = { ...(await seedSpec()), name: 'held' };
      const data: HandlerJob = {
        kind: 'dnat',
        gateway: 'held',
        sha: 'ef'.repeat(20),
        gen: 1,
        cause: 'push',
        spec,
        last: true,
      };
      const job = await queues.byName.dnat.add('dnat held', data, { attempts: 3 });
      for (let i = 0; i < 200 && !w.lines.some((l) => l.job === job.id && l.msg.startsWith('started')); i++)
        await new Promise((r) => setTimeout(r, 25));
      assert.equal(await job.getState(), 'active');
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 1, w.raw.join('\n'));
      const handed = w.lines.find((l) => /handed back to their queues: dnat\//.test(l.msg));
      assert.ok(handed, w.raw.join('\n'));
      assert.equal(handed.level, 'error');
      assert.ok(
        w.lines.some((l) => /^stopped late, 1 job\(s\) handed back$/.test(l.msg)),
        'the rest of the shutdown finished',
      );
      assert.ok(!w.lines.some((l) => /shutdown took longer/.test(l.msg)), 'not ended by the backstop');
      const back = (await queues.byName.dnat.getJob(job.id!))!;
      // back in the queue for any worker, a second later (not taken again by the stopping one)
      assert.ok(
        ['delayed', 'waiting'].includes(await back.getState()),
        `${await back.getState()}\n${w.raw.join('\n')}`,
      );
      assert.equal(back.attemptsMade, 0, 'no attempt spent');
      // The lease free again, the next worker takes the job and ends it (no record wants it: skipped).
      await connection.del(new Store(connection, 'operable').leaseKey({ kind: 'gateway', name: 'held' }));
      const next = startWorker({});
      try {
        for (let i = 0; i < 400 && (await back.getState()) !== 'completed'; i++)
          await new Promise((r) => setTimeout(r, 25));
        assert.equal(await back.getState(), 'completed', next.raw.join('\n'));
        assert.ok(
          next.lines.some((l) => l.job === job.id && l.msg.startsWith('finished')),
          next.raw.join('\n'),
        );
      } finally {
        next.child.kill('SIGKILL');
      }
    } finally {
      await queues.close();
      await connection.quit();
    }
  });
});
