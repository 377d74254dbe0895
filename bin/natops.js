#!/usr/bin/env node
// natops's command line: runs the compiled CLI in dist/ (`npm run build`).
//
// It never runs code older than the sources. dist/ is used when dist/cli/main.js exists and no
// source file is newer than dist/.built, which the build stamps with the time its compile began
// (the sources are the files tsconfig.build.json includes; an image without them uses dist/ as it
// is). Otherwise the TypeScript sources run through tsx, slower to start, with one warning line.
// The check is a stat per source file (about a hundred, never node_modules): a millisecond or two.
// bin/natops-hook.js applies the same rule; keep the two in step.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));

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

const problem = distProblem('dist/cli/main.js');
if (problem === undefined) {
  await import('../dist/cli/main.js');
} else {
  process.stderr.write(`natops: warning: ${problem}: running the sources through tsx (slow start); run \`npm run build\`\n`);
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
