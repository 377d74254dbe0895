// A commit's manifests, read and validated in one step, the same for the planner and previews: a
// commit over the per-commit limits is refused as a whole (one problem naming the setting), as an
// invalid commit is, so it is recorded and shown rather than retried.
import { type ValidateOptions, type ValidationResult, validateManifests } from '../manifests/validate.ts';
import { ManifestLimitError, type GitSource } from './source.ts';

export async function validatedAt(
  source: GitSource,
  sha: string,
  path: string,
  rules: ValidateOptions,
  warn?: (m: string) => void,
): Promise<ValidationResult> {
  try {
    return validateManifests(await source.manifestsAt(sha, path, { limits: rules, ...(warn ? { warn } : {}) }), rules);
  } catch (e) {
    if (!(e instanceof ManifestLimitError)) throw e;
    return { ...validateManifests([], rules), issues: [e.issue()] };
  }
}
