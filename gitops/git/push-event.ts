// GitHub's `push` webhook payload: the part natops reads, checked with zod.
import { z } from 'zod';
import { SHA } from '../../common/sha.ts';

const Sha = z.string().regex(SHA, 'a full commit id');

/** The fields natops reads from a push delivery; the rest of GitHub's payload passes through. */
export const PushPayload = z.looseObject({
  ref: z.string().min(1),
  before: Sha,
  after: Sha,
  created: z.boolean(),
  deleted: z.boolean(),
  forced: z.boolean(),
  repository: z.looseObject({ full_name: z.string().min(1), html_url: z.string().optional() }),
  head_commit: z.looseObject({ id: Sha, message: z.string(), timestamp: z.string() }).nullable(),
});
export type PushPayload = z.infer<typeof PushPayload>;

/** The branch a push went to, or undefined for tags and other refs. */
export function pushedBranch(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}
