// A lab of the test's own: unique name, real namespaces, real packets; removed after the test
// even when it fails. Tests that need root or a tool fail loudly here instead of skipping.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../common/exec.ts';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { Lab, STATE_ROOT } from '../../runtime/netns/lab.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { reconcileAll, type GatewayResult } from '../../runtime/reconcile.ts';
import type { GatewayRuntime } from '../../runtime/runtime.ts';
import { inNamespace, listNamespaces } from '../../runtime/netns/netns.ts';
import { IPTABLES_PROGRAMS, type GatewaySpec } from '../../dataplane/model.ts';
import { gatewayIptables } from '../../runtime/gateway-io.ts';
import { TEST_WORKLOAD_POLICY, writeManifestDir, type SeedObjects } from './manifests.ts';

const NATOPS = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));
const TOOLS = [
  'ip',
  ...Object.values(IPTABLES_PROGRAMS).flatMap((p) => Object.values(p)),
  'conntrack',
  'arping',
  'socat',
  'ping',
];

export function requireNetnsPrerequisites(): void {
  if (process.getuid?.() !== 0)
    throw new Error('the netns tests need root: they create network namespaces (run them as root, as CI does)');
  const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', t]).status !== 0);
  if (missing.length) throw new Error(`the netns tests need ${missing.join(', ')}: run scripts/install-deps.sh`);
}

/**
 * A bare namespace of the calling suite's own (call it inside describe): made before its tests,
 * deleted after them even when they fail.
 */
export function useScratchNamespace(): string {
  const ns = `natops-t${randomBytes(4).toString('hex')}`;
  before(async () => {
    requireNetnsPrerequisites();
    await run(['ip', 'netns', 'add', ns]);
  });
  after(async () => {
    await run(['ip', 'netns', 'del', ns], { okExitCodes: [0, 1] });
  });
  return ns;
}

export class LabHarness {
  readonly lab: Lab;
  private readonly procs: ChildProcess[] = [];

  private constructor(prefix: string) {
    this.lab = new Lab(prefix);
  }

  static async create(): Promise<LabHarness> {
    requireNetnsPrerequisites();
    return new LabHarness(`t${randomBytes(4).toString('hex')}`);
  }

  get prefix(): string {
    return this.lab.names.prefix;
  }

  /**
   * What `natops apply DIR` does, minus the printing: with the netns runtime, or another one
   * (a Kubernetes runtime's pods attach to the lab through its host attachment points).
   */
  async apply(seed: SeedObjects, runtime?: GatewayRuntime): Promise<GatewayResult[]> {
    const { desired, network } = await this.read(seed);
    await this.lab.up(network);
    if (runtime) await this.lab.attachHost(network);
    return reconcileAll(runtime ?? new NetnsRuntime(this.lab), desired.gateways.values());
  }

  /** A gateway of these manifests as the reconciler gets it. */
  async gatewaySpec(seed: SeedObjects, name: string): Promise<GatewaySpec> {
    const spec = (await this.read(seed)).desired.gateways.get(name);
    if (!spec) throw new Error(`no valid gateway ${name} in the manifests`);
    return spec;
  }

  /**
   * The networks of these manifests and the host attachment points for gateway pods, as Kube-OVN
   * would provide them: for a natops in the cluster, which makes gateways but cannot reach the host.
   */
  async provide(seed: SeedObjects): Promise<void> {
    const { network } = await this.read(seed);
    await this.lab.up(network);
    await this.lab.attachHost(network);
  }

  private async read(seed: SeedObjects) {
    // the Kubernetes tests' seeds name the test cluster's image
    const desired = await readDesired(await writeManifestDir(seed), { limits: { policy: TEST_WORKLOAD_POLICY } });
    return { desired, network: networkModel(desired) };
  }

  /** The seed's workload hosts, each serving `ports`: fip (the floating IP's), web, client on sn; ext on the underlay. */
  async seedHosts(ports: { tcp?: number[]; udp?: number[] }): Promise<void> {
    const hosts = [
      ['fip', 'sn', '10.0.1.5/24'],
      ['web', 'sn', '10.0.1.10/24'],
      ['client', 'sn', '10.0.1.20/24'],
      ['ext', 'external', '192.168.0.50/24'],
    ] as const;
    for (const [name, net, ip] of hosts) await this.host(name, net, ip);
    await Promise.all(hosts.map(([name]) => this.serve(name, ports)));
  }

  async host(name: string, net: string, ip: string): Promise<void> {
    await this.lab.addHost({ name, net, ip });
  }

  /** Starts the probe server in a host; resolves once it listens. */
  async serve(host: string, ports: { tcp?: number[]; udp?: number[] }): Promise<void> {
    const ns = this.lab.names.host(host);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        NATOPS,
        'probe',
        '--name',
        host,
        '--tcp',
        (ports.tcp ?? []).join(','),
        '--udp',
        (ports.udp ?? []).join(','),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.procs.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (b: Buffer) => b.toString().includes('listening') && resolve());
      child.on('exit', (code) => reject(new Error(`probe in ${host} exited ${code}`)));
    });
  }

  /** One TCP exchange: the first line the server sent, or undefined if none came. */
  async tcp(from: string, ip: string, port: number): Promise<string | undefined> {
    return this.socat(from, `TCP:${ip}:${port},connect-timeout=2`, '');
  }

  async udp(from: string, ip: string, port: number): Promise<string | undefined> {
    return this.socat(from, `UDP:${ip}:${port}`, 'hello\n');
  }

  private async socat(from: string, address: string, input: string): Promise<string | undefined> {
    const r = await inNamespace(this.lab.names.host(from), {
      argv: ['socat', '-T2', '-', address],
      stdin: input,
      okExitCodes: [0, 1],
    });
    const line = r.stdout.split('\n')[0]?.trim();
    return line ? line : undefined;
  }

  async ping(from: string, ip: string): Promise<boolean> {
    const r = await inNamespace(this.lab.names.host(from), {
      argv: ['ping', '-c', '1', '-W', '1', ip],
      okExitCodes: [0, 1],
    });
    return r.code === 0;
  }

  /** A TCP connection that stays open: its greeting, then send() for one more answer (or none). */
  /**
   * A new TCP connection from `from` to ip:port every `intervalMs` until stop(), which tells how
   * many got the server's greeting and why the others did not (bench/connect-loop.ts).
   */
  async connectLoop(
    from: string,
    ip: string,
    port: number,
    intervalMs = 5,
  ): Promise<{ stop(): Promise<{ ok: number; failed: number; reasons: Record<string, number> }> }> {
    const loop = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.lab.names.host(from),
        process.execPath,
        '--import',
        'tsx',
        fileURLToPath(new URL('../../bench/connect-loop.ts', import.meta.url)),
        ip,
        String(port),
        String(intervalMs),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.procs.push(loop);
    let out = '';
    loop.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    // (Node's start inside the namespace, so that the loop is running when the caller goes on)
    await new Promise((r) => setTimeout(r, 1500));
    return {
      async stop() {
        const closed = new Promise((r) => loop.on('close', r));
        loop.kill('SIGTERM');
        await closed;
        return JSON.parse(out) as { ok: number; failed: number; reasons: Record<string, number> };
      },
    };
  }

  async openFlow(
    from: string,
    ip: string,
    port: number,
  ): Promise<{ greeting: string | undefined; send(): Promise<string | undefined> }> {
    const child = spawn(
      'ip',
      ['netns', 'exec', this.lab.names.host(from), 'socat', '-T30', '-', `TCP:${ip}:${port},connect-timeout=2`],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    this.procs.push(child);
    const lines: string[] = [];
    let waiter: (() => void) | undefined;
    let buffer = '';
    child.stdout!.on('data', (b: Buffer) => {
      buffer += b.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      lines.push(...parts);
      waiter?.();
    });
    child.on('exit', () => waiter?.());
    const next = (ms: number) =>
      new Promise<string | undefined>((resolve) => {
        const take = () => {
          if (lines.length) return resolve(lines.shift());
          if (child.exitCode !== null) return resolve(undefined);
          waiter = take;
        };
        setTimeout(() => resolve(lines.shift()), ms);
        take();
      });
    const greeting = await next(3000);
    return {
      greeting,
      send: async () => {
        if (child.exitCode !== null || child.stdin!.destroyed) return undefined;
        child.stdin!.write('again\n');
        return next(1500);
      },
    };
  }

  /** The programs of the iptables natops keeps a gateway's nat rules in, as natops reads it. */
  gatewayIptables(gateway: string): ReturnType<typeof gatewayIptables> {
    const ns = this.lab.names.gateway(gateway);
    return gatewayIptables((req) => inNamespace(ns, req));
  }

  /** iptables-save (of the gateway's iptables) without its timestamp comments. */
  async gatewaySave(gateway: string): Promise<string> {
    const { save } = await this.gatewayIptables(gateway);
    const r = await inNamespace(this.lab.names.gateway(gateway), { argv: [save] });
    // (without the built-in chains' packet counters: a stray packet, such as the underlay's answer
    // to a gratuitous ARP still running after an apply, changes no rule)
    return r.stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/^(:\S+ \S+) \[\d+:\d+\]$/, '$1 [0:0]'))
      .join('\n');
  }

  /** Everything that holds the gateway's nat rules: its iptables-save, then natops's nftables table (if any). */
  async gatewayRules(gateway: string): Promise<string> {
    const table = await inNamespace(this.lab.names.gateway(gateway), {
      argv: ['nft', 'list', 'table', 'ip', 'natops'],
      okExitCodes: [0, 1],
    });
    return `${await this.gatewaySave(gateway)}\n${table.stdout}`;
  }

  async inGateway(gateway: string, argv: string[]): Promise<string> {
    return (await inNamespace(this.lab.names.gateway(gateway), { argv })).stdout;
  }

  async inRouter(vpc: string, argv: string[]): Promise<string> {
    return (await inNamespace(this.lab.names.vpc(vpc), { argv })).stdout;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs) p.kill('SIGKILL');
    await this.lab.down();
  }
}

/** The namespaces and lab records of `natops preview --prove` (pv<8 hex>), on the whole machine. */
export async function proveLabs(): Promise<string[]> {
  const records = await readdir(STATE_ROOT).catch((): string[] => []);
  return [
    ...(await listNamespaces()).filter((n) => /^pv[0-9a-f]{8}-/.test(n)),
    ...records.filter((n) => /^pv[0-9a-f]{8}$/.test(n)),
  ];
}
