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

export function checkRunContent(statuses: readonly CommitStatus[], issues: readonly ManifestIssue[]): CheckRunContent {
  const summary = statuses.find((s) => s.context === SUMMARY_CONTEXT);
  const parts = statuses.filter((s) => s.context !== SUMMARY_CONTEXT && s.context !== PREVIEW_CONTEXT);
  const state = summary?.state ?? 'pending';
  const rows = parts.map(
    (s) => `| ${ICON[s.state]} | ${codeSpan(s.context, true)} | ${escapeMarkdown(s.description)} |`,
  );
  const lines = [
    summary ? `**${escapeMarkdown(summary.description)}**` : '**planning**',
    '',
    ...(rows.length ? ['| | gateway | result |', '|---|---|---|', ...rows] : []),
    ...(issues.length
      ? ['', `${issues.length} problem${issues.length === 1 ? '' : 's'} in the manifests: see the annotations.`]
      : []),
  ];
  return {
    status: state === 'pending' ? 'in_progress' : 'completed',
    ...(state === 'pending' ? {} : { conclusion: state === 'success' ? 'success' : 'failure' }),
    ...(summary?.targetUrl ? { detailsUrl: summary.targetUrl } : {}),
    output: { title: summary?.description ?? 'planning', summary: lines.join('\n') },
  };
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
