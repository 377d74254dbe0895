// The local lab: the networks the manifests describe, built from network namespaces that natops
// creates and records. Nothing is added to the host's own namespace but the attachment points
// for gateway pods that `attachHost` makes when a lab serves the kubernetes runtime (`--lab`).
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseCidr, cidrContains } from '../../common/ipv4.ts';
import { k8sName } from '../../common/k8s-name.ts';
import { DEFAULT_COMMAND_TIMEOUT_MS, run } from '../../common/exec.ts';
import { LabError } from './errors.ts';
import { fileName, LabNames } from './names.ts';
import {
  addVeth,
  deleteNamespace,
  ensureNamespace,
  inNamespace,
  ipIn,
  listNamespaces,
  namespaceExists,
  type NetnsCommandOptions,
} from './netns.ts';
import { NetworkModelSchema, subnetAttachmentBridge, type NetworkModel } from '../../dataplane/network.ts';
import { freshView, type NamespaceView, readRouting, subnetLinks, viewNamespace } from './namespace-view.ts';
import { diffRouting, routerRouting } from './router-routes.ts';

/** Where natops records what it created; tmpfs, like the namespaces themselves. */
export const STATE_ROOT = process.env.NATOPS_STATE_DIR ?? '/run/natops';

const ROUTER_SYSCTLS = {
  'net.ipv4.ip_forward': '1',
  'net.ipv4.conf.all.rp_filter': '0',
  'net.ipv4.conf.default.rp_filter': '0',
  // The gateway's table 100 sends replies via the router even within one subnet: no redirects.
  'net.ipv4.conf.all.send_redirects': '0',
  'net.ipv4.conf.default.send_redirects': '0',
  // Removing an interface's first (primary) address otherwise removes every other address in its
  // network too: the upstream router holds several EIP gateway addresses on one network.
  'net.ipv4.conf.all.promote_secondaries': '1',
  'net.ipv4.conf.default.promote_secondaries': '1',
};
const UPSTREAM_SYSCTLS = { ...ROUTER_SYSCTLS, 'net.ipv4.conf.net0.promote_secondaries': '1' };
const HOST_SYSCTLS = { 'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0' };

/** `name` if `lab host add` could have made a host of it (a Kubernetes name). */
function hostName(name: string): string {
  const check = k8sName.safeParse(name);
  if (!check.success) throw new LabError(`host name ${JSON.stringify(name)}: ${check.error.issues[0]?.message}`);
  return name;
}

const HostRecord = z.object({ name: z.string(), net: z.string(), ip: z.string(), gateway: z.string().optional() });
export type LabHost = z.infer<typeof HostRecord>;

export class Lab {
  readonly names: LabNames;
  /** every command the lab runs is killed after this long */
  readonly commandTimeoutMs: number;
  private readonly dir: string;
  /** what the lab passes to each command it runs */
  private readonly cmd: NetnsCommandOptions;

  constructor(prefix?: string, opts: { commandTimeoutMs?: number } = {}) {
    this.names = new LabNames(prefix);
    this.dir = join(STATE_ROOT, this.names.prefix);
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.cmd = { timeoutMs: this.commandTimeoutMs };
  }

  // ---- namespaces natops owns ------------------------------------------------------------------

  /**
   * Creates a namespace and records it as natops's; an existing one is reused only if natops made it.
   * `opts` overrides the lab's command timeout (the netns runtime passes its own).
   */
  async ownNamespace(
    ns: string,
    sysctls: Record<string, string> = {},
    opts: NetnsCommandOptions = this.cmd,
  ): Promise<boolean> {
    fileName('namespace', ns);
    if ((await namespaceExists(ns)) && !(await this.owns(ns))) {
      throw new LabError(`namespace ${ns} exists but natops did not create it; not touching it`);
    }
    // The record first: a run stopped in between leaves a record of nothing, never an unrecorded namespace.
    await mkdir(join(this.dir, 'ns'), { recursive: true });
    await writeFile(join(this.dir, 'ns', ns), '');
    return ensureNamespace(ns, sysctls, opts);
  }

  async owns(ns: string): Promise<boolean> {
    return (await this.ownedNamespaces()).includes(ns);
  }

  async ownedNamespaces(): Promise<string[]> {
    return (await readdir(join(this.dir, 'ns')).catch(() => [])).sort();
  }

  async removeNamespace(ns: string, opts: NetnsCommandOptions = this.cmd): Promise<boolean> {
    if (!(await this.owns(fileName('namespace', ns)))) return false;
    const removed = await deleteNamespace(ns, opts);
    await rm(join(this.dir, 'ns', ns), { force: true });
    return removed;
  }

  // ---- up / down ---------------------------------------------------------------------------------

  /** Builds or updates the lab's networks; idempotent. Returns what it did, for the user. */
  async up(network: NetworkModel): Promise<string[]> {
    const log: string[] = [];
    const n = this.names;
    // Every namespace natops keeps for the lab is read before any change, one process each (its
    // links, addresses, routes and rules, and a router's sysctls): each check below looks there
    // instead of running a command of its own, and only what differs changes. A namespace natops
    // did not make is not read: ownNamespace refuses it below.
    const [existing, owned] = (await Promise.all([listNamespaces(), this.ownedNamespaces()])).map(
      (names) => new Set(names),
    ) as [Set<string>, Set<string>];
    const wanted = [
      [n.fabric, {}],
      ...network.vpcs.map((v) => [n.vpc(v.name), ROUTER_SYSCTLS] as const),
      [n.upstream, UPSTREAM_SYSCTLS],
    ] as const;
    const read = new Map(
      await Promise.all(
        wanted.map(
          async ([ns, sysctls]) =>
            [
              ns,
              existing.has(ns) && owned.has(ns)
                ? await viewNamespace(ns, Object.keys(sysctls), this.cmd)
                : { view: freshView(), sysctls: undefined },
            ] as const,
        ),
      ),
    );
    if (await this.ownNamespace(n.fabric)) log.push(`created ${n.fabric} (bridges)`);
    const fabric = read.get(n.fabric)!.view;
    await this.ensureBridge(network.nic, log, `underlay ${network.nic}`, fabric);
    for (const s of network.subnets)
      await this.ensureBridge(n.subnetBridge(s.name), log, `subnet ${s.name} ${s.cidr}`, fabric);
    const bridges = new Set(network.subnets.map((s) => n.subnetBridge(s.name)));
    for (const name of subnetLinks(fabric)) {
      if (!bridges.has(name)) {
        await ipIn(n.fabric, this.cmd, 'link', 'del', name);
        log.push(`removed bridge ${name} (its subnet left the manifests)`);
      }
    }

    for (const vpc of network.vpcs) {
      const router = read.get(n.vpc(vpc.name))!;
      await this.ensureRouter(
        vpc,
        network.subnets.filter((s) => s.vpc === vpc.name),
        log,
        router.view,
        router.sysctls,
      );
    }
    for (const ns of await this.ownedNamespaces()) {
      const vpc = ns.startsWith(`${n.prefix}-vpc-`) ? ns.slice(`${n.prefix}-vpc-`.length) : undefined;
      if (vpc !== undefined && !network.vpcs.some((v) => v.name === vpc)) {
        await this.removeNamespace(ns);
        log.push(`removed router of VPC ${vpc}`);
      }
    }

    const upstreamCreated = await this.ownNamespace(n.upstream, ROUTER_SYSCTLS);
    if (upstreamCreated) log.push(`created ${n.upstream} (upstream router on ${network.nic})`);
    const { view: upstream, sysctls: upstreamSysctls } = read.get(n.upstream)!;
    if (!upstream.links.has('net0')) {
      await addVeth({
        outerNs: n.fabric,
        outer: n.upstreamPort,
        bridge: network.nic,
        innerNs: n.upstream,
        inner: 'net0',
        ...this.cmd,
      });
    }
    // (a new namespace has them, and net0 takes its defaults)
    if (!upstreamCreated)
      await this.ensureSysctls(n.upstream, UPSTREAM_SYSCTLS, log, 'upstream router', upstreamSysctls);
    await this.syncAddresses(
      n.upstream,
      'net0',
      network.eipNextHops.map((u) => `${u.address}/${u.prefix}`),
      log,
      'upstream router',
      upstream,
    );

    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, 'topology.json'), JSON.stringify(network, null, 2));
    return log;
  }

  async network(): Promise<NetworkModel> {
    const text = await readFile(join(this.dir, 'topology.json'), 'utf8').catch(() => undefined);
    if (text === undefined || !(await namespaceExists(this.names.fabric))) {
      throw new LabError(`the lab "${this.names.prefix}" is not up: run \`natops lab up DIR\` first`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const parsed = NetworkModelSchema.safeParse(json);
    if (!parsed.success)
      throw new LabError(
        `the lab "${this.names.prefix}" has an unreadable ${join(this.dir, 'topology.json')}: run \`natops lab up DIR\` again`,
      );
    return parsed.data;
  }

  // ---- host attachment points ---------------------------------------------------------------

  /**
   * What gateway pods on this machine's Kubernetes attach to (network mode `multus`): per subnet
   * a host bridge (`subnetAttachmentBridge`) joined by a veth to the lab's subnet bridge, and a
   * host interface named after the external network's nic whose peer is on the lab's underlay
   * bridge (a macvlan's master must be a veth, not a bridge). These are the only things the lab
   * adds to the host's namespace; each is recorded and `lab down` removes it. Idempotent.
   */
  async attachHost(network: NetworkModel): Promise<string[]> {
    const log: string[] = [];
    const n = this.names;
    const fabric = n.fabric;
    const hostLink = async (name: string) =>
      (await run(['ip', 'link', 'show', 'dev', name], { ...this.cmd, okExitCodes: [0, 1, 255] })).code === 0;
    const own = async (name: string) => {
      fileName('host interface', name);
      if ((await hostLink(name)) && !(await this.ownsHostLink(name)))
        throw new LabError(`host interface ${name} exists but natops did not create it; not touching it`);
      await mkdir(join(this.dir, 'host'), { recursive: true });
      await writeFile(join(this.dir, 'host', name), '');
    };
    for (const s of network.subnets) {
      const bridge = subnetAttachmentBridge(s.name);
      const hostEnd = n.attachPort({ subnet: s.name }, 'host');
      await own(bridge);
      await own(hostEnd);
      if (!(await hostLink(bridge))) {
        await run(['ip', 'link', 'add', bridge, 'type', 'bridge'], this.cmd);
        log.push(`created host bridge ${bridge} for subnet ${s.name}`);
      }
      await run(['ip', 'link', 'set', bridge, 'up'], this.cmd);
      if (!(await hostLink(hostEnd))) {
        await run(
          [
            'ip',
            'link',
            'add',
            hostEnd,
            'type',
            'veth',
            'peer',
            'name',
            n.attachPort({ subnet: s.name }, 'lab'),
            'netns',
            fabric,
          ],
          this.cmd,
        );
        log.push(`joined host bridge ${bridge} to subnet ${s.name}`);
      }
      await ipIn(
        fabric,
        this.cmd,
        'link',
        'set',
        n.attachPort({ subnet: s.name }, 'lab'),
        'master',
        n.subnetBridge(s.name),
        'up',
      );
      await run(['ip', 'link', 'set', hostEnd, 'master', bridge, 'up'], this.cmd);
    }
    await own(network.nic);
    if (!(await hostLink(network.nic))) {
      await run(
        [
          'ip',
          'link',
          'add',
          network.nic,
          'type',
          'veth',
          'peer',
          'name',
          n.attachPort('external', 'lab'),
          'netns',
          fabric,
        ],
        this.cmd,
      );
      log.push(`created host interface ${network.nic} on the underlay ${network.nic}`);
    }
    await ipIn(fabric, this.cmd, 'link', 'set', n.attachPort('external', 'lab'), 'master', network.nic, 'up');
    await run(['ip', 'link', 'set', network.nic, 'up'], this.cmd);
    return log;
  }

  private async ownsHostLink(name: string): Promise<boolean> {
    fileName('host interface', name);
    return (await readdir(join(this.dir, 'host')).catch((): string[] => [])).includes(name);
  }

  /** Removes every namespace natops recorded (and with them their interfaces and bridges), and its host attachment points. */
  async down(): Promise<string[]> {
    const removed: string[] = [];
    for (const link of await readdir(join(this.dir, 'host')).catch((): string[] => [])) {
      if ((await run(['ip', 'link', 'del', link], { ...this.cmd, okExitCodes: [0, 1, 2, 255] })).code === 0)
        removed.push(`host ${link}`);
    }
    for (const ns of await this.ownedNamespaces()) if (await this.removeNamespace(ns)) removed.push(ns);
    await rm(this.dir, { recursive: true, force: true });
    return removed;
  }

  /** A bridge in the fabric, made when `fabric` (the fabric as up read it) lacks it. */
  private async ensureBridge(name: string, log: string[], what: string, fabric: NamespaceView): Promise<void> {
    if (fabric.links.has(name)) return;
    await ipIn(this.names.fabric, this.cmd, 'link', 'add', name, 'type', 'bridge');
    await ipIn(this.names.fabric, this.cmd, 'link', 'set', name, 'up');
    fabric.links.add(name);
    log.push(`created bridge ${name} for ${what}`);
  }

  /** A VPC's router as `view` (read by up before any change) and `sysctls` (its values, when read) show it, made right. */
  private async ensureRouter(
    vpc: NetworkModel['vpcs'][number],
    subnets: NetworkModel['subnets'],
    log: string[],
    view: NamespaceView,
    sysctls: string[] | undefined,
  ): Promise<void> {
    const n = this.names;
    const ns = n.vpc(vpc.name);
    if (await this.ownNamespace(ns, ROUTER_SYSCTLS)) log.push(`created ${ns} (router of VPC ${vpc.name})`);
    else await this.ensureSysctls(ns, ROUTER_SYSCTLS, log, `router of VPC ${vpc.name}`, sysctls);
    for (const s of subnets) {
      const port = n.subnetBridge(s.name);
      if (!view.links.has(port)) {
        await addVeth({
          outerNs: n.fabric,
          outer: n.routerPort(vpc.name, s.name),
          bridge: port,
          innerNs: ns,
          inner: port,
          ...this.cmd,
        });
        view.links.add(port);
        log.push(`router of VPC ${vpc.name}: port ${s.gateway} on subnet ${s.name}`);
      }
      await this.syncAddresses(
        ns,
        port,
        [`${s.gateway}/${parseCidr(s.cidr)!.prefix}`],
        log,
        `router port for ${s.name}`,
        view,
      );
    }
    const ports = new Set(subnets.map((s) => n.subnetBridge(s.name)));
    const removed = subnetLinks(view).filter((name) => !ports.has(name));
    for (const name of removed) {
      await ipIn(ns, this.cmd, 'link', 'del', name);
      view.links.delete(name);
      log.push(`router of VPC ${vpc.name}: removed port ${name}`);
    }
    // Static routes: compared, and only what differs changes (a flush would cut the flows through
    // this router on every run). The routes the port addresses above add are the kernel's, which
    // diffRouting leaves alone; a removed port takes the routes through it, so then they are read again.
    // This router stands in for OVN's; the gateway is the product.
    const routing = removed.length ? await readRouting(ns, this.cmd) : view;
    for (const change of diffRouting(routerRouting(vpc.staticRoutes), routing.routes, routing.rules)) {
      await ipIn(ns, this.cmd, ...change.args);
      log.push(`router of VPC ${vpc.name}: ${change.what}`);
    }
  }

  /** Sets the sysctls that differ (a namespace made by an older natops, or set by hand); `read`: their values, read already. */
  private async ensureSysctls(
    ns: string,
    sysctls: Record<string, string>,
    log: string[],
    what: string,
    read?: string[],
  ): Promise<void> {
    const keys = Object.keys(sysctls);
    const values = read ?? (await inNamespace(ns, { argv: ['sysctl', '-n', ...keys], ...this.cmd })).stdout.split('\n');
    const wrong = keys.filter((k, i) => values[i]?.trim() !== sysctls[k]).map((k) => `${k}=${sysctls[k]}`);
    if (!wrong.length) return;
    await inNamespace(ns, { argv: ['sysctl', '-q', '-w', ...wrong], ...this.cmd });
    log.push(`${what}: set ${wrong.join(', ')}`);
  }

  /** Adds the missing addresses, then removes the others (the router promotes a secondary when its primary goes). */
  private async syncAddresses(
    ns: string,
    dev: string,
    want: string[],
    log: string[],
    what: string,
    view: NamespaceView,
  ): Promise<void> {
    const have = view.addresses.get(dev) ?? [];
    for (const cidr of want) {
      if (!have.includes(cidr)) {
        await ipIn(ns, this.cmd, 'addr', 'add', cidr, 'dev', dev);
        log.push(`${what}: address ${cidr}`);
      }
    }
    for (const cidr of have) {
      if (!want.includes(cidr)) {
        await ipIn(ns, this.cmd, 'addr', 'del', cidr, 'dev', dev);
        log.push(`${what}: removed address ${cidr}`);
      }
    }
  }

  // ---- workload hosts ----------------------------------------------------------------------------

  /** A workload host on a subnet (default route via its router) or on the underlay ("external"). */
  async addHost(opts: { name: string; net: string; ip: string; gateway?: string }): Promise<LabHost> {
    hostName(opts.name);
    const cidr = parseCidr(opts.ip);
    if (!cidr)
      throw new LabError(
        `--ip ${JSON.stringify(opts.ip)} must be an IPv4 address with a prefix length, such as 10.0.1.10/24`,
      );
    const topo = await this.network();
    let bridge: string;
    let gateway = opts.gateway;
    if (opts.net === 'external') {
      bridge = topo.nic;
      gateway ??= topo.eipNextHops.find((u) =>
        cidrContains(parseCidr(`${u.address}/${u.prefix}`)!, cidr.address),
      )?.address;
    } else {
      const subnet = topo.subnets.find((s) => s.name === opts.net);
      if (!subnet)
        throw new LabError(
          `--net ${opts.net}: no such subnet in the lab (subnets: ${topo.subnets.map((s) => s.name).join(', ') || 'none'}; or "external")`,
        );
      if (!cidrContains(parseCidr(subnet.cidr)!, cidr.address) || parseCidr(subnet.cidr)!.prefix !== cidr.prefix) {
        throw new LabError(`--ip ${opts.ip} is not an address of subnet ${subnet.name} (${subnet.cidr})`);
      }
      bridge = this.names.subnetBridge(subnet.name);
      gateway ??= subnet.gateway;
    }
    if (gateway !== undefined && !cidrContains(cidr, gateway))
      throw new LabError(`--gateway ${gateway} is not on ${opts.ip}'s network`);
    const ns = this.names.host(opts.name);
    if (await namespaceExists(ns)) throw new LabError(`host ${opts.name} already exists (namespace ${ns})`);
    await this.ownNamespace(ns, HOST_SYSCTLS);
    try {
      await addVeth({
        outerNs: this.names.fabric,
        outer: this.names.hostPort(opts.name),
        bridge,
        innerNs: ns,
        inner: 'eth0',
        ...this.cmd,
      });
      await ipIn(ns, this.cmd, 'addr', 'add', opts.ip, 'dev', 'eth0');
      if (gateway) await ipIn(ns, this.cmd, 'route', 'add', 'default', 'via', gateway);
    } catch (e) {
      await this.removeNamespace(ns);
      throw e;
    }
    const host = { name: opts.name, net: opts.net, ip: opts.ip, gateway };
    await mkdir(join(this.dir, 'hosts'), { recursive: true });
    await writeFile(join(this.dir, 'hosts', `${opts.name}.json`), JSON.stringify(host));
    return host;
  }

  async removeHost(name: string): Promise<boolean> {
    await rm(join(this.dir, 'hosts', `${hostName(name)}.json`), { force: true });
    return this.removeNamespace(this.names.host(name));
  }

  async hosts(): Promise<LabHost[]> {
    const files = await readdir(join(this.dir, 'hosts')).catch(() => []);
    return Promise.all(
      files.map(async (f) => HostRecord.parse(JSON.parse(await readFile(join(this.dir, 'hosts', f), 'utf8')))),
    );
  }

  /** The namespace of a host, for `lab exec`; errors if natops did not create it. */
  async hostNamespace(name: string): Promise<string> {
    const ns = this.names.host(name);
    if (!(await this.owns(ns)) || !(await namespaceExists(ns)))
      throw new LabError(`no lab host ${name}; add it with \`natops lab host add\``);
    return ns;
  }
}
