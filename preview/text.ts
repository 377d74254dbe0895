// A preview as plain text for a terminal: the same content as the Markdown, whole.
import { formatIssue } from '../gitops/manifests/issues.ts';
import {
  CATEGORIES,
  CATEGORY_NAMES,
  countChanges,
  hasDetail,
  riskFirst,
  type EntryChange,
  type Preview,
} from './preview.ts';
import { proofRows, proofSentences, type ProofRow } from './proof.ts';
import { actionsSentence, actionWords, baseNotes, breaks, CHANGE_MARK, countsText, plural, verdict } from './words.ts';

function entryLine(what: string, e: EntryChange, risk?: string): string {
  const text = e.change === 'changed' ? `${e.before} => ${e.after}` : (e.before ?? e.after);
  return `  ${CHANGE_MARK[e.change]} ${what} ${text}${risk ? `  (${risk})` : ''}`;
}

export function renderText(p: Preview, opts: { banner?: readonly string[] } = {}): string {
  const out: string[] = [...(opts.banner ?? [])];
  out.push(p.refs ? `NAT preview ${p.refs.base} -> ${p.refs.head}` : 'NAT preview');
  out.push(`${verdict(p).text} ${actionsSentence(p)}`, ...baseNotes(p));

  const summary: string[] = [];
  const vpcs = p.vpcs.filter((v) => v.action !== 'unchanged');
  const width = Math.max(0, ...p.gateways.map((g) => g.name.length), ...vpcs.map((v) => v.name.length));
  for (const g of p.gateways) {
    const counts =
      g.action === 'invalid'
        ? ''
        : `  ${CATEGORIES.map((c) => `${CATEGORY_NAMES[c].many} ${countsText(countChanges(g.changes[c]))}`).join(', ')}`;
    summary.push(`  gateway ${g.name.padEnd(width)}  ${actionWords(g)}${counts}`);
  }
  for (const v of vpcs) {
    const what =
      v.action === 'invalid'
        ? 'invalid: the networks stay as they are'
        : `${v.action}  static routes ${countsText(countChanges(v.staticRoutes))}`;
    summary.push(`  VPC     ${v.name.padEnd(width)}  ${what}`);
  }
  if (summary.length) out.push(summary.join('\n'));
  if (p.findings.length)
    out.push(
      [
        `findings (${p.findings.length}):`,
        ...p.findings.map((f) => `  ${f.pos.file}:${f.pos.line}:${f.pos.column}  gateway ${f.gateway}: ${f.message}`),
      ].join('\n'),
    );
  if (p.proof) {
    const cell = (c: ProofRow['head']) =>
      c === undefined ? '-' : `${c.answered ? 'answered' : 'NOT ANSWERED'}: ${c.detail}`;
    const lines = [`packets through a throwaway lab: ${proofSentences(p.proof).join(' ')}`];
    for (const r of proofRows(p.proof))
      lines.push(`  gateway ${r.gateway}: ${r.mapping}`, `    base  ${cell(r.base)}`, `    head  ${cell(r.head)}`);
    out.push(lines.join('\n'));
  }

  for (const g of p.gateways) {
    if (!hasDetail(g)) continue;
    const lines = [`gateway ${g.name}: ${actionWords(g)}`];
    if (g.recreate.length)
      lines.push(`  recreated (its pod restarts, every rule is rebuilt): ${g.recreate.join('; ')}`);
    // what breaks live traffic first, then the additions
    const { risky, added } = riskFirst(g);
    for (const { category, entry } of risky)
      lines.push(entryLine(CATEGORY_NAMES[category].one, entry, breaks(category, entry)));
    for (const { category, entry } of added) lines.push(entryLine(CATEGORY_NAMES[category].one, entry));
    if (g.ruleDiff.length)
      lines.push(`  rule diff (${plural(g.ruleDiff.length, 'line')}):`, ...g.ruleDiff.map((l) => `    ${l}`));
    out.push(lines.join('\n'));
  }
  for (const v of p.vpcs) {
    if (v.staticRoutes.length)
      out.push(
        [
          `VPC ${v.name}: ${v.action}`,
          ...v.staticRoutes.map((e) =>
            entryLine('static route', e, e.change === 'added' ? undefined : breaks('routes', e)),
          ),
        ].join('\n'),
      );
  }

  if (p.head.issues.length)
    out.push(
      [`validation errors (${p.head.issues.length}):`, ...p.head.issues.map((i) => `  ${formatIssue(i)}`)].join('\n'),
    );
  // A manifest's text must not drive the terminal (escape sequences); natops's own text has none.
  return out.join('\n\n').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd');
}
