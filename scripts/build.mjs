// `npm run build`: natops's two entry points bundled by esbuild into plain ES modules in dist/:
// dist/cli/main.js (the command line: serve, worker, apply, ...) and dist/cli/push-sender.js (what
// the post-receive hook loads). Why esbuild rather than tsc's one file per module: a Node start
// pays per module file it loads, and zod alone is a hundred and more files (loading it took about
// 200 ms here, bundled about 35). Code split: each command's lazy imports stay lazy, as chunks in
// dist/chunks/. Type checking is not done here but by `npm test` (`tsc --noEmit`).
//
// Bundled: natops's own code and commander; the pure packages that parse and check manifests
// (zod, yaml, js-yaml, ipaddr.js) go to the vendor file, loaded with a code cache (below). Every
// other package stays in node_modules: several read their own files at run time
// (BullMQ its Lua scripts, bull-board its UI, pino its worker files), and none of them is loaded
// by the commands whose start matters (--help, validate, plan, apply, the hook).
//
// Every output file is two folders below the root (dist/cli/, dist/chunks/), so a module that names
// a file relative to itself finds it from either; where the sources lie at another depth, or name
// another file (the hook: bin/ from the sources, the copy in dist/bin/ from the bundle), they say so. dist/meta.json is esbuild's record of
// which sources each output holds (test/unit/cli-start.test.ts reads it). dist/sources.json lists
// natops's files the bundle was made from, and dist/.built is stamped with the time the build
// began: bin/dist.js runs dist/ only when none of them is newer. The hook
// named by a built `natops repo init` (dist/bin/natops-hook.js) is copied first and never removed,
// and the previous bundle's files are removed only after the new ones are written, so a push
// during a build finds a hook (which runs the sources until the build is done).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const BUNDLED = new Set(['commander']);
const packageName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

// zod's translations of its messages (`z.locales`, about 360 KB to compile at every start):
// natops words its own messages, and zod's English ones come from locales/en.js directly.
const withoutZodLocales = {
  name: 'natops-without-zod-locales',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.c?js$/ }, (args) =>
      /\/node_modules\/zod\//.test(args.importer) ? { path: 'zod-locales', namespace: 'natops-empty' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'natops-empty' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

// The vendor file: the big pure packages natops's commands parse and check with (zod, yaml,
// js-yaml, ipaddr.js; about 440 KB minified), as one CommonJS module that dist/ loads through
// node:vm with V8's code cache beside it, so a start does not compile them again (about 50 ms of
// each `validate`, `plan` and `apply` here; Node 20 has no code cache for ES modules). The file
// holds exactly the script V8 compiles (the module's body in Node's CommonJS wrapper), and it and
// its cache are named by a hash of it: V8 checks a cache against the source's length only.
const VENDOR = ['zod', 'yaml', 'js-yaml', 'ipaddr.js'];
const requireHere = createRequire(join(root, 'package.json'));

async function buildVendor() {
  const result = await build({
    absWorkingDir: root,
    stdin: {
      contents: `module.exports = { ${VENDOR.map((p) => `${JSON.stringify(p)}: require(${JSON.stringify(p)})`).join(', ')} };`,
      resolveDir: root,
      sourcefile: 'vendor.cjs',
      loader: 'js',
    },
    outfile: 'dist/chunks/vendor.cjs',
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // ASCII only (esbuild escapes the rest), so the loader reads it as latin1, without decoding
    // UTF-8 (about 5 ms here)
    charset: 'ascii',
    // half the bytes to read and hand to V8 at each start; names kept, as the packages' error
    // classes and stack traces show them
    minify: true,
    keepNames: true,
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
    plugins: [withoutZodLocales],
  });
  const body = await readFile(join(dist, 'chunks', 'vendor.cjs'), 'utf8');
  if (/[^\0-\x7f]/.test(body)) throw new Error('the vendor file has a character that is not ASCII');
  const script = `(function (exports, require, module, __filename, __dirname) {${body}\n})`;
  const name = `vendor-${createHash('sha256').update(script).digest('hex').slice(0, 12)}.cjs`;
  await writeFile(join(dist, 'chunks', name), script);
  await rm(join(dist, 'chunks', 'vendor.cjs'));
  const { inputs } = result.metafile.outputs['dist/chunks/vendor.cjs'];
  return { name, outputs: { [`dist/chunks/${name}`]: { inputs, imports: [], exports: [] } } };
}

/** The module natops's code imports in place of a vendored package: its exports, from the vendor file. */
function vendorModule(pkg) {
  // (export names may be words JavaScript reserves, such as zod's `null` and `enum`)
  const names = Object.keys(requireHere(pkg)).filter(
    (k) => /^[A-Za-z_$][\w$]*$/.test(k) && k !== 'default' && k !== '__esModule',
  );
  return [
    "import { vendor } from 'natops-vendor-loader';",
    `const m = vendor[${JSON.stringify(pkg)}];`,
    ...names.map((k, i) => `const v${i} = m[${JSON.stringify(k)}];`),
    `export { ${names.map((k, i) => `v${i} as ${k}`).join(', ')} };`,
    'export default m.__esModule ? m.default : m;',
  ].join('\n');
}

/** Loads the vendor file once per process, from V8's code cache when there is a good one. */
function vendorLoader(name) {
  return `
import { accessSync, constants, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';
import { fileURLToPath } from 'node:url';
// every bundle file is two folders below the root, so this names dist/chunks/ from any of them
const file = fileURLToPath(new URL(${JSON.stringify(`../chunks/${name}`)}, import.meta.url));
const cacheFile = file + '.cache';
let cachedData;
try { cachedData = readFileSync(cacheFile); } catch {}
const script = new Script(readFileSync(file, 'latin1'), { filename: file, cachedData });
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
// No cache, or V8 refused it (another Node): write one when the process ends, with what it
// compiled by then. A cache is an optimisation: where dist/ is read-only none is kept.
let writable = true;
try { accessSync(dirname(file), constants.W_OK); } catch { writable = false; }
if (writable && (cachedData === undefined || script.cachedDataRejected)) {
  process.once('exit', () => {
    const part = cacheFile + '.' + process.pid + '.' + Math.random().toString(36).slice(2);
    try {
      writeFileSync(part, script.createCachedData());
      renameSync(part, cacheFile);
    } catch {
      try { unlinkSync(part); } catch {}
    }
  });
}
export const vendor = module.exports;
`;
}

const began = new Date();
await mkdir(join(dist, 'bin'), { recursive: true });
await mkdir(join(dist, 'chunks'), { recursive: true });
for (const f of ['natops-hook.js', 'dist.js']) await copyFile(join(root, 'bin', f), join(dist, 'bin', f));
const vendor = await buildVendor();
const result = await build({
  absWorkingDir: root,
  entryPoints: { 'cli/main': 'cli/main.ts', 'cli/push-sender': 'gitops/hook/send.ts' },
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
  banner: {
    js: "import { createRequire as __natopsRequire } from 'node:module'; const require = __natopsRequire(import.meta.url);",
  },
  plugins: [
    {
      name: 'natops-bundle',
      setup(b) {
        b.onResolve({ filter: /^natops-vendor-loader$/ }, () => ({
          path: 'loader',
          namespace: 'natops-vendor-loader',
        }));
        b.onLoad({ filter: /.*/, namespace: 'natops-vendor-loader' }, () => ({
          contents: vendorLoader(vendor.name),
          loader: 'js',
          resolveDir: root,
        }));
        b.onResolve({ filter: /^[^./]/ }, (args) => {
          if (VENDOR.includes(args.path)) return { path: args.path, namespace: 'natops-vendor' };
          // the vendor file holds each package's main module only: a subpath would be a second copy
          if (VENDOR.includes(packageName(args.path)))
            return {
              errors: [
                {
                  text: `${args.importer} imports ${args.path}: import ${packageName(args.path)} itself (the vendor file holds its main module)`,
                },
              ],
            };
          return args.path.startsWith('node:') || BUNDLED.has(packageName(args.path))
            ? undefined
            : { path: args.path, external: true };
        });
        b.onLoad({ filter: /.*/, namespace: 'natops-vendor' }, (args) => ({
          contents: vendorModule(args.path),
          loader: 'js',
          resolveDir: root,
        }));
        // commander requires node:child_process at load, for subcommands run as separate programs,
        // which natops has none of: Node's child_process (with net, dgram and streams) then loads
        // only if commander ever spawns. About 6 ms of every start here, --help's included.
        b.onResolve({ filter: /^node:child_process$/ }, (args) =>
          /\/node_modules\/commander\//.test(args.importer)
            ? { path: 'child_process', namespace: 'natops-lazy' }
            : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'natops-lazy' }, () => ({
          contents: "module.exports = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
          loader: 'js',
        }));
      },
    },
  ],
});
Object.assign(result.metafile.outputs, vendor.outputs);
await writeFile(join(dist, 'meta.json'), JSON.stringify(result.metafile));
// What bin/dist.js compares with dist/.built: every file of natops's own that went into the bundle
// (esbuild's record, so no list of folders to keep), and what decides the bundle besides them.
const ownInputs = Object.values(result.metafile.outputs)
  .flatMap((o) => Object.keys(o.inputs))
  .filter((i) => !i.includes(':') && !i.startsWith('node_modules/'));
const sources = [
  ...new Set([...ownInputs, 'package-lock.json', 'scripts/build.mjs', 'bin/natops-hook.js', 'bin/dist.js']),
].sort();
await writeFile(join(dist, 'sources.json'), JSON.stringify(sources, null, 1));
// what an earlier build left (chunks are named by their content, so they change names)
// (the vendor file's cache among them: the warm run below makes it afresh)
const written = new Set(Object.keys(result.metafile.outputs));
for (const folder of ['cli', 'chunks']) {
  for (const f of await readdir(join(dist, folder)))
    if (!written.has(`dist/${folder}/${f}`)) await rm(join(dist, folder, f), { force: true });
}
for (const f of await readdir(dist))
  if (!['bin', 'cli', 'chunks', 'meta.json', 'sources.json', '.built'].includes(f))
    await rm(join(dist, f), { recursive: true, force: true });
// The vendor file's code cache, made by a first run (what validating the seed compiles). A run
// that finds none makes one too; this one is so the first command after a build is fast.
const warm = spawnSync(process.execPath, [join(dist, 'cli', 'main.js'), 'validate', join(root, 'examples', 'seed')], {
  encoding: 'utf8',
});
if (warm.status !== 0) throw new Error(`the built CLI did not validate examples/seed: ${warm.stderr || warm.error}`);
await writeFile(join(dist, '.built'), '');
await utimes(join(dist, '.built'), began, began);
