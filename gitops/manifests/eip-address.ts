// The address natops gives an IptablesEIP without v4ip, as Kube-OVN's IPAM gives one
// (pkg/controller/vpc_nat_gw_eip.go: acquireStaticEip / acquireEip on the external subnet): the
// lowest free host address of the external Subnet that is not its gateway, not in its
// excludeIps, and not taken (another EIP's v4ip or allocation, or an address a gateway holds).
// Pure: the allocation table and what is taken are inputs (state/eip-allocations.ts keeps them).
import { cidrContains, ipv4FromInt, ipv4ToInt, isIPv4, parseCidr } from '../../common/ipv4.ts';

/** The part of an external Subnet allocation reads. */
export interface AddressPool {
  /** its cidrBlock, e.g. 192.168.0.0/24 */
  cidr: string;
  /** its gateway: never handed out */
  gateway: string;
  /** Kube-OVN's excludeIps: addresses and ranges `a..b` (both ends included) */
  excludeIps?: readonly string[];
}

interface Range {
  from: number;
  to: number;
}

/** One excludeIps entry as a range, or undefined when it is neither `a.b.c.d` nor `a.b.c.d..e.f.g.h` with a <= b. */
export function excludeRange(entry: string): Range | undefined {
  const [first, last, ...rest] = entry.split('..');
  if (rest.length || first === undefined || !isIPv4(first) || (last !== undefined && !isIPv4(last))) return undefined;
  const from = ipv4ToInt(first);
  const to = last === undefined ? from : ipv4ToInt(last);
  return from <= to ? { from, to } : undefined;
}

/** Whether `address` may be given to an EIP at all: a host of the pool, not its gateway nor excluded. */
export function isAllocatable(pool: AddressPool, address: string): boolean {
  const cidr = parseCidr(pool.cidr);
  if (!cidr || !isIPv4(address) || !cidrContains(cidr, address) || address === pool.gateway) return false;
  const [first, last] = hostRange(pool.cidr);
  const n = ipv4ToInt(address);
  if (n < first || n > last) return false;
  return !excluded(pool).some((r) => n >= r.from && n <= r.to);
}

/** The first and last host address of a network as numbers (a /31 and a /32 have no network or broadcast address). */
function hostRange(cidrText: string): [number, number] {
  const cidr = parseCidr(cidrText)!;
  const size = 2 ** (32 - cidr.prefix);
  const network = Math.floor(ipv4ToInt(cidr.address) / size) * size;
  return cidr.prefix >= 31 ? [network, network + size - 1] : [network + 1, network + size - 2];
}

function excluded(pool: AddressPool): Range[] {
  const ranges = (pool.excludeIps ?? []).map(excludeRange).filter((r): r is Range => r !== undefined);
  const gateway = isIPv4(pool.gateway) ? ipv4ToInt(pool.gateway) : undefined;
  if (gateway !== undefined) ranges.push({ from: gateway, to: gateway });
  return ranges.sort((a, b) => a.from - b.from);
}

/**
 * The lowest allocatable address of `pool` not in `taken`, or undefined when there is none (the
 * subnet is exhausted). Steps over excluded ranges whole, so a /8 with a large exclusion is as
 * quick as a /29: at most one step per taken address and per range.
 */
export function chooseAddress(pool: AddressPool, taken: ReadonlySet<string>): string | undefined {
  if (!parseCidr(pool.cidr)) return undefined;
  const [first, last] = hostRange(pool.cidr);
  const ranges = excluded(pool);
  let n = first;
  let r = 0;
  while (n <= last) {
    while (r < ranges.length && ranges[r]!.to < n) r++;
    const range = ranges[r];
    if (range && range.from <= n) {
      n = range.to + 1;
      continue;
    }
    const address = ipv4FromInt(n);
    if (!taken.has(address)) return address;
    n++;
  }
  return undefined;
}

/** How many addresses of `pool` an EIP could ever get (for the message of an exhausted subnet). */
export function allocatableCount(pool: AddressPool): number {
  if (!parseCidr(pool.cidr)) return 0;
  const [first, last] = hostRange(pool.cidr);
  let count = last - first + 1;
  let covered = first - 1; // ranges may overlap: count each address once
  for (const r of excluded(pool)) {
    const from = Math.max(r.from, covered + 1, first);
    const to = Math.min(r.to, last);
    if (to >= from) count -= to - from + 1;
    covered = Math.max(covered, r.to);
  }
  return count;
}
