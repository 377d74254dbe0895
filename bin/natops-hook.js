#!/usr/bin/env node
// The post-receive hook of a repository made by `natops repo init`: sends the pushed refs to the
// webhook (`natops repo notify` does the same by hand). Usage: natops-hook.js GIT_DIR < ref updates
// It never holds the push: a delivery the webhook does not take within about a second is kept
// beside the repository and sent later (see gitops/git/local-repo.ts).
//
// This file runs from bin/ and, copied by `npm run build`, from dist/bin/: the hook that a
// compiled `natops repo init` writes names the copy beside its gitops/git/local-repo.js. Either
// way it loads the compiled sender, or, when dist/ is missing or older than the sources, the
// TypeScript one through tsx with a warning: the same rule as bin/natops.js (keep the two in step).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('./', import.meta.url));
// the checkout (or image) root: bin/.. or dist/bin/../..
const root = join(here, existsSync(join(here, '..', 'gitops', 'git', 'local-repo.js')) ? '../..' : '..');

const mtime = (path) => statSync(path, { throwIfNoEntry: false })?.mtimeMs;

/** Whether a .ts/.js file at `path` (a file, or a folder walked) changed after `time` (ms). */
function changedSince(path, time) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (!st.isDirectory()) return /\.[jt]s$/.test(path) && st.mtimeMs > time;
  // editors' swap and backup files are neither .ts nor .js; dot folders hold no sources
  return readdirSync(path).some((name) => !name.startsWith('.') && changedSince(join(path, name), time));
}

/** Why dist/ must not run (missing, or older than the sources), or undefined when it can. */
function distProblem(entry) {
  if (mtime(join(root, entry)) === undefined) return 'dist/ is missing';
  let config;
  try {
    config = readFileSync(join(root, 'tsconfig.build.json'), 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return undefined; // no sources here (an image): dist/ is all there is
    throw e;
  }
  let include;
  try {
    // its comments are whole lines
    ({ include } = JSON.parse(config.replace(/^\s*\/\/.*$/gm, '')));
    if (!Array.isArray(include)) throw new Error('no "include" list');
  } catch (e) {
    return `cannot tell whether dist/ is current: tsconfig.build.json: ${e.message}`;
  }
  const built = mtime(join(root, 'dist', '.built')) ?? 0;
  const changed = include.find((path) => changedSince(join(root, path), built));
  return changed === undefined ? undefined : `${changed} changed after the last build`;
}

const gitDir = process.argv[2];
if (!gitDir) {
  process.stderr.write('usage: natops-hook.js GIT_DIR < "<old> <new> <ref>" lines\n');
  process.exit(2);
}
// An absolute URL, not a relative specifier: tsc, which emits this file, would rewrite a relative
// `.ts` specifier in a dynamic import to `.js`.
const problem = distProblem(join('dist', 'gitops', 'git', 'local-repo.js'));
let sender;
if (problem === undefined) {
  sender = join(root, 'dist', 'gitops', 'git', 'local-repo.js');
} else {
  process.stderr.write(`natops: warning: ${problem}: running the sources through tsx (slow start); run \`npm run build\`\n`);
  const { register } = await import('tsx/esm/api');
  register();
  sender = join(root, 'gitops', 'git', 'local-repo.ts');
}
const { notifyFromStdin } = await import(pathToFileURL(sender).href);
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
