// A ChangeSet -> the exact commands that carry it out, as argv arrays: one iptables-restore
// transaction (in the gateway's iptables) and one `nft -f` transaction for every nat change, plus
// the ip, sysctl, conntrack and arping commands around them.
import { PermanentError } from '../common/errors.ts';
import { conntrackDeleteArgv, type ConntrackFilter } from './conntrack.ts';
import { conntrackCleanup } from './rules.ts';
import type { ChainEdit, ChangeSet } from './diff.ts';
import { IPTABLES_PROGRAMS, type NftablesState } from './model.ts';
import { newRevision, nftablesPayload, nftablesProbe, type NftablesProbe } from './nftables.ts';

export interface Command {
  argv: string[];
  stdin?: string;
  /** exit codes that still mean success (conntrack -D exits 1 when nothing matched) */
  okExitCodes?: number[];
  /**
   * started and not waited for; a failure is only reported (the gratuitous ARP: arping waits out
   * its deadline even when all went well, which would hold the change up for a second)
   */
  background?: boolean;
  /** set on a conntrack deletion: a runner may skip it when a listing shows nothing matches */
  conntrack?: ConntrackFilter;
  /**
   * set on an `nft -f` transaction: the table it leaves (undefined: it removes the table) and the
   * probe that reads back what it changed (runtime/gateway-io.ts keeps the table while it holds)
   */
  nftables?: { table?: NftablesState & { revision: number }; probe?: NftablesProbe };
}

/** A rule spec that would be more than one line of an iptables-restore payload. */
export class RuleSpecError extends PermanentError {
  constructor(
    readonly chain: string,
    readonly spec: string,
  ) {
    super(
      `refusing a ${chain} rule that spans lines (it could add rules of its own): ${JSON.stringify(spec.slice(0, 200))}`,
    );
  }
}

/** The iptables-restore --noflush input for the chain edits, or undefined when nat is unchanged. */
export function restorePayload(edits: ChainEdit[]): string | undefined {
  if (edits.length === 0) return undefined;
  const lines = ['*nat'];
  // Declaring a chain creates it, and with --noflush empties an existing one: exactly a rewrite.
  for (const e of edits) if (e.create || e.rewrite) lines.push(`:${e.chain} - [0:0]`);
  for (const e of edits) {
    for (const op of e.ops) {
      // The last line of defence: specs are built from validated values, and a line break in one
      // would end the rule and start restore input of the spec's own.
      if (/[\r\n]/.test(op.spec)) throw new RuleSpecError(e.chain, op.spec);
      if (op.op === 'delete') lines.push(`-D ${e.chain} ${op.spec}`);
      else if (op.op === 'insert') lines.push(`-I ${e.chain} ${op.position} ${op.spec}`);
      else lines.push(`-A ${e.chain} ${op.spec}`);
    }
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** `revision`: the nftables table's after the change (a new one, drawn at random, by default). */
export function changeSetCommands(c: ChangeSet, revision: number = newRevision()): Command[] {
  const cmds: Command[] = [];
  // (sysctls first: net1's are set whether it is up or not, and its link then goes with the
  // addresses, routes and rules that follow, which a runner may send as one ip -batch)
  for (const [key, value] of c.sysctls) cmds.push({ argv: ['sysctl', '-q', '-w', `${key}=${value}`] });
  if (c.net1Up) cmds.push({ argv: ['ip', 'link', 'set', 'net1', 'up'] });
  for (const a of c.addresses.add) cmds.push({ argv: ['ip', 'addr', 'replace', a.cidr, 'dev', a.dev] });
  for (const r of [...c.routes.change.map((x) => x.to), ...c.routes.add]) {
    cmds.push({ argv: ['ip', 'route', 'replace', r.dst, 'via', r.via, 'dev', r.dev, 'table', String(r.table)] });
  }
  for (const r of c.rules.add) cmds.push({ argv: ['ip', 'rule', 'add', 'iif', r.iif, 'table', String(r.table)] });

  const payload = restorePayload(c.chains);
  // The table is filled before iptables' rules go, and iptables' answer before the table goes: a
  // gateway moving between the planes answers from one or the other throughout.
  const nft: Command | undefined = c.nftables && {
    argv: ['nft', '-f', '-'],
    stdin: nftablesPayload(c.nftables, revision),
    nftables:
      c.nftables.kind === 'remove' || !c.nftablesAfter
        ? {}
        : {
            table: { ...c.nftablesAfter, revision },
            probe: nftablesProbe(revision, c.nftables.kind === 'update' ? c.nftables : undefined),
          },
  };
  if (nft && c.nftables?.kind !== 'remove') cmds.push(nft);
  // -w waits for the xtables lock instead of failing while another iptables holds it (iptables
  // 1.8.9 with nf_tables accepts it too, it just has no lock to wait for).
  if (payload) cmds.push({ argv: [IPTABLES_PROGRAMS[c.iptables].restore, '-w', '--noflush'], stdin: payload });
  if (nft && c.nftables?.kind === 'remove') cmds.push(nft);
  for (const f of conntrackCleanup(c.removed, c.added))
    cmds.push({ argv: conntrackDeleteArgv(f), okExitCodes: [0, 1], conntrack: f });

  for (const r of c.rules.remove) cmds.push({ argv: ['ip', 'rule', 'del', 'iif', r.iif, 'table', String(r.table)] });
  for (const r of c.routes.remove)
    cmds.push({ argv: ['ip', 'route', 'del', r.dst, 'via', r.via, 'dev', r.dev, 'table', String(r.table)] });
  for (const a of c.addresses.remove) cmds.push({ argv: ['ip', 'addr', 'del', a.cidr, 'dev', a.dev] });
  // Tell the underlay the new EIPs live here (ARP caches may still point at an old owner).
  for (const a of c.addresses.add) {
    if (a.dev === 'net1')
      cmds.push({
        argv: ['arping', '-q', '-U', '-c', '1', '-w', '1', '-I', 'net1', a.cidr.split('/')[0]!],
        background: true,
        okExitCodes: [0, 1],
      });
  }
  return cmds;
}

/**
 * A word `ip -batch` reads as itself. ip splits each line into words on its own (quotes, `#` and
 * backslashes mean something to it), so a word may hold none of those: validated addresses,
 * names natops made and constants only.
 */
export const isPlainIpWord = (word: string): boolean => /^[A-Za-z0-9._:/@-]+$/.test(word);

/** The lines `ip -batch` reads for `commands` (each an ip argv without the leading `ip`). */
export function ipBatchInput(commands: readonly (readonly string[])[]): string {
  for (const word of commands.flat())
    if (!isPlainIpWord(word)) throw new Error(`ip -batch: ${JSON.stringify(word)} is not a plain word`);
  return commands.map((argv) => `${argv.join(' ')}\n`).join('');
}
