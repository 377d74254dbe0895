// Randomized interleavings of the GitOps loop, reproducible from a seed: a seed gives a sequence
// of steps (pushes, reverts, invalid commits, commits delivered late or twice, worker SIGKILLs,
// a Redis restart), an Interleaver runs them against a PipelineHarness (real Redis, Git, worker
// processes, namespaces) and then checks that what is live in every gateway is what the newest
// commit asks for (for a gateway that is invalid there: the newest valid state natops planned),
// that no other gateway exists, that the newest commit's statuses say so, and one mapping with
// real packets. Any difference throws with the seed, the steps and what differed.
import { readdir, readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { sign } from '@octokit/webhooks-methods';
import { compileGateway } from '../../dataplane/compile.ts';
import { diffStates, isEmptyChangeSet } from '../../dataplane/diff.ts';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { describeChanges, ruleDiff } from '../../dataplane/plan-text.ts';
import { liveSummary } from '../../functions/jobs/finalize.ts';
import { localPushPayload } from '../../gitops/git/local-push.ts';
import { notifyPush } from '../../gitops/hook/delivery.ts';
import { refusesCommit } from '../../gitops/manifests/issues.ts';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests, type ValidationResult } from '../../gitops/manifests/validate.ts';
import { QUEUE_NAMES } from '../../queue/jobs.ts';
import { gatewayContext, NETWORK_CONTEXT, SUMMARY_CONTEXT, type CommitStatus } from '../../state/statuses.ts';
import { run } from '../../common/exec.ts';
import { inNamespace } from '../../runtime/netns/netns.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { subnet, toFiles, type Obj, type SeedObjects } from './manifests.ts';
import { SECRET, type PipelineHarness } from './pipeline.ts';

// ---- the seeded generator (pure) ---------------------------------------------------------------

/** mulberry32: a small, fast PRNG; the same seed gives the same numbers on every machine. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(): number {
    return this.next();
  }
  /** lo..hi inclusive */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    if (!list.length) throw new RangeError('pick from an empty list');
    return list[Math.floor(this.next() * list.length)]!;
  }
}

/** A port forward of gateway ngw, to host 10.0.1.10 ("web"). */
export interface Forward {
  eip: '112' | '113';
  port: number;
  proto: 'tcp' | 'udp';
  to: 80 | 8080;
}

/** The tracked tree of one commit, as the few things the sequences change. */
export interface Tree {
  /** ngw's port forwards */
  forwards: Forward[];
  /** ngw's floating IP on 192.168.0.111, to this VPC host */
  fip: '10.0.1.5' | '10.0.1.6' | null;
  /** ngw's SNATs on 192.168.0.112 */
  snats: string[];
  /** ngw has a third EIP, 192.168.0.113 */
  eip3: boolean;
  /** the second gateway (VPC test-vpc-2, EIP 192.168.0.120): its TCP forwards to 10.0.2.10:80 */
  ngw2: number[] | null;
}

/** What every sequence starts from: the seed's gateway ngw (a floating IP, a port forward, an SNAT), no ngw2. */
export const BASE: Tree = {
  forwards: [{ eip: '112', port: 8888, proto: 'tcp', to: 80 }],
  fip: '10.0.1.5',
  snats: ['10.0.1.0/24'],
  eip3: false,
  ngw2: null,
};

export const GATEWAYS = ['ngw', 'ngw2'] as const;
const PORTS = [7001, 7002, 7003, 7004, 8888];
const NGW2_PORTS = [8000, 8001, 8002];
const SNAT_CIDRS = ['10.0.1.0/24', '10.0.1.0/25', '10.0.1.128/25'];

/** Ways a commit is made invalid: the first four break one gateway, the last the whole commit. */
export type Breakage = 'outside-vpc' | 'duplicate-forward' | 'unknown-eip' | 'ngw2-outside-vpc' | 'unparsable';

export type Delivery = 'hook' | 'direct' | 'hidden';
export type Repeat = 'no' | 'same-id-at-once' | 'same-id-after';

export type Step =
  /** a commit of `tree` (plus `broken`), pushed: through the hook, or with the hook off and delivered at once by hand, or not delivered (hidden) */
  | { kind: 'commit'; n: number; tree: Tree; broken?: Breakage; delivery: Delivery; what: string }
  /**
   * commit #n delivered (again, or late); `repeat`: the same delivery (one X-GitHub-Delivery id)
   * sent twice, at once or once answered (then it must be dropped as a duplicate)
   */
  | { kind: 'deliver'; n: number; repeat: Repeat }
  /** several commits delivered at the same time, so their plans race */
  | { kind: 'burst'; ns: number[] }
  /** SIGKILL one or both worker processes (mid-job: while one runs a command), replacements started at once */
  | { kind: 'kill'; which: 'one' | 'both'; midJob: boolean }
  /** redis-server SIGKILLed (mid-job: while a handler job is active) and started again on its append-only file */
  | { kind: 'redis-restart'; midJob: boolean }
  | { kind: 'pause'; ms: number };

export interface Sequence {
  seed: number;
  steps: Step[];
  /** the newest commit's number */
  tip: number;
  /** draws for the traffic check, made with the steps so a seed fixes them too */
  draws: { positive: number; negative: number; negativeIndex: number };
}

const fwdText = (f: Forward) => `${f.proto} .${f.eip}:${f.port}->${f.to}`;

export function describeTree(t: Tree): string {
  const ngw = [
    `fwd ${t.forwards.map(fwdText).join(', ') || '-'}`,
    `fip ${t.fip ?? '-'}`,
    `snat ${t.snats.join(', ') || '-'}`,
    ...(t.eip3 ? ['eip .113'] : []),
  ];
  return `ngw[${ngw.join('; ')}]${t.ngw2 ? ` ngw2[fwd ${t.ngw2.map((p) => `.120:${p}`).join(', ') || '-'}]` : ''}`;
}

export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'commit':
      return `commit #${s.n} (${s.delivery}): ${s.what}${s.broken ? `, made invalid: ${s.broken}` : ''} => ${describeTree(s.tree)}`;
    case 'deliver':
      return `deliver #${s.n}${s.repeat === 'same-id-at-once' ? ' twice at once with one delivery id' : s.repeat === 'same-id-after' ? ' twice with one delivery id, one after the other' : ''}`;
    case 'burst':
      return `deliver ${s.ns.map((n) => `#${n}`).join(', ')} at the same time`;
    case 'kill':
      return `SIGKILL ${s.which === 'both' ? 'both worker processes' : 'a worker process'}${s.midJob ? ' mid-job' : ''}, start replacements`;
    case 'redis-restart':
      return `redis-server SIGKILLed${s.midJob ? ' mid-job' : ''} and restarted`;
    case 'pause':
      return `pause ${s.ms} ms`;
  }
}

const freePort = (t: Tree, eip: Forward['eip'], proto: Forward['proto']) =>
  PORTS.filter((p) => !t.forwards.some((f) => f.eip === eip && f.proto === proto && f.port === p));

/** One small valid change of the tree; returns what it did. */
function mutate(rng: Rng, tree: Tree): { tree: Tree; what: string } {
  const t = structuredClone(tree);
  const changes: (() => string | undefined)[] = [
    () => {
      const eip = t.eip3 && rng.chance(0.4) ? '113' : '112';
      const proto = rng.chance(0.2) ? 'udp' : 'tcp';
      const ports = freePort(t, eip, proto);
      if (!ports.length) return undefined;
      const f: Forward = { eip, port: rng.pick(ports), proto, to: rng.chance(0.5) ? 80 : 8080 };
      t.forwards.push(f);
      return `add forward ${fwdText(f)}`;
    },
    () => {
      if (!t.forwards.length) return undefined;
      const [f] = t.forwards.splice(rng.int(0, t.forwards.length - 1), 1);
      return `remove forward ${fwdText(f!)}`;
    },
    () => {
      if (!t.forwards.length) return undefined;
      const f = rng.pick(t.forwards);
      const ports = freePort(t, f.eip, f.proto);
      if (!ports.length) return undefined;
      const before = fwdText(f);
      f.port = rng.pick(ports);
      return `move forward ${before} to port ${f.port}`;
    },
    () => {
      if (!t.forwards.length) return undefined;
      const f = rng.pick(t.forwards);
      f.to = f.to === 80 ? 8080 : 80;
      return `forward ${f.proto} .${f.eip}:${f.port} now to port ${f.to}`;
    },
    () => {
      t.fip =
        t.fip === null
          ? rng.pick(['10.0.1.5', '10.0.1.6'] as const)
          : rng.chance(0.5)
            ? null
            : t.fip === '10.0.1.5'
              ? '10.0.1.6'
              : '10.0.1.5';
      return `floating IP ${t.fip ?? 'removed'}`;
    },
    () => {
      const cidr = rng.pick(SNAT_CIDRS);
      t.snats = t.snats.includes(cidr)
        ? t.snats.filter((c) => c !== cidr)
        : SNAT_CIDRS.filter((c) => c === cidr || t.snats.includes(c));
      return `SNAT ${cidr} ${t.snats.includes(cidr) ? 'added' : 'removed'}`;
    },
    () => {
      t.eip3 = !t.eip3;
      if (!t.eip3) t.forwards = t.forwards.filter((f) => f.eip !== '113');
      return t.eip3 ? 'add EIP .113' : 'remove EIP .113 (and its forwards)';
    },
    () => {
      t.ngw2 = t.ngw2 ? null : [rng.pick(NGW2_PORTS)];
      return t.ngw2 ? 'add gateway ngw2' : 'remove gateway ngw2';
    },
    () => {
      if (!t.ngw2) return undefined;
      const free = NGW2_PORTS.filter((p) => !t.ngw2!.includes(p));
      if (t.ngw2.length && rng.chance(0.4)) t.ngw2.splice(rng.int(0, t.ngw2.length - 1), 1);
      else if (free.length) t.ngw2.push(rng.pick(free));
      else return undefined;
      return `ngw2 forwards ${t.ngw2.join(', ') || 'none'}`;
    },
  ];
  for (;;) {
    const what = rng.pick(changes)();
    if (what) return { tree: t, what };
  }
}

function breakages(t: Tree): Breakage[] {
  return [
    'outside-vpc',
    'unknown-eip',
    'unparsable',
    ...(t.forwards.length ? ['duplicate-forward' as const] : []),
    ...(t.ngw2 ? ['ngw2-outside-vpc' as const] : []),
  ];
}

function repeat(rng: Rng): Repeat {
  const r = rng.float();
  return r < 0.2 ? 'same-id-at-once' : r < 0.35 ? 'same-id-after' : 'no';
}

/** The steps of one sequence, from its seed alone. Commit #0 is the reset to BASE, done before. */
export function generateSequence(seed: number): Sequence {
  const rng = new Rng(seed);
  const steps: Step[] = [];
  const trees: Tree[] = [BASE];
  const commits = rng.int(2, 4);
  const delivered = new Set<number>([0]);
  for (let n = 1; n <= commits; n++) {
    let tree: Tree;
    let what: string;
    if (n >= 2 && rng.chance(0.25)) {
      const k = rng.int(0, n - 2);
      tree = structuredClone(trees[k]!);
      what = `revert to the tree of #${k}`;
    } else {
      ({ tree, what } = mutate(rng, trees[n - 1]!));
      if (rng.chance(0.3)) {
        const more = mutate(rng, tree);
        tree = more.tree;
        what += `, ${more.what}`;
      }
    }
    const broken = rng.chance(0.25) ? rng.pick(breakages(tree)) : undefined;
    const r = rng.float();
    const delivery: Delivery = r < 0.12 ? 'hook' : r < 0.7 ? 'direct' : 'hidden';
    steps.push({ kind: 'commit', n, tree, ...(broken ? { broken } : {}), delivery, what });
    trees.push(tree);
    if (delivery !== 'hidden') delivered.add(n);
    if (rng.chance(0.35)) {
      const k = rng.int(0, n);
      steps.push({ kind: 'deliver', n: k, repeat: repeat(rng) });
      delivered.add(k);
    }
    if (n >= 2 && rng.chance(0.15)) {
      const ns = [...new Set([rng.int(0, n), rng.int(0, n), rng.int(0, n)])];
      if (ns.length >= 2) {
        steps.push({ kind: 'burst', ns });
        for (const k of ns) delivered.add(k);
      }
    }
    if (rng.chance(0.25)) steps.push({ kind: 'pause', ms: rng.int(50, 800) });
  }
  // The newest commit reaches natops (a lost delivery is not natops's to know of), sometimes twice.
  if (!delivered.has(commits) || rng.chance(0.15)) steps.push({ kind: 'deliver', n: commits, repeat: repeat(rng) });
  // A late redelivery of an older commit after the newest.
  if (rng.chance(0.25)) steps.push({ kind: 'deliver', n: rng.int(0, commits - 1), repeat: repeat(rng) });

  const firstCommit = steps.findIndex((s) => s.kind === 'commit');
  const insert = (s: Step) => steps.splice(rng.int(firstCommit + 1, steps.length), 0, s);
  if (rng.chance(0.45)) insert({ kind: 'kill', which: rng.chance(0.3) ? 'both' : 'one', midJob: rng.chance(0.75) });
  if (rng.chance(0.25)) insert({ kind: 'redis-restart', midJob: rng.chance(0.6) });
  return {
    seed,
    steps,
    tip: commits,
    draws: { positive: rng.float(), negative: rng.float(), negativeIndex: rng.float() },
  };
}

// ---- manifests ---------------------------------------------------------------------------------

const EIP = (last: string) => `192.168.0.${last}`;

/** The whole tracked tree of a commit. */
export function treeFiles(seed: SeedObjects, t: Tree, broken?: Breakage): ManifestFile[] {
  const s = structuredClone(seed);
  const spec = s.gateway.spec as Obj;
  spec.eips = ['111', '112', ...(t.eip3 ? ['113'] : [])].map((e) => ({
    eipCIDR: `${EIP(e)}/24`,
    gateway: '192.168.0.254',
  }));
  const dnat = (eip: string, externalPort: number, protocol: string, internalIp: string, internalPort: number) => ({
    eip,
    externalPort,
    protocol,
    internalIp,
    internalPort,
  });
  const dnats = t.forwards.map((f) => dnat(EIP(f.eip), f.port, f.proto, '10.0.1.10', f.to));
  const fips = t.fip ? [{ eip: EIP('111'), internalIp: t.fip }] : [];
  const snats = t.snats.map((c) => ({ eip: EIP('112'), internalCIDR: c }));
  if (broken === 'outside-vpc') dnats.push(dnat(EIP('112'), 7999, 'tcp', '10.9.9.9', 80));
  if (broken === 'unknown-eip') dnats.push(dnat(EIP('114'), 7998, 'tcp', '10.0.1.10', 80));
  if (broken === 'duplicate-forward') {
    const f = t.forwards[0]!;
    dnats.push(dnat(EIP(f.eip), f.port, f.proto, '10.0.1.10', f.to === 80 ? 8080 : 80));
  }
  // Empty lists are left out, as people write them.
  for (const [key, list] of [
    ['floatingIpRules', fips],
    ['dnatRules', dnats],
    ['snatRules', snats],
  ] as const) {
    if (list.length) spec[key] = list;
    else delete spec[key];
  }
  s.extra = [
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'Vpc',
      metadata: { name: 'test-vpc-2' },
      spec: { staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: '10.0.2.254', policy: 'policyDst' }] },
    },
    subnet('sn-b', 'test-vpc-2', '10.0.2.0/24', '10.0.2.1'),
  ];
  if (t.ngw2) {
    const internalIp = broken === 'ngw2-outside-vpc' ? '10.0.1.10' : '10.0.2.10';
    const rules = t.ngw2.map((p) => dnat(EIP('120'), p, 'tcp', '10.0.2.10', 80));
    if (broken === 'ngw2-outside-vpc') rules.push(dnat(EIP('120'), 8009, 'tcp', internalIp, 80));
    s.extra.push({
      apiVersion: 'kubeovn.io/v1',
      kind: 'VpcNatGateway',
      metadata: { name: 'ngw2' },
      spec: {
        vpc: 'test-vpc-2',
        subnet: 'sn-b',
        lanIp: '10.0.2.254',
        eips: [{ eipCIDR: `${EIP('120')}/24`, gateway: '192.168.0.254' }],
        ...(rules.length ? { dnatRules: rules } : {}),
      },
    });
  }
  const files = toFiles(s);
  if (broken === 'unparsable')
    files.push({ path: 'zz-broken.yaml', text: 'kind: VpcNatGateway\nmetadata:\n  name: [ngw\n' });
  return files;
}

// ---- what natops should have made live (pure) ---------------------------------------------------

export interface CommitRec {
  n: number;
  sha: string;
  /** the commit before it on the branch (what a delivery of it names as `before`) */
  parent: string;
  files: ManifestFile[];
  v: ValidationResult;
  label: string;
}

const GATEWAY_RESOURCE = /^VpcNatGateway\/(.+)$/;

export const isRefused = (v: ValidationResult) => v.issues.some(refusesCommit);
export const invalidGateways = (v: ValidationResult) =>
  new Set(v.issues.map((i) => GATEWAY_RESOURCE.exec(i.resource)?.[1]).filter((g): g is string => g !== undefined));

/**
 * Gateway `g` as natops must hold it: the newest commit natops planned (`planned`, oldest
 * first) that says anything about it: its spec there, or null when the commit has no such
 * gateway. A commit refused as a whole, or where `g` does not validate, keeps what was before.
 */
export function expectedGateway(
  g: string,
  commits: readonly CommitRec[],
  planned: ReadonlySet<string>,
): { spec: GatewaySpec | null; from: number | undefined } {
  for (const c of [...commits].reverse()) {
    if (!planned.has(c.sha) || isRefused(c.v)) continue;
    const spec = c.v.desired.gateways.get(g);
    if (spec) return { spec, from: c.n };
    if (invalidGateways(c.v).has(g)) continue;
    return { spec: null, from: c.n };
  }
  return { spec: null, from: undefined };
}

/** Whether natops planned a commit (rather than dropping it as older than one it had planned): it has statuses per gateway. */
export const wasPlanned = (statuses: readonly CommitStatus[]) =>
  statuses.some((s) => s.context.startsWith('natops/') || s.context === NETWORK_CONTEXT);

// ---- running sequences -------------------------------------------------------------------------

const HOSTS = {
  web: { net: 'sn', ip: '10.0.1.10/24', tcp: [80, 8080], udp: [80, 8080] },
  fip5: { net: 'sn', ip: '10.0.1.5/24', tcp: [80], udp: [] },
  fip6: { net: 'sn', ip: '10.0.1.6/24', tcp: [80], udp: [] },
  client: { net: 'sn', ip: '10.0.1.20/24', tcp: [], udp: [] },
  ext: { net: 'external', ip: '192.168.0.50/24', tcp: [9000], udp: [] },
  web2: { net: 'sn-b', ip: '10.0.2.10/24', tcp: [80], udp: [] },
} as const;

interface Probe {
  what: string;
  gateway: 'ngw' | 'ngw2';
  from: keyof typeof HOSTS;
  proto: 'tcp' | 'udp';
  ip: string;
  port: number;
  /** the first line the server sends, or undefined: nothing answers */
  expect: string | undefined;
}

export class SequenceFailure extends Error {}

/**
 * Drives sequences on one harness: the webhook and a planner in this process, the handlers and
 * two more planners in two worker processes (so a kill can hit a plan too, and plans can race).
 */
export class Interleaver {
  workers: ChildProcess[] = [];
  readonly runtime: NetnsRuntime;
  /** the branch's newest commit */
  private lastSha = '0'.repeat(40);

  private constructor(
    readonly p: PipelineHarness,
    readonly seed: SeedObjects,
  ) {
    this.runtime = new NetnsRuntime(p.lab.lab);
  }

  /** Pushes BASE, adds the lab hosts, moves the handlers to worker processes. */
  static async create(p: PipelineHarness, seed: SeedObjects): Promise<Interleaver> {
    const il = new Interleaver(p, seed);
    const files = treeFiles(seed, BASE);
    il.lastSha = await p.push(files, 'interleavings: base');
    const statuses = await p.settled(il.lastSha);
    if (statuses.get(SUMMARY_CONTEXT)?.state !== 'success')
      throw new Error(`the base did not apply: ${JSON.stringify([...statuses.values()])}`);
    for (const [name, h] of Object.entries(HOSTS)) await p.lab.host(name, h.net, h.ip);
    await Promise.all(
      Object.entries(HOSTS)
        .filter(([, h]) => h.tcp.length || h.udp.length)
        .map(([name, h]) => p.lab.serve(name, { tcp: [...h.tcp], udp: [...h.udp] })),
    );
    await p.running!.close();
    await p.start(['plan']);
    il.ensureWorkers();
    return il;
  }

  private alive = (w: ChildProcess) => w.exitCode === null && w.signalCode === null;

  private ensureWorkers(): void {
    this.workers = this.workers.filter(this.alive);
    while (this.workers.length < 2) this.workers.push(this.p.startWorkerProcess([...HANDLER_KINDS, 'plan']));
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.filter(this.alive).map(
        (w) =>
          new Promise((resolve) => {
            w.once('exit', resolve);
            w.kill('SIGKILL');
          }),
      ),
    );
    this.workers = [];
  }

  /** Commits the files; pushes them with the hook on, or off (then nothing is delivered). */
  private async commit(n: number, files: ManifestFile[], label: string, withHook: boolean): Promise<CommitRec> {
    const parent = this.lastSha;
    let sha: string;
    if (withHook) {
      sha = await this.p.push(files, label);
    } else {
      sha = await this.p.commitOnly(files, label);
      // The receiving side runs without hooks for this push only: nothing is delivered.
      await run([
        'git',
        '-C',
        this.p.work,
        'push',
        '--quiet',
        '--receive-pack=git -c core.hooksPath=/dev/null receive-pack',
        'origin',
        'HEAD:main',
      ]);
    }
    this.lastSha = sha;
    return { n, sha, parent, files, v: validateManifests(files), label };
  }

  /** One delivery, as the hook sends it; or one delivery sent twice with the same id. */
  private async deliver(c: CommitRec, repeat: Repeat): Promise<string> {
    const ref = 'refs/heads/main';
    if (repeat === 'no') {
      const d = await notifyPush(this.p.bare, { before: c.parent, after: c.sha, ref });
      if (d.status !== 202 && d.status !== 200) throw new Error(`delivery of #${c.n} answered ${d.status}: ${d.body}`);
      return `${d.status} ${JSON.parse(d.body).outcome}`;
    }
    const body = JSON.stringify(
      localPushPayload({
        repository: 'test/gitops',
        url: `file://${this.p.bare}`,
        ref,
        before: c.parent,
        after: c.sha,
        forced: false,
        commits: [],
        pusher: { name: 'natops test', email: 'test@example.com' },
      }),
    );
    const headers = {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': await sign(SECRET, body),
    };
    const send = async () => {
      const r = await fetch(`${this.p.running!.url}/webhook`, { method: 'POST', headers, body });
      return { status: r.status, outcome: ((await r.json()) as { outcome?: string }).outcome };
    };
    const answers = repeat === 'same-id-at-once' ? await Promise.all([send(), send()]) : [await send(), await send()];
    if (answers.some((a) => a.status !== 202 && a.status !== 200))
      throw new Error(`delivery of #${c.n} answered ${JSON.stringify(answers)}`);
    if (repeat === 'same-id-after' && answers[1]!.status !== 200)
      throw new Error(`a repeated delivery id was not dropped: ${JSON.stringify(answers)}`);
    return answers.map((a) => `${a.status} ${a.outcome}`).join(' | ');
  }

  private async activeJobs(): Promise<number> {
    const counts = await Promise.all(HANDLER_KINDS.map((k) => this.p.running!.queues.byName[k].getActiveCount()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Jobs to be run or running, in any queue (a flow's later jobs wait for their children). */
  private async jobsInFlight(): Promise<number> {
    let n = 0;
    for (const q of QUEUE_NAMES) {
      const c = await this.p.running!.queues.byName[q].getJobCounts(
        'waiting',
        'active',
        'delayed',
        'prioritized',
        'waiting-children',
      );
      n += Object.values(c).reduce((a, b) => a + b, 0);
    }
    return n;
  }

  /** A worker process running a command (a child process) right now, with that command. */
  private async busyWorker(): Promise<{ worker: ChildProcess; command: string } | undefined> {
    for (const w of this.workers.filter(this.alive)) {
      const pid = w.pid!;
      const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
      for (const t of tasks) {
        const children = (await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => ''))
          .trim()
          .split(/\s+/)
          .filter(Boolean);
        for (const c of children) {
          const cmd = (await readFile(`/proc/${c}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
          // tsx's esbuild service runs all along; a job's commands are ip, iptables-*, conntrack, arping, sysctl
          // (between fork and exec a child still shows node's command line)
          if (cmd.length && !cmd[0]!.includes('esbuild'))
            return {
              worker: w,
              command: cmd.includes('worker') ? '(a command being started)' : cmd.slice(0, 6).join(' '),
            };
        }
      }
    }
    return undefined;
  }

  private async kill(step: Extract<Step, { kind: 'kill' }>): Promise<string> {
    let victims = this.workers.filter(this.alive).slice(0, 1);
    let note = 'no command running seen';
    if (step.midJob) {
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && (await this.jobsInFlight()) > 0) {
        const busy = await this.busyWorker();
        if (busy) {
          victims = [busy.worker];
          note = `pid ${busy.worker.pid} was running: ${busy.command}`;
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    if (step.which === 'both') victims = this.workers.filter(this.alive);
    const active = await this.activeJobs().catch(() => -1);
    await Promise.all(
      victims.map(
        (w) =>
          new Promise((resolve) => {
            w.once('exit', resolve);
            w.kill('SIGKILL');
          }),
      ),
    );
    this.ensureWorkers();
    return `killed ${victims.map((w) => w.pid).join(', ')}; ${note}; ${active} handler jobs active`;
  }

  private async restartRedis(step: Extract<Step, { kind: 'redis-restart' }>): Promise<string> {
    let active = 0;
    if (step.midJob) {
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && (active = await this.activeJobs()) === 0 && (await this.jobsInFlight()) > 0)
        await new Promise((r) => setTimeout(r, 10));
    }
    const started = Date.now();
    await this.p.redis.stop('SIGKILL');
    await this.p.redis.restart();
    return `${active} handler jobs active when killed; back after ${Date.now() - started} ms`;
  }

  /** Every queue empty: nothing waiting, running, delayed or waiting for children. */
  private async quiesce(): Promise<void> {
    await this.p.until('every queue to drain', async () => (await this.jobsInFlight()) === 0, 90_000);
  }

  /** Each gateway's difference from `expected` (empty: all as expected), and the gateways that should not exist. */
  private async liveProblems(
    expected: ReadonlyMap<string, GatewaySpec | null>,
    only?: ReadonlySet<string>,
  ): Promise<string[]> {
    const problems: string[] = [];
    for (const [g, spec] of expected) {
      if (only && !only.has(g)) continue;
      const handle = await this.runtime.gateway(g);
      if (!spec) {
        if (handle) problems.push(`gateway ${g} exists, but no planned commit wants it`);
        continue;
      }
      if (!handle) {
        problems.push(`gateway ${g} does not exist`);
        continue;
      }
      const live = await handle.readState().catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      if (live instanceof Error) {
        problems.push(`gateway ${g}: reading its state failed: ${live.message}`);
        continue;
      }
      const diff = diffStates(live, compileGateway(spec));
      if (!isEmptyChangeSet(diff)) {
        problems.push(
          `gateway ${g} differs from its expected state; to get there natops would still have to:\n      ${[...describeChanges(diff), ...ruleDiff(diff)].join('\n      ')}`,
        );
      }
    }
    if (!only) {
      const listed = (await this.runtime.listGateways()).sort();
      const want = [...expected]
        .filter(([, s]) => s)
        .map(([g]) => g)
        .sort();
      if (listed.join(',') !== want.join(','))
        problems.push(`gateways natops runs: [${listed.join(', ')}], expected [${want.join(', ')}]`);
    }
    return problems;
  }

  /** Statuses of the newest commit that disagree with its manifests. */
  private statusProblems(tip: CommitRec, statuses: ReadonlyMap<string, CommitStatus>): string[] {
    const problems: string[] = [];
    const summary = statuses.get(SUMMARY_CONTEXT);
    const show = (s: CommitStatus | undefined) => (s ? `${s.state} "${s.description}"` : 'none');
    if (isRefused(tip.v)) {
      if (summary?.state !== 'failure' || !/zz-broken\.yaml:\d+/.test(summary.description))
        problems.push(`the refused commit's summary is ${show(summary)}`);
      return problems;
    }
    const invalid = invalidGateways(tip.v);
    for (const g of GATEWAYS) {
      const s = statuses.get(gatewayContext(g));
      const spec = tip.v.desired.gateways.get(g);
      if (spec) {
        // "no change" may carry the plan's note ("(caught up with the branch)", "(history rewritten: ...)").
        const ok =
          s?.state === 'success' &&
          (s.description === `live: ${liveSummary(spec)}` || /^no change( \(.*\))?$/.test(s.description));
        if (!ok)
          problems.push(`natops/${g} is ${show(s)}, expected success "live: ${liveSummary(spec)}" (or "no change")`);
      } else if (invalid.has(g)) {
        if (s?.state !== 'failure' || !/\.yaml:\d+:\d+/.test(s.description))
          problems.push(`natops/${g} is ${show(s)}, expected a failure naming file and line`);
      } else if (s && !(s.state === 'success' && s.description === 'removed')) {
        problems.push(
          `natops/${g} is ${show(s)}, but the commit has no ${g} (expected no status, or success "removed")`,
        );
      }
    }
    const net = statuses.get(NETWORK_CONTEXT);
    if (net && net.state !== 'success') problems.push(`${NETWORK_CONTEXT} is ${show(net)}`);
    const want = invalid.size ? 'failure' : 'success';
    if (summary?.state !== want) problems.push(`the summary is ${show(summary)}, expected ${want}`);
    return problems;
  }

  private probes(expected: ReadonlyMap<string, GatewaySpec | null>): Probe[] {
    const out: Probe[] = [];
    const ngw = expected.get('ngw');
    const hostAt = (ip: string) => Object.entries(HOSTS).find(([, h]) => h.ip.startsWith(`${ip}/`))?.[0];
    for (const d of ngw?.dnats ?? []) {
      out.push({
        gateway: 'ngw',
        what: `ngw port forward ${d.protocol} ${d.eip}:${d.externalPort}`,
        from: 'ext',
        proto: d.protocol,
        ip: d.eip,
        port: d.externalPort,
        expect: `web ${HOSTS.ext.ip.split('/')[0]}`,
      });
    }
    for (const f of ngw?.floatingIps ?? []) {
      out.push({
        gateway: 'ngw',
        what: `ngw floating IP ${f.eip} -> ${f.internalIp}`,
        from: 'ext',
        proto: 'tcp',
        ip: f.eip,
        port: 80,
        expect: `${hostAt(f.internalIp)} 192.168.0.50`,
      });
    }
    const snat = ngw?.snats.find((s) => s.internalCidr !== '10.0.1.128/25');
    if (snat)
      out.push({
        gateway: 'ngw',
        what: `ngw SNAT of ${snat.internalCidr}`,
        from: 'client',
        proto: 'tcp',
        ip: '192.168.0.50',
        port: 9000,
        expect: `ext ${snat.eip}`,
      });
    for (const d of expected.get('ngw2')?.dnats ?? []) {
      out.push({
        gateway: 'ngw2',
        what: `ngw2 port forward tcp ${d.eip}:${d.externalPort}`,
        from: 'ext',
        proto: 'tcp',
        ip: d.eip,
        port: d.externalPort,
        expect: 'web2 192.168.0.50',
      });
    }
    return out;
  }

  /** How the gateway of a probe that failed is wired, for the failure message. */
  private async wiring(pr: Probe): Promise<string[]> {
    const n = this.p.lab.lab.names;
    const sh = async (ns: string, argv: string[]) => {
      const r = await inNamespace(ns, { argv, okExitCodes: [0, 1, 2, 255] }).catch((e: unknown) => ({
        stdout: String(e),
      }));
      return r.stdout
        .trim()
        .split('\n')
        .map((l) => `      ${l}`);
    };
    return [
      `wiring of ${pr.gateway} (${n.gateway(pr.gateway)}):`,
      '    in the gateway: ip -br addr',
      ...(await sh(n.gateway(pr.gateway), ['ip', '-br', 'addr'])),
      '    in the fabric: its ports',
      ...(await sh(n.fabric, ['ip', '-o', 'link', 'show', 'dev', n.gatewayPort(pr.gateway, 'eth0')])),
      ...(await sh(n.fabric, ['ip', '-o', 'link', 'show', 'dev', n.gatewayPort(pr.gateway, 'net1')])),
      `    in ${pr.from}: ip neigh`,
      ...(await sh(n.host(pr.from), ['ip', 'neigh'])),
    ];
  }

  private async probe(pr: Probe): Promise<string | undefined> {
    return pr.proto === 'tcp' ? this.p.lab.tcp(pr.from, pr.ip, pr.port) : this.p.lab.udp(pr.from, pr.ip, pr.port);
  }

  /** Runs one sequence; throws a SequenceFailure naming the seed, the steps and what differed. */
  async run(seq: Sequence): Promise<{ ms: number; log: string[] }> {
    const started = Date.now();
    const log: string[] = [];
    const commits: CommitRec[] = [];
    const byN = (n: number) => commits.find((c) => c.n === n)!;
    let phase = 'reset';
    const fail = async (problems: string[], extra: string[] = []): Promise<never> => {
      const statusLines: string[] = [];
      for (const c of commits) {
        const st = await this.p.statuses(c.sha).catch(() => [] as CommitStatus[]);
        statusLines.push(
          `  #${c.n} ${c.sha.slice(0, 7)}: ${st.map((s) => `${s.context}=${s.state} "${s.description}"`).join('; ') || 'no statuses'}`,
        );
      }
      throw new SequenceFailure(
        [
          `interleaving seed ${seq.seed} diverged (${phase}):`,
          ...problems.map((p) => `  - ${p}`),
          `reproduce: NATOPS_INTERLEAVING_SEED=${seq.seed} node --import tsx --test test/pipeline/interleavings.test.ts`,
          'steps (commit #0 is the reset to the base):',
          ...log.map((l) => `  ${l}`),
          'commits:',
          ...commits.map(
            (c) =>
              `  #${c.n} ${c.sha.slice(0, 7)} ${c.label}: ${isRefused(c.v) ? 'refused' : `valid [${[...c.v.desired.gateways.keys()].join(', ')}]${invalidGateways(c.v).size ? `, invalid [${[...invalidGateways(c.v)].join(', ')}]` : ''}`}`,
          ),
          'statuses:',
          ...statusLines,
          ...extra,
          'last log lines:',
          ...this.p.logs.slice(-40).map((l) => `  ${l}`),
        ].join('\n'),
      );
    };

    try {
      // A known start: two workers, the base delivered, settled and checked.
      this.ensureWorkers();
      const base = await this.commit(0, treeFiles(this.seed, BASE), `seed ${seq.seed} #0: reset to the base`, false);
      commits.push(base);
      log.push(`commit #0 (direct): reset => ${describeTree(BASE)}: ${await this.deliver(base, 'no')}`);
      await this.p.settled(base.sha, 90_000);
      const settledAt = Date.now();
      await this.quiesce();
      const baseProblems = await this.liveProblems(
        new Map([
          ['ngw', base.v.desired.gateways.get('ngw')!],
          ['ngw2', null],
        ]),
      );
      if (baseProblems.length) await fail(baseProblems);
      log.push(`reset settled after ${settledAt - started} ms, checked after ${Date.now() - started} ms`);

      phase = 'steps';
      for (const step of seq.steps) {
        const t0 = Date.now();
        let note = '';
        switch (step.kind) {
          case 'commit': {
            const files = treeFiles(this.seed, step.tree, step.broken);
            const c = await this.commit(
              step.n,
              files,
              `seed ${seq.seed} #${step.n}: ${step.what}${step.broken ? ` (${step.broken})` : ''}`,
              step.delivery === 'hook',
            );
            commits.push(c);
            if (step.delivery === 'direct') note = await this.deliver(c, 'no');
            break;
          }
          case 'deliver':
            note = await this.deliver(byN(step.n), step.repeat);
            break;
          case 'burst':
            note = (await Promise.all(step.ns.map(async (n) => `#${n}: ${await this.deliver(byN(n), 'no')}`))).join(
              ' | ',
            );
            break;
          case 'kill':
            note = await this.kill(step);
            break;
          case 'redis-restart':
            note = await this.restartRedis(step);
            break;
          case 'pause':
            await new Promise((r) => setTimeout(r, step.ms));
            break;
        }
        log.push(`${describeStep(step)}${note ? ` [${note}]` : ''} (${Date.now() - t0} ms)`);
      }

      phase = 'after the steps';
      const tip = byN(seq.tip);
      const stepsDone = Date.now();
      const settled = await this.p.settled(tip.sha, 90_000);
      const tipSettled = Date.now();
      // A gateway whose status on the newest commit says success is live as that commit says, from that moment.
      const successNow = new Set(
        GATEWAYS.filter((g) => tip.v.desired.gateways.has(g) && settled.get(gatewayContext(g))?.state === 'success'),
      );
      const atSettle = await this.liveProblems(
        new Map(GATEWAYS.map((g) => [g, tip.v.desired.gateways.get(g) ?? null])),
        successNow,
      );
      await this.quiesce();

      const planned = new Set<string>();
      for (const c of commits) if (wasPlanned(await this.p.statuses(c.sha))) planned.add(c.sha);
      const expected = new Map<string, GatewaySpec | null>();
      const expectLines: string[] = [
        'expected (from the newest planned commit that says something about each gateway):',
      ];
      for (const g of GATEWAYS) {
        const e = expectedGateway(g, commits, planned);
        expected.set(g, e.spec);
        expectLines.push(`  ${g}: ${e.spec ? liveSummary(e.spec) : 'absent'} (from #${e.from ?? '-'})`);
      }
      expectLines.push(
        `planned commits: ${commits
          .filter((c) => planned.has(c.sha))
          .map((c) => `#${c.n}`)
          .join(', ')}`,
      );
      const statuses = await this.p.statuses(tip.sha);
      // Once nothing is left to run, no commit's status may stay pending (GitHub would show it forever).
      const stuck: string[] = [];
      for (const c of commits) {
        for (const s of await this.p.statuses(c.sha))
          if (s.state === 'pending')
            stuck.push(`#${c.n} ${s.context} is still pending ("${s.description}") with every queue drained`);
      }
      const problems = [
        ...stuck,
        ...(planned.has(tip.sha) || isRefused(tip.v) ? [] : [`the newest commit #${tip.n} was never planned`]),
        ...atSettle.map((p) => `when the newest commit's statuses had settled with success: ${p}`),
        ...(await this.liveProblems(expected)),
        ...this.statusProblems(tip, new Map(statuses.map((s) => [s.context, s]))),
      ];
      if (problems.length) await fail(problems, expectLines);
      log.push(
        `newest commit settled ${tipSettled - stepsDone} ms after the last step, queues drained and checked after ${Date.now() - stepsDone} ms`,
      );

      // Real packets through one mapping that should be live; then, sometimes, one that should not answer.
      phase = 'traffic';
      const probes = this.probes(expected);
      if (probes.length) {
        const pr = probes[Math.floor(seq.draws.positive * probes.length)]!;
        const got = await this.probe(pr);
        log.push(`traffic: ${pr.what} from ${pr.from}: ${JSON.stringify(got)}`);
        if (got !== pr.expect)
          await fail(
            [`${pr.what}: ${pr.from} got ${JSON.stringify(got)}, expected ${JSON.stringify(pr.expect)}`],
            [...expectLines, ...(await this.wiring(pr))],
          );
        const livePorts = new Set(
          expected
            .get('ngw')
            ?.dnats.filter((d) => d.eip === pr.ip && d.protocol === 'tcp')
            .map((d) => d.externalPort),
        );
        const gone = PORTS.filter((port) => !livePorts.has(port));
        if (
          pr.from === 'ext' &&
          pr.proto === 'tcp' &&
          pr.ip === EIP('112') &&
          gone.length &&
          seq.draws.negative < 0.3
        ) {
          const port = gone[Math.floor(seq.draws.negativeIndex * gone.length)]!;
          const none = await this.probe({ ...pr, port });
          log.push(`traffic: no forward tcp ${pr.ip}:${port}: ${JSON.stringify(none)}`);
          if (none !== undefined)
            await fail(
              [`tcp ${pr.ip}:${port} answered ${JSON.stringify(none)}, but no planned commit forwards it now`],
              expectLines,
            );
        }
      }
      return { ms: Date.now() - started, log };
    } catch (e) {
      if (e instanceof SequenceFailure) throw e;
      return fail([`${e instanceof Error ? e.message : String(e)}`]);
    }
  }
}
