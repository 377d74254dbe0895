// How natops runs git on a local repository: the git reader, `natops repo init` and the
// post-receive hook all go through runGit (the remote source's fetches, which need credentials
// and a transport allowlist in their environment, run git through run() in remote-source.ts).
// Loads no more than common/exec.ts (the hook loads it).
import { run, type ExecResult } from '../../common/exec.ts';

/**
 * git on a local repository (argv only). Pathspecs are always literal: a path
 * natops passes is a file or directory name, never `:(glob)`, `:/` or a wildcard (the tracked
 * path is checked for those first; this is the second guard).
 */
export function runGit(
  gitDir: string,
  args: string[],
  opts: { okExitCodes?: number[]; stdin?: string } = {},
): Promise<ExecResult> {
  return run(['git', '--literal-pathspecs', `--git-dir=${gitDir}`, ...args], { ...opts, target: `git ${gitDir}` });
}
