// Conntrack deletions for removed mappings, as data: the `conntrack -D` arguments, and the same
// filter applied to a `conntrack -L` listing, so a change removing thousands of mappings lists
// once and deletes only what exists instead of starting one process per mapping.
import { cidrContains, isIPv4, parseCidr } from '../common/ipv4.ts';

/** The subset of conntrack's filter options natops uses; all given fields must match. */
export interface ConntrackFilter {
  protocol?: 'tcp' | 'udp';
  /** original source, an address or a CIDR (`-s`) */
  origSrc?: string;
  /** original destination (`-d`) */
  origDst?: string;
  /** original destination port (`--dport`) */
  origDport?: number;
  /** reply destination (`-q`): the address a SNAT translated the source to */
  replyDst?: string;
  /** reply source (`-r`): the backend a DNAT translated the destination to */
  replySrc?: string;
  /** reply source port (`--reply-port-src`): the backend's port */
  replySport?: number;
}

export function conntrackDeleteArgv(f: ConntrackFilter): string[] {
  const argv = ['conntrack', '-D'];
  if (f.protocol) argv.push('-p', f.protocol);
  if (f.origSrc) argv.push('-s', f.origSrc);
  if (f.origDst) argv.push('-d', f.origDst);
  if (f.origDport !== undefined) argv.push('--dport', String(f.origDport));
  if (f.replyDst) argv.push('-q', f.replyDst);
  if (f.replySrc) argv.push('-r', f.replySrc);
  if (f.replySport !== undefined) argv.push('--reply-port-src', String(f.replySport));
  return argv;
}

export const CONNTRACK_LIST = ['conntrack', '-L'] as const;

export interface ConntrackEntry {
  protocol: string;
  origSrc: string;
  origDst: string;
  origDport?: number;
  replyDst: string;
  replySrc?: string;
  replySport?: number;
}

/**
 * `conntrack -L` lines: "tcp 6 119 TIME_WAIT src=A dst=B sport=P dport=Q src=C dst=D sport=R ...".
 * The first src/dst/dport are the original direction, the second src/dst/sport the reply's.
 */
export function parseConntrackList(text: string): ConntrackEntry[] {
  const entries: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const tokens = line.trim().split(/\s+/);
    const protocol = tokens[0];
    if (!protocol || !line.includes('src=')) continue;
    const src: string[] = [];
    const dst: string[] = [];
    const sport: number[] = [];
    let dport: number | undefined;
    for (const t of tokens) {
      const eq = t.indexOf('=');
      if (eq < 0) continue;
      const key = t.slice(0, eq);
      const value = t.slice(eq + 1);
      if (key === 'dst') dst.push(value);
      else if (key === 'src') src.push(value);
      else if (key === 'sport') sport.push(Number(value));
      else if (key === 'dport' && dport === undefined) dport = Number(value);
    }
    if (src.length === 0 || dst.length < 2) continue;
    entries.push({
      protocol,
      origSrc: src[0]!,
      origDst: dst[0]!,
      origDport: dport,
      replyDst: dst[1]!,
      replySrc: src[1],
      replySport: sport[1],
    });
  }
  return entries;
}

function addressMatches(address: string, pattern: string): boolean {
  const cidr = parseCidr(pattern);
  // IPv6 entries (listed only if asked for) never match natops's IPv4 filters
  return cidr ? isIPv4(address) && cidrContains(cidr, address) : address === pattern;
}

export function conntrackMatches(f: ConntrackFilter, e: ConntrackEntry): boolean {
  return (
    (f.protocol === undefined || f.protocol === e.protocol) &&
    (f.origSrc === undefined || addressMatches(e.origSrc, f.origSrc)) &&
    (f.origDst === undefined || f.origDst === e.origDst) &&
    (f.origDport === undefined || f.origDport === e.origDport) &&
    (f.replyDst === undefined || f.replyDst === e.replyDst) &&
    (f.replySrc === undefined || f.replySrc === e.replySrc) &&
    (f.replySport === undefined || f.replySport === e.replySport)
  );
}

/**
 * Which filters match at least one entry. Entries are indexed by the most specific key each
 * filter has, so thousands of filters against a busy table stay far from filters x entries.
 */
export function filtersWithEntries(filters: ConntrackFilter[], entries: ConntrackEntry[]): boolean[] {
  const index = new Map<string, ConntrackEntry[]>();
  const add = (key: string, e: ConntrackEntry) => {
    const list = index.get(key);
    if (list) list.push(e);
    else index.set(key, [e]);
  };
  for (const e of entries) {
    add(`d ${e.origDst}`, e);
    add(`q ${e.replyDst}`, e);
    if (e.origDport !== undefined) add(`p ${e.protocol} ${e.origDst} ${e.origDport}`, e);
  }
  return filters.map((f) => {
    const key =
      f.protocol && f.origDst && f.origDport !== undefined
        ? `p ${f.protocol} ${f.origDst} ${f.origDport}`
        : f.origDst
          ? `d ${f.origDst}`
          : f.replyDst
            ? `q ${f.replyDst}`
            : undefined;
    const candidates = key === undefined ? entries : (index.get(key) ?? []);
    return candidates.some((e) => conntrackMatches(f, e));
  });
}
