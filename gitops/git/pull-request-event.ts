// GitHub's `pull_request` webhook payload: the part natops reads, checked with zod. natops only
// reads the commits a pull request names (through the base repository's API), so a pull request
// from a fork needs no secret of the fork and runs nothing from it.
import { z } from 'zod';
import { SHA } from '../../common/sha.ts';

const Sha = z.string().regex(SHA, 'a full commit id');
const Side = z.looseObject({
  ref: z.string().min(1),
  sha: Sha,
  label: z.string().optional(),
  repo: z.looseObject({ full_name: z.string().min(1) }).nullable(),
});

export const PullRequestPayload = z.looseObject({
  action: z.string().min(1),
  number: z.number().int().positive(),
  /** present on `edited`: what changed (a new base is `changes.base`) */
  changes: z.looseObject({ base: z.unknown().optional() }).optional(),
  /** present on `labeled` and `unlabeled`: the label added or removed */
  label: z.looseObject({ name: z.string() }).optional(),
  pull_request: z.looseObject({
    number: z.number().int().positive(),
    state: z.enum(['open', 'closed']),
    title: z.string(),
    html_url: z.string(),
    updated_at: z.string(),
    merged: z.boolean().nullable().optional(),
    /** the author's relation to the repository: OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, … */
    author_association: z.string().optional(),
    labels: z.array(z.looseObject({ name: z.string() })).optional(),
    head: Side,
    base: Side,
  }),
  repository: z.looseObject({ full_name: z.string().min(1), html_url: z.string().optional() }),
});
export type PullRequestPayload = z.infer<typeof PullRequestPayload>;

/** The actions that change what a preview shows: a new head, a new base, a reopening. */
export function previewAction(p: Pick<PullRequestPayload, 'action' | 'changes'>): 'preview' | 'close' | undefined {
  if (p.action === 'opened' || p.action === 'reopened' || p.action === 'synchronize') return 'preview';
  if (p.action === 'edited' && p.changes?.base !== undefined) return 'preview';
  if (p.action === 'closed') return 'close';
  return undefined;
}
