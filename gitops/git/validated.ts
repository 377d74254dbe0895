// A commit's manifests, read and validated in one step, the same for the planner and previews: a
// commit over the per-commit limits is refused as a whole (one problem naming the setting), as an
// invalid commit is, so it is recorded and shown rather than retried.
import type { AllocationInput } from '../manifests/eip-allocation.ts';
import { type ValidateOptions, type ValidationResult, validateManifests } from '../manifests/validate.ts';
import { ManifestLimitError, type GitSource } from './source.ts';

/** A commit's manifests read once, to validate with an allocation table (again, if the table moves meanwhile). */
export type Validate = (allocations?: AllocationInput) => ValidationResult;

export async function manifestsToValidate(
  source: GitSource,
  sha: string,
  path: string,
  rules: ValidateOptions,
  warn?: (m: string) => void,
): Promise<Validate> {
  try {
    const files = await source.manifestsAt(sha, path, { limits: rules, ...(warn ? { warn } : {}) });
    return (allocations) => validateManifests(files, { ...rules, ...(allocations && { allocations }) });
  } catch (e) {
    if (!(e instanceof ManifestLimitError)) throw e;
    return () => ({ ...validateManifests([], rules), issues: [e.issue()] });
  }
}

export async function validatedAt(
  source: GitSource,
  sha: string,
  path: string,
  rules: ValidateOptions,
  warn?: (m: string) => void,
  allocations?: AllocationInput,
): Promise<ValidationResult> {
  return (await manifestsToValidate(source, sha, path, rules, warn))(allocations);
}
