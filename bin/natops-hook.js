#!/usr/bin/env node
// The post-receive hook of a repository made by `natops repo init`: sends the pushed refs to the
// webhook (`natops repo notify` does the same by hand). Usage: natops-hook.js GIT_DIR < ref updates
// It never holds the push: a delivery the webhook does not take within about a second is kept
// beside the repository and sent later (see gitops/hook/send.ts).
//
// This file runs from bin/ and, copied by `npm run build`, from dist/bin/: the hook that a
// compiled `natops repo init` writes names the copy in dist/bin/. Either way it loads the bundled
// sender (dist/cli/push-sender.js), or, when dist/ is missing or older than the sources, the
// TypeScript one through tsx with a warning (bin/dist.js).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { entryModule } from './dist.js';

const here = fileURLToPath(new URL('./', import.meta.url));
// the checkout (or image) root: bin/.. or dist/bin/../..
const root = join(here, existsSync(join(here, '..', 'cli', 'push-sender.js')) ? '../..' : '..');

const gitDir = process.argv[2];
if (!gitDir) {
  process.stderr.write('usage: natops-hook.js GIT_DIR < "<old> <new> <ref>" lines\n');
  process.exit(2);
}
const { notifyFromStdin } = await import(await entryModule(root, 'dist/cli/push-sender.js', 'gitops/hook/send.ts'));
try {
  if (!(await notifyFromStdin(gitDir, (line) => process.stdout.write(`${line}\n`)))) process.exitCode = 1;
} catch (e) {
  process.stderr.write(`natops: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
// git waits for the hook to exit: leave now rather than when an idle or aborted connection (or
// tsx's loader thread, on the fallback) lets the event loop end. Writes to git's pipe are
// synchronous on Linux.
process.exit();
