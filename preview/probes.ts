// What `natops preview --prove` sends through a throwaway lab built from one side of a change:
// a host behind every mapping, one on the external network, and a probe per mapping with the
// answer it must get. Pure: the lab, the hosts and the packets are functions/preview/prove.ts's.
import {
  broadcastAddress,
  cidrContains,
  cidrsOverlap,
  ipv4FromInt,
  isHostIn,
  ipv4ToInt,
  networkAddress,
  parseCidr,
} from '../common/ipv4.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import type { NetworkModel } from '../dataplane/network.ts';

/** The TCP port every probe host serves for the probes that are not port forwards. */
export const PROBE_PORT = 7777;
/** The host on the external network: the far side of every inbound and outbound probe. */
export const EXTERNAL_HOST = 'ext';

export interface ProbeHost {
  name: string;
  /** a subnet's name, or "external" */
  net: string;
  /** with its prefix, as `lab host add` takes it */
  ip: string;
  tcp: number[];
  udp: number[];
}

export type ProbeKind = 'port forward' | 'floating IP in' | 'floating IP out' | 'SNAT' | 'hairpin';

export interface Probe {
  gateway: string;
  kind: ProbeKind;
  /** which mapping it is on either side (a port, a CIDR, an EIP): a base probe pairs with the head's by it */
  key: string;
  /** the mapping as this side has it */
  mapping: string;
  /** the host it is sent from */
  from: string;
  protocol: 'tcp' | 'udp';
  to: string;
  port: number;
  /** the hosts that may answer (a shared port's backends), and the source address they must see */
  answeredBy: string[];
  seenSource?: string;
}

/** A mapping no probe can stand behind, and why. */
export interface Unprobed {
  gateway: string;
  key: string;
  mapping: string;
  reason: string;
}

export interface ProbePlan {
  hosts: ProbeHost[];
  probes: Probe[];
  /** how many probes the mappings make; more than `probes` holds when sampled */
  total: number;
  /** at most as many as probes may be sent; `unprobedTotal` counts them all */
  unprobed: Unprobed[];
  unprobedTotal: number;
}

interface SubnetAt {
  name: string;
  cidr: string;
  gateway: string;
}

/**
 * The probes for these gateways: those whose key `keep` holds, or at most `keep` of them (spread
 * evenly, in order). Hosts are named h1, h2, ... by first use, `ext` on the external network, and
 * only those the kept probes need are in the plan.
 */
export function planProbes(
  gateways: readonly GatewaySpec[],
  network: NetworkModel,
  keep: number | ReadonlySet<string>,
): ProbePlan {
  const hosts = new Map<string, ProbeHost>(); // by "subnet ip"
  const unprobed: Unprobed[] = [];
  const probes: Probe[] = [];
  const taken = new Set<string>(); // every address a host may not have: gateways, lanIps, EIPs, next hops
  for (const s of network.subnets) taken.add(s.gateway);
  for (const g of gateways) {
    taken.add(g.lanIp);
    for (const e of g.eips) taken.add(e.cidr.split('/')[0]!);
  }
  for (const h of network.eipNextHops) taken.add(h.address);

  const external = externalHost(network, taken);
  if (external) hosts.set(`external ${external.ip}`, external);
  const serve = (host: ProbeHost, protocol: 'tcp' | 'udp', port: number) => {
    if (!host[protocol].includes(port)) host[protocol].push(port);
  };
  const subnetsOf = (g: GatewaySpec): SubnetAt[] =>
    network.subnets.filter((s) => s.vpc === g.vpc).map((s) => ({ name: s.name, cidr: s.cidr, gateway: s.gateway }));

  /** The host at `ip` in gateway g's VPC, made on first use; or why there can be none. */
  const hostAt = (g: GatewaySpec, ip: string): ProbeHost | string => {
    const subnet = subnetsOf(g).find((s) => cidrContains(parseCidr(s.cidr)!, ip));
    if (!subnet) return `no subnet of VPC ${g.vpc} holds ${ip}`;
    if (ip === subnet.gateway)
      return `${ip} is subnet ${subnet.name}'s gateway (its VPC router): no host can stand there`;
    const lan = gateways.find((x) => x.vpc === g.vpc && x.lanIp === ip);
    if (lan) return `${ip} is gateway ${lan.name}'s lanIp: no host can stand there`;
    const key = `${subnet.name} ${ip}`;
    let host = hosts.get(key);
    if (!host) {
      host = {
        name: `h${hosts.size + (external ? 0 : 1)}`,
        net: subnet.name,
        ip: `${ip}/${parseCidr(subnet.cidr)!.prefix}`,
        tcp: [],
        udp: [],
      };
      hosts.set(key, host);
    }
    return host;
  };
  const noExternal = 'no free address on the external network for the far side';

  for (const g of gateways) {
    for (const f of g.floatingIps) {
      const mapping = `floating IP ${f.eip} -> ${f.internalIp}`;
      const key = `${g.name} floating IP ${f.eip}`;
      const host = hostAt(g, f.internalIp);
      if (typeof host === 'string' || !external) {
        unprobed.push({ gateway: g.name, key, mapping, reason: typeof host === 'string' ? host : noExternal });
        continue;
      }
      serve(host, 'tcp', PROBE_PORT);
      probes.push({
        gateway: g.name,
        kind: 'floating IP in',
        key: `${key} in`,
        mapping: `${mapping} (in)`,
        from: external.name,
        protocol: 'tcp',
        to: f.eip,
        port: PROBE_PORT,
        answeredBy: [host.name],
      });
      probes.push({
        gateway: g.name,
        kind: 'floating IP out',
        key: `${key} out`,
        mapping: `${mapping} (out)`,
        from: host.name,
        protocol: 'tcp',
        to: hostIp(external),
        port: PROBE_PORT,
        answeredBy: [external.name],
        seenSource: f.eip,
      });
    }
    // a shared port is one probe, which any of its backends may answer
    const ports = new Map<
      string,
      { forward: GatewaySpec['dnats'][number]; backends: ProbeHost[]; problems: string[] }
    >();
    for (const d of g.dnats) {
      const port = `${d.protocol} ${d.eip}:${d.externalPort}`;
      const entry = ports.get(port) ?? { forward: d, backends: [], problems: [] };
      const host = hostAt(g, d.internalIp);
      if (typeof host === 'string') entry.problems.push(host);
      else {
        serve(host, d.protocol, d.internalPort);
        entry.backends.push(host);
      }
      ports.set(port, entry);
    }
    for (const [port, { forward: d, backends, problems }] of ports) {
      const mapping = `port forward ${port} -> ${d.shared ? `${backends.length + problems.length} backends` : `${d.internalIp}:${d.internalPort}`}`;
      const key = `${g.name} port forward ${port}`;
      if (!backends.length || !external) {
        unprobed.push({ gateway: g.name, key, mapping, reason: problems.join('; ') || noExternal });
        continue;
      }
      probes.push({
        gateway: g.name,
        kind: 'port forward',
        key,
        mapping,
        from: external.name,
        protocol: d.protocol,
        to: d.eip,
        port: d.externalPort,
        answeredBy: backends.map((b) => b.name),
      });
    }
    // SNAT from an address of its CIDR that no floating IP takes out first
    let hairpinFrom: ProbeHost | undefined;
    for (const s of g.snats) {
      const mapping = `SNAT ${s.internalCidr} -> ${s.eip}`;
      const key = `${g.name} SNAT ${s.internalCidr}`;
      const host = snatHost(g, s.internalCidr, subnetsOf(g), taken, hostAt);
      if (typeof host === 'string' || !external) {
        unprobed.push({ gateway: g.name, key, mapping, reason: typeof host === 'string' ? host : noExternal });
        continue;
      }
      hairpinFrom ??= host;
      probes.push({
        gateway: g.name,
        kind: 'SNAT',
        key,
        mapping,
        from: host.name,
        protocol: 'tcp',
        to: hostIp(external),
        port: PROBE_PORT,
        answeredBy: [external.name],
        seenSource: s.eip,
      });
    }
    // hairpin: a host inside the VPC reaching the first TCP port forward by its EIP
    const first = [...ports.values()].find((p) => p.forward.protocol === 'tcp' && p.backends.length);
    if (first && hairpinFrom && !first.backends.includes(hairpinFrom)) {
      const d = first.forward;
      probes.push({
        gateway: g.name,
        kind: 'hairpin',
        key: `${g.name} hairpin`,
        mapping: `hairpin ${hostIp(hairpinFrom)} -> ${d.eip}:${d.externalPort}`,
        from: hairpinFrom.name,
        protocol: 'tcp',
        to: d.eip,
        port: d.externalPort,
        answeredBy: first.backends.map((b) => b.name),
      });
    }
  }
  for (const h of hosts.values()) if (!h.tcp.length && !h.udp.length) h.tcp.push(PROBE_PORT);
  return keepProbes(
    { hosts: [...hosts.values()], probes, total: probes.length, unprobed, unprobedTotal: unprobed.length },
    keep,
  );
}

/**
 * A plan cut to the probes whose key `keep` holds, or to `keep` of them spread evenly, with only
 * the hosts those need (thousands of forwards make thousands of backends).
 */
export function keepProbes(plan: ProbePlan, keep: number | ReadonlySet<string>): ProbePlan {
  const sent = typeof keep === 'number' ? sample(plan.probes, keep) : plan.probes.filter((p) => keep.has(p.key));
  const needed = new Set(sent.flatMap((p) => [p.from, ...p.answeredBy]));
  return {
    ...plan,
    hosts: plan.hosts.filter((h) => needed.has(h.name)),
    probes: sent,
    unprobed: plan.unprobed.slice(0, typeof keep === 'number' ? keep : keep.size),
  };
}

const hostIp = (h: ProbeHost) => parseCidr(h.ip)!.address;

/** `limit` of `items`, spread evenly, in order. */
export function sample<T>(items: readonly T[], limit: number): T[] {
  if (items.length <= limit) return [...items];
  if (limit <= 0) return [];
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]!);
}

/** The external host: the highest free address of the first EIP next hop's network. */
function externalHost(network: NetworkModel, taken: Set<string>): ProbeHost | undefined {
  const hop = network.eipNextHops[0];
  const cidr = hop && parseCidr(hop.network);
  if (!cidr) return undefined;
  const first = ipv4ToInt(networkAddress(cidr.address, cidr.prefix));
  const last = ipv4ToInt(broadcastAddress(cidr.address, cidr.prefix)) - 1;
  for (let n = last; n > first && n > last - 4096; n--) {
    const ip = ipv4FromInt(n);
    if (!taken.has(ip)) {
      taken.add(ip);
      return { name: EXTERNAL_HOST, net: 'external', ip: `${ip}/${cidr.prefix}`, tcp: [PROBE_PORT], udp: [] };
    }
  }
  return undefined;
}

/**
 * A host of its own in `cidr` for an SNAT probe: a host address of a VPC subnet inside it (from
 * the top down, away from the addresses manifests usually name) that no floating IP or longer
 * SNAT prefix takes out first, and that no forward's backend has, so it can also reach a forward
 * by its EIP (the hairpin). A /32 is its own address.
 */
function snatHost(
  g: GatewaySpec,
  cidrText: string,
  subnets: SubnetAt[],
  taken: Set<string>,
  hostAt: (g: GatewaySpec, ip: string) => ProbeHost | string,
): ProbeHost | string {
  const cidr = parseCidr(cidrText)!;
  const used = new Set([...g.floatingIps.map((f) => f.internalIp), ...g.dnats.map((d) => d.internalIp)]);
  const longer = g.snats.map((s) => parseCidr(s.internalCidr)!).filter((c) => c.prefix > cidr.prefix);
  const bounds = (c: { address: string; prefix: number }) => [
    ipv4ToInt(networkAddress(c.address, c.prefix)),
    ipv4ToInt(broadcastAddress(c.address, c.prefix)),
  ];
  const [cFirst, cLast] = bounds(cidr);
  for (const s of subnets) {
    const sc = parseCidr(s.cidr)!;
    if (!cidrsOverlap(sc, cidr)) continue;
    const [sFirst, sLast] = bounds(sc);
    const top = Math.min(cLast!, sLast!);
    const bottom = Math.max(cFirst!, sFirst!);
    for (let n = top; n >= bottom && n > top - 4096; n--) {
      const ip = ipv4FromInt(n);
      if (!isHostIn(sc, ip) || taken.has(ip) || used.has(ip) || longer.some((c) => cidrContains(c, ip))) continue;
      const host = hostAt(g, ip);
      if (typeof host !== 'string') {
        taken.add(ip);
        return host;
      }
    }
  }
  return `no free host address of ${cidrText} in a subnet of VPC ${g.vpc}`;
}

/** A probe sent, and what came back. */
export interface ProbeOutcome {
  gateway: string;
  kind: ProbeKind;
  key: string;
  mapping: string;
  answered: boolean;
  /** who answered and the source they saw, or why nothing did */
  detail: string;
}

/** One side of a change proven: every probe's outcome, and what could not be probed. */
export interface SideProof {
  outcomes: ProbeOutcome[];
  /** the probes the mappings make; more than `outcomes` when sampled */
  total: number;
  unprobed: Unprobed[];
  /** mappings no host could stand behind, `unprobed` holding at most the probe limit of them */
  unprobedTotal: number;
  /** the lab could not be built or the time ran out: no probe (or not every probe) was sent */
  error?: string;
}

export interface Proof {
  /** absent when the base has none of the gateways to build */
  base?: SideProof;
  head: SideProof;
  /** the most probes sent per side */
  limit: number;
  /** the changed gateways proven (with the others of their VPCs), of how many changed */
  gateways: { proven: string[]; changed: number };
}

/** The reply to a probe against what it must be: "<host> <source it saw>". */
export function judge(p: Probe, reply: { line: string } | { error: string }): ProbeOutcome {
  const base = { gateway: p.gateway, kind: p.kind, key: p.key, mapping: p.mapping };
  if ('error' in reply) return { ...base, answered: false, detail: `no answer (${reply.error})` };
  const [host = '', seen = ''] = reply.line.split(' ');
  const who = p.answeredBy.includes(host);
  const source = p.seenSource === undefined || seen === p.seenSource;
  if (who && source)
    return { ...base, answered: true, detail: `${host} answered${p.seenSource ? `, seeing ${seen}` : ''}` };
  const expected = `${p.answeredBy.join(' or ')}${p.seenSource ? ` seeing ${p.seenSource}` : ''}`;
  return { ...base, answered: false, detail: `${host || '?'} answered seeing ${seen || '?'}, not ${expected}` };
}
