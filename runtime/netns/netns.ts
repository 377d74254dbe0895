// Network namespace primitives for the lab and the netns runtime. Every command is an argv array.
import { statSync, watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { run, type ExecRequest, type ExecResult, type RunOptions } from '../../common/exec.ts';
import { ipBatchInput } from '../../dataplane/commands.ts';

const NETNS_DIR = '/run/netns';

/** Per-command options of these helpers; the timeout defaults to run()'s. */
export type NetnsCommandOptions = Pick<RunOptions, 'timeoutMs'>;

export async function listNamespaces(): Promise<string[]> {
  return readdir(NETNS_DIR).catch(() => []);
}

export async function namespaceExists(name: string): Promise<boolean> {
  return (await listNamespaces()).includes(name);
}

/**
 * Calls `changed` whenever a namespace is added or deleted (inotify on the namespaces' directory);
 * the watcher holds no reference on the event loop. Undefined where the directory is not there yet.
 */
export function watchNamespaces(changed: () => void): FSWatcher | undefined {
  try {
    const watcher = watch(NETNS_DIR, changed);
    watcher.on('error', () => watcher.close());
    return watcher.unref();
  } catch {
    return undefined;
  }
}

/** Which namespace the name stands for now (its nsfs inode), or undefined when there is none. */
export function namespaceId(name: string): number | undefined {
  return statSync(`${NETNS_DIR}/${name}`, { throwIfNoEntry: false })?.ino;
}

/** Runs argv inside a namespace; killed at req.timeoutMs (ip netns exec execs argv: same pid). */
export function inNamespace(ns: string, req: ExecRequest): Promise<ExecResult> {
  return run(['ip', 'netns', 'exec', ns, ...req.argv], {
    stdin: req.stdin,
    okExitCodes: req.okExitCodes,
    timeoutMs: req.timeoutMs,
    target: ns,
  });
}

/** Runs `ip ARGS` against a namespace (cheaper than ip netns exec); options may come first. */
export function ipIn(ns: string, ...args: string[]): Promise<ExecResult>;
export function ipIn(
  ns: string,
  opts: Pick<RunOptions, 'timeoutMs' | 'okExitCodes'>,
  ...args: string[]
): Promise<ExecResult>;
export function ipIn(
  ns: string,
  ...rest: (string | Pick<RunOptions, 'timeoutMs' | 'okExitCodes'>)[]
): Promise<ExecResult> {
  const opts = typeof rest[0] === 'object' ? rest[0] : {};
  const args = rest.filter((a): a is string => typeof a === 'string');
  return run(['ip', '-n', ns, ...args], { ...opts, target: ns });
}

/** Creates the namespace with loopback up; true when it was created. */
export async function ensureNamespace(
  name: string,
  sysctls: Record<string, string> = {},
  opts: NetnsCommandOptions = {},
): Promise<boolean> {
  if (await namespaceExists(name)) return false;
  await run(['ip', 'netns', 'add', name], opts);
  await ipIn(name, opts, 'link', 'set', 'lo', 'up');
  const settings = Object.entries(sysctls).map(([key, value]) => `${key}=${value}`);
  if (settings.length) await inNamespace(name, { argv: ['sysctl', '-q', '-w', ...settings], ...opts });
  return true;
}

/** Kills what still runs inside (lab servers), then removes the namespace and its interfaces. */
export async function deleteNamespace(name: string, opts: NetnsCommandOptions = {}): Promise<boolean> {
  if (!(await namespaceExists(name))) return false;
  const pids = (await run(['ip', 'netns', 'pids', name], { ...opts, okExitCodes: [0, 1] })).stdout
    .split(/\s+/)
    .filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run(['ip', 'netns', 'del', name], opts);
  return true;
}

/**
 * `ip -j` with each of `commands` (argv after `ip`: ['link', 'show', 'dev', X], ...) in namespace
 * `ns`, by one `ip -batch` process instead of one process each: its exit status (not 0 when a
 * command failed; ip stops there) and one JSON document per command that ran.
 */
export async function ipBatch(
  ns: string,
  opts: Pick<RunOptions, 'timeoutMs' | 'okExitCodes'> & { force?: boolean },
  commands: readonly (readonly string[])[],
): Promise<{ code: number; answers: string[] }> {
  // -force: every command runs, whatever failed before it (the exit code still says one did)
  const r = await run(['ip', '-n', ns, '-j', ...(opts.force ? ['-force'] : []), '-batch', '-'], {
    stdin: ipBatchInput(commands),
    timeoutMs: opts.timeoutMs,
    okExitCodes: opts.okExitCodes,
    target: ns,
  });
  return { code: r.code, answers: r.stdout.split('\n').filter((line) => line.trim() !== '') };
}

export async function linkExists(ns: string, ifname: string, opts: NetnsCommandOptions = {}): Promise<boolean> {
  const r = await ipIn(ns, { ...opts, okExitCodes: [0, 1, 255] }, 'link', 'show', 'dev', ifname);
  return r.code === 0;
}

/**
 * A veth pair: `outer` in the namespace `outerNs` (enslaved to `bridge`), `inner` in `innerNs`.
 * Both ends are created in one command, so a failure leaves no half pair behind.
 */
export async function addVeth(
  opts: {
    outerNs: string;
    outer: string;
    bridge: string;
    innerNs: string;
    inner: string;
    innerUp?: boolean;
  } & NetnsCommandOptions,
): Promise<void> {
  const t = { timeoutMs: opts.timeoutMs };
  await ipIn(
    opts.outerNs,
    t,
    'link',
    'add',
    opts.outer,
    'type',
    'veth',
    'peer',
    'name',
    opts.inner,
    'netns',
    opts.innerNs,
  );
  await ipIn(opts.outerNs, t, 'link', 'set', opts.outer, 'master', opts.bridge, 'up');
  if (opts.innerUp ?? true) await ipIn(opts.innerNs, t, 'link', 'set', opts.inner, 'up');
}
