// A commit's check run (written when natops runs as a GitHub App), derived from its statuses and
// its manifest problems. Pure: publish.ts writes it.
import type { CheckAnnotation, CheckConclusion, CheckRunOutput } from '../../gitops/github/api.ts';
import type { ManifestIssue } from '../../gitops/manifests/issues.ts';
import { codeSpan, escapeMarkdown } from '../../preview/markdown.ts';
import { PREVIEW_CONTEXT, SUMMARY_CONTEXT, type CommitStatus } from '../../state/statuses.ts';

export const CHECK_NAME = 'natops';
/** GitHub takes at most 50 annotations per request; the rest go in later updates. */
export const ANNOTATIONS_PER_REQUEST = 50;

export interface CheckRunContent {
  status: 'in_progress' | 'completed';
  conclusion?: CheckConclusion;
  detailsUrl?: string;
  output: Omit<CheckRunOutput, 'annotations'>;
}

const ICON: Record<CommitStatus['state'], string> = { pending: '⏳', success: '✅', failure: '❌', error: '⚠️' };

/** GitHub refuses a check run whose summary is longer (422, not retried: the run would be lost). */
export const SUMMARY_LIMIT = 65_535;
/** When the rows do not all fit, the ones that need a look come first. */
const SEVERITY: Record<CommitStatus['state'], number> = { error: 0, failure: 1, pending: 2, success: 3 };

export function checkRunContent(
  statuses: readonly CommitStatus[],
  issues: readonly ManifestIssue[],
  limit = SUMMARY_LIMIT,
): CheckRunContent {
  const summary = statuses.find((s) => s.context === SUMMARY_CONTEXT);
  const parts = statuses.filter((s) => s.context !== SUMMARY_CONTEXT && s.context !== PREVIEW_CONTEXT);
  const state = summary?.state ?? 'pending';
  // what GitHub may show: the public form where a description holds an error's text
  const shown = (s: CommitStatus) => s.publicDescription ?? s.description;
  const row = (s: CommitStatus) => `| ${ICON[s.state]} | ${codeSpan(s.context, true)} | ${escapeMarkdown(shown(s))} |`;
  const head = [summary ? `**${escapeMarkdown(shown(summary))}**` : '**planning**', ''];
  const tail = issues.length
    ? ['', `${issues.length} problem${issues.length === 1 ? '' : 's'} in the manifests: see the annotations.`]
    : [];
  const table = parts.length
    ? ['| | gateway | result |', '|---|---|---|', ...fitRows(parts, row, limit - length([...head, ...tail]) - 2)]
    : [];
  return {
    status: state === 'pending' ? 'in_progress' : 'completed',
    ...(state === 'pending' ? {} : { conclusion: state === 'success' ? 'success' : 'failure' }),
    ...(summary?.targetUrl ? { detailsUrl: summary.targetUrl } : {}),
    output: { title: summary ? shown(summary) : 'planning', summary: [...head, ...table, ...tail].join('\n') },
  };
}

/** Characters of lines joined by newlines. */
const length = (lines: readonly string[]) => lines.reduce((n, l) => n + l.length + 1, 0);

/**
 * The table's lines (its header too) within `budget` characters: every row when they fit, else
 * the failed, then the pending, then the rest, and a last row saying how many more there are.
 */
function fitRows(parts: readonly CommitStatus[], row: (s: CommitStatus) => string, budget: number): string[] {
  const all = parts.map(row);
  const header = length(['| | gateway | result |', '|---|---|---|']);
  if (header + length(all) <= budget) return all;
  const ordered = parts
    .map((s, i) => ({ s, i }))
    .sort((a, b) => SEVERITY[a.s.state] - SEVERITY[b.s.state] || a.i - b.i);
  const more = (n: number) => `| | … and ${n} more | see the commit's statuses |`;
  const out: string[] = [];
  let used = header + more(parts.length).length + 1;
  for (const { s } of ordered) {
    const r = row(s);
    if (used + r.length + 1 > budget) break;
    out.push(r);
    used += r.length + 1;
  }
  return [...out, more(parts.length - out.length)];
}

export function annotationsOf(issues: readonly ManifestIssue[]): CheckAnnotation[] {
  return issues.map((i) => ({
    path: i.pos.file,
    start_line: Math.max(1, i.pos.line),
    end_line: Math.max(1, i.pos.line),
    annotation_level: 'failure',
    title: `${i.resource} ${i.field}`.slice(0, 255),
    message: i.message.slice(0, 64 * 1024),
  }));
}
