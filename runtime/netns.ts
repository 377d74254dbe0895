// The netns runtime: each gateway is a network namespace on the lab, eth0 on its subnet's bridge
// and net1 on the underlay bridge, as a Kube-OVN gateway pod is wired by its CNI and macvlan.
import { parseCidr } from '../common/ipv4.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import { LabError } from '../lab/errors.ts';
import type { Lab } from '../lab/lab.ts';
import { addVeth, inNamespace, ipIn, linkExists, namespaceExists, type NetnsCommandOptions } from '../lab/netns.ts';
import type { Command } from '../dataplane/commands.ts';
import type { Exec } from './exec.ts';
import { readGatewayState, runCommands } from './gateway-io.ts';
import type { GatewayHandle, GatewayRuntime } from './runtime.ts';

// What the gateway pod's spec would set: loose reverse-path checks, since replies are policy-routed.
const GATEWAY_SYSCTLS = { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' };

export interface NetnsRuntimeOptions {
  /** every command the runtime runs (in a gateway or the lab) is killed after this long; default the lab's */
  commandTimeoutMs?: number;
}

export class NetnsRuntime implements GatewayRuntime {
  readonly kind = 'netns' as const;
  readonly commandTimeoutMs: number;
  private readonly cmd: NetnsCommandOptions;

  constructor(readonly lab: Lab, private readonly warn: (m: string) => void = () => undefined, opts: NetnsRuntimeOptions = {}) {
    this.commandTimeoutMs = opts.commandTimeoutMs ?? lab.commandTimeoutMs;
    this.cmd = { timeoutMs: this.commandTimeoutMs };
  }

  private handle(name: string): GatewayHandle {
    const ns = this.lab.names.gateway(name);
    const exec: Exec = (req) => inNamespace(ns, { ...req, timeoutMs: req.timeoutMs ?? this.commandTimeoutMs });
    return {
      name,
      location: `namespace ${ns}`,
      readState: () => readGatewayState(exec),
      runCommands: (commands: Command[]) => runCommands(exec, commands, this.warn),
    };
  }

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    const n = this.lab.names;
    const ns = n.gateway(spec.name);
    const topology = await this.lab.topology();
    const bridge = n.subnetBridge(spec.subnet.name);
    if (!(await linkExists(n.fabric, bridge, this.cmd))) throw new LabError(`subnet ${spec.subnet.name} has no bridge in the lab: run \`natops lab up\` with these manifests`);
    const lanCidr = `${spec.lanIp}/${parseCidr(spec.subnet.cidr)!.prefix}`;

    // Like a Deployment with strategy Recreate: a gateway whose placement changed starts afresh.
    if ((await this.lab.owns(ns)) && !(await this.placedAt(ns, bridge, lanCidr))) await this.lab.removeNamespace(ns, this.cmd);
    const created = await this.lab.ownNamespace(ns, GATEWAY_SYSCTLS, this.cmd);
    if (created) {
      await addVeth({ outerNs: n.fabric, outer: n.gatewayPort(spec.name, 'eth0'), bridge, innerNs: ns, inner: 'eth0', ...this.cmd });
      await ipIn(ns, this.cmd, 'addr', 'add', lanCidr, 'dev', 'eth0');
      await ipIn(ns, this.cmd, 'route', 'add', 'default', 'via', spec.subnet.gateway, 'dev', 'eth0');
      // net1 stays down until init brings it up, as the macvlan attachment does in a pod.
      await addVeth({ outerNs: n.fabric, outer: n.gatewayPort(spec.name, 'net1'), bridge: topology.nic, innerNs: ns, inner: 'net1', innerUp: false, ...this.cmd });
    }
    return { handle: this.handle(spec.name), created };
  }

  private async placedAt(ns: string, bridge: string, lanCidr: string): Promise<boolean> {
    const gw = this.lab.names.gatewayOf(ns)!;
    const port = this.lab.names.gatewayPort(gw, 'eth0');
    const link = await ipIn(this.lab.names.fabric, this.cmd, '-j', 'link', 'show', 'dev', port).catch(() => undefined);
    const addr = await ipIn(ns, this.cmd, '-j', 'addr', 'show', 'dev', 'eth0').catch(() => undefined);
    if (!link || !addr) return false;
    const master = (JSON.parse(link.stdout) as { master?: string }[])[0]?.master;
    const addrs = (JSON.parse(addr.stdout) as { addr_info: { family: string; local: string; prefixlen: number }[] }[])[0]?.addr_info ?? [];
    return master === bridge && addrs.some((a) => a.family === 'inet' && `${a.local}/${a.prefixlen}` === lanCidr);
  }

  /** A gateway natops made whose namespace is still there (one deleted by hand is missing). */
  async gateway(name: string): Promise<GatewayHandle | undefined> {
    const ns = this.lab.names.gateway(name);
    return (await this.lab.owns(ns)) && (await namespaceExists(ns)) ? this.handle(name) : undefined;
  }

  async listGateways(): Promise<string[]> {
    return (await this.lab.ownedNamespaces()).map((ns) => this.lab.names.gatewayOf(ns)).filter((g): g is string => g !== undefined);
  }

  removeGateway(name: string): Promise<boolean> {
    return this.lab.removeNamespace(this.lab.names.gateway(name), this.cmd);
  }
}
