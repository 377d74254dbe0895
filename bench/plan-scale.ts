// bench/plan-scale: planning a repository of many gateways (default 10,000 gateways, 120,000
// rules, in 100 files; bench/many-gateways.ts). Needs root (`natops plan` reads a lab) and a fresh
// `npm run build` (the commands run dist/).
// - `natops validate` and `natops plan` (against an empty lab) of the whole repository, whole
//   processes, against a process that only reads the same files and parses their YAML (js-yaml,
//   natops's own reader): what any tool that reads them pays;
// - the planner's reading and validation of a push that changes one port forward in one file, in
//   process from a bare repository, with the planner's manifest cache (files kept by blob) against
//   without it (every file read and checked again).
// Prints the medians and writes its figures to --out (bench/results/plan-scale.json).
//
//   node --import tsx bench/plan-scale.ts [--gateways 10000] [--files 100] [--reps 5] [--push-reps 7] [--out FILE]
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { manyGatewayFiles } from './many-gateways.ts';
import { run } from '../common/exec.ts';
import { GitRepo } from '../gitops/git/local-source.ts';
import { manifestsToValidate } from '../gitops/git/validated.ts';
import { ManifestCache } from '../gitops/manifests/cache.ts';
import { manifestRulesFromEnv } from '../server/config.ts';

const { values: args } = parseArgs({
  options: {
    gateways: { type: 'string', default: '10000' },
    files: { type: 'string', default: '100' },
    reps: { type: 'string', default: '5' },
    'push-reps': { type: 'string', default: '7' },
    ...outOption('plan-scale'),
  },
});
const gateways = Number(args.gateways);
const files = Number(args.files);
const reps = Number(args.reps);
const pushReps = Number(args['push-reps']);
if (gateways % files !== 0) throw new Error('--gateways must be a multiple of --files');
const perFile = gateways / files;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stderr.write(`${line}\n`);
// the operator's limits, raised for a repository this size
const LIMITS = {
  manifestMaxGateways: gateways * 2,
  manifestMaxDocuments: gateways * 4,
  manifestMaxTotalBytes: 1 << 30,
  manifestMaxFiles: files * 2,
};
const LIMIT_ENV = {
  NATOPS_MANIFEST_MAX_GATEWAYS: String(LIMITS.manifestMaxGateways),
  NATOPS_MANIFEST_MAX_DOCUMENTS: String(LIMITS.manifestMaxDocuments),
  NATOPS_MANIFEST_MAX_TOTAL_BYTES: String(LIMITS.manifestMaxTotalBytes),
  NATOPS_MANIFEST_MAX_FILES: String(LIMITS.manifestMaxFiles),
};

/** A whole `node ARGV` process; rejects on a non-zero exit or when natops says it is not running dist/. */
function processTime(argv: string[]): Promise<number> {
  return timed(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, argv, {
          cwd: ROOT,
          stdio: ['ignore', 'ignore', 'pipe'],
          env: { ...process.env, ...LIMIT_ENV },
        });
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.on('error', reject);
        child.on('close', (code) => {
          if (code !== 0) reject(new Error(`node ${argv.join(' ')}: exit ${code}\n${stderr.slice(-2000)}`));
          else if (stderr.includes('npm run build'))
            reject(new Error(`dist/ is missing or stale; run \`npm run build\` first:\n${stderr}`));
          else resolve();
        });
      }),
  );
}

// the floor: read every file and parse its YAML, nothing else
const READ_ONLY = `
const { readdirSync, readFileSync } = require('node:fs');
const { loadAll } = require(${JSON.stringify(join(ROOT, 'node_modules/js-yaml'))});
const dir = process.argv[1];
let docs = 0;
for (const f of readdirSync(dir)) loadAll(readFileSync(dir + '/' + f, 'utf8'), () => docs++);
if (docs === 0) process.exit(1);
`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/plan-scale needs root (the pipeline harness makes a lab)');
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-plan-scale-'));
  const stop = () => rm(dir, { recursive: true, force: true });
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const repo = manyGatewayFiles(files, perFile);
    const repoDir = join(dir, 'repo');
    await mkdir(repoDir);
    for (const f of repo) await writeFile(join(repoDir, f.path), f.text);
    const bytes = repo.reduce((n, f) => n + Buffer.byteLength(f.text), 0);
    const size = `${gateways.toLocaleString('en')} gateways (${(gateways * 12).toLocaleString('en')} rules) in ${files} files, ${(bytes / 2 ** 20).toFixed(1)} MiB`;
    say(`repository: ${size}`);

    // ---- whole processes ------------------------------------------------------------------------
    const BIN = join(ROOT, 'bin', 'natops.js');
    const lab = `b${process.pid.toString(16).padStart(8, '0').slice(-8)}`; // no gateway in it: everything is to create
    const commands = {
      validate: [BIN, 'validate', repoDir],
      plan: [BIN, 'plan', repoDir, '--lab', lab],
      floor: ['-e', READ_ONLY, repoDir],
    } as const;
    const t = { validate: [] as number[], plan: [] as number[], floor: [] as number[] };
    for (const argv of Object.values(commands)) await processTime([...argv]); // warm-up: disk cache
    for (let i = 0; i < reps; i++) {
      for (const [k, argv] of Object.entries(commands)) t[k as keyof typeof t].push(await processTime([...argv]));
      say(
        `${i + 1}/${reps}: validate ${ms(t.validate.at(-1)!)}, plan ${ms(t.plan.at(-1)!)}, read only ${ms(t.floor.at(-1)!)}`,
      );
    }

    // ---- one file changed: the planner's reading and validation -----------------------------------
    // A bare repository with the whole repository, then the same with one port forward changed.
    const bare = join(dir, 'repo.git');
    const work = join(dir, 'work');
    await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', bare]);
    await run(['git', 'init', '--quiet', '--initial-branch=main', work]);
    const commit = async (tree: typeof repo, message: string) => {
      for (const f of tree) await writeFile(join(work, f.path), f.text);
      await run(['git', '-C', work, 'add', '-A']);
      await run([
        'git',
        '-C',
        work,
        '-c',
        'user.name=bench',
        '-c',
        'user.email=bench@localhost',
        'commit',
        '--quiet',
        '-m',
        message,
      ]);
      return (await run(['git', '-C', work, 'rev-parse', 'HEAD'])).stdout.trim();
    };
    // each push moves one forward of one gateway to a new backend port: one new blob each
    const changed = Math.floor(gateways / 2);
    const shas = [await commit(repo, 'many gateways')];
    for (let i = 0; i < pushReps; i++)
      shas.push(
        await commit(
          manyGatewayFiles(files, perFile, { gateway: changed, internalPort: 81 + i }),
          `gw-${changed}: one forward to port ${81 + i}`,
        ),
      );
    await run(['git', '-C', work, 'push', '--quiet', bare, 'HEAD:main']);
    const rules = manifestRulesFromEnv(LIMIT_ENV);
    /** ms to read and validate `sha` as the planner does; checks it found every gateway */
    const planRead = async (source: GitRepo, sha: string, cache?: ManifestCache) =>
      timed(async () => {
        const v = (await manifestsToValidate(source, sha, '', { ...rules, cache }))();
        if (v.desired.gateways.size !== gateways || v.issues.length)
          throw new Error(`${sha.slice(0, 7)}: ${v.desired.gateways.size} gateways, ${v.issues.length} problems`);
      });
    const planner = new GitRepo(bare);
    const cache = new ManifestCache();
    await planRead(planner, shas[0]!, cache); // the planner planned the commit before
    const warm: number[] = [];
    const cold: number[] = [];
    for (let i = 0; i < pushReps; i++) {
      const sha = shas[i + 1]!;
      const read = cache.counts.filesRead;
      warm.push(await planRead(planner, sha, cache));
      if (cache.counts.filesRead - read !== 1)
        throw new Error(`the cache read ${cache.counts.filesRead - read} files, not the one changed`);
      cold.push(await planRead(new GitRepo(bare), sha));
      say(
        `${i + 1}/${pushReps}: one file changed: read and validated in ${ms(warm.at(-1)!)} with the cache, ${ms(cold.at(-1)!)} without`,
      );
    }

    const report = new Report('plan-scale', args);
    const whole = `the whole repository (${size}), whole processes`;
    const floor = { name: 'reading the files and parsing their YAML (js-yaml), nothing else', values: t.floor };
    report.add(whole, 'ms', { name: '`natops validate`', values: t.validate }, floor);
    report.add(
      whole,
      'ms',
      { name: '`natops plan` against an empty lab (every gateway to create)', values: t.plan },
      floor,
      'target: under 3 s',
    );
    report.add(
      `one port forward changed in one file of ${size}: the planner reads and validates the commit, in process`,
      'ms',
      { name: 'with the manifest cache (the files of the last two commits kept by blob)', values: warm },
      { name: 'without it (every file read from Git and checked again)', values: cold },
    );
    process.stdout.write(
      [
        `| validate | ${ms(median(t.validate))} | plan | ${ms(median(t.plan))} | read only | ${ms(median(t.floor))} |`,
        `| one file changed, read and validated | ${ms(median(warm))} | without the cache | ${ms(median(cold))} |`,
        '',
      ].join('\n'),
    );
    await report.write(args.out);
  } finally {
    await stop();
  }
}

await main();
