// The netns runtime, the lab's: each gateway is a network namespace on the lab, eth0 on its subnet's bridge
// and net1 on the underlay bridge, as a Kube-OVN gateway pod is wired by its CNI and macvlan.
import type { FSWatcher } from 'node:fs';
import { z } from 'zod';
import { parseCidr } from '../../common/ipv4.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { ParseError, parseIpAddr } from '../../dataplane/parse.ts';
import { LabError } from './errors.ts';
import type { Lab } from './lab.ts';
import {
  addVeth,
  inNamespace,
  ipBatch,
  ipIn,
  linkExists,
  namespaceExists,
  namespaceId,
  watchNamespaces,
  type NetnsCommandOptions,
} from './netns.ts';
import type { Command } from '../../dataplane/commands.ts';
import type { Exec, ExecResult } from '../../common/exec.ts';
import { NftablesCache, readGatewayState, runCommands } from '../gateway-io.ts';
import { ExecSession, takesArgv } from '../exec-session.ts';
import { NftSession } from '../nft-session.ts';
import type { GatewayHandle, GatewayRuntime } from '../runtime.ts';

// What the gateway pod's spec would set: loose reverse-path checks, since replies are policy-routed.
const GATEWAY_SYSCTLS = { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' };

export interface NetnsRuntimeOptions {
  /** every command the runtime runs (in a gateway or the lab) is killed after this long; default the lab's */
  commandTimeoutMs?: number;
  /** how long a gateway's nftables table is trusted between changes (NftablesCache); default 30 s */
  nftablesCacheMs?: number;
}

export class NetnsRuntime implements GatewayRuntime {
  /** each gateway's nftables table between changes (gateway-io.ts) */
  private readonly nftables: NftablesCache;
  readonly kind = 'netns' as const;
  readonly commandTimeoutMs: number;
  private readonly cmd: NetnsCommandOptions;
  /**
   * each gateway's long-lived shell and nft, with the namespace they were started in (a namespace
   * made again is another)
   */
  private readonly sessions = new Map<string, { exec: ExecSession; nft: NftSession; id: number }>();
  /**
   * A session's processes keep their namespace alive: one deleted by hand would go on answering
   * for its EIPs, its links still on the bridges. So its sessions end as soon as it is deleted.
   */
  private watcher: FSWatcher | undefined;

  constructor(
    readonly lab: Lab,
    private readonly warn: (m: string) => void = () => undefined,
    opts: NetnsRuntimeOptions = {},
  ) {
    this.commandTimeoutMs = opts.commandTimeoutMs ?? lab.commandTimeoutMs;
    this.nftables = new NftablesCache(opts.nftablesCacheMs);
    this.cmd = { timeoutMs: this.commandTimeoutMs };
  }

  private handle(name: string): GatewayHandle {
    const ns = this.lab.names.gateway(name);
    const exec: Exec = (req) => {
      const timed = { ...req, timeoutMs: req.timeoutMs ?? this.commandTimeoutMs };
      const shell = !req.background && takesArgv(req.argv) ? this.sessionsOf(ns)?.exec : undefined;
      return shell ? shell.exec(timed) : inNamespace(ns, timed);
    };
    const slot = { cache: this.nftables, key: ns, session: () => this.sessionsOf(ns)?.nft };
    return {
      name,
      location: `namespace ${ns}`,
      readState: (reads) => readGatewayState(exec, reads, slot),
      // (the host's iproute2 reads ip -batch)
      runCommands: (commands: Command[]) => runCommands(exec, commands, this.warn, slot, { ipBatch: true }),
    };
  }

  /** The namespace's sessions (each starts its process when first used), made anew for another namespace. */
  private sessionsOf(ns: string): { exec: ExecSession; nft: NftSession } | undefined {
    const id = namespaceId(ns);
    const kept = this.sessions.get(ns);
    if (kept && kept.id === id) return kept;
    this.closeSessions(ns);
    if (id === undefined) return undefined;
    this.watcher ??= watchNamespaces(() => {
      for (const [name, kept] of this.sessions) if (namespaceId(name) !== kept.id) this.closeSessions(name);
    });
    const enter = ['ip', 'netns', 'exec', ns];
    const made = {
      exec: new ExecSession(enter, ns, this.commandTimeoutMs),
      nft: new NftSession([...enter, 'nft', '-i'], ns, this.commandTimeoutMs),
      id,
    };
    this.sessions.set(ns, made);
    return made;
  }

  private closeSessions(ns: string): void {
    const kept = this.sessions.get(ns);
    kept?.exec.close();
    kept?.nft.close();
    this.sessions.delete(ns);
  }

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    const n = this.lab.names;
    const ns = n.gateway(spec.name);
    const network = await this.lab.network();
    const bridge = n.subnetBridge(spec.subnet.name);
    const lanCidr = `${spec.lanIp}/${parseCidr(spec.subnet.cidr)!.prefix}`;
    const existing = (await this.lab.owns(ns)) && (await namespaceExists(ns));
    // Most calls find the gateway as it should be (its port on the bridge, so the bridge too):
    // then reading its wiring is enough, and the steps below (ten ip commands one after another)
    // would each change nothing.
    if (existing && (await this.wired(spec, ns, bridge, lanCidr, network.nic)))
      return { handle: this.handle(spec.name), created: false };
    if (!(await linkExists(n.fabric, bridge, this.cmd)))
      throw new LabError(
        `subnet ${spec.subnet.name} has no bridge in the lab: run \`natops lab up\` with these manifests`,
      );

    // Like a Deployment with strategy Recreate: a gateway whose placement changed starts afresh.
    // Only a positive finding recreates it: a failed look is an error, never a reason to delete.
    if (existing) {
      const port = n.gatewayPort(spec.name, 'eth0');
      // Exit code 1 is also how ip says "no such device"; any other failure (or a timeout) throws here.
      const probe = { ...this.cmd, okExitCodes: [0, 1] };
      const placement = classifyPlacement(
        {
          port: await ipIn(n.fabric, probe, '-j', 'link', 'show', 'dev', port),
          eth0: await ipIn(ns, probe, '-j', 'addr', 'show', 'dev', 'eth0'),
        },
        { port, bridge, lanCidr },
      );
      if (placement.kind === 'unknown')
        throw new LabError(
          `gateway ${spec.name}: cannot tell whether ${ns} is wired to ${bridge} with ${lanCidr} (${placement.reason}); leaving it as it is`,
        );
      if (placement.kind === 'misplaced') {
        this.warn(`gateway ${spec.name}: ${placement.reason}; recreating ${ns}`);
        await this.lab.removeNamespace(ns, this.cmd);
      }
    }
    const created = await this.lab.ownNamespace(ns, GATEWAY_SYSCTLS, this.cmd);
    const eth0Port = n.gatewayPort(spec.name, 'eth0');
    const net1Port = n.gatewayPort(spec.name, 'net1');
    // A new namespace holds nothing yet: its wiring is two ip processes, not ten in turn (net1
    // stays down until init brings it up, as the macvlan attachment does in a pod). The outer
    // ends of a namespace deleted a moment ago may still be there (the kernel takes them down
    // after it): then they go, and the steps below make each link hold.
    const wiredNew = created ? await this.wireNew(spec, ns, bridge, lanCidr, network.nic) : undefined;
    if (wiredNew === true) return { handle: this.handle(spec.name), created };
    if (wiredNew === false)
      await ipBatch(n.fabric, { ...this.cmd, okExitCodes: [0, 1], force: true }, [
        ['link', 'del', eth0Port],
        ['link', 'del', net1Port],
      ]);
    // Every step is made to hold, not only run on creation: a worker killed half-way through
    // creating the gateway leaves a namespace whose wiring the next gateway job must finish.
    if (await linkExists(ns, 'eth0', this.cmd))
      await ipIn(n.fabric, this.cmd, 'link', 'set', eth0Port, 'master', bridge, 'up');
    else await addVeth({ outerNs: n.fabric, outer: eth0Port, bridge, innerNs: ns, inner: 'eth0', ...this.cmd });
    await ipIn(ns, this.cmd, 'link', 'set', 'eth0', 'up');
    await ipIn(ns, this.cmd, 'addr', 'replace', lanCidr, 'dev', 'eth0');
    await ipIn(ns, this.cmd, 'route', 'replace', 'default', 'via', spec.subnet.gateway, 'dev', 'eth0');
    // net1 stays down until init brings it up, as the macvlan attachment does in a pod: only its
    // outer end is made to hold here.
    if (await linkExists(ns, 'net1', this.cmd))
      await ipIn(n.fabric, this.cmd, 'link', 'set', net1Port, 'master', network.nic, 'up');
    else
      await addVeth({
        outerNs: n.fabric,
        outer: net1Port,
        bridge: network.nic,
        innerNs: ns,
        inner: 'net1',
        innerUp: false,
        ...this.cmd,
      });
    return { handle: this.handle(spec.name), created };
  }

  /** A new namespace's wiring, two ip processes; false when a link could not be added. */
  private async wireNew(spec: GatewaySpec, ns: string, bridge: string, lanCidr: string, nic: string): Promise<boolean> {
    const n = this.lab.names;
    const [eth0Port, net1Port] = [n.gatewayPort(spec.name, 'eth0'), n.gatewayPort(spec.name, 'net1')];
    const links = await ipBatch(n.fabric, { ...this.cmd, okExitCodes: [0, 1] }, [
      ['link', 'add', eth0Port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
      ['link', 'set', eth0Port, 'master', bridge, 'up'],
      ['link', 'add', net1Port, 'type', 'veth', 'peer', 'name', 'net1', 'netns', ns],
      ['link', 'set', net1Port, 'master', nic, 'up'],
    ]);
    if (links.code !== 0) return false;
    await ipBatch(ns, { ...this.cmd, okExitCodes: [0] }, [
      ['link', 'set', 'eth0', 'up'],
      ['addr', 'replace', lanCidr, 'dev', 'eth0'],
      ['route', 'replace', 'default', 'via', spec.subnet.gateway, 'dev', 'eth0'],
    ]);
    return true;
  }

  /**
   * Whether every step of ensureGateway already holds, from four reads: two in the fabric, two in
   * the gateway, one process each. Any doubt (a failed or unreadable read) is false: the full path
   * then looks again, with its own verdicts.
   */
  private async wired(spec: GatewaySpec, ns: string, bridge: string, lanCidr: string, nic: string): Promise<boolean> {
    const n = this.lab.names;
    // (a failed look is not an error here; a timeout still is, as it would be below)
    const look = { ...this.cmd, okExitCodes: [0, 1, 2, 255] };
    const [ports, inside] = await Promise.all([
      ipBatch(n.fabric, look, [
        ['link', 'show', 'dev', n.gatewayPort(spec.name, 'eth0')],
        ['link', 'show', 'dev', n.gatewayPort(spec.name, 'net1')],
      ]),
      ipBatch(ns, look, [
        ['addr', 'show', 'dev', 'eth0'],
        ['route', 'show', 'default'],
      ]),
    ]);
    // ip stops at a failed command: then some answer is missing, and that is doubt enough
    if (ports.code !== 0 || inside.code !== 0 || ports.answers.length !== 2 || inside.answers.length !== 2)
      return false;
    const ok = (stdout: string) => ({ code: 0, stdout });
    const [eth0Port, net1Port] = ports.answers.map(ok) as [Probe, Probe];
    const [eth0, routes] = inside.answers.map(ok) as [Probe, Probe];
    return isWired({ eth0Port, eth0, net1Port, routes }, { bridge, lanCidr, nic, gateway: spec.subnet.gateway });
  }

  /** A gateway natops made whose namespace is still there (one deleted by hand is missing). */
  async gateway(name: string): Promise<GatewayHandle | undefined> {
    const ns = this.lab.names.gateway(name);
    return (await this.lab.owns(ns)) && (await namespaceExists(ns)) ? this.handle(name) : undefined;
  }

  async listGateways(): Promise<string[]> {
    return (await this.lab.ownedNamespaces())
      .map((ns) => this.lab.names.gatewayOf(ns))
      .filter((g): g is string => g !== undefined);
  }

  removeGateway(name: string): Promise<boolean> {
    const ns = this.lab.names.gateway(name);
    this.closeSessions(ns);
    return this.lab.removeNamespace(ns, this.cmd);
  }
}

export type Placement =
  | { kind: 'placed' }
  | { kind: 'misplaced'; reason: string }
  | { kind: 'unknown'; reason: string };

const LinkJson = z.array(z.object({ master: z.string().optional() })).min(1);
const NO_DEVICE = /^Device ".*" does not exist\.$/m;

/**
 * Whether a gateway is wired as its spec says, from `ip -j link show dev PORT` in the fabric and
 * `ip -j addr show dev eth0` in the gateway. Misplaced only on a positive finding: the port or eth0
 * reported absent by ip, the port on another bridge, eth0 without lanCidr. Anything else is unknown.
 */
export function classifyPlacement(
  probes: {
    port: Pick<ExecResult, 'code' | 'stdout' | 'stderr'>;
    eth0: Pick<ExecResult, 'code' | 'stdout' | 'stderr'>;
  },
  want: { port: string; bridge: string; lanCidr: string },
): Placement {
  const unknown: string[] = [];
  const failed = (what: string, r: Pick<ExecResult, 'code' | 'stderr'>) =>
    `${what}: ip exited ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}`;

  if (probes.port.code !== 0) {
    if (NO_DEVICE.test(probes.port.stderr)) return { kind: 'misplaced', reason: `port ${want.port} is missing` };
    unknown.push(failed(`port ${want.port}`, probes.port));
  } else {
    try {
      const { master } = parseLink(probes.port.stdout, want.port);
      if (master !== want.bridge)
        return { kind: 'misplaced', reason: `port ${want.port} is on ${master ?? 'no bridge'}, not ${want.bridge}` };
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      unknown.push(e.message);
    }
  }

  if (probes.eth0.code !== 0) {
    if (NO_DEVICE.test(probes.eth0.stderr)) return { kind: 'misplaced', reason: 'eth0 is missing' };
    unknown.push(failed('eth0', probes.eth0));
  } else {
    try {
      const { addresses } = parseIpAddr(probes.eth0.stdout, 'eth0');
      if (!addresses.some((a) => a.cidr === want.lanCidr))
        return {
          kind: 'misplaced',
          reason: `eth0 has ${addresses.map((a) => a.cidr).join(', ') || 'no address'}, not ${want.lanCidr}`,
        };
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      unknown.push(e.message);
    }
  }
  return unknown.length ? { kind: 'unknown', reason: unknown.join('; ') } : { kind: 'placed' };
}

type Probe = Pick<ExecResult, 'code' | 'stdout'>;
const LinkStateJson = z
  .array(z.object({ master: z.string().optional(), flags: z.array(z.string()).default([]) }))
  .length(1);
const RouteJson = z.array(
  z.object({
    dst: z.string(),
    gateway: z.string().optional(),
    dev: z.string().optional(),
    metric: z.number().optional(),
  }),
);

/**
 * Whether a gateway's wiring needs no step of ensureGateway: its eth0 port up on the subnet's
 * bridge, eth0 up with lanCidr, the default route via the subnet's gateway on eth0 (metric 0,
 * the one `ip route replace` would set), its net1 port up on the underlay. Each from the output of
 * `ip -j link show dev PORT` (fabric), `ip -j addr show dev eth0`, `ip -j route show default`
 * (gateway); anything else, unreadable output included, is false.
 */
export function isWired(
  probes: { eth0Port: Probe; eth0: Probe; net1Port: Probe; routes: Probe },
  want: { bridge: string; lanCidr: string; nic: string; gateway: string },
): boolean {
  const json = (p: Probe): unknown => {
    try {
      return p.code === 0 ? JSON.parse(p.stdout) : undefined;
    } catch {
      return undefined;
    }
  };
  const portOn = (p: Probe, master: string) => {
    const link = LinkStateJson.safeParse(json(p));
    return link.success && link.data[0]!.master === master && link.data[0]!.flags.includes('UP');
  };
  if (!portOn(probes.eth0Port, want.bridge) || !portOn(probes.net1Port, want.nic)) return false;
  if (probes.eth0.code !== 0) return false;
  try {
    const eth0 = parseIpAddr(probes.eth0.stdout, 'eth0');
    if (!eth0.up || !eth0.addresses.some((a) => a.cidr === want.lanCidr)) return false;
  } catch (e) {
    if (e instanceof ParseError) return false;
    throw e;
  }
  const routes = RouteJson.safeParse(json(probes.routes));
  return (
    routes.success &&
    routes.data.some((r) => r.dst === 'default' && r.gateway === want.gateway && r.dev === 'eth0' && !r.metric)
  );
}

/** `ip -j link show dev PORT` -> the bridge it is enslaved to, if any. */
function parseLink(json: string, port: string): { master?: string } {
  const source = `ip -j link show dev ${port}`;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new ParseError(source, `not JSON (${(e as Error).message})`);
  }
  const parsed = LinkJson.safeParse(value);
  if (!parsed.success) throw new ParseError(source, parsed.error.issues[0]?.message ?? 'unexpected shape');
  return parsed.data[0]!;
}
