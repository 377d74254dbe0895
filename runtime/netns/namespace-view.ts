// How the lab reads a namespace before changing it: its links, addresses, routes and rules (and
// some sysctls) in one process, so `lab up` over a built lab costs one read per namespace.
import { ParseError, parseIpAddrs } from '../../dataplane/parse.ts';
import { ipBatchInput } from '../../dataplane/commands.ts';
import { inNamespace, ipBatch, type NetnsCommandOptions } from './netns.ts';
import type { IpRoute, IpRule } from './router-routes.ts';

/** The subnet bridges (fabric) or router ports (router namespace) natops named in a namespace. */
export function subnetLinks(view: NamespaceView): string[] {
  return [...view.links].filter((name) => /^s[0-9a-f]{8}$/.test(name));
}

/**
 * A namespace as `up` read it before changing anything: its links' names (kept current with the
 * links up adds and removes), each link's addresses (scope global, as the lab sets them), its
 * routes in every table and its rules.
 */
export interface NamespaceView {
  links: Set<string>;
  addresses: Map<string, string[]>;
  routes: IpRoute[];
  rules: IpRule[];
}

/** A namespace up is about to make: nothing in it yet that up looks at. */
export const freshView = (): NamespaceView => ({ links: new Set(), addresses: new Map(), routes: [], rules: [] });

const ROUTING_READS = [
  ['route', 'show', 'table', 'all'],
  ['rule', 'show'],
] as const;
const VIEW_READS = [['link', 'show'], ['addr', 'show'], ...ROUTING_READS] as const;
const SYSCTL_EXIT = '#natops-sysctl-exit ';

/**
 * A namespace's view, and the values of `sysctls` in it (undefined when one cannot be read: an
 * interface's, before the interface exists), by one process: ip's batch of reads, after sysctl
 * when there are sysctls to read (sh in the namespace runs both; its script is a constant, the
 * sysctl names are its arguments, and the reads come on stdin).
 */
export async function viewNamespace(
  ns: string,
  sysctls: string[],
  opts: NetnsCommandOptions,
): Promise<{ view: NamespaceView; sysctls?: string[] }> {
  let answers: string[];
  let values: string[] | undefined;
  if (!sysctls.length) ({ answers } = await ipBatch(ns, opts, VIEW_READS));
  else {
    const script = `sysctl -n "$@"; echo "${SYSCTL_EXIT}$?"; exec ip -j -batch -`;
    const lines = (
      await inNamespace(ns, { argv: ['sh', '-c', script, 'sh', ...sysctls], stdin: ipBatchInput(VIEW_READS), ...opts })
    ).stdout.split('\n');
    const exit = lines.findIndex((l) => l.startsWith(SYSCTL_EXIT));
    if (exit < 0) throw new ParseError(`sysctl in ${ns}`, 'no exit status');
    values = lines[exit] === `${SYSCTL_EXIT}0` ? lines.slice(0, exit) : undefined;
    answers = lines.slice(exit + 1).filter((l) => l.trim() !== '');
  }
  const [links, addrs, routes, rules] = answersTo(ns, VIEW_READS, answers);
  return {
    view: {
      links: new Set((JSON.parse(links) as { ifname: string }[]).map((l) => l.ifname.split('@')[0]!)),
      // (the one parser of `ip -j addr`)
      addresses: new Map(
        [...parseIpAddrs(addrs, `ip -j addr show in ${ns}`)].map(([dev, a]) => [dev, a.addresses.map((x) => x.cidr)]),
      ),
      routes: JSON.parse(routes) as IpRoute[],
      rules: JSON.parse(rules) as IpRule[],
    },
    sysctls: values,
  };
}

/** A namespace's routes in every table and its rules, read again (one process). */
export async function readRouting(
  ns: string,
  opts: NetnsCommandOptions,
): Promise<{ routes: IpRoute[]; rules: IpRule[] }> {
  const [routes, rules] = answersTo(ns, ROUTING_READS, (await ipBatch(ns, opts, ROUTING_READS)).answers);
  return { routes: JSON.parse(routes) as IpRoute[], rules: JSON.parse(rules) as IpRule[] };
}

/** One answer per read of a batch, or the batch is unreadable. */
function answersTo<R extends readonly unknown[]>(ns: string, reads: R, answers: string[]): { [K in keyof R]: string } {
  if (answers.length !== reads.length)
    throw new ParseError(`ip -j -batch in ${ns}`, `${answers.length} answers to ${reads.length} reads`);
  return answers as { [K in keyof R]: string };
}
