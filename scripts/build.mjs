// `npm run build`: natops's two entry points bundled by esbuild into plain ES modules in dist/:
// dist/cli/main.js (the command line: serve, worker, apply, ...) and dist/cli/push-sender.js (what
// the post-receive hook loads). Why esbuild rather than tsc's one file per module: a Node start
// pays per module file it loads, and zod alone is a hundred and more files (loading it took about
// 200 ms here, bundled about 35). Code split: each command's lazy imports stay lazy, as chunks in
// dist/chunks/. Type checking is not done here but by `npm test` (`tsc --noEmit`).
//
// Bundled: natops's own code and the small pure packages it loads at start (zod, yaml, js-yaml,
// commander, ipaddr.js). Every other package stays in node_modules: several read their own files at run time
// (BullMQ its Lua scripts, bull-board its UI, pino its worker files), and none of them is loaded
// by the commands whose start matters (--help, validate, plan, apply, the hook).
//
// Every output file is two folders below the root (dist/cli/, dist/chunks/), so a module that names
// a file relative to itself finds it from either; where the sources lie at another depth, or name
// another file (the hook: bin/ from the sources, the copy in dist/bin/ from the bundle), they say so. dist/meta.json is esbuild's record of
// which sources each output holds (test/unit/cli-start.test.ts reads it). dist/.built is stamped
// with the time the build began: bin/dist.js runs dist/ only when no source is newer. The hook
// named by a built `natops repo init` (dist/bin/natops-hook.js) is copied first and never removed,
// and the previous bundle's files are removed only after the new ones are written, so a push
// during a build finds a hook (which runs the sources until the build is done).
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const BUNDLED = new Set(['zod', 'yaml', 'js-yaml', 'commander', 'ipaddr.js']);
const packageName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

const began = new Date();
await mkdir(join(dist, 'bin'), { recursive: true });
for (const f of ['natops-hook.js', 'dist.js']) await copyFile(join(root, 'bin', f), join(dist, 'bin', f));
const result = await build({
  absWorkingDir: root,
  entryPoints: { 'cli/main': 'cli/main.ts', 'cli/push-sender': 'gitops/git/local-repo.ts' },
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  // commander (CommonJS) requires Node's own modules; an ES module has no `require` of its own
  banner: { js: "import { createRequire as __natopsRequire } from 'node:module'; const require = __natopsRequire(import.meta.url);" },
  plugins: [{
    name: 'natops-bundle',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('node:') || BUNDLED.has(packageName(args.path)) ? undefined : { path: args.path, external: true }));
      // zod's translations of its messages (`z.locales`, about 360 KB to compile at every start):
      // natops words its own messages, and zod's English ones come from locales/en.js directly.
      b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) => (/\/node_modules\/zod\//.test(args.importer) ? { path: 'zod-locales', namespace: 'natops-empty' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'natops-empty' }, () => ({ contents: 'export {};', loader: 'js' }));
      // commander requires node:child_process at load, for subcommands run as separate programs,
      // which natops has none of: Node's child_process (with net, dgram and streams) then loads
      // only if commander ever spawns. About 6 ms of every start here, --help's included.
      b.onResolve({ filter: /^node:child_process$/ }, (args) => (/\/node_modules\/commander\//.test(args.importer) ? { path: 'child_process', namespace: 'natops-lazy' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'natops-lazy' }, () => ({ contents: "module.exports = { get spawn() { return require('node:child_process').spawn; } };", loader: 'js' }));
    },
  }],
});
await writeFile(join(dist, 'meta.json'), JSON.stringify(result.metafile));
// what an earlier build left (chunks are named by their content, so they change names)
const written = new Set(Object.keys(result.metafile.outputs));
for (const folder of ['cli', 'chunks']) {
  for (const f of await readdir(join(dist, folder))) if (!written.has(`dist/${folder}/${f}`)) await rm(join(dist, folder, f), { force: true });
}
for (const f of await readdir(dist)) if (!['bin', 'cli', 'chunks', 'meta.json', '.built'].includes(f)) await rm(join(dist, f), { recursive: true, force: true });
await writeFile(join(dist, '.built'), '');
await utimes(join(dist, '.built'), began, began);
