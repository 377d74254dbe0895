// Which code a natops entry point runs: the bundled dist/ (`npm run build`), unless it is
// missing or older than the sources; then the TypeScript sources through tsx, with one warning.
// dist/ is current when its entry exists and nothing the build is made from (tsconfig.build.json's
// "include": the source folders' .ts/.js files, and the files it names, such as package-lock.json)
// is newer than dist/.built, which the build stamps with the time it began. An image without
// sources uses dist/ as it is. The check is a stat per source file (about a hundred, never
// node_modules): a few milliseconds.
// Used by bin/natops.js and bin/natops-hook.js (both also copied to dist/bin/ by the build).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const mtime = (path) => statSync(path, { throwIfNoEntry: false })?.mtimeMs;

/**
 * Whether `path` changed after `time` (ms): a file named in the list, or a .ts/.js file of a
 * folder walked.
 */
function changedSince(path, time, named = true) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (!st.isDirectory()) return (named || /\.[jt]s$/.test(path)) && st.mtimeMs > time;
  // editors' swap and backup files are neither .ts nor .js; dot folders hold no sources
  return readdirSync(path).some((name) => !name.startsWith('.') && changedSince(join(path, name), time, false));
}

/** Why dist/ must not run (missing, or older than the sources), or undefined when it can. */
function distProblem(root, entry) {
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

/**
 * The URL of the module to import from `root` (the checkout or image): `compiled` when dist/ is
 * current, else `source` with tsx registered. An absolute URL: tsc, which emits the callers, would
 * rewrite a relative `.ts` specifier in a dynamic import to `.js`.
 */
export async function entryModule(root, compiled, source) {
  const problem = distProblem(root, compiled);
  if (problem === undefined) return pathToFileURL(join(root, compiled)).href;
  process.stderr.write(`natops: warning: ${problem}: running the sources through tsx (slow start); run \`npm run build\`\n`);
  const { register } = await import('tsx/esm/api');
  register();
  return pathToFileURL(join(root, source)).href;
}
