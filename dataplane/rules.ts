// iptables rule specs in the exact form iptables-save prints them, so a compiled state and a
// state read back from a gateway compare as plain text. Also turns a spec back into words.
import type { ConntrackFilter } from './conntrack.ts';
import type { Protocol, RuleChange } from './model.ts';

export const jump = (chain: string) => `-j ${chain}`;

export const floatingDnat = (eip: string, internalIp: string) => `-d ${eip}/32 -j DNAT --to-destination ${internalIp}`;
export const floatingSnat = (eip: string, internalIp: string) => `-s ${internalIp}/32 -j SNAT --to-source ${eip}`;

export const portForward = (
  eip: string,
  protocol: Protocol,
  externalPort: number,
  internalIp: string,
  internalPort: number,
) =>
  `-d ${eip}/32 -p ${protocol} -m ${protocol} --dport ${externalPort} -j DNAT --to-destination ${internalIp}:${internalPort}`;

/**
 * One backend of a port several backends share (Kube-OVN's share DNAT). Only a connection's first
 * packet passes the nat table, and conntrack keeps the rest with the backend it got. Backend k of
 * n takes every (n-k)th of the connections the backends before it left, so each gets 1 of n, in
 * turn. Kube-OVN picks at random (nftables numgen); nth here because iptables-save prints its
 * integers back as written, where a random probability comes back rounded to 2^-31 (the diff
 * compares text), and because the spread is even.
 */
export const sharedForward = (
  eip: string,
  protocol: Protocol,
  externalPort: number,
  internalIp: string,
  internalPort: number,
  every: number,
) =>
  `-d ${eip}/32 -p ${protocol} -m ${protocol} --dport ${externalPort} -m statistic --mode nth --every ${every} --packet 0 -j DNAT --to-destination ${internalIp}:${internalPort}`;

/** SNAT only for traffic leaving on the underlay, as current Kube-OVN does. */
export const sourceNat = (eip: string, internalCidr: string) => `-s ${internalCidr} -o net1 -j SNAT --to-source ${eip}`;

/**
 * Hairpin: a VPC host reaching a port forward or floating IP of its own VPC is DNATed back out of
 * eth0; without SNAT the backend would answer it directly and the client would drop the reply.
 * Kube-OVN matches "-s cidr -d cidr"; matching DNATed connections leaving eth0 instead also covers
 * a client and a backend in different subnets of the VPC, and leaves un-NATed traffic alone.
 */
export const hairpinSnat = (eip: string, internalCidr: string) =>
  `-s ${internalCidr} -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source ${eip}`;

/** An IPv4 address in a rule spec, captured. */
export const IP = '(\\d+\\.\\d+\\.\\d+\\.\\d+)';
const FLOATING_DNAT = new RegExp(`^-d ${IP}/32 -j DNAT --to-destination ${IP}$`);
const FLOATING_SNAT = new RegExp(`^-s ${IP}/32 -j SNAT --to-source ${IP}$`);
/** a port forward, exclusive or (with its `every`) one backend of a shared port */
const FORWARD = new RegExp(
  `^-d ${IP}/32 -p (tcp|udp) -m (?:tcp|udp) --dport (\\d+)(?: -m statistic --mode nth --every (\\d+) --packet 0)? -j DNAT --to-destination ${IP}:(\\d+)$`,
);
const SOURCE_NAT = new RegExp(`^-s ${IP}/(\\d+) -o net1 -j SNAT --to-source ${IP}$`);
const HAIRPIN = new RegExp(`^-s ${IP}/(\\d+) -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source ${IP}$`);

/** A mapping rule natops writes, as values: what the nftables data plane holds in its maps and chains. */
export type Mapping =
  | { kind: 'floating-dnat' | 'floating-snat'; eip: string; internalIp: string }
  | { kind: 'forward'; forward: Forward }
  | { kind: 'snat' | 'hairpin'; internalCidr: string; eip: string };

/** A rule spec of `chain` -> its mapping; undefined for a rule natops did not write. */
export function mappingOf(chain: string, spec: string): Mapping | undefined {
  let m: RegExpExecArray | null;
  if (chain === 'EXCLUSIVE_DNAT' && (m = FLOATING_DNAT.exec(spec)))
    return { kind: 'floating-dnat', eip: m[1]!, internalIp: m[2]! };
  if (chain === 'EXCLUSIVE_SNAT' && (m = FLOATING_SNAT.exec(spec)))
    return { kind: 'floating-snat', eip: m[2]!, internalIp: m[1]! };
  const forward = forwardOf(chain, spec);
  if (forward) return { kind: 'forward', forward };
  if (chain === 'SHARED_SNAT' && (m = SOURCE_NAT.exec(spec)))
    return { kind: 'snat', internalCidr: `${m[1]}/${m[2]}`, eip: m[3]! };
  if (chain === 'HAIRPIN_SNAT' && (m = HAIRPIN.exec(spec)))
    return { kind: 'hairpin', internalCidr: `${m[1]}/${m[2]}`, eip: m[3]! };
  return undefined;
}

/** A rule in words for plans and logs; rules natops did not write are shown as they are. */
export function describeRule(chain: string, spec: string): string {
  let m: RegExpExecArray | null;
  if (chain === 'EXCLUSIVE_DNAT' && (m = FLOATING_DNAT.exec(spec))) return `floating IP ${m[1]} -> ${m[2]}`;
  if (chain === 'EXCLUSIVE_SNAT' && (m = FLOATING_SNAT.exec(spec)))
    return `floating IP ${m[2]} <- ${m[1]} (its outbound side)`;
  const f = forwardOf(chain, spec);
  if (f) {
    const what = `port forward ${f.protocol} ${f.eip}:${f.externalPort} -> ${f.internalIp}:${f.internalPort}`;
    return f.every === undefined ? what : `${what} (shared, 1 in ${f.every} of what is left)`;
  }
  if (chain === 'SHARED_SNAT' && (m = SOURCE_NAT.exec(spec))) return `SNAT ${m[1]}/${m[2]} -> ${m[3]}`;
  if (chain === 'HAIRPIN_SNAT' && (m = HAIRPIN.exec(spec))) return `hairpin SNAT ${m[1]}/${m[2]} -> ${m[3]}`;
  if (spec.startsWith('-j ')) return `hook ${chain} ${spec}`;
  return `rule in ${chain}: ${spec}`;
}

/**
 * The conntrack deletions that make a removed mapping really stop: established flows keep their
 * NAT binding until their entry goes.
 */
export function conntrackFilters(chain: string, spec: string): ConntrackFilter[] {
  let m: RegExpExecArray | null;
  if (chain === 'EXCLUSIVE_DNAT' && (m = FLOATING_DNAT.exec(spec))) return [{ origDst: m[1]! }];
  if (chain === 'EXCLUSIVE_SNAT' && (m = FLOATING_SNAT.exec(spec))) return [{ origSrc: m[1]!, replyDst: m[2]! }];
  // only this backend's connections, exclusive or shared: the port may be another backend's now
  // (a forward that became shared in the same change), and its connections are kept
  const forward = forwardOf(chain, spec);
  if (forward) {
    const { protocol, eip, externalPort, internalIp, internalPort } = forward;
    return [{ protocol, origDst: eip, origDport: externalPort, replySrc: internalIp, replySport: internalPort }];
  }
  if (
    (chain === 'SHARED_SNAT' && (m = SOURCE_NAT.exec(spec))) ||
    (chain === 'HAIRPIN_SNAT' && (m = HAIRPIN.exec(spec)))
  ) {
    return [{ origSrc: `${m[1]}/${m[2]}`, replyDst: m[3]! }];
  }
  return [];
}

/** A port forward rule read back: exclusive, or one backend of a shared port (with its `every`). */
export interface Forward {
  eip: string;
  protocol: Protocol;
  externalPort: number;
  internalIp: string;
  internalPort: number;
  /** set for a backend of a shared port */
  every?: number;
}

export function forwardOf(chain: string, spec: string): Forward | undefined {
  const m = chain === 'SHARED_DNAT' ? FORWARD.exec(spec) : null;
  if (!m) return undefined;
  const [, eip, protocol, port, every, ip, iport] = m;
  return {
    eip: eip!,
    protocol: protocol as Protocol,
    externalPort: Number(port),
    internalIp: ip!,
    internalPort: Number(iport),
    ...(every === undefined ? {} : { every: Number(every) }),
  };
}

/** The port a forward is on: what Kube-OVN calls a DNAT's identity (eip, externalPort, protocol). */
export const portKey = (f: Forward) => `${f.protocol} ${f.eip}:${f.externalPort}`;
export const backendKey = (f: Forward) => `${portKey(f)} -> ${f.internalIp}:${f.internalPort}`;

/**
 * The conntrack deletions for the removed rules, except for a port and backend that an added rule
 * maps again: a shared port's rules all change when a backend comes or goes (each one's `every`
 * counts the backends), and the backends that stay must keep their connections.
 */
export function conntrackCleanup(removed: readonly RuleChange[], added: readonly RuleChange[]): ConntrackFilter[] {
  if (removed.length === 0) return [];
  const kept = new Set<string>();
  for (const r of added) {
    const f = forwardOf(r.chain, r.spec);
    if (f) kept.add(backendKey(f));
  }
  return removed.flatMap((r) => {
    const f = forwardOf(r.chain, r.spec);
    return f && kept.has(backendKey(f)) ? [] : conntrackFilters(r.chain, r.spec);
  });
}

/**
 * How many backends each shared port that `changes` touch has in `chain` (SHARED_DNAT as it will
 * be), for the plan's words. Only the touched ports are counted, so a change of one forward in a
 * chain of thousands parses the shared rules once and the rest not at all.
 */
export function sharedBackendCounts(changes: readonly RuleChange[], chain: readonly string[] | undefined) {
  const counts: Record<string, number> = {};
  for (const r of changes) {
    const f = forwardOf(r.chain, r.spec);
    if (f?.every !== undefined) counts[portKey(f)] = 0;
  }
  if (Object.keys(counts).length === 0) return undefined;
  for (const spec of chain ?? []) {
    if (!spec.includes(' -m statistic ')) continue;
    const f = forwardOf('SHARED_DNAT', spec);
    const key = f && portKey(f);
    if (key !== undefined && key in counts) counts[key]!++;
  }
  return counts;
}
