// Which code a natops entry point runs: the bundled dist/ (`npm run build`), unless it is
// missing or older than the sources; then the TypeScript sources through tsx, with one warning.
// dist/ is current when its entry exists and none of the files it was made from (dist/sources.json,
// written by the build from esbuild's own record of its inputs, plus package-lock.json and the
// build script) is newer than dist/.built, which the build stamps with the time it began. A new
// source file is caught through the file that imports it. An image without sources uses dist/ as
// it is. The check is a stat per source file (about a hundred): a few milliseconds.
// Used by bin/natops.js and bin/natops-hook.js (both also copied to dist/bin/ by the build).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const mtime = (path) => statSync(path, { throwIfNoEntry: false })?.mtimeMs;

/** Why dist/ must not run (missing, or older than the sources), or undefined when it can. */
function distProblem(root, entry, source) {
  if (mtime(join(root, entry)) === undefined) return 'dist/ is missing';
  // without the sources' entry (an image), dist/ is all there is, whatever the files' times
  if (mtime(join(root, source)) === undefined) return undefined;
  let sources;
  try {
    sources = JSON.parse(readFileSync(join(root, 'dist', 'sources.json'), 'utf8'));
    if (!Array.isArray(sources)) throw new Error('not a list');
  } catch (e) {
    return `cannot tell whether dist/ is current: dist/sources.json: ${e.message}`;
  }
  const built = mtime(join(root, 'dist', '.built')) ?? 0;
  // a source that is not there (an image holds none) cannot be newer
  const changed = sources.find((path) => (mtime(join(root, path)) ?? 0) > built);
  return changed === undefined ? undefined : `${changed} changed after the last build`;
}

/**
 * The URL of the module to import from `root` (the checkout or image): `compiled` when dist/ is
 * current, else `source` with tsx registered. An absolute URL: tsc, which emits the callers, would
 * rewrite a relative `.ts` specifier in a dynamic import to `.js`.
 */
export async function entryModule(root, compiled, source) {
  const problem = distProblem(root, compiled, source);
  if (problem === undefined) return pathToFileURL(join(root, compiled)).href;
  process.stderr.write(
    `natops: warning: ${problem}: running the sources through tsx (slow start); run \`npm run build\`\n`,
  );
  const { register } = await import('tsx/esm/api');
  register();
  return pathToFileURL(join(root, source)).href;
}
