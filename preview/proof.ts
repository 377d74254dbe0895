// A proof (preview --prove) as rows a reviewer reads: each mapping with what answered at base and
// at head. The text and Markdown renderers lay the rows out their own way.
import type { Preview } from './preview.ts';
import type { Proof, SideProof } from './probes.ts';
import { count, plural } from './words.ts';

export interface ProofRow {
  gateway: string;
  mapping: string;
  /** undefined: that side has no such mapping */
  base?: { answered: boolean; detail: string };
  head?: { answered: boolean; detail: string };
}

interface Cell {
  gateway: string;
  mapping: string;
  answered: boolean;
  detail: string;
}

/** A side's probes and unprobed mappings by key (which mapping it is on either side). */
function side(s: SideProof | undefined): Map<string, Cell> {
  const m = new Map<string, Cell>();
  for (const o of s?.outcomes ?? [])
    m.set(o.key, { gateway: o.gateway, mapping: o.mapping, answered: o.answered, detail: o.detail });
  for (const u of s?.unprobed ?? [])
    m.set(u.key, { gateway: u.gateway, mapping: u.mapping, answered: false, detail: `no host behind it: ${u.reason}` });
  return m;
}

/**
 * The head's mappings in its order, then those only the base had; a mapping both have is one row
 * (its head's text, with the base's when it differs: a floating IP or forward moved).
 */
export function proofRows(p: Proof): ProofRow[] {
  const base = side(p.base);
  const head = side(p.head);
  const rows: ProofRow[] = [];
  const cell = (c: Cell) => ({ answered: c.answered, detail: c.detail });
  for (const [key, h] of head) {
    const b = base.get(key);
    rows.push({
      gateway: h.gateway,
      mapping: b && b.mapping !== h.mapping ? `${h.mapping} (at base: ${b.mapping})` : h.mapping,
      head: cell(h),
      ...(b ? { base: cell(b) } : {}),
    });
  }
  for (const [key, b] of base) if (!head.has(key)) rows.push({ gateway: b.gateway, mapping: b.mapping, base: cell(b) });
  return rows;
}

/** "7 of 7 probes answered at head (7 of 8 at base)." and what bounded it. */
export function proofSentences(p: Proof): string[] {
  if (!p.gateways.changed) return ['No gateway changes: nothing was built.'];
  const said = (s: SideProof) =>
    `${count(s.outcomes.filter((o) => o.answered).length)} of ${plural(s.outcomes.length, 'probe')} answered`;
  const out = [`${said(p.head)} at head${p.base ? ` (${said(p.base)} at base)` : ''}.`];
  if (p.gateways.proven.length < p.gateways.changed)
    out.push(
      `${count(p.gateways.proven.length)} of the ${plural(p.gateways.changed, 'changed gateway')} proven, by name.`,
    );
  for (const [name, s] of [
    ['head', p.head],
    ['base', p.base],
  ] as const) {
    if (!s) continue;
    if (s.total > s.outcomes.length)
      out.push(
        `At ${name}, ${count(s.outcomes.length)} of ${plural(s.total, 'probe')} were sent (at most ${count(p.limit)}, spread evenly over both sides' mappings).`,
      );
    if (s.unprobedTotal)
      out.push(
        `At ${name}, ${plural(s.unprobedTotal, 'mapping')} had no host behind ${s.unprobedTotal === 1 ? 'it' : 'them'}${s.unprobedTotal > s.unprobed.length ? ` (${count(s.unprobed.length)} listed)` : ''}.`,
      );
    if (s.error) out.push(`At ${name}: ${s.error}.`);
  }
  return out;
}

/** Whether a probe of the head did not answer (the command's exit status says so). */
export const headFailed = (p: Proof): boolean =>
  p.head.error !== undefined || p.head.outcomes.some((o) => !o.answered) || p.head.unprobed.length > 0;

/** The gateways a prove builds: those the change creates, updates or deletes. */
export const changedGateways = (p: Preview): string[] =>
  p.gateways.filter((g) => g.action === 'create' || g.action === 'update' || g.action === 'delete').map((g) => g.name);
