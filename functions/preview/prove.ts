// `natops preview --prove`: each side of a change built in a throwaway lab of its own (network
// namespaces named pv<8 hex>, removed afterwards), a host behind every mapping, and real packets
// (preview/probes.ts plans them). Nothing live is touched: the lab is the preview's alone.
// Bounded: one prove at a time on a machine, at most `limit` probes per side, a time limit.
// A prove killed midway (SIGKILL) leaves its lab; the next prove removes a lab whose owner is gone.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NatopsError, errorMessage } from '../../common/errors.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import type { Desired } from '../../gitops/manifests/validate.ts';
import { judge, planProbes, type Probe, type ProbeOutcome, type Proof, type SideProof } from '../../preview/probes.ts';
import { Lab, STATE_ROOT } from '../../runtime/netns/lab.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { reconcileAll } from '../../runtime/reconcile.ts';

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

/** One prove at a time on this machine: waits for another's lock (or takes it from a dead owner). */
async function lock(deadline: number): Promise<() => Promise<void>> {
  await mkdir(STATE_ROOT, { recursive: true });
  for (;;) {
    try {
      await writeFile(LOCK, String(process.pid), { flag: 'wx' });
      return () => rm(LOCK, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = await ownerOf(LOCK);
      if (pid === undefined || !alive(pid)) await rm(LOCK, { force: true });
      else if (Date.now() > deadline) throw new ProveError(`another prove (pid ${pid}) holds ${LOCK}`);
      else await new Promise((r) => setTimeout(r, 200));
    }
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

/**
 * Base and head, each in a lab of its own, built for the `changed` gateways (at most
 * `maxGateways` of them, by name) and the rest of their VPCs; the base only when it has them.
 */
export async function provePreview(
  base: Desired | undefined,
  head: Desired,
  changed: readonly string[],
  opts: ProveOptions = PROVE_DEFAULTS,
): Promise<Proof> {
  const proven = [...changed].sort().slice(0, opts.maxGateways);
  if (!proven.length)
    return { head: { outcomes: [], total: 0, unprobed: [] }, limit: opts.limit, gateways: { proven, changed: 0 } };
  base = base && provedPart(base, proven);
  head = provedPart(head, proven);
  const deadline = Date.now() + opts.timeLimitMs;
  const guard = new SignalGuard();
  try {
    const unlock = await lock(deadline);
    try {
      await sweepProveLabs();
      // the two labs share nothing: built and probed side by side; both are removed before a
      // signal that stopped one ends the process
      const sides = await Promise.allSettled([
        base?.gateways.size ? proveSide(base, deadline, opts, guard) : undefined,
        proveSide(head, deadline, opts, guard),
      ]);
      const [baseProof, headProof] = sides.map((r) => {
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      });
      if (!headProof) throw new ProveError('the head was not proven');
      return {
        ...(baseProof ? { base: baseProof } : {}),
        head: headProof,
        limit: opts.limit,
        gateways: { proven, changed: changed.length },
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
 * makes is left behind), the lab is removed, and the signal then ends the process as it would have.
 */
class SignalGuard {
  private signal: NodeJS.Signals | undefined;
  private readonly stoppers = new Set<() => void>();
  private readonly signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  private readonly handler = (signal: NodeJS.Signals) => {
    this.signal ??= signal;
    for (const stop of this.stoppers) stop();
  };
  constructor() {
    for (const s of this.signals) process.on(s, this.handler);
  }
  /** `stop` runs at a signal (kills what waits on the network) until the returned function */
  onStop(stop: () => void): () => void {
    this.stoppers.add(stop);
    return () => this.stoppers.delete(stop);
  }
  check(): void {
    if (this.signal) throw new StoppedError(`stopped by ${this.signal}`);
  }
  /** The handlers off; a signal caught meanwhile now ends the process. */
  off(): void {
    for (const s of this.signals) process.off(s, this.handler);
    if (this.signal) process.kill(process.pid, this.signal);
  }
}

async function proveSide(
  desired: Desired,
  deadline: number,
  opts: ProveOptions,
  guard: SignalGuard,
): Promise<SideProof> {
  // nothing to build (every changed gateway deleted at head): no lab at all
  if (!desired.gateways.size) return { outcomes: [], total: 0, unprobed: [] };
  const network = networkModel(desired);
  const plan = planProbes([...desired.gateways.values()], network, opts.limit);
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
    ...(error ? { error } : {}),
  });
  try {
    const dir = join(STATE_ROOT, lab.names.prefix);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'owner'), String(process.pid));
    await lab.up(network);
    guard.check();
    // a gateway that cannot be built fails its probes, not the others'
    const built = new Set<string>();
    const failed = new Map<string, string>();
    try {
      for (const r of await reconcileAll(new NetnsRuntime(lab), desired.gateways.values())) built.add(r.name);
    } catch (e) {
      for (const name of desired.gateways.keys()) if (!built.has(name)) failed.set(name, errorMessage(e));
    }
    guard.check();
    for (const h of plan.hosts) {
      await lab.addHost({ name: h.name, net: h.net, ip: h.ip });
      guard.check();
    }
    await Promise.all(plan.hosts.map((h) => serve(lab, h, procs)));
    guard.check();
    const outcomes: ProbeOutcome[] = [];
    const byHost = new Map<string, Probe[]>();
    for (const p of plan.probes)
      if (failed.has(p.gateway))
        outcomes.push({
          gateway: p.gateway,
          kind: p.kind,
          mapping: p.mapping,
          answered: false,
          detail: `not built: ${failed.get(p.gateway)}`,
        });
      else byHost.set(p.from, [...(byHost.get(p.from) ?? []), p]);
    for (const [host, probes] of byHost) {
      if (Date.now() + opts.probeTimeoutMs > deadline)
        return side(outcomes, 'the time limit ran out before every probe was sent');
      const replies = await send(lab, host, probes, opts.probeTimeoutMs, procs);
      guard.check();
      outcomes.push(...probes.map((p, i) => judge(p, replies[i] ?? { error: 'no reply from the probe client' })));
    }
    // the plan's order, so base and head read side by side
    const order = new Map(plan.probes.map((p, i) => [p.mapping + p.gateway, i]));
    outcomes.sort((a, b) => (order.get(a.mapping + a.gateway) ?? 0) - (order.get(b.mapping + b.gateway) ?? 0));
    return side(outcomes);
  } catch (e) {
    guard.check(); // a probe server killed by a signal is not a lab that could not be built
    return side([], `the lab could not be built: ${errorMessage(e)}`);
  } finally {
    offStop();
    killAll();
    await lab.down();
  }
}

/** Starts `natops probe` in a host; resolves once it listens. */
function serve(lab: Lab, h: { name: string; tcp: number[]; udp: number[] }, procs: ChildProcess[]): Promise<void> {
  const argv = [
    'netns',
    'exec',
    lab.names.host(h.name),
    process.execPath,
    NATOPS,
    'probe',
    '--name',
    h.name,
    '--tcp',
    h.tcp.join(','),
    '--udp',
    h.udp.join(','),
  ];
  const child = spawn('ip', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(child);
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && resolve());
    child.on('exit', (code) => reject(new ProveError(`probe server in host ${h.name} exited ${code}: ${err.trim()}`)));
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
  const argv = [
    'netns',
    'exec',
    lab.names.host(host),
    process.execPath,
    NATOPS,
    'probe',
    '--send',
    '--timeout',
    String(timeoutMs),
  ];
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
  child.stdin!.end(JSON.stringify(probes.map((p) => ({ protocol: p.protocol, to: p.to, port: p.port }))));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new ProveError(`probe client in host ${host} exited ${code}: ${err.trim()}`);
  return JSON.parse(out) as ({ line: string } | { error: string })[];
}
