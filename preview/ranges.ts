// Runs of similar port forwards as ranges, so that thousands of additions read in a line each:
// `5,000 port forwards tcp 192.168.0.112:20000-24999 -> 10.0.1.10-209:80`. Pure.
import { ipv4FromInt, ipv4ToInt } from '../common/ipv4.ts';
import type { ForwardFields } from './preview.ts';
import { count, plural } from './words.ts';

/** At most this many ranges are written out per list; the rest are counted. */
const MAX_RANGES = 4;

/** Sorted distinct integers as runs: [[20000, 24999], [30000, 30000]]. */
export function runs(values: Iterable<number>): [number, number][] {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const v of sorted) {
    const last = out.at(-1);
    if (last && v === last[1] + 1) last[1] = v;
    else out.push([v, v]);
  }
  return out;
}

function listed(parts: string[]): string {
  if (parts.length <= MAX_RANGES) return parts.join(',');
  return `${parts.slice(0, MAX_RANGES).join(',')},… (${count(parts.length - MAX_RANGES)} more ranges)`;
}

const portRanges = (ports: Iterable<number>) => listed(runs(ports).map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)));

/** 10.0.1.10-209 when a run stays in one /24, else 10.0.1.250-10.0.2.9. */
function ipRanges(ips: Iterable<string>): string {
  return listed(
    runs([...ips].map(ipv4ToInt)).map(([a, b]) => {
      if (a === b) return ipv4FromInt(a);
      const [from, to] = [ipv4FromInt(a), ipv4FromInt(b)];
      const head = from.slice(0, from.lastIndexOf('.'));
      return to.startsWith(`${head}.`) ? `${from}-${to.slice(head.length + 1)}` : `${from}-${to}`;
    }),
  );
}

/**
 * Port forwards grouped by protocol, EIP, internal port and kind, each group one line. A group of
 * one is the forward itself.
 */
export function forwardRanges(forwards: readonly ForwardFields[]): string[] {
  const groups = new Map<string, ForwardFields[]>();
  for (const f of forwards) {
    const key = `${f.protocol} ${f.eip} ${f.internalPort} ${f.shared}`;
    const group = groups.get(key);
    if (group) group.push(f);
    else groups.set(key, [f]);
  }
  return [...groups.values()].map((g) => {
    const f = g[0]!;
    const what = plural(g.length, f.shared ? 'shared port forward backend' : 'port forward');
    return `${what} ${f.protocol} ${f.eip}:${portRanges(g.map((x) => x.externalPort))} -> ${ipRanges(g.map((x) => x.internalIp))}:${f.internalPort}`;
  });
}
