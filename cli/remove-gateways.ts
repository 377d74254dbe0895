// natops remove-gateways: what a Helm pre-delete hook runs. It pauses every natops queue (so no
// handler or resync makes a gateway again), waits for the jobs in hand, then removes every gateway
// of this natops instance. The queues stay paused until the next `natops serve` start
// (queue/gateways-removed.ts). Configured as `natops worker` is: the environment, then the flags.
// The modules that do the work load when it runs.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { errorMessage, NatopsError } from '../common/errors.ts';
import { instanceOf } from '../common/instance.ts';
import { DEFAULT_LAB } from '../runtime/netns/names.ts';
import type { ServerConfig } from '../server/config.ts';
import { redisFor } from './gitops-commands.ts';

const out = (text: string) => process.stdout.write(`${text}\n`);
/** past the wait for jobs, the time the removals themselves may take before a serve start may resume */
const REMOVAL_GRACE_MS = 10 * 60_000;
const warn = (text: string) => process.stderr.write(`natops: warning: ${text}\n`);

/** Asked without --yes, or for a runtime it cannot use. */
export class RemoveGatewaysUsageError extends NatopsError {}

/** Some gateways could not be removed; the others were. The queues stay paused. */
export class GatewayRemovalError extends NatopsError {
  constructor(
    readonly failed: { gateway: string; message: string }[],
    readonly removed: string[],
  ) {
    super(
      `could not remove ${failed.length} gateway(s): ${failed.map((f) => `${f.gateway}: ${f.message}`).join('; ')} (removed ${removed.length}); the queues stay paused: run remove-gateways again`,
    );
  }
}

/** The runtime could not list the gateways; none was removed. The queues stay paused. */
export class GatewayListError extends NatopsError {
  constructor(
    readonly runtime: string,
    cause: unknown,
  ) {
    super(
      `could not list the gateways on ${runtime}: ${errorMessage(cause)}; the queues stay paused: run remove-gateways again`,
      {
        cause,
      },
    );
  }
}

/** Redis could not be reached or refused a command while pausing; nothing was removed. */
export class QueuePauseError extends NatopsError {
  constructor(
    readonly redis: string,
    cause: unknown,
  ) {
    super(`could not pause natops's queues on ${redis}: ${errorMessage(cause)}; no gateway was removed`, { cause });
  }
}

interface Flags {
  yes?: boolean;
  timeout: number;
  redis?: string;
  runtime?: string;
  lab?: string;
  namespace?: string;
  networkMode?: string;
}

function seconds(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0)) throw new InvalidArgumentError('must be a positive number of seconds');
  return n;
}

/** Whose gateways, in words, before any runtime is made (the refusal names them too). */
const whose = (c: ServerConfig) =>
  c.runtime === 'kubernetes'
    ? `every gateway Deployment of instance ${instanceOf(c)} in namespace ${c.namespace}`
    : `every gateway namespace of lab ${c.lab ?? DEFAULT_LAB}`;

export function addRemoveGatewaysCommand(program: Command): void {
  program
    .command('remove-gateways')
    .description(
      'remove every gateway of this natops and pause its queues until the next `natops serve` (a Helm uninstall hook)',
    )
    .option('--yes', 'do it (without: say what would be done, and do nothing)')
    .addOption(
      new Option('--timeout <seconds>', 'how long jobs in hand may take to finish before giving up')
        .argParser(seconds)
        .default(120),
    )
    .option('--redis <url>', 'Redis (NATOPS_REDIS_URL; default: the one `natops serve` records)')
    .option('--runtime <kind>', 'where gateways run: netns or kubernetes (NATOPS_RUNTIME, default netns)')
    .option('--lab <name>', 'netns: the lab whose gateway namespaces are removed (NATOPS_LAB)')
    .option(
      '--namespace <ns>',
      'kubernetes: namespace of the gateway Deployments (NATOPS_NAMESPACE, default natops-gateways)',
    )
    .option('--network-mode <mode>', 'kubernetes: kube-ovn or multus (NATOPS_NETWORK_MODE, default kube-ovn)')
    .action(async (flags: Flags) => {
      const { loadConfig } = await import('../server/config.ts');
      const c = loadConfig({
        redisUrl: flags.redis,
        runtime: flags.runtime,
        lab: flags.lab,
        namespace: flags.namespace,
        networkMode: flags.networkMode,
      });
      if (!flags.yes)
        throw new RemoveGatewaysUsageError(
          `remove-gateways would pause every natops queue under prefix ${c.prefix} (until the next \`natops serve\` start), wait up to ${flags.timeout} s for the jobs in hand, then remove ${whose(c)} (${c.runtime}). Nothing was changed; run it with --yes to do that`,
        );
      if (c.runtime === 'netns' && process.getuid?.() !== 0)
        throw new RemoveGatewaysUsageError(
          "remove-gateways --runtime netns needs root (it removes the lab's namespaces)",
        );
      await removeGateways(c, flags.timeout * 1000);
    });
}

async function removeGateways(c: ServerConfig, timeoutMs: number): Promise<void> {
  const [{ Redis }, { Queues }, marker, { makeRuntimes }, { redactUrl }] = await Promise.all([
    import('ioredis'),
    import('../queue/queues.ts'),
    import('../queue/gateways-removed.ts'),
    import('../runtime/select.ts'),
    import('../common/redact.ts'),
  ]);
  // A bad kubeconfig stops it here, before any queue is paused.
  const { runtime, describe } = await makeRuntimes(c, warn);
  const { url, prefix } = await redisFor(c);
  // Not redisConnection's endless retries: a hook must fail, not hang, when Redis is gone.
  const redis = new Redis(url, { maxRetriesPerRequest: 5 });
  redis.on('error', () => undefined);
  const queues = new Queues(redis, { redisUrl: url, prefix, attempts: c.attempts, backoffMs: c.backoffMs });
  try {
    // a serve starting while this runs leaves the queues paused until then (its hook's deadline)
    const { marker: paused, earlier } = await marker
      .pauseForRemoval(redis, queues.byName, prefix, Date.now() + timeoutMs + REMOVAL_GRACE_MS)
      .catch((e: unknown) => {
        throw new QueuePauseError(redactUrl(url), e);
      });
    out(
      `paused every natops queue (${paused.queues.join(', ') || 'all were paused already'}); marker ${marker.removedMarkerKey(prefix)}: the next \`natops serve\` resumes them`,
    );
    let gateways: string[];
    try {
      await marker.waitUntilIdle(queues.byName, timeoutMs, (busy) =>
        out(`waiting for the jobs in hand: ${busy.map((b) => `${b.queue} ${b.active}`).join(', ')}`),
      );
      gateways = await runtime.listGateways().catch((e: unknown) => {
        throw new GatewayListError(describe, e);
      });
    } catch (e) {
      // nothing was removed: natops goes on as before rather than stay silently stopped
      await marker.undoPause(redis, queues.byName, prefix, paused, earlier);
      out('nothing was removed; the queues it paused are resumed');
      throw e;
    }
    const removed: string[] = [];
    const failed: { gateway: string; message: string }[] = [];
    for (const gateway of gateways) {
      try {
        out(`${(await runtime.removeGateway(gateway)) ? 'removed' : 'already gone:'} gateway ${gateway}`);
        removed.push(gateway);
      } catch (e) {
        out(`failed to remove gateway ${gateway}: ${errorMessage(e)}`);
        failed.push({ gateway, message: errorMessage(e) });
      }
    }
    await marker.markRemoved(redis, prefix, paused);
    if (failed.length) throw new GatewayRemovalError(failed, removed);
    out(
      `removed ${removed.length} gateway(s) on ${describe}; natops's queues stay paused until the next \`natops serve\` start`,
    );
  } finally {
    await queues.close().catch(() => undefined);
    redis.disconnect();
  }
}
