// bench/pipeline-rate's runs: a push whose dnat jobs natops worker processes do, and the same
// number of jobs done by BullMQ alone, each timed by BullMQ's own clock and measured for CPU.
import { FlowProducer, Queue, type ConnectionOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { ms } from './stats.ts';
import { cpuMs, machineBusyMs, redisCommandTime } from './process-usage.ts';
import type { WorkerProcess } from './worker-processes.ts';
import type { HandlerKind } from '../dataplane/kinds.ts';
import { bullPrefix, jobOptions } from '../queue/queues.ts';
import type { Running } from '../server/serve.ts';
import { SUMMARY_CONTEXT } from '../state/statuses.ts';
import { Store } from '../state/store.ts';
import type { Tree, WorkTree } from '../test/helpers/git-work.ts';
import { settledStatuses } from '../test/helpers/pipeline.ts';

export interface RunResult {
  /** wall-clock ms per job, from the first job started to the last finished */
  perJob: number;
  /**
   * CPU ms per job over the same time: the worker processes together, redis-server, the bench's
   * process (the webhook and the planner, idle by then, and the bench's polling) and every process
   * on the machine (others' work too: it is shared)
   */
  workerCpu: number;
  redisCpu: number;
  benchCpu: number;
  machineCpu: number;
  /** redis-server's time in each command (INFO commandstats), µs per job */
  redisCommands: Map<string, number>;
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out (${ms(timeoutMs)}) waiting for ${what}`);
    // often enough for a window of seconds; seldom enough to take little from the workers
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The worker processes of a run: those that take its jobs, and those of the same kind that must not. */
export interface RunProcesses {
  active: readonly WorkerProcess[];
  idle: readonly WorkerProcess[];
}

/** The active processes take jobs, the idle ones not (paused, warm, for another run). */
async function use({ active, idle }: RunProcesses): Promise<readonly WorkerProcess[]> {
  await Promise.all([...active.map((w) => w.tell('resume')), ...idle.map((w) => w.tell('pause'))]);
  return active;
}

export interface RunsSetup {
  running: Running;
  connection: Redis;
  redisPid: number;
  tree: WorkTree;
  /** natops's key prefix, and the one the runs of BullMQ alone use */
  prefix: string;
  barePrefix: string;
  /** the gateways, and their manifests with every port forward on `port` */
  names: readonly string[];
  manifests(port: number): Tree;
  say(line: string): void;
}

export class PipelineRuns {
  private port = 10_000;
  private bareRuns = 0;

  constructor(private readonly s: RunsSetup) {}

  /** The manifests as they are now (every port forward on the current port). */
  manifestsNow(): Tree {
    return this.s.manifests(this.port);
  }

  /**
   * Until none of `queues` has a job left to run. Cheap to ask (one count per queue), unlike the
   * commit's statuses (every gateway's, parsed), which would take CPU from the workers meanwhile.
   */
  async drained(queues: readonly HandlerKind[], timeoutMs: number): Promise<void> {
    const left = async (kind: HandlerKind) =>
      Object.values(
        await this.s.running.queues.byName[kind].getJobCounts(
          'wait',
          'active',
          'delayed',
          'prioritized',
          'waiting-children',
        ),
      ).some((n) => n > 0);
    await until(
      'every handler job done',
      async () => {
        for (const kind of queues) if (await left(kind)) return false;
        return true;
      },
      timeoutMs,
    );
  }

  /** The commit's summary status says success (every gateway's job done, none failed). */
  async succeeded(sha: string, what: string): Promise<void> {
    const statuses = await settledStatuses(this.s.running.statuses, sha, 10_000);
    const summary = statuses.get(SUMMARY_CONTEXT);
    if (summary?.state !== 'success') throw new Error(`${what}: the push did not succeed: ${summary?.description}`);
  }

  /** One push that moves every gateway's port forward, its dnat jobs done by the active processes. */
  async natops(processes: RunProcesses, tag: string): Promise<RunResult> {
    const dnat = this.s.running.queues.byName.dnat;
    const store = new Store(this.s.connection, this.s.prefix);
    const gateways = this.s.names.length;
    await dnat.pause();
    try {
      const workers = await use(processes);
      const t0 = Date.now();
      const sha = await this.s.tree.push(this.s.manifests(++this.port), `every port forward to ${this.port}`);
      // the planner moves the head last, once every flow is enqueued
      const head = await until(
        'the push planned',
        async () => {
          const h = await store.head('main');
          return h?.sha === sha && h;
        },
        120_000,
      );
      this.s.say(`  ${tag}: git push -> planned in ${ms(Date.now() - t0)}`);
      const counts = await dnat.getJobCounts('wait');
      if (counts.wait !== gateways)
        throw new Error(`the push enqueued ${JSON.stringify(counts)} dnat jobs, not one per gateway (${gateways})`);
      const result = await this.timedDrain(
        workers.map((w) => w.child.pid!),
        gateways,
        async () => {
          await dnat.resume();
          await this.drained(['dnat'], 60_000 + gateways * 100);
          return this.jobWindow(
            this.s.prefix,
            'dnat',
            this.s.names.map((n) => `g${head.gen}.${n}.dnat`),
          );
        },
      );
      await this.succeeded(sha, tag);
      return result;
    } finally {
      await dnat.resume();
    }
  }

  /**
   * As many jobs, with a real dnat job's `data` and natops's job options, enqueued beforehand and
   * done by the active processes, whose jobs do nothing.
   */
  async bare(processes: RunProcesses, data: object): Promise<RunResult> {
    const opts = { connection: this.s.connection as ConnectionOptions, prefix: bullPrefix(this.s.barePrefix) };
    const queue = new Queue('dnat', opts);
    const flows = new FlowProducer(opts);
    const run = ++this.bareRuns;
    const ids = this.s.names.map((n) => `b${run}.${n}.dnat`);
    try {
      await queue.pause();
      const workers = await use(processes);
      // one flow per job, as natops adds a changed gateway's flow (queue/queues.ts addFlow)
      const settings = { redisUrl: '', prefix: this.s.barePrefix, attempts: 5, backoffMs: 1000 };
      for (let i = 0; i < ids.length; i += 100)
        await flows.addBulk(
          ids.slice(i, i + 100).map((jobId) => ({
            name: 'dnat',
            queueName: 'dnat',
            data,
            prefix: bullPrefix(this.s.barePrefix),
            opts: { ...jobOptions(settings), jobId, failParentOnFailure: true },
          })),
        );
      return await this.timedDrain(
        workers.map((w) => w.child.pid!),
        ids.length,
        async () => {
          await queue.resume();
          await until(
            'the bare jobs done',
            async () =>
              Object.values(await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized')).every((n) => n === 0),
            60_000 + ids.length * 100,
          );
          return this.jobWindow(this.s.barePrefix, 'dnat', ids);
        },
      );
    } finally {
      await queue.resume();
      await Promise.all([queue.close(), flows.close()]);
    }
  }

  /** Workers waiting at a paused queue; `go` resumes it and returns once every job is done. */
  private async timedDrain(
    workerPids: readonly number[],
    jobs: number,
    go: () => Promise<{ start: number; end: number }>,
  ): Promise<RunResult> {
    const cpu = () => ({
      workers: workerPids.reduce((a, p) => a + cpuMs(p), 0),
      redis: cpuMs(this.s.redisPid),
      bench: cpuMs(process.pid),
      machine: machineBusyMs(),
    });
    await this.s.connection.config('RESETSTAT');
    const before = cpu();
    const { start, end } = await go();
    const after = cpu();
    const commands = await redisCommandTime(this.s.connection);
    return {
      perJob: (end - start) / jobs,
      workerCpu: (after.workers - before.workers) / jobs,
      redisCpu: (after.redis - before.redis) / jobs,
      benchCpu: (after.bench - before.bench) / jobs,
      machineCpu: (after.machine - before.machine) / jobs,
      redisCommands: new Map([...commands].map(([name, c]) => [name, c.usec / jobs])),
    };
  }

  /** When the first of the jobs started and the last finished (BullMQ's processedOn, finishedOn); fails on a job that failed. */
  private async jobWindow(
    prefix: string,
    queue: string,
    ids: readonly string[],
  ): Promise<{ start: number; end: number }> {
    const read = async () => {
      const p = this.s.connection.pipeline();
      for (const id of ids)
        p.hmget(`${bullPrefix(prefix)}:${queue}:${id}`, 'processedOn', 'finishedOn', 'failedReason');
      return ((await p.exec()) ?? []).map(([e, v], i) => {
        if (e) throw e;
        const [processedOn, finishedOn, failedReason] = v as (string | null)[];
        if (failedReason) throw new Error(`job ${queue}/${ids[i]} failed: ${failedReason}`);
        return { start: Number(processedOn), end: finishedOn ? Number(finishedOn) : undefined };
      });
    };
    // the last status can be written just before BullMQ records its job finished
    const times = await until(
      'every job finished',
      async () => {
        const t = await read();
        return t.every((x) => x.end !== undefined) && t;
      },
      10_000,
    );
    return { start: Math.min(...times.map((t) => t.start)), end: Math.max(...times.map((t) => t.end!)) };
  }
}
