// What each command loads: `natops --help` no package but commander; validate, plan, apply, lab
// and preview none of the server's (BullMQ, Redis, express, bull-board, Octokit, the Kubernetes
// client). A resolve hook in the spawned CLI records every module URL the process imports; a
// bundled file counts as the packages and sources esbuild put in it (dist/meta.json).
// And the build itself: both entries and every chunk load in plain Node.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { natops, ROOT } from '../helpers/cli.ts';

/** Packages only `serve`, `worker`, `status`, GitHub and the kubernetes runtime may load. */
const SERVER_ONLY = ['bullmq', 'ioredis', 'express', '@bull-board/', 'octokit', '@octokit/', '@kubernetes/'];
/** ...but for the push signer (an HMAC; gitops/hook/delivery.ts). */
const ALLOWED = ['@octokit/webhooks-methods'];

// Runs in the loader thread; appends each resolved URL to the file named by the environment.
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.NATOPS_TEST_MODULE_LOG, r.url + '\\n');
  return r;
}`)}`;
const REGISTER = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(RECORDER)});`)}`;

/** What `npm run build` wrote: per output file (dist/...), the sources in it. */
interface BuildMeta {
  outputs: Record<string, { inputs: Record<string, unknown> }>;
}
const readMeta = async (): Promise<BuildMeta> =>
  JSON.parse(await readFile(join(ROOT, 'dist', 'meta.json'), 'utf8')) as BuildMeta;

/** The package a path under node_modules belongs to: "commander", "@kubernetes/client-node", ... */
const packageOf = (path: string) =>
  /\/?node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path.slice(Math.max(0, path.lastIndexOf('node_modules/') - 1)))?.[1];

/** The packages a module list loads: from node_modules, or bundled in a dist/ file it loads (or in the vendor file, through one). */
function packagesOf(urls: string[], meta?: BuildMeta): string[] {
  const names = new Set<string>();
  for (const url of urls) {
    const direct = packageOf(url);
    if (direct) names.add(direct);
    const inDist = /\/(dist\/(?:cli|chunks)\/[^/]+\.js)$/.exec(url)?.[1];
    for (const input of Object.keys((inDist && meta?.outputs[inDist]?.inputs) || {})) {
      // a package in the vendor file is imported through a stub module named after it
      const bundled = packageOf(input) ?? /^natops-vendor:(.+)$/.exec(input)?.[1];
      if (bundled) names.add(bundled);
    }
  }
  return [...names].sort();
}

describe('natops start-up: each command loads what it needs only', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-cli-start-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const env = (log: string) => ({
    NATOPS_TEST_MODULE_LOG: log,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${REGISTER}`.trim(),
  });

  /** The packages `natops ARGS` loads; it must succeed, from dist/ (tsx would add its own). */
  async function loadedBy(args: string[]): Promise<string[]> {
    const log = join(dir, `modules-${n++}`);
    const r = await natops(args, { env: env(log) });
    assert.equal(r.code, 0, `natops ${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /npm run build/);
    const urls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    assert.ok(
      urls.some((u) => u.endsWith('/dist/cli/main.js')),
      'the recorder saw the bundled CLI load',
    );
    return packagesOf(urls, await readMeta());
  }

  const noServerPackages = (loaded: string[]) =>
    assert.deepEqual(
      loaded.filter((p) => SERVER_ONLY.some((s) => p.startsWith(s)) && !ALLOWED.includes(p)),
      [],
    );

  it('--help loads commander and no other package', async () => {
    assert.deepEqual(await loadedBy(['--help']), ['commander']);
  });

  // Node's own child_process (with net, dgram and streams) and crypto are dear to load; neither
  // command uses them. process.moduleLoadList names every built-in module the process loaded.
  for (const args of [['--help'], ['validate', 'examples/seed']]) {
    it(`${args[0]}: no node:child_process, no node:crypto`, async () => {
      const log = join(dir, `builtins-${n++}`);
      const atExit = `data:text/javascript,${encodeURIComponent(`import { writeFileSync } from 'node:fs'; process.on('exit', () => writeFileSync(${JSON.stringify(log)}, process.moduleLoadList.join('\\n')));`)}`;
      const r = await natops(args, {
        env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${atExit}`.trim() },
      });
      assert.equal(r.code, 0, r.stderr);
      const loaded = (await readFile(log, 'utf8')).split('\n');
      assert.ok(loaded.includes('NativeModule fs'), 'the list names built-in modules');
      assert.deepEqual(
        loaded.filter((m) => /^NativeModule (child_process|crypto)$/.test(m)),
        [],
      );
    });
  }

  for (const args of [
    ['validate', 'examples/seed'],
    ['plan', 'examples/seed', '--against', 'examples/seed'],
    ['apply', 'examples/seed', '--runtime', 'dry-run'],
    ['lab', 'host', 'list', '--lab', `t${randomBytes(4).toString('hex')}`],
    ['preview', '--path', 'examples/seed', '--base', 'HEAD', '--head', 'HEAD'],
  ]) {
    it(`${args.slice(0, 2).join(' ')}: none of the server's packages`, async () => {
      const loaded = await loadedBy(args);
      noServerPackages(loaded);
      if (args[0] !== 'lab') assert.ok(loaded.includes('yaml'), `${loaded.join(', ')}: the manifests were read`);
    });
  }

  // apply --runtime netns needs root and builds a lab; what it loads is these modules (the one
  // place a runtime is picked, and the apply action), none of which may reach for the Kubernetes client.
  it('apply --runtime netns: its modules load no Kubernetes client, no server package', async () => {
    const log = join(dir, `modules-${n++}`);
    const modules = [
      'runtime/select.ts',
      'runtime/netns/lab.ts',
      'runtime/netns/runtime.ts',
      'runtime/reconcile.ts',
      'server/config.ts',
      'gitops/manifests/network.ts',
      'gitops/manifests/read-dir.ts',
      'dataplane/plan-text.ts',
    ];
    const code = modules.map((m) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, m)).href)});`).join('\n');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', REGISTER, '--input-type=module', '-e', code],
      { cwd: ROOT, env: { ...process.env, NATOPS_TEST_MODULE_LOG: log }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    assert.equal(await new Promise((resolve) => child.on('close', resolve)), 0, stderr);
    const loaded = packagesOf((await readFile(log, 'utf8')).split('\n').filter(Boolean));
    assert.ok(loaded.includes('zod'), loaded.join(', '));
    noServerPackages(loaded);
  });
});

describe('npm run build', () => {
  /** Runs `code` as an ES module in a plain Node (no tsx); resolves with its exit code and stderr. */
  function plainNode(code: string): Promise<{ code: number; stderr: string }> {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    return new Promise((resolve) => child.on('close', (c) => resolve({ code: c ?? 1, stderr })));
  }

  it('dist/ runs only while nothing it is made from is newer: a source file, or package-lock.json', async () => {
    const root = await mkdtemp(join(tmpdir(), 'natops-dist-check-'));
    try {
      await mkdir(join(root, 'src'), { recursive: true });
      await mkdir(join(root, 'dist', 'cli'), { recursive: true });
      await writeFile(
        join(root, 'dist', 'sources.json'),
        JSON.stringify(['package-lock.json', 'src/a.ts', 'src/gone.ts']),
      );
      for (const f of ['src/a.ts', 'src/notes.txt', 'package-lock.json', 'dist/cli/main.js', 'dist/.built'])
        await writeFile(join(root, f), '');
      const at = (f: string, seconds: number) => utimes(join(root, f), seconds, seconds);
      for (const f of ['src/a.ts', 'src/notes.txt', 'package-lock.json']) await at(f, 1000);
      await at('dist/.built', 2000);
      const runs = async () => {
        const code =
          `const { entryModule } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'bin', 'dist.js')).href)});\n` +
          `process.stdout.write(await entryModule(${JSON.stringify(root)}, 'dist/cli/main.js', 'src/a.ts'));`;
        const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
          env: { ...process.env, NODE_OPTIONS: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (err += b.toString()));
        assert.equal(await new Promise((resolve) => child.on('close', resolve)), 0, err);
        return `${out.endsWith('/dist/cli/main.js') ? 'dist' : out.endsWith('/src/a.ts') ? 'sources' : out}${err ? ` | ${err.trim()}` : ''}`;
      };
      assert.equal(await runs(), 'dist');
      await at('src/notes.txt', 3000);
      assert.equal(await runs(), 'dist', 'a file the build does not read');
      await at('package-lock.json', 3000);
      assert.match(await runs(), /^sources \| natops: warning: package-lock\.json changed after the last build/);
      await at('package-lock.json', 1000);
      await at('src/a.ts', 3000);
      assert.match(await runs(), /^sources \| natops: warning: src\/a\.ts changed after the last build/);
      await rm(join(root, 'src', 'a.ts'));
      assert.equal(await runs(), 'dist', 'without the sources (an image), dist/ runs whatever the times say');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('bundles the two entries from the sources only; every chunk loads in plain Node (no tsx)', async () => {
    const { outputs } = await readMeta();
    const files = Object.keys(outputs).filter((f) => /\.c?js$/.test(f));
    assert.ok(files.includes('dist/cli/main.js') && files.includes('dist/cli/push-sender.js'), files.join(', '));
    const inputs = new Set(files.flatMap((f) => Object.keys(outputs[f]!.inputs)));
    assert.ok(
      inputs.has('gitops/manifests/validate.ts') && inputs.has('server/serve.ts'),
      'lazily imported modules are in chunks',
    );
    assert.deepEqual(
      [...inputs].filter((i) => /^(test|bench)\//.test(i)),
      [],
      'no test or bench code in the bundle',
    );
    // only the small pure packages are bundled; the rest load from node_modules
    assert.deepEqual([...new Set([...inputs].map(packageOf).filter(Boolean))].sort(), [
      'commander',
      'ipaddr.js',
      'js-yaml',
      'yaml',
      'zod',
    ]);
    assert.ok((await readdir(join(ROOT, 'dist', 'bin'))).includes('natops-hook.js'), 'the hook beside the bundle');
    // the CLI runs when loaded; every other file only defines things
    const code = files
      .filter((f) => f !== 'dist/cli/main.js')
      .map((f) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, f)).href)});`)
      .join('\n');
    const r = await plainNode(`${code}\nprocess.exit(0);`);
    assert.equal(r.code, 0, r.stderr);
  });

  it("the vendor file's code cache: made by the build, remade by a run that finds it missing or unusable", async () => {
    const { outputs } = await readMeta();
    const vendor = Object.keys(outputs).filter((f) => /^dist\/chunks\/vendor-[0-9a-f]{12}\.cjs$/.test(f));
    assert.equal(vendor.length, 1, Object.keys(outputs).join(', '));
    const cache = join(ROOT, `${vendor[0]}.cache`);
    const made = await readFile(cache);
    assert.ok(
      made.length > 100_000,
      `the build's cache holds what validating the seed compiled (${made.length} bytes)`,
    );
    // V8 takes it: a run leaves it as it is (a refused one would be written again)
    const before = await stat(cache);
    const first = await natops(['validate', 'examples/seed']);
    assert.equal(first.code, 0, first.stderr);
    const kept = await stat(cache);
    assert.deepEqual([kept.ino, kept.mtimeMs], [before.ino, before.mtimeMs], 'the cache was used, not made again');
    try {
      for (const broken of [undefined, Buffer.from('not a code cache')]) {
        if (broken) await writeFile(cache, broken);
        else await rm(cache);
        const r = await natops(['validate', 'examples/seed']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^ok: 1 VPC/);
        const again = await readFile(cache);
        assert.ok(
          again.length > 100_000,
          `a run ${broken ? 'that V8 refused the cache to' : 'without a cache'} writes a new one (${again.length} bytes)`,
        );
      }
    } finally {
      await writeFile(cache, made);
    }
  });
});
