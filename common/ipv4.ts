// IPv4 address arithmetic shared by validation, the compiler and the lab.
// ipaddr.js does the parsing; these helpers fix the forms natops accepts.
import ipaddr from 'ipaddr.js';

export interface Cidr {
  /** the address as written (host bits may be set, as in an eipCIDR) */
  address: string;
  prefix: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const PLAIN_QUAD = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** A dotted quad with four decimal parts; rejects the short and octal forms ipaddr.js tolerates. */
export function isIPv4(text: string): boolean {
  return DOTTED.test(text) && ipaddr.IPv4.isValidFourPartDecimal(text);
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]!)) return undefined;
  const prefix = Number(m[2]);
  if (prefix > 32) return undefined;
  return { address: m[1]!, prefix };
}

function toInt(ip: string): number {
  // a plain dotted quad directly (validation checks thousands of addresses); anything else
  // (leading zeros, parts over 255, other forms) as ipaddr.js reads it
  const m = PLAIN_QUAD.exec(ip);
  if (m) {
    const [a, b, c, d] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
    if (a <= 255 && b <= 255 && c <= 255 && d <= 255) return ((a * 256 + b) * 256 + c) * 256 + d;
  }
  return ipaddr.IPv4.parse(ip)
    .toByteArray()
    .reduce((acc, b) => acc * 256 + b, 0);
}

function fromInt(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** An address as a number (192.168.0.1 -> 3232235521), for walking a range. */
export const ipv4ToInt = toInt;
/** A number 0..2^32-1 as a dotted quad. */
export const ipv4FromInt = fromInt;

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function networkAddress(ip: string, prefix: number): string {
  return fromInt((toInt(ip) & maskOf(prefix)) >>> 0);
}

export function broadcastAddress(ip: string, prefix: number): string {
  return fromInt((toInt(ip) | ~maskOf(prefix)) >>> 0);
}

/** "10.0.1.0/24" for "10.0.1.7/24". */
export function networkOf(cidr: Cidr): string {
  return `${networkAddress(cidr.address, cidr.prefix)}/${cidr.prefix}`;
}

/** True when the CIDR is written as its network address (no host bits set). */
export function isCanonicalNetwork(cidr: Cidr): boolean {
  return networkAddress(cidr.address, cidr.prefix) === cidr.address;
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  // as numbers: validation asks this for every address of every gateway
  return ((toInt(ip) ^ toInt(cidr.address)) & maskOf(cidr.prefix)) === 0;
}

/** A host address of the network: inside it, and (below a /31) neither its network nor its broadcast address. */
export function isHostIn(cidr: Cidr, ip: string): boolean {
  const mask = maskOf(cidr.prefix);
  const n = toInt(ip);
  if (((n ^ toInt(cidr.address)) & mask) !== 0) return false;
  if (cidr.prefix >= 31) return true;
  const host = (n & ~mask) >>> 0;
  return host !== 0 && host !== ~mask >>> 0;
}

/** True when `inner` lies wholly inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.address);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrWithin(a, b) || cidrWithin(b, a);
}

/** The n-th address of a network (n = 1 is the first host). */
export function nthAddress(cidr: Cidr, n: number): string {
  return fromInt((toInt(networkAddress(cidr.address, cidr.prefix)) + n) >>> 0);
}
