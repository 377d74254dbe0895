// Commit ids as Git and GitHub write them (no dependencies: the post-receive hook loads this).
export const SHA = /^[0-9a-f]{40}$/;
export const ZERO_SHA = '0'.repeat(40);

/** The all-zero id: a ref that did not exist (before) or was deleted (after). */
export function isZeroSha(sha: string): boolean {
  return sha === ZERO_SHA;
}
