// iptables rule specs in the exact form iptables-save prints them, so a compiled state and a
// state read back from a gateway compare as plain text. Also turns a spec back into words.
import type { ConntrackFilter } from './conntrack.ts';
import type { Protocol } from './model.ts';

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

const IP = '(\\d+\\.\\d+\\.\\d+\\.\\d+)';
const FLOATING_DNAT = new RegExp(`^-d ${IP}/32 -j DNAT --to-destination ${IP}$`);
const FLOATING_SNAT = new RegExp(`^-s ${IP}/32 -j SNAT --to-source ${IP}$`);
const PORT_FORWARD = new RegExp(
  `^-d ${IP}/32 -p (tcp|udp) -m (?:tcp|udp) --dport (\\d+) -j DNAT --to-destination ${IP}:(\\d+)$`,
);
const SOURCE_NAT = new RegExp(`^-s ${IP}/(\\d+) -o net1 -j SNAT --to-source ${IP}$`);
const HAIRPIN = new RegExp(`^-s ${IP}/(\\d+) -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source ${IP}$`);

/** A rule in words for plans and logs; rules natops did not write are shown as they are. */
export function describeRule(chain: string, spec: string): string {
  let m: RegExpExecArray | null;
  if (chain === 'EXCLUSIVE_DNAT' && (m = FLOATING_DNAT.exec(spec))) return `floating IP ${m[1]} -> ${m[2]}`;
  if (chain === 'EXCLUSIVE_SNAT' && (m = FLOATING_SNAT.exec(spec)))
    return `floating IP ${m[2]} <- ${m[1]} (its outbound side)`;
  if (chain === 'SHARED_DNAT' && (m = PORT_FORWARD.exec(spec)))
    return `port forward ${m[2]} ${m[1]}:${m[3]} -> ${m[4]}:${m[5]}`;
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
  if (chain === 'SHARED_DNAT' && (m = PORT_FORWARD.exec(spec))) {
    return [{ protocol: m[2] as Protocol, origDst: m[1]!, origDport: Number(m[3]) }];
  }
  if (
    (chain === 'SHARED_SNAT' && (m = SOURCE_NAT.exec(spec))) ||
    (chain === 'HAIRPIN_SNAT' && (m = HAIRPIN.exec(spec)))
  ) {
    return [{ origSrc: `${m[1]}/${m[2]}`, replyDst: m[3]! }];
  }
  return [];
}
