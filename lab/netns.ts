// Network namespace primitives for the lab and the netns runtime. Every command is an argv array.
import { readdir } from 'node:fs/promises';
import { run, type ExecRequest, type ExecResult } from '../runtime/exec.ts';

const NETNS_DIR = '/run/netns';

export async function listNamespaces(): Promise<string[]> {
  return readdir(NETNS_DIR).catch(() => []);
}

export async function namespaceExists(name: string): Promise<boolean> {
  return (await listNamespaces()).includes(name);
}

/** Runs argv inside a namespace. */
export function inNamespace(ns: string, req: ExecRequest): Promise<ExecResult> {
  return run(['ip', 'netns', 'exec', ns, ...req.argv], { stdin: req.stdin, okExitCodes: req.okExitCodes, target: ns });
}

/** Runs `ip ARGS` against a namespace (cheaper than ip netns exec). */
export function ipIn(ns: string, ...args: string[]): Promise<ExecResult> {
  return run(['ip', '-n', ns, ...args], { target: ns });
}

/** Creates the namespace with loopback up; true when it was created. */
export async function ensureNamespace(name: string, sysctls: Record<string, string> = {}): Promise<boolean> {
  if (await namespaceExists(name)) return false;
  await run(['ip', 'netns', 'add', name]);
  await ipIn(name, 'link', 'set', 'lo', 'up');
  for (const [key, value] of Object.entries(sysctls)) {
    await inNamespace(name, { argv: ['sysctl', '-q', '-w', `${key}=${value}`] });
  }
  return true;
}

/** Kills what still runs inside (lab servers), then removes the namespace and its interfaces. */
export async function deleteNamespace(name: string): Promise<boolean> {
  if (!(await namespaceExists(name))) return false;
  const pids = (await run(['ip', 'netns', 'pids', name], { okExitCodes: [0, 1] })).stdout.split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run(['ip', 'netns', 'del', name]);
  return true;
}

export async function linkExists(ns: string, ifname: string): Promise<boolean> {
  const r = await run(['ip', '-n', ns, 'link', 'show', 'dev', ifname], { okExitCodes: [0, 1, 255] });
  return r.code === 0;
}

/**
 * A veth pair: `outer` in the namespace `outerNs` (enslaved to `bridge`), `inner` in `innerNs`.
 * Both ends are created in one command, so a failure leaves no half pair behind.
 */
export async function addVeth(opts: { outerNs: string; outer: string; bridge: string; innerNs: string; inner: string; innerUp?: boolean }): Promise<void> {
  await ipIn(opts.outerNs, 'link', 'add', opts.outer, 'type', 'veth', 'peer', 'name', opts.inner, 'netns', opts.innerNs);
  await ipIn(opts.outerNs, 'link', 'set', opts.outer, 'master', opts.bridge, 'up');
  if (opts.innerUp ?? true) await ipIn(opts.innerNs, 'link', 'set', opts.inner, 'up');
}
