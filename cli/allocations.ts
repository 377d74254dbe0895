// `natops plan`'s view of EIP allocation: the table `natops serve` keeps (read, never written),
// or without one, what natops would allocate and that it does so at apply.
import { NatopsError } from '../common/errors.ts';
import type { AllocationInput, EipAllocation } from '../gitops/manifests/eip-allocation.ts';
import { ManifestValidationError } from '../gitops/manifests/issues.ts';
import { readManifestDir } from '../gitops/manifests/read-dir.ts';
import { validateManifests, type Desired } from '../gitops/manifests/validate.ts';
import { manifestRulesFromEnv } from '../server/config.ts';

/** The allocation table the plan reads, and where from (undefined: no Redis to read). */
export interface PlanAllocations {
  input: AllocationInput | undefined;
  from: string | undefined;
}

/**
 * The table of `--redis URL` (or NATOPS_REDIS_URL), else of the Redis a running `natops serve`
 * records; no table when neither is there. A Redis named but not answering is an error: the
 * plan would show addresses the gateways may not get.
 */
export async function planAllocations(redisUrl: string | undefined): Promise<PlanAllocations> {
  const [{ loadConfig }, { redisFor }] = await Promise.all([
    import('../server/config.ts'),
    import('./gitops-commands.ts'),
  ]);
  // only the settings that find natops's Redis: the rest of the environment is not plan's to judge
  const { NATOPS_REDIS_URL, NATOPS_PREFIX, NATOPS_DATA_DIR } = process.env;
  const c = loadConfig({ redisUrl }, { NATOPS_REDIS_URL, NATOPS_PREFIX, NATOPS_DATA_DIR });
  const found = await redisFor(c).catch((e: unknown) => {
    if (e instanceof NatopsError && !c.redisUrl) return undefined; // no Redis configured, no serve running
    throw e;
  });
  if (!found) return { input: undefined, from: undefined };
  // loaded only with a Redis to read: a plan without one stays light (test/unit/cli-start.test.ts)
  const [{ EipAllocations }, { Redis }] = await Promise.all([import('../state/eip-allocations.ts'), import('ioredis')]);
  // one try, no retries: a plan must not hang on a Redis that is gone
  const redis = new Redis(found.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3000 });
  redis.on('error', () => {}); // the failed command says it
  try {
    await redis.connect();
    const table = await new EipAllocations(redis, found.prefix).table();
    return { input: { table }, from: found.url.replace(/\/\/[^@/]*@/, '//') };
  } catch (e) {
    // a serve that recorded its Redis and stopped: plan as without one (the lines say so)
    if (!c.redisUrl) {
      process.stderr.write(
        `natops: warning: the Redis \`natops serve\` recorded does not answer; EIP allocations not read\n`,
      );
      return { input: undefined, from: undefined };
    }
    throw new NatopsError(
      `cannot read the EIP allocations from Redis ${found.url.replace(/\/\/[^@/]*@/, '//')}: ${e instanceof Error ? e.message : String(e)}`,
    );
  } finally {
    redis.disconnect();
  }
}

/** The manifests at `path` validated with the allocations; every problem thrown as a ManifestValidationError. */
export async function desiredAllocated(
  path: string,
  allocations: PlanAllocations,
): Promise<{ desired: Desired; eips: EipAllocation[] }> {
  const v = validateManifests(await readManifestDir(path), {
    ...manifestRulesFromEnv(),
    ...(allocations.input && { allocations: allocations.input }),
  });
  if (v.issues.length) throw new ManifestValidationError(v.issues);
  return { desired: v.desired, eips: v.allocation?.eips ?? [] };
}

/** One line per EIP without v4ip: its address, and whether natops has allocated it or will at apply. */
export function allocationLines(eips: readonly EipAllocation[], allocations: PlanAllocations): string[] {
  return eips.map((a) => {
    const head = `${a.id}: ${a.address}`;
    if (!a.fresh) return `${head} (allocated)`;
    if (allocations.from)
      return `${head} (allocated at apply: the lowest free address of Subnet ${a.subnet}; none is allocated to it in ${allocations.from} yet)`;
    return `${head} if nothing else is allocated by then (allocated at apply: \`natops serve\` gives an EIP without v4ip the lowest free address of Subnet ${a.subnet}, not its gateway, network, broadcast or excludeIps nor another EIP's, and keeps it; no Redis to read allocations from: pass --redis URL)`;
  });
}
