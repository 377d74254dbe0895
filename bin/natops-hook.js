#!/usr/bin/env node
// The post-receive hook of a repository made by `natops repo init`: sends the pushed refs to the
// webhook (`natops repo notify` does the same by hand). Usage: natops-hook.js GIT_DIR < ref updates
// It never holds the push: a delivery the webhook does not take within about a second is kept
// beside the repository and sent later (see gitops/git/local-repo.ts).
import { register } from 'tsx/esm/api';

register();
const { notifyFromStdin } = await import('../gitops/git/local-repo.ts');
const gitDir = process.argv[2];
if (!gitDir) {
  process.stderr.write('usage: natops-hook.js GIT_DIR < "<old> <new> <ref>" lines\n');
  process.exit(2);
}
try {
  if (!(await notifyFromStdin(gitDir, (line) => process.stdout.write(`${line}\n`)))) process.exitCode = 1;
} catch (e) {
  process.stderr.write(`natops: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
// git waits for the hook to exit: leave now rather than when an idle or aborted connection (or
// tsx's loader thread) lets the event loop end. Writes to git's pipe are synchronous on Linux.
process.exit();
