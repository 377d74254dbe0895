// `natops preview --prove`: each side of a change built in a throwaway lab of its own (network
// namespaces named pv<8 hex>, removed afterwards), a host behind every mapping, and real packets
// (preview/probes.ts plans them). Nothing live is touched: the lab is the preview's alone.
// Bounded: one prove at a time on a machine, at most `limit` probes per side, a time limit.
// A prove killed midway (SIGKILL) leaves its lab; the next prove removes a lab whose owner is gone.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatopsError, errorMessage } from '../../common/errors.ts';
import type { NetworkModel } from '../../dataplane/network.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import type { Desired } from '../../gitops/manifests/validate.ts';
import {
  judge,
  keepProbes,
  planProbes,
  sample,
  type ProbePlan,
  type Probe,
  type ProbeOutcome,
  type Proof,
  type SideProof,
} from '../../preview/probes.ts';
import { Lab, STATE_ROOT } from '../../runtime/netns/lab.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { GatewaysFailedError, reconcileAll } from '../../runtime/reconcile.ts';

export interface ProveOptions {
  /** the most probes sent per side */
  limit: number;
  /** the most changed gateways proven (by name); each brings the others of its VPC along */
  maxGateways: number;
  /** the whole prove, both sides */
  timeLimitMs: number;
  /** how long each probe waits for its answer */
  probeTimeoutMs: number;
}

export const PROVE_DEFAULTS: ProveOptions = { limit: 50, maxGateways: 10, timeLimitMs: 120_000, probeTimeoutMs: 2_000 };

const LAB_NAME = /^pv[0-9a-f]{8}$/;
const LOCK = join(STATE_ROOT, 'prove.lock');

// bin/natops.js: two levels above functions/preview/prove.ts and above its build's dist/chunks/
const NATOPS = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));

export class ProveError extends NatopsError {}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

async function ownerOf(file: string): Promise<number | undefined> {
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Removes the labs of proves whose process is gone (killed midway). Returns their names. */
export async function sweepProveLabs(): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(STATE_ROOT).catch((): string[] => [])) {
    if (!LAB_NAME.test(name)) continue;
    const pid = await ownerOf(join(STATE_ROOT, name, 'owner'));
    if (pid !== undefined && alive(pid)) continue;
    await new Lab(name).down();
    swept.push(name);
  }
  return swept;
}

/**
 * One prove at a time on this machine: the lock file is linked into place whole (pid and all), so
 * no one reads it half written. Waits for another's until `deadline` (undefined then), and takes it
 * from an owner that is gone.
 */
async function lock(deadline: number): Promise<(() => Promise<void>) | undefined> {
  await mkdir(STATE_ROOT, { recursive: true });
  const mine = `${LOCK}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(mine, String(process.pid));
  try {
    for (;;) {
      try {
        await link(mine, LOCK);
        return () => rm(LOCK, { force: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = await ownerOf(LOCK);
        if (pid !== undefined && !alive(pid)) await rm(LOCK, { force: true });
        else if (Date.now() > deadline) return undefined;
        else await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await rm(mine, { force: true });
  }
}

/**
 * The part of `desired` a prove builds: the gateways of the VPCs these gateways are in (a VPC's
 * static routes may lead to any of its gateways), and those VPCs' networks. An unchanged VPC is
 * not built: a pull request's cost is what it changes.
 */
export function provedPart(desired: Desired, gateways: readonly string[]): Desired {
  const vpcs = new Set(gateways.flatMap((n) => desired.gateways.get(n)?.vpc ?? []));
  return {
    ...desired,
    gateways: new Map([...desired.gateways].filter(([, g]) => vpcs.has(g.vpc))),
    vpcs: new Map([...desired.vpcs].filter(([n]) => vpcs.has(n))),
    subnets: new Map([...desired.subnets].filter(([, s]) => vpcs.has(s.vpc))),
  };
}

/** A side with nothing built. */
const nothing = (error?: string): SideProof => ({
  outcomes: [],
  total: 0,
  unprobed: [],
  unprobedTotal: 0,
  ...(error ? { error } : {}),
});

/**
 * Base and head, each in a lab of its own, built for the `changed` gateways (at most
 * `maxGateways` of them, by name) and the rest of their VPCs; the base only when it has them.
 * Both sides probe the same mappings: at most `limit` of those either side has, spread evenly.
 */
export async function provePreview(
  base: Desired | undefined,
  head: Desired,
  changed: readonly string[],
  opts: ProveOptions = PROVE_DEFAULTS,
): Promise<Proof> {
  const proven = [...changed].sort().slice(0, opts.maxGateways);
  const gateways = { proven, changed: changed.length };
  if (!proven.length) return { head: nothing(), limit: opts.limit, gateways };
  // each side planned once; both probe the same mappings, at most `limit` of those either has
  const sides = [base && provedPart(base, proven), provedPart(head, proven)].map((desired) => {
    if (!desired?.gateways.size) return undefined;
    const network = networkModel(desired);
    return { desired, network, plan: planProbes([...desired.gateways.values()], network, Infinity) };
  });
  const keys = new Set(sample([...new Set(sides.flatMap((s) => s?.plan.probes.map((x) => x.key) ?? []))], opts.limit));
  const guard = new SignalGuard();
  try {
    const unlock = await lock(Date.now() + opts.timeLimitMs);
    if (!unlock)
      return { head: nothing('another prove held this machine for the whole time limit'), limit: opts.limit, gateways };
    try {
      await sweepProveLabs();
      // the time limit counts from here, not from the wait for the lock
      const deadline = Date.now() + opts.timeLimitMs;
      // the two labs share nothing: built and probed side by side; both are removed before a
      // signal that stopped one ends the process
      const settled = await Promise.allSettled(
        sides.map((s) => s && proveSide(s.desired, s.network, keepProbes(s.plan, keys), deadline, opts, guard)),
      );
      const [baseProof, headProof] = settled.map((r) => {
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      });
      return {
        ...(baseProof ? { base: baseProof } : {}),
        head: headProof ?? nothing(),
        limit: opts.limit,
        gateways,
      };
    } finally {
      await unlock();
    }
  } finally {
    guard.off();
  }
}

class StoppedError extends ProveError {}

/**
 * A signal mid-prove stops it at the next step (a step in flight finishes first, so nothing it
 * makes is left behind) and the lab is removed. In a process with its own handler for the signal
 * (`natops serve` shuts down gracefully) that handler runs as well; in one without (the CLI) the
 * signal is sent again once the lab is gone, to end the process as it would have.
 */
class SignalGuard {
  private signal: NodeJS.Signals | undefined;
  private readonly stoppers = new Set<() => void>();
  private readonly signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  private readonly handledElsewhere = new Set<NodeJS.Signals>();
  private readonly handler = (signal: NodeJS.Signals) => {
    this.signal ??= signal;
    for (const stop of this.stoppers) stop();
  };
  constructor() {
    for (const s of this.signals) {
      if (process.listenerCount(s) > 0) this.handledElsewhere.add(s);
      process.on(s, this.handler);
    }
  }
  /** `stop` runs at a signal (kills what waits on the network) until the returned function */
  onStop(stop: () => void): () => void {
    this.stoppers.add(stop);
    return () => this.stoppers.delete(stop);
  }
  check(): void {
    if (this.signal) throw new StoppedError(`stopped by ${this.signal}`);
  }
  off(): void {
    for (const s of this.signals) process.off(s, this.handler);
    if (this.signal && !this.handledElsewhere.has(this.signal)) process.kill(process.pid, this.signal);
  }
}

/** A child's end: its exit code, or the error that kept it from running. */
function ended(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
}

async function proveSide(
  desired: Desired,
  network: NetworkModel,
  plan: ProbePlan,
  deadline: number,
  opts: ProveOptions,
  guard: SignalGuard,
): Promise<SideProof> {
  const lab = new Lab(`pv${randomBytes(4).toString('hex')}`);
  const procs: ChildProcess[] = [];
  const killAll = () => {
    for (const p of procs) p.kill('SIGKILL');
  };
  const offStop = guard.onStop(killAll);
  const side = (outcomes: ProbeOutcome[], error?: string): SideProof => ({
    outcomes,
    total: plan.total,
    unprobed: plan.unprobed,
    unprobedTotal: plan.unprobedTotal,
    ...(error ? { error } : {}),
  });
  try {
    const dir = join(STATE_ROOT, lab.names.prefix);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'owner'), String(process.pid));
    await lab.up(network);
    guard.check();
    // a gateway that cannot be built fails its probes, not the others'
    const failed = new Map<string, string>();
    try {
      await reconcileAll(new NetnsRuntime(lab), desired.gateways.values());
    } catch (e) {
      if (!(e instanceof GatewaysFailedError)) throw e;
      for (const f of e.failures) failed.set(f.gateway, errorMessage(f.error));
    }
    guard.check();
    for (const h of plan.hosts) {
      await lab.addHost({ name: h.name, net: h.net, ip: h.ip });
      guard.check();
    }
    await Promise.all(plan.hosts.map((h) => serve(lab, h, procs)));
    guard.check();
    const outcomes: ProbeOutcome[] = [];
    const notSent = (p: Probe, detail: string): ProbeOutcome => ({
      gateway: p.gateway,
      kind: p.kind,
      key: p.key,
      mapping: p.mapping,
      answered: false,
      detail,
    });
    const byHost = new Map<string, Probe[]>();
    for (const p of plan.probes) {
      const why = failed.get(p.gateway);
      if (why !== undefined) outcomes.push(notSent(p, `not built: ${why}`));
      else {
        const mine = byHost.get(p.from);
        if (mine) mine.push(p);
        else byHost.set(p.from, [p]);
      }
    }
    let late = false;
    for (const [host, probes] of byHost) {
      // only the probes that can still be answered before the deadline are sent
      const room = Math.max(0, Math.floor((deadline - Date.now()) / opts.probeTimeoutMs) - 1);
      const now = probes.slice(0, room);
      for (const p of probes.slice(room)) outcomes.push(notSent(p, 'not sent: the time limit ran out'));
      late ||= now.length < probes.length;
      if (!now.length) continue;
      const replies = await send(lab, host, now, opts.probeTimeoutMs, procs);
      guard.check();
      outcomes.push(...now.map((p, i) => judge(p, replies[i] ?? { error: 'no reply from the probe client' })));
    }
    // the plan's order, so base and head read side by side
    const order = new Map(plan.probes.map((p, i) => [p.key, i]));
    outcomes.sort((a, b) => (order.get(a.key) ?? 0) - (order.get(b.key) ?? 0));
    return side(outcomes, late ? 'the time limit ran out before every probe was sent' : undefined);
  } catch (e) {
    guard.check(); // a probe server killed by a signal is not a lab that could not be built
    return side([], `the lab could not be built: ${errorMessage(e)}`);
  } finally {
    offStop();
    killAll();
    await lab.down();
  }
}

/** `ip netns exec HOST natops probe ARGS`: natops's probe, run inside a lab host. */
const probeArgv = (lab: Lab, host: string, args: string[]) => [
  'netns',
  'exec',
  lab.names.host(host),
  process.execPath,
  NATOPS,
  'probe',
  ...args,
];

/** How long a probe server may take to listen. */
const SERVE_TIMEOUT_MS = 15_000;

/**
 * Starts `natops probe` in a host; resolves once it listens. It lives while its stdin is open, so
 * a prove killed outright (SIGKILL) leaves no server behind.
 */
function serve(lab: Lab, h: { name: string; tcp: number[]; udp: number[] }, procs: ChildProcess[]): Promise<void> {
  const argv = probeArgv(lab, h.name, [
    '--name',
    h.name,
    '--tcp',
    h.tcp.join(','),
    '--udp',
    h.udp.join(','),
    '--while-stdin',
  ]);
  const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new ProveError(`probe server in host ${h.name} did not listen within ${SERVE_TIMEOUT_MS} ms`));
    }, SERVE_TIMEOUT_MS);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new ProveError(`probe server in host ${h.name}: ${e.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new ProveError(`probe server in host ${h.name} exited ${code}: ${err.trim()}`));
    });
  });
}

/** Sends a host's probes from inside it (`natops probe --send`), one after another. */
async function send(
  lab: Lab,
  host: string,
  probes: Probe[],
  timeoutMs: number,
  procs: ChildProcess[],
): Promise<({ line: string } | { error: string })[]> {
  const argv = probeArgv(lab, host, ['--send', '--timeout', String(timeoutMs)]);
  const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  child.stdin!.on('error', () => undefined); // a client that died is said by its exit below
  child.stdin!.end(JSON.stringify(probes.map((p) => ({ protocol: p.protocol, to: p.to, port: p.port }))));
  // each probe waits at most timeoutMs; the client gets that plus its own start
  const timer = setTimeout(() => child.kill('SIGKILL'), probes.length * timeoutMs + 10_000);
  const code = await ended(child).finally(() => clearTimeout(timer));
  if (code !== 0)
    return probes.map(() => ({ error: `the probe client in host ${host} failed (${code}): ${err.trim()}` }));
  try {
    return JSON.parse(out) as ({ line: string } | { error: string })[];
  } catch {
    return probes.map(() => ({ error: `the probe client in host ${host} wrote no answers` }));
  }
}
