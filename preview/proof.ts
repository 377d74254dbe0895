// A proof (preview --prove) as rows a reviewer reads: each mapping with what answered at base and
// at head. The text and Markdown renderers lay the rows out their own way.
import type { Preview } from './preview.ts';
import type { Proof, SideProof } from './probes.ts';
import { count, plural } from './words.ts';

export interface ProofRow {
  gateway: string;
  mapping: string;
  /** undefined: that side has no such mapping */
  base?: { answered: boolean | undefined; detail: string };
  head?: { answered: boolean | undefined; detail: string };
}

function side(
  s: SideProof | undefined,
): Map<string, { gateway: string; mapping: string; answered: boolean | undefined; detail: string }> {
  const m = new Map<string, { gateway: string; mapping: string; answered: boolean | undefined; detail: string }>();
  for (const o of s?.outcomes ?? [])
    m.set(`${o.gateway} ${o.mapping}`, {
      gateway: o.gateway,
      mapping: o.mapping,
      answered: o.answered,
      detail: o.detail,
    });
  for (const u of s?.unprobed ?? [])
    m.set(`${u.gateway} ${u.mapping}`, {
      gateway: u.gateway,
      mapping: u.mapping,
      answered: false,
      detail: `no host behind it: ${u.reason}`,
    });
  return m;
}

/** The head's mappings in its order, then those only the base had. */
export function proofRows(p: Proof): ProofRow[] {
  const base = side(p.base);
  const head = side(p.head);
  const rows: ProofRow[] = [];
  for (const [key, h] of head) {
    const b = base.get(key);
    rows.push({
      gateway: h.gateway,
      mapping: h.mapping,
      head: { answered: h.answered, detail: h.detail },
      ...(b ? { base: { answered: b.answered, detail: b.detail } } : {}),
    });
  }
  for (const [key, b] of base)
    if (!head.has(key))
      rows.push({ gateway: b.gateway, mapping: b.mapping, base: { answered: b.answered, detail: b.detail } });
  return rows;
}

/** "7 of 7 probes answered at head (7 of 8 at base)." and what bounded it. */
export function proofSentences(p: Proof): string[] {
  const said = (s: SideProof) => {
    const answered = s.outcomes.filter((o) => o.answered).length;
    return `${count(answered)} of ${plural(s.outcomes.length + s.unprobed.length, 'mapping')} answered`;
  };
  if (!p.gateways.changed) return ['No gateway changes: nothing was built.'];
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
    if (s.total > s.outcomes.length && !s.error)
      out.push(
        `At ${name}, ${count(s.outcomes.length)} of ${plural(s.total, 'probe')} were sent (sampled evenly: at most ${count(p.limit)}).`,
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
