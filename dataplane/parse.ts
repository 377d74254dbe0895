// Live state back into the model: parsers for iptables-save and `ip -j` output. Pure.
import { NatopsError } from '../common/errors.ts';
import { z } from 'zod';
import {
  HOOK_CHAINS,
  ROUTE_TABLE,
  isOwnedChain,
  type Address,
  type GatewayState,
  type NatChain,
  type PolicyRule,
  type Route,
} from './model.ts';

export class ParseError extends NatopsError {
  constructor(
    readonly source: string,
    detail: string,
  ) {
    super(`cannot read ${source}: ${detail}`);
  }
}

/**
 * The nat table of `iptables-save` -> rule specs per chain. Owned chains are taken whole; from the
 * hook chains only the jumps into natops's chains, since other software may add rules there.
 */
export function parseNatTable(save: string): GatewayState['nat'] {
  const nat: GatewayState['nat'] = {};
  let inNat = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      continue;
    }
    if (!inNat) continue;
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (isOwnedChain(chain)) nat[chain] ??= [];
      continue;
    }
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const chain = m[1]!;
    const spec = m[2]!;
    if (isOwnedChain(chain)) (nat[chain] ??= []).push(spec);
    else if ((HOOK_CHAINS as readonly string[]).includes(chain)) {
      const target = /^-j (\S+)$/.exec(spec)?.[1];
      if (target && isOwnedChain(target)) (nat[chain as NatChain] ??= []).push(spec);
    }
  }
  for (const hook of HOOK_CHAINS) nat[hook] ??= [];
  return nat;
}

const IpAddrJson = z.array(
  z.object({
    ifname: z.string(),
    flags: z.array(z.string()).default([]),
    addr_info: z
      .array(z.object({ family: z.string(), local: z.string(), prefixlen: z.number(), scope: z.string().optional() }))
      .default([]),
  }),
);

/** `ip -j addr show dev X` -> whether the link is up and its global IPv4 addresses. */
export function parseIpAddr(json: string, dev: string): { up: boolean; addresses: Address[] } {
  const link = parseIpAddrs(json, `ip -j addr show dev ${dev}`).get(dev);
  if (!link) throw new ParseError(`ip -j addr show dev ${dev}`, `no link ${dev}`);
  return link;
}

/** `ip -j addr show` -> per link: whether it is up and its global IPv4 addresses. */
export function parseIpAddrs(
  json: string,
  source = 'ip -j addr show',
): Map<string, { up: boolean; addresses: Address[] }> {
  return new Map(
    parseJson(IpAddrJson, json, source).map((link) => [
      link.ifname,
      {
        up: link.flags.includes('UP'),
        addresses: link.addr_info
          .filter((a) => a.family === 'inet' && (a.scope ?? 'global') === 'global')
          .map((a) => ({ dev: link.ifname, cidr: `${a.local}/${a.prefixlen}` })),
      },
    ]),
  );
}

const IpRuleJson = z.array(
  z.object({ iif: z.string().optional(), table: z.string().optional(), src: z.string().optional() }),
);

/** `ip -j rule show` -> the iif rules pointing at natops's table. */
export function parseIpRules(json: string): PolicyRule[] {
  return parseJson(IpRuleJson, json, 'ip -j rule show')
    .filter((r) => r.iif !== undefined && r.table === String(ROUTE_TABLE) && (r.src === undefined || r.src === 'all'))
    .map((r) => ({ iif: r.iif!, table: ROUTE_TABLE }));
}

const IpRouteJson = z.array(z.object({ dst: z.string(), gateway: z.string().optional(), dev: z.string().optional() }));

/** `ip -j route show table 100` -> its routes; a host route prints without /32, so add it back. */
export function parseIpRoutes(json: string, table: number): Route[] {
  return parseJson(IpRouteJson, json, `ip -j route show table ${table}`).map((r) => ({
    table,
    dst: r.dst === 'default' || r.dst.includes('/') ? r.dst : `${r.dst}/32`,
    via: r.gateway ?? '',
    dev: r.dev ?? '',
  }));
}

function parseJson<T>(schema: z.ZodType<T>, text: string, source: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch (e) {
    throw new ParseError(source, `not JSON (${(e as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ParseError(source, parsed.error.issues[0]?.message ?? 'unexpected shape');
  return parsed.data;
}
