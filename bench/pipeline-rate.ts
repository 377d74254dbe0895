// bench/pipeline-rate: how fast worker processes get through the handler jobs of a push that
// changes many gateways (issue 26: at least 200 gateway jobs/s per worker process with the dry-run
// runtime, and two processes at least 1.7x one). No root needed: nothing touches the network.
//
//   npm run build && node --import tsx bench/pipeline-rate.ts [--reps 5] [--gateways 1000]
//                                                             [--concurrency 4,16] [--cpu-prof DIR] [--out FILE]
//
// A real redis-server (natops's own, fsync on every write), a bare repository with natops's
// post-receive hook, serve()'s webhook and planner in this process, and the handler workers in
// processes of their own (bench/pipeline-rate-worker.ts: what `natops worker` runs, with the
// dry-run runtime), a pair of them for each --concurrency (NATOPS_CONCURRENCY: jobs at a time per
// process; natops's default first). The first push makes every gateway; then each run is a push
// that moves every gateway's port forward: one dnat job per gateway. The dnat queue is paused while
// the planner enqueues, and resumed with the run's processes waiting (warm, kept from run to run),
// so they start together; the time is BullMQ's own, from the first job started to the last
// finished. Baseline: BullMQ alone, as many jobs with the same data and options, done by workers
// whose jobs do nothing. The kinds of run take turns in each rep; each rep also times a fixed CPU
// work in 1 process and in 2 at once: what this machine's cores let a second process add at all.
import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { median, ms } from './stats.ts';
import { outOption, Report, type Series } from './report.ts';
import { cpuWork } from './process-usage.ts';
import { type WorkerProcess, WorkerProcesses } from './worker-processes.ts';
import { gatewayName, gatewayPerFile } from './many-gateways.ts';
import { PipelineRuns, type RunProcesses, type RunResult, until } from './pipeline-rate-runs.ts';
import { createLogger } from '../common/log.ts';
import { HANDLER_KINDS, type HandlerKind } from '../dataplane/kinds.ts';
import { initRepo } from '../gitops/hook/init.ts';
import { bullPrefix, redisConnection } from '../queue/queues.ts';
import { loadConfig } from '../server/config.ts';
import { LocalRedis } from '../server/redis-server.ts';
import { serve, type Running } from '../server/serve.ts';
import { Store } from '../state/store.ts';
import { WorkTree } from '../test/helpers/git-work.ts';

/** natops's own default of NATOPS_CONCURRENCY */
const DEFAULT_CONCURRENCY = loadConfig({}, {}).concurrency;
const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    gateways: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: `${DEFAULT_CONCURRENCY},16` },
    // worker processes write V8 CPU profiles (node --cpu-prof) here
    'cpu-prof': { type: 'string' },
    ...outOption('pipeline-rate'),
  },
});
const reps = Number(args.reps);
const gateways = Number(args.gateways);
const concurrencies = args.concurrency.split(',').map(Number);
if (!(reps >= 1 && gateways >= 1 && gateways <= 2000))
  throw new Error('--reps at least 1; --gateways 1 to 2000 (natops takes at most 2,000 gateways per commit)');
if (
  !concurrencies.length ||
  new Set(concurrencies).size !== concurrencies.length ||
  !concurrencies.every((c) => Number.isInteger(c) && c >= 1)
)
  throw new Error('--concurrency: jobs at a time per process, comma-separated, each 1 or more and each once');
const report = new Report('pipeline-rate', args);

const WORKER = fileURLToPath(new URL('./pipeline-rate-worker.ts', import.meta.url));
const SECRET = 'pipeline-rate-bench-secret';
const PREFIX = 'natops';
/** the keys of the runs of BullMQ alone, apart from natops's */
const BARE_PREFIX = 'bare';
const say = (line: string) => process.stderr.write(`${line}\n`);
const names = Array.from({ length: gateways }, (_, i) => gatewayName(i));
const count = (n: number) => n.toLocaleString('en');

// ---- what runs, and its clean-up ------------------------------------------------------------------
const workerProcesses = new WorkerProcesses();
let dir: string | undefined;
let redis: LocalRedis | undefined;
let running: Running | undefined;
let connection: Redis | undefined;

/** Whatever the bench started, gone; also on SIGINT and on an exception. */
async function cleanup(): Promise<void> {
  workerProcesses.killAll();
  connection?.disconnect();
  await running?.close(1000).catch(() => undefined);
  await redis?.stop('SIGKILL').catch(() => undefined);
  redis = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
}
// The last resort, synchronous: a crash between the awaits above still leaves nothing behind.
process.on('exit', () => {
  workerProcesses.killAll();
  try {
    if (redis?.pid) process.kill(redis.pid, 'SIGKILL');
  } catch {
    // gone already
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => void cleanup().finally(() => process.exit(130)));

/** Two worker processes of bench/pipeline-rate-worker.ts taking `concurrency` jobs at a time each, once ready. */
function startPair(mode: 'natops' | 'bare', queues: readonly string[], concurrency: number): Promise<WorkerProcess[]> {
  const prefix = mode === 'bare' ? BARE_PREFIX : PREFIX;
  return workerProcesses.start(
    2,
    {
      path: WORKER,
      args: [mode, '--redis', redis!.url, '--prefix', prefix, '--queues', queues.join(',')],
      nodeArgs: args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof']] : [],
      env: { NATOPS_CONCURRENCY: String(concurrency) },
    },
    (i) => join(dir!, `${mode}-c${concurrency}-${i}.log`),
  );
}

/** The commands redis-server spent most time in, µs per job. */
const topCommands = (byCommand: ReadonlyMap<string, number>, n = 6) =>
  [...byCommand]
    .sort((x, y) => y[1] - x[1])
    .slice(0, n)
    .map(([name, usec]) => `${name} ${usec.toFixed(0)} µs`)
    .join(', ');

async function main(): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'natops-bench-pipeline-rate-'));
  redis = await LocalRedis.start(join(dir, 'redis'));
  connection = redisConnection(redis.url);
  const repo = join(dir, 'gitops.git');
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET);
  // The webhook and the planner only: the handler jobs are the worker processes'.
  running = await serve(
    loadConfig(
      {
        redisUrl: redis.url,
        prefix: PREFIX,
        webhookSecret: SECRET,
        repo,
        listen: '127.0.0.1:0',
        resyncMs: 0,
        dataDir: join(dir, 'data'),
      },
      {},
    ),
    {
      queues: ['plan'],
      http: true,
      log: await createLogger({ destination: createWriteStream(join(dir, 'serve.log')) }),
    },
  );
  await initRepo(repo, { webhookUrl: `${running.url}/webhook`, secretFile, name: 'bench/pipeline-rate' });
  const tree = await WorkTree.clone(repo, join(dir, 'work'));
  const runs = new PipelineRuns({
    running,
    connection,
    redisPid: redis.pid!,
    tree,
    prefix: PREFIX,
    barePrefix: BARE_PREFIX,
    names,
    manifests: (port) => gatewayPerFile(gateways, port),
    say,
  });

  // ---- every gateway, made once by the first natops pair (7 jobs each, and the networks') --------
  const natopsPairs = new Map<number, WorkerProcess[]>();
  for (const c of concurrencies) natopsPairs.set(c, await startPair('natops', HANDLER_KINDS, c));
  const [first, ...others] = concurrencies as [number, ...number[]];
  say(`making ${count(gateways)} gateways (2 worker processes, ${first} jobs at a time each)...`);
  for (const pair of others.map((c) => natopsPairs.get(c)!)) await Promise.all(pair.map((w) => w.tell('pause')));
  const store = new Store(connection, PREFIX);
  const t0 = Date.now();
  const made = await tree.push(runs.manifestsNow(), `${gateways} gateways`);
  await until('the first push planned', async () => (await store.head('main'))?.sha === made, 120_000);
  await runs.drained(HANDLER_KINDS, 120_000 + gateways * 300);
  const madeMs = Date.now() - t0;
  await runs.succeeded(made, 'making the gateways');
  // every queue was empty before: its completed jobs are this push's (BullMQ keeps 5,000 a queue)
  const madeJobs = new Map<HandlerKind, number>();
  for (const kind of HANDLER_KINDS)
    madeJobs.set(kind, (await running.queues.byName[kind].getJobCounts('completed')).completed ?? 0);
  const madeTotal = [...madeJobs.values()].reduce((a, b) => a + b, 0);
  say(`  made in ${ms(madeMs)}: ${madeTotal} jobs (${[...madeJobs].map(([k, n]) => `${k} ${n}`).join(', ')})`);
  // A run's processes take its jobs; every other process of the same kind waits, paused.
  const processes = (pairs: ReadonlyMap<number, WorkerProcess[]>, c: number, n: number): RunProcesses => {
    const active = pairs.get(c)!.slice(0, n);
    return { active, idle: [...pairs.values()].flat().filter((w) => !active.includes(w)) };
  };
  // the other natops pairs warm up on one push each, untimed
  for (const c of others) await runs.natops(processes(natopsPairs, c, 2), `warm-up, ${c} at a time`);
  // the bare runs carry a real dnat job's data; one of them each, untimed, warms their processes
  const gen = (await store.head('main'))!.gen;
  const sample = await connection.hget(`${bullPrefix(PREFIX)}:dnat:g${gen}.${names[0]}.dnat`, 'data');
  if (!sample) throw new Error('no dnat job of the last push to copy');
  const data = JSON.parse(sample) as object;
  const barePairs = new Map<number, WorkerProcess[]>();
  for (const c of concurrencies) barePairs.set(c, await startPair('bare', ['dnat'], c));
  for (const c of concurrencies) await runs.bare(processes(barePairs, c, 2), data);

  // ---- the runs, every kind in turn -------------------------------------------------------------
  const kinds = concurrencies.flatMap((c) => [
    { key: `natops-1@${c}`, run: () => runs.natops(processes(natopsPairs, c, 1), `natops-1@${c}`) },
    { key: `natops-2@${c}`, run: () => runs.natops(processes(natopsPairs, c, 2), `natops-2@${c}`) },
    { key: `bare-1@${c}`, run: () => runs.bare(processes(barePairs, c, 1), data) },
    { key: `bare-2@${c}`, run: () => runs.bare(processes(barePairs, c, 2), data) },
  ]);
  const results = new Map<string, RunResult[]>(kinds.map((k) => [k.key, []]));
  /** the machine's cores: ms a fixed CPU work took 1 process alone, and 2 at once */
  const cores = { one: [] as number[], two: [] as number[] };
  for (let rep = 0; rep < reps; rep++) {
    for (const n of rep % 2 ? [2, 1] : [1, 2]) cores[n === 1 ? 'one' : 'two'].push(await cpuWork(n));
    say(
      `rep ${rep + 1}/${reps} the cores: CPU work took ${ms(cores.one.at(-1)!)} alone, ${ms(cores.two.at(-1)!)} two at once`,
    );
    // each rep starts with another kind, so none always runs first or last
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[(rep + i) % kinds.length]!;
      const r = await k.run();
      results.get(k.key)!.push(r);
      say(
        `rep ${rep + 1}/${reps} ${k.key}: ${r.perJob.toFixed(2)} ms per job (${(1000 / r.perJob).toFixed(0)}/s); ` +
          `CPU per job: workers ${r.workerCpu.toFixed(2)} ms, redis ${r.redisCpu.toFixed(2)} ms, ` +
          `bench ${r.benchCpu.toFixed(2)} ms, machine ${r.machineCpu.toFixed(2)} ms; ` +
          `redis-server per job: ${topCommands(r.redisCommands)}`,
      );
    }
  }
  // as a supervisor stops them (and, with --cpu-prof, so that they write their profiles)
  await workerProcesses.stop([...natopsPairs.values(), ...barePairs.values()].flat());

  // ---- figures ------------------------------------------------------------------------------------
  const med = (key: string, f: (r: RunResult) => number) => median(results.get(key)!.map(f));
  const rate = (key: string) => 1000 / med(key, (r) => r.perJob);
  const series = (key: string, name: string): Series => ({ name, values: results.get(key)!.map((r) => r.perJob) });
  const cpuNote = (key: string) =>
    `CPU per job (medians): worker processes ${med(key, (r) => r.workerCpu).toFixed(2)} ms, ` +
    `redis-server ${med(key, (r) => r.redisCpu).toFixed(2)} ms, the bench's process ${med(key, (r) => r.benchCpu).toFixed(2)} ms, ` +
    `whole machine ${med(key, (r) => r.machineCpu).toFixed(2)} ms`;
  const at = (c: number) => `${c} at a time${c === DEFAULT_CONCURRENCY ? " (natops's default)" : ''}`;
  for (const c of concurrencies) {
    const table = `a push that changes ${count(gateways)} gateways, one dnat job each (dry-run runtime); each process takes ${at(c)}`;
    const one = series(`natops-1@${c}`, 'natops, 1 worker process: ms per gateway job');
    const bareOne = series(`bare-1@${c}`, 'BullMQ alone, 1 worker process whose jobs do nothing: ms per job');
    report.add(
      table,
      'ms',
      one,
      bareOne,
      `target: ≤ 5 ms per job per process (200/s); ${rate(`natops-1@${c}`).toFixed(0)} jobs/s. ${cpuNote(`natops-1@${c}`)}`,
    );
    report.add(
      table,
      'ms',
      series(`natops-2@${c}`, 'natops, 2 worker processes: ms per gateway job (wall clock)'),
      one,
      `target: 2 processes ≥ 1.7x one (figure / baseline ≤ 0.59); ${rate(`natops-2@${c}`).toFixed(0)} jobs/s, ` +
        `${(rate(`natops-2@${c}`) / 2).toFixed(0)} per process, ` +
        `${(rate(`natops-2@${c}`) / rate(`natops-1@${c}`)).toFixed(2)}x one. ${cpuNote(`natops-2@${c}`)}`,
    );
    report.add(
      table,
      'ms',
      series(`bare-2@${c}`, 'BullMQ alone, 2 worker processes whose jobs do nothing: ms per job (wall clock)'),
      bareOne,
      `what a second process gives BullMQ alone on this machine: ${(rate(`bare-2@${c}`) / rate(`bare-1@${c}`)).toFixed(2)}x one. ` +
        cpuNote(`bare-2@${c}`),
    );
  }
  const twoAtOnce = median(cores.one) / median(cores.two);
  report.add(
    "this machine's cores: what a second process can add at all",
    'ms',
    { name: '2 processes doing the same CPU work at once: ms until both are done', values: cores.two },
    { name: '1 process alone', values: cores.one },
    `2 at once get ${(2 * twoAtOnce).toFixed(2)}x the work of one done per second: the most a second worker process ` +
      'could add here if natops were CPU-bound, before redis-server takes its share',
  );
  for (const c of others)
    report.add(
      `jobs at a time per worker process (NATOPS_CONCURRENCY)`,
      'ms',
      series(`natops-1@${c}`, `natops, 1 worker process taking ${c} at a time: ms per gateway job`),
      series(`natops-1@${first}`, `natops, 1 worker process taking ${at(first)}: ms per gateway job`),
    );
  report.add(
    `a push that makes ${count(gateways)} gateways (once, before the runs above)`,
    'ms',
    {
      name: `2 worker processes: git push -> every job done, per job (${count(madeTotal)} jobs)`,
      values: [madeMs / madeTotal],
    },
    series(`natops-2@${first}`, `2 worker processes: a push that changes one port forward of each gateway, per job`),
    `${at(first)}; of those jobs ${count(madeJobs.get('vpc') ?? 0)} are the networks' (vpc): every changed gateway's ` +
      'flow starts with one, which carries the whole network model and waits for the one networks lease',
  );

  const cpu = (key: string) =>
    [
      (r: RunResult) => r.workerCpu,
      (r: RunResult) => r.redisCpu,
      (r: RunResult) => r.benchCpu,
      (r: RunResult) => r.machineCpu,
    ]
      .map((f) => med(key, f).toFixed(2))
      .join(' / ');
  process.stdout.write(
    [
      `## a push that changes ${count(gateways)} gateways, one dnat job each (dry-run runtime; medians of ${reps})`,
      '',
      '| run (processes @ jobs at a time) | ms per job | jobs/s | jobs/s per process | CPU ms per job: workers / redis / bench / machine |',
      '|---|---:|---:|---:|---:|',
      ...kinds.map((k) => {
        const p = k.key.startsWith('natops-2') || k.key.startsWith('bare-2') ? 2 : 1;
        return `| ${k.key} | ${med(k.key, (r) => r.perJob).toFixed(2)} | ${rate(k.key).toFixed(0)} | ${(rate(k.key) / p).toFixed(0)} | ${cpu(k.key)} |`;
      }),
      '',
      ...concurrencies.map(
        (c) =>
          `${at(c)}: 2 processes vs 1: natops ${(rate(`natops-2@${c}`) / rate(`natops-1@${c}`)).toFixed(2)}x, ` +
          `BullMQ alone ${(rate(`bare-2@${c}`) / rate(`bare-1@${c}`)).toFixed(2)}x`,
      ),
      `making ${count(gateways)} gateways: ${ms(madeMs)} for ${count(madeTotal)} jobs (${(madeMs / madeTotal).toFixed(2)} ms per job)`,
      `this machine's cores: CPU work ${ms(median(cores.one))} alone, ${ms(median(cores.two))} two at once: ` +
        `${(2 * twoAtOnce).toFixed(2)}x the work of one per second`,
      '',
    ].join('\n'),
  );
  await report.write(args.out);
}

try {
  await main();
} catch (e) {
  if (dir) {
    const logs = await readFile(join(dir, 'serve.log'), 'utf8').catch(() => '');
    say(`the planner's last log lines:\n${logs.split('\n').slice(-10).join('\n')}`);
  }
  throw e;
} finally {
  await cleanup();
}
