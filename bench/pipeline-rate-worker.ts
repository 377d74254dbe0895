// A worker process for bench/pipeline-rate (started by it, one or two at a time):
//
//   node --import tsx bench/pipeline-rate-worker.ts natops --redis URL --prefix P --queues a,b,...
//     what `natops worker --handlers a,b,...` runs (serve() without HTTP, its logger on stderr), with
//     the dry-run runtime;
//   node --import tsx bench/pipeline-rate-worker.ts bare --redis URL --prefix P --queues dnat
//     a BullMQ worker whose jobs do nothing, with natops's worker settings: what any BullMQ
//     pipeline pays per job.
//
// Writes "ready" on stdout once its workers run. A line "pause" on stdin stops them taking jobs,
// "resume" lets them again; each is answered ("paused", "resumed") once done: the bench keeps
// its processes, warm, from one run to the next. Stops on SIGTERM as `natops worker` does (the
// jobs in hand finish first).
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type ConnectionOptions, Worker } from 'bullmq';
import { createLogger } from '../common/log.ts';
import { loadConfig, type ServerConfig } from '../server/config.ts';
import { serve } from '../server/serve.ts';
import { bullPrefix, redisConnection } from '../queue/queues.ts';
import { QUEUE_NAMES, type QueueName } from '../queue/jobs.ts';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    redis: { type: 'string' },
    prefix: { type: 'string', default: 'natops' },
    queues: { type: 'string' },
  },
});
const mode = positionals[0];
if ((mode !== 'natops' && mode !== 'bare') || !args.redis || !args.queues)
  throw new Error('usage: pipeline-rate-worker.ts natops|bare --redis URL [--prefix P] --queues a,b');
const queues = args.queues.split(',').filter((q): q is QueueName => (QUEUE_NAMES as readonly string[]).includes(q));

// The rest of the settings as `natops worker` reads them: NATOPS_* from the environment.
const config = loadConfig({ redisUrl: args.redis, prefix: args.prefix });

/**
 * The configuration with the dry-run runtime. server/config.ts refuses NATOPS_RUNTIME=dry-run (its
 * choices are netns and kubernetes), though runtime/select.ts, to which serve() hands the
 * configuration, makes one; the cast says only that.
 */
const withDryRun = (c: ServerConfig): ServerConfig => ({ ...c, runtime: 'dry-run' }) as unknown as ServerConfig;

interface Started {
  workers: Worker[];
  stop(): Promise<unknown>;
}

async function natopsWorker(): Promise<Started> {
  const log = await createLogger({ level: config.logLevel });
  const running = await serve(withDryRun(config), { queues, http: false, log });
  return { workers: running.workers, stop: () => running.close(config.shutdownMs) };
}

async function bareWorker(): Promise<Started> {
  const connection = redisConnection(config.redisUrl!);
  // startWorkers' settings (server/workers.ts): the same lock, stall check and concurrency
  const workers = queues.map(
    (name) =>
      new Worker(name, async () => undefined, {
        connection: connection as ConnectionOptions,
        prefix: bullPrefix(config.prefix),
        lockDuration: config.lockMs,
        stalledInterval: config.lockMs,
        maxStalledCount: 2,
        concurrency: config.concurrency,
      }),
  );
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  return {
    workers,
    async stop() {
      await Promise.all(workers.map((w) => w.close()));
      connection.disconnect();
    },
  };
}

const started = await (mode === 'natops' ? natopsWorker() : bareWorker());
process.stdout.write('ready\n');
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'pause')
    void Promise.all(started.workers.map((w) => w.pause())).then(() => process.stdout.write('paused\n'));
  else if (line === 'resume') {
    for (const w of started.workers) w.resume();
    process.stdout.write('resumed\n');
  }
});
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.once(signal, () => {
    started.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
