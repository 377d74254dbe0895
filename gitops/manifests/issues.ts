// Validation problems, each tied to a place in a manifest file.
import { z } from 'zod';
import { NatopsError } from '../../common/errors.ts';

export const SourcePosSchema = z.object({ file: z.string(), line: z.number(), column: z.number() });
export type SourcePos = z.infer<typeof SourcePosSchema>;

/** A problem, as reported and as stored (a check run's annotations are made from stored ones). */
export const ManifestIssueSchema = z.object({
  pos: SourcePosSchema,
  /** "Kind/name", or "-" when the document is too broken to tell */
  resource: z.string(),
  /** dotted field path ("spec.eips[1].gateway"), "(yaml)" for syntax errors */
  field: z.string(),
  message: z.string(),
  /**
   * The document (or file) cannot be attributed to one resource natops manages: it does not
   * parse, it is too large or not text, or natops cannot tell what it is (a misspelt kind, a
   * wrong apiVersion, no readable metadata.name). The whole commit must be refused. Also set
   * for a problem that concerns every gateway although one document holds it: an image the
   * operator does not allow, more gateways than allowed (policy.ts).
   */
  unattributed: z.literal(true).optional(),
  /** the gateway a problem at another resource makes invalid (an IptablesEIP's or rule's: its EIP's natGwDp) */
  gateway: z.string().optional(),
});
export type ManifestIssue = z.infer<typeof ManifestIssueSchema>;

/**
 * True when the problem stops the whole commit: the document it is in cannot be attributed to
 * one resource (it does not parse, or natops cannot tell what it is), so a gateway inside it would
 * look deleted and be pruned if planning went on.
 */
export function refusesCommit(issue: ManifestIssue): boolean {
  return issue.unattributed === true || issue.resource === '-' || issue.field === '(yaml)';
}

export function formatIssue(issue: ManifestIssue): string {
  const { file, line, column } = issue.pos;
  return `${file}:${line}:${column}  ${issue.resource}  ${issue.field}: ${issue.message}`;
}

export function formatFieldPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || '(document)';
}

function byPosition(a: ManifestIssue, b: ManifestIssue): number {
  return a.pos.file.localeCompare(b.pos.file) || a.pos.line - b.pos.line || a.pos.column - b.pos.column;
}

export function sortIssues(issues: ManifestIssue[]): ManifestIssue[] {
  return [...issues].sort(byPosition);
}

/** Thrown by plan and apply when the manifests do not validate: nothing has been changed. */
export class ManifestValidationError extends NatopsError {
  constructor(readonly issues: ManifestIssue[]) {
    super(
      `${issues.length} problem${issues.length === 1 ? '' : 's'} in the manifests; nothing was changed:\n` +
        sortIssues(issues).map(formatIssue).join('\n'),
    );
  }
}
