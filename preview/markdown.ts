// A preview as a GitHub pull-request comment (GitHub-flavoured Markdown), cut to a character
// limit when it must be. Every value that comes from manifests is escaped: a hostile name or
// message cannot break a table, close a code block, or add HTML, links or mentions.
import type { ManifestIssue, SourcePos } from '../gitops/manifests/issues.ts';
import {
  CATEGORIES,
  CATEGORY_NAMES,
  countChanges,
  hasDetail,
  riskFirst,
  type EntryChange,
  type Preview,
} from './preview.ts';
import type { Proof } from './probes.ts';
import { proofRows, proofSentences, type ProofRow } from './proof.ts';
import { forwardRanges } from './ranges.ts';
import { actionsSentence, actionWords, baseNotes, breaks, count, countsText, plural, verdict } from './words.ts';

export interface MarkdownOptions {
  /** lines above everything, never cut (the caller's Markdown: escape values with escapeMarkdown) */
  banner?: readonly string[];
  /**
   * At most this many characters (UTF-16 code units, never fewer than GitHub counts). GitHub
   * rejects a comment body over 65,536; the caller takes off what it adds. Default: no limit.
   */
  limit?: number;
  /** a link to a line of a manifest at head, e.g. https://github.com/o/r/blob/<sha>/<path>#L<line> */
  linkTo?: (path: string, line: number) => string;
  /** the command the cut note offers for all of it; default `natops preview --base <base> --head <head>` */
  fullCommand?: string;
  /** what the cut note calls the limit; default "the N-character limit" */
  limitName?: string;
}

// ---- escaping ----------------------------------------------------------------------------------

/** Control characters have no business in a comment; a line break would end a table row. */
const oneLine = (s: string) => s.replace(/\r\n?|\n/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '\ufffd');

/**
 * Prose from manifests, inline (never at the start of a line): no emphasis, links, HTML, entities,
 * math or table breaks; a zero-width space after "@" and "#" and inside "://" and "www.", so
 * nothing becomes a mention, an issue reference or an autolink (escaping does not stop those).
 */
export function escapeMarkdown(s: string): string {
  return oneLine(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~$]/g, '\\$&')
    .replace(/[@#]/g, '$&\u200b')
    .replace(/:\/\//g, ':\u200b//')
    .replace(/(www)\./gi, '$1\u200b.');
}

/**
 * Text in a code span: nothing inside is Markdown. In a table cell a "|" must still be escaped
 * (GFM splits cells first, then reads `\|` as "|"); elsewhere the backslash would show.
 */
export function codeSpan(s: string, inTable = false): string {
  const t = inTable ? oneLine(s).replace(/\|/g, '\\|') : oneLine(s);
  if (!t) return '';
  const ticks = '`'.repeat(longestRun(t, '`') + 1);
  const pad = t.startsWith('`') || t.endsWith('`') || t.startsWith(' ') ? ' ' : '';
  return `${ticks}${pad}${t}${pad}${ticks}`;
}

export function escapeHtml(s: string): string {
  return oneLine(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function longestRun(s: string, ch: string): number {
  let best = 0;
  let run = 0;
  for (const c of s) {
    run = c === ch ? run + 1 : 0;
    best = Math.max(best, run);
  }
  return best;
}

/** A fenced block no line of `lines` can close: the fence is longer than any run of backticks in them. */
function fenced(info: string, lines: readonly string[]): string {
  const safe = lines.map((l) => l.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '\ufffd').replace(/\r/g, ''));
  const fence = '`'.repeat(Math.max(3, ...safe.map((l) => longestRun(l, '`') + 1)));
  return [`${fence}${info}`, ...safe, fence].join('\n');
}

function linkDestination(url: string): string {
  return `<${url.replace(/[<>\\\s]/g, (c) => encodeURIComponent(c))}>`;
}

// ---- the parts ---------------------------------------------------------------------------------

const SUMMARY_HEADER = [
  '| | action | EIPs | floating IPs | port forwards | SNATs | routes |',
  '| --- | --- | --- | --- | --- | --- | --- |',
];

function summaryRows(p: Preview): string[] {
  const rows: string[] = [];
  for (const g of p.gateways) {
    const cells =
      g.action === 'invalid'
        ? CATEGORIES.map(() => '–')
        : CATEGORIES.map((c) => countsText(countChanges(g.changes[c])));
    const action = g.action === 'invalid' ? `❌ ${escapeMarkdown(actionWords(g))}` : escapeMarkdown(actionWords(g));
    rows.push(`| gateway ${codeSpan(g.name, true)} | ${action} | ${cells.join(' | ')} |`);
  }
  for (const v of p.vpcs) {
    if (v.action === 'unchanged') continue;
    const routes = v.action === 'invalid' ? '–' : `${countsText(countChanges(v.staticRoutes))} (static)`;
    const action = v.action === 'invalid' ? '❌ invalid: the networks stay as they are' : v.action;
    rows.push(`| VPC ${codeSpan(v.name, true)} | ${action} | | | | | ${routes} |`);
  }
  if (p.gateways.length > 1)
    rows.push(`| **total** | | ${CATEGORIES.map((c) => countsText(p.totals.changes[c])).join(' | ')} |`);
  return rows;
}

/** Banner, title, verdict and the summary table: `rows` of them at most (only ever cut as a last resort). */
function headPart(
  p: Preview,
  banner: readonly string[],
  rows: string[],
  rowsCut: number,
  linkTo: MarkdownOptions['linkTo'],
): string {
  const title = p.refs ? `### NAT preview: ${codeSpan(p.refs.base)} → ${codeSpan(p.refs.head)}` : '### NAT preview';
  const v = verdict(p);
  const out = [
    ...banner,
    title,
    `${p.head.refused ? '⛔' : !v.ok ? '❌' : !p.head.enabled ? '⏸️' : '✅'} **${escapeMarkdown(v.text)}** ${escapeMarkdown(actionsSentence(p))}`,
  ];
  if (rows.length || rowsCut) out.push([...SUMMARY_HEADER, ...rows].join('\n'));
  if (rowsCut) out.push(`_… ${plural(rowsCut, 'more row')} of the summary cut._`);
  out.push(...baseNotes(p).map(escapeMarkdown));
  if (p.findings.length)
    out.push(
      [
        `#### Findings (${count(p.findings.length)})`,
        '',
        ...p.findings.map(
          (f) => `- ${place(f.pos, linkTo)} gateway ${codeSpan(f.gateway)}: ${escapeMarkdown(f.message)}`,
        ),
      ].join('\n'),
    );
  if (p.proof) out.push(renderProofMarkdown(p.proof));
  return out.join('\n\n');
}

/** The packets sent through each side's lab: never cut, as the summary (at most `limit` rows a side). */
export function renderProofMarkdown(proof: Proof): string {
  const cell = (c: ProofRow['head']) =>
    c === undefined ? '–' : `${c.answered ? '✅' : '❌'} ${escapeMarkdown(c.detail)}`;
  const rows = proofRows(proof).map(
    (r) => `| ${codeSpan(r.gateway, true)} | ${codeSpan(r.mapping, true)} | ${cell(r.base)} | ${cell(r.head)} |`,
  );
  return [
    '#### Packets through a throwaway lab',
    proofSentences(proof).map(escapeMarkdown).join(' '),
    ['| gateway | mapping | base | head |', '| --- | --- | --- | --- |', ...rows].join('\n'),
  ].join('\n\n');
}

/**
 * A gateway's or VPC's detail. Its table lists what breaks live traffic first (`risky`: removals
 * and changes, each with what it breaks), then the additions (`added`: one row each, or ranges
 * when many, with every one in a collapsed list, `addedFull`), then the rule diff, collapsed.
 */
interface Detail {
  kind: 'gateway' | 'VPC';
  name: string;
  heading: string;
  intro: string[];
  risky: string[];
  added: string[];
  addedFull: string[];
  diff: string[];
}

/** Additions of one category beyond this many read as ranges (port forwards) with the full list collapsed. */
const RANGES_OVER = 10;

const TABLE_HEADER = '| category | change | before | after | what it breaks |\n| --- | --- | --- | --- | --- |';

function entryRow(category: string, e: EntryChange, risk = ''): string {
  return `| ${category} | ${e.change} | ${e.before === undefined ? '' : codeSpan(e.before, true)} | ${e.after === undefined ? '' : codeSpan(e.after, true)} | ${escapeMarkdown(risk)} |`;
}

function details(p: Preview): Detail[] {
  const out: Detail[] = [];
  for (const g of p.gateways) {
    if (!hasDetail(g)) continue;
    const { risky, added } = riskFirst(g);
    const rows: string[] = [];
    const full: string[] = [];
    for (const c of CATEGORIES) {
      const mine = added.filter((a) => a.category === c).map((a) => a.entry);
      const forwards = mine.flatMap((e) => (e.forward ? [e.forward] : []));
      if (mine.length > RANGES_OVER && forwards.length === mine.length) {
        for (const line of forwardRanges(forwards))
          rows.push(`| ${CATEGORY_NAMES[c].many} | added |  | ${codeSpan(line, true)} |  |`);
        full.push(...mine.map((e) => `+ ${CATEGORY_NAMES[c].one} ${e.after}`));
      } else rows.push(...mine.map((e) => entryRow(CATEGORY_NAMES[c].one, e)));
    }
    out.push({
      kind: 'gateway',
      name: g.name,
      heading: `#### gateway ${codeSpan(g.name)}: ${escapeMarkdown(actionWords(g))}`,
      intro: g.recreate.length
        ? [`Recreated (its pod restarts, every rule is rebuilt): ${g.recreate.map(escapeMarkdown).join('; ')}.`]
        : [],
      risky: risky.map(({ category, entry }) => entryRow(CATEGORY_NAMES[category].one, entry, breaks(category, entry))),
      added: rows,
      addedFull: full,
      diff: g.ruleDiff,
    });
  }
  for (const v of p.vpcs) {
    if (!v.staticRoutes.length) continue;
    const risky = v.staticRoutes.filter((e) => e.change !== 'added');
    out.push({
      kind: 'VPC',
      name: v.name,
      heading: `#### VPC ${codeSpan(v.name)}: ${v.action}`,
      intro: [],
      risky: risky.map((e) => entryRow('static route', e, breaks('routes', e))),
      added: v.staticRoutes.filter((e) => e.change === 'added').map((e) => entryRow('static route', e)),
      addedFull: [],
      diff: [],
    });
  }
  return out;
}

/**
 * How much of the details a comment holds, from everything (0) down: 1 without the rule diffs,
 * 2 without the full lists of additions, 3 without the additions (their counts are in the
 * summary). Removals and changes go only after all of those, and then last first.
 */
type Level = 0 | 1 | 2 | 3;

function renderDetail(d: Detail, level: Level, risky = d.risky.length): string {
  const out = [d.heading, ...d.intro];
  const added = level < 3 ? d.added : [];
  const rows = [...d.risky.slice(0, risky), ...added];
  if (rows.length) out.push([TABLE_HEADER, ...rows].join('\n'));
  if (risky < d.risky.length)
    out.push(`_… ${plural(d.risky.length - risky, 'more removal or change', 'more removals and changes')} cut._`);
  if (level >= 3 && d.added.length) out.push(`_The additions (${plural(d.added.length, 'row')}) are cut._`);
  if (d.addedFull.length && level < 2)
    out.push(
      [
        `<details><summary>Every addition to ${d.kind} <code>${escapeHtml(d.name)}</code> (${count(d.addedFull.length)})</summary>`,
        fenced('diff', d.addedFull),
        '</details>',
      ].join('\n\n'),
    );
  if (d.diff.length && level < 1)
    out.push(
      [
        `<details><summary>Rule diff of ${d.kind} <code>${escapeHtml(d.name)}</code> (${plural(d.diff.length, 'line')})</summary>`,
        fenced('diff', d.diff),
        '</details>',
      ].join('\n\n'),
    );
  return out.join('\n\n');
}

/** What a level leaves out of a detail, as the cut note names it. */
function cutAt(d: Detail, level: Level): string[] {
  const out: string[] = [];
  if (level >= 1 && d.diff.length) out.push(`the rule diff of ${label(d)} (${plural(d.diff.length, 'line')})`);
  if (level >= 2 && d.addedFull.length)
    out.push(`the list of every addition to ${label(d)} (${count(d.addedFull.length)})`);
  if (level >= 3 && d.added.length) out.push(`the additions to ${label(d)} (${plural(d.added.length, 'row')})`);
  return out;
}

interface IssueText {
  first: string;
  rest: string[];
}

/** `file:line:column`, linked to that line of the head when a link can be made. */
function place(pos: SourcePos, linkTo: MarkdownOptions['linkTo']): string {
  const where = codeSpan(`${pos.file}:${pos.line}:${pos.column}`);
  return linkTo ? `[${where}](${linkDestination(linkTo(pos.file, pos.line))})` : where;
}

function issueText(i: ManifestIssue, linkTo: MarkdownOptions['linkTo']): IssueText {
  const [first = '', ...rest] = i.message.split(/\r\n?|\n/);
  return {
    first: `- ${place(i.pos, linkTo)} ${codeSpan(i.resource)} ${codeSpan(i.field)}: ${escapeMarkdown(first)}`,
    rest,
  };
}

/** The validation errors: the first `shown`, each with its further lines when `withRest`. */
function errorsPart(issues: readonly IssueText[], shown: number, withRest: boolean): string {
  if (!issues.length) return '';
  const out = [`#### Validation errors (${count(issues.length)})`, ''];
  for (const i of issues.slice(0, shown)) {
    out.push(i.first);
    if (withRest && i.rest.length) out.push(fenced('text', i.rest).replace(/^/gm, '  '));
  }
  if (shown < issues.length) out.push('', `_… ${plural(issues.length - shown, 'more validation error')} cut._`);
  return out.join('\n');
}

// ---- cutting -----------------------------------------------------------------------------------

const MAX_NAMED_CUTS = 6;

function cutNote(phrases: readonly string[], limitName: string, command: string): string {
  if (!phrases.length) return '';
  const named =
    phrases.length > MAX_NAMED_CUTS + 1
      ? [...phrases.slice(0, MAX_NAMED_CUTS), `${count(phrases.length - MAX_NAMED_CUTS)} more parts`]
      : phrases;
  const list = named.length > 1 ? `${named.slice(0, -1).join(', ')} and ${named.at(-1)}` : named[0];
  return `> [!NOTE]\n> ✂️ Cut to fit ${limitName}: ${list}. Run ${codeSpan(command)} for all of it.`;
}

const label = (d: Detail) => `${d.kind} ${codeSpan(d.name)}`;

/**
 * The details at level 3 (removals and changes only) in order, whole while they fit in `budget`
 * characters; the first that does not keeps the removals and changes that fit, and every later
 * one is left out.
 */
function fitRisky(all: readonly Detail[], budget: number): { parts: string[]; cuts: string[] } {
  const parts: string[] = [];
  const cuts: string[] = all.flatMap((d) => cutAt(d, 3));
  let room = budget;
  let full = true;
  for (const d of all) {
    const whole = renderDetail(d, 3);
    if (full && whole.length + 2 <= room) {
      parts.push(whole);
      room -= whole.length + 2;
      continue;
    }
    if (full) {
      full = false;
      const fits = (n: number) => renderDetail(d, 3, n).length + 2 <= room;
      if (fits(0)) {
        const n = largest(d.risky.length, fits);
        parts.push(renderDetail(d, 3, n));
        if (n < d.risky.length)
          cuts.push(
            `${n ? `${count(d.risky.length - n)} of ` : ''}the ${plural(d.risky.length, 'removal or change', 'removals and changes')} of ${label(d)}`,
          );
        continue;
      }
    }
    cuts.push(`all of ${label(d)} (${plural(d.risky.length, 'removal or change', 'removals and changes')})`);
  }
  return { parts, cuts };
}

/** The largest n in [0, max] with ok(n), given ok(0); ok is monotone but for a few digits of a count. */
function largest(max: number, ok: (n: number) => boolean): number {
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  while (lo > 0 && !ok(lo)) lo--;
  return lo;
}

export function renderMarkdown(p: Preview, opts: MarkdownOptions = {}): string {
  const limit = opts.limit ?? Infinity;
  const banner = opts.banner ?? [];
  const limitName = opts.limitName ?? `the ${count(limit)}-character limit`;
  const command =
    opts.fullCommand ?? (p.refs ? `natops preview --base ${p.refs.base} --head ${p.refs.head}` : 'natops preview');
  const rows = summaryRows(p);
  const head = headPart(p, banner, rows, 0, opts.linkTo);
  const all = details(p);
  const issues = p.head.issues.map((i) => issueText(i, opts.linkTo));
  const compose = (h: string, note: string, parts: readonly string[], errors: string) =>
    [h, note, ...parts, errors].filter(Boolean).join('\n\n');

  const errorsWhole = errorsPart(issues, issues.length, true);
  const whole = compose(
    head,
    '',
    all.map((d) => renderDetail(d, 0)),
    errorsWhole,
  );
  if (whole.length <= limit) return whole;

  // 1. The details, less of each at each level; removals and changes only after every addition.
  for (const level of [1, 2, 3] as const) {
    const note = cutNote(
      all.flatMap((d) => cutAt(d, level)),
      limitName,
      command,
    );
    const text = compose(
      head,
      note,
      all.map((d) => renderDetail(d, level)),
      errorsWhole,
    );
    if (text.length <= limit) return text;
  }
  const fixed = compose(head, '', [], errorsWhole).length;
  let reserve = 0;
  for (let attempt = 0; attempt < 20 && fixed + reserve <= limit; attempt++) {
    const { parts, cuts } = fitRisky(all, limit - fixed - reserve);
    const text = compose(head, cutNote(cuts, limitName, command), parts, errorsWhole);
    if (text.length <= limit) return text;
    reserve += text.length - limit;
  }

  // 2. No details, and only the first line of each validation error.
  const everyDetail = all.map(
    (d) =>
      `the details of ${label(d)} (${plural(d.risky.length, 'removal or change', 'removals and changes')}, ${plural(d.added.length, 'addition row')})`,
  );
  const longErrors = issues.filter((i) => i.rest.length).length;
  const restCut = longErrors ? [`the further lines of ${plural(longErrors, 'validation error')}`] : [];
  const firstLines = compose(
    head,
    cutNote([...everyDetail, ...restCut], limitName, command),
    [],
    errorsPart(issues, issues.length, false),
  );
  if (firstLines.length <= limit) return firstLines;

  // 3. Only when the limit cannot hold the summary and every error's first line: as many as fit.
  const noteFor = (errorsCut: number, rowsCut: number) =>
    cutNote(
      [
        ...everyDetail,
        ...restCut,
        ...(errorsCut ? [`${plural(errorsCut, 'validation error')}`] : []),
        ...(rowsCut ? [`${plural(rowsCut, 'row')} of the summary`] : []),
      ],
      limitName,
      command,
    );
  const withErrors = (shown: number) =>
    compose(head, noteFor(issues.length - shown, 0), [], errorsPart(issues, shown, false));
  if (withErrors(0).length <= limit) return withErrors(largest(issues.length, (n) => withErrors(n).length <= limit));
  const withRows = (n: number) =>
    compose(
      headPart(p, banner, rows.slice(0, n), rows.length - n, opts.linkTo),
      noteFor(issues.length, rows.length - n),
      [],
      errorsPart(issues, 0, false),
    );
  const text = withRows(largest(rows.length, (n) => withRows(n).length <= limit));
  // A banner longer than the limit: the limit wins.
  return text.length <= limit ? text : text.slice(0, limit);
}
