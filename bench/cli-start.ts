// bench/cli-start: how long the natops command line takes to start and answer, as whole
// processes, in the same run: the compiled CLI (bin/natops.js running dist/) against the same
// sources through tsx and against the tree before the build step (--old-rev: tsx, and every
// module loaded at start). Also YAML and validation of 2,000 port forwards, in process and as
// `natops validate` of them. Needs a fresh `npm run build` (it refuses to time a fallback).
//
//   node --import tsx bench/cli-start.ts [--reps 10] [--forwards 2000] [--old-rev REV] [--settle 300] [--out FILE]
//
// The old tree is rebuilt from Git (its sources, bin/ and package.json at --old-rev; default:
// the commit before bin/natops.js ran dist/) in a temp directory. Runs are interleaved, so the
// machine's other work weighs on each variant alike; each variant runs once first, untimed (tsx
// keeps a compile cache, as it does for users). Table on stdout, progress on stderr, figures to
// --out (bench/results/cli-start.json).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { run } from '../common/exec.ts';
import { validateManifests } from '../gitops/manifests/validate.ts';
import { push, seedObjects, toFiles } from '../test/helpers/manifests.ts';

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '10' },
    forwards: { type: 'string', default: '2000' },
    'old-rev': { type: 'string' },
    settle: { type: 'string', default: '300' },
    ...outOption('cli-start'),
  },
});
const reps = Number(args.reps);
const forwards = Number(args.forwards);
/**
 * A pause (ms) before each timed process, the same for every variant: a start right after a heavy
 * one (the tsx and old variants run 0.5 to 3 s) was up to 60 ms slower here than on a machine
 * that had a moment; users rarely start natops in the wake of another heavy process.
 */
const settle = Number(args.settle);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SEED = join(ROOT, 'examples', 'seed');
// an old tree as it was, less what no command loads
const NOT_RUN = /^(test|bench|docs|examples)\/|\.md$/;
const say = (line: string) => process.stderr.write(`${line}\n`);
const git = (...argv: string[]) => run(['git', '-C', ROOT, ...argv]);

/** The commit before bin/natops.js ran dist/ (this tree's HEAD while that change is not committed). */
async function oldRev(): Promise<string> {
  if (args['old-rev']) return (await git('rev-parse', '--verify', `${args['old-rev']}^{commit}`)).stdout.trim();
  const first = (
    await git('log', '--format=%H', '--reverse', '-S', 'dist/cli/main.js', 'HEAD', '--', 'bin/natops.js')
  ).stdout.split('\n')[0];
  return (await git('rev-parse', first ? `${first}^` : 'HEAD')).stdout.trim();
}

/** The tree at `rev`, runnable from `dir` (node_modules linked); returns its bin/natops.js. */
async function checkoutOld(rev: string, dir: string): Promise<string> {
  const files = (await git('ls-tree', '-r', '--name-only', rev)).stdout
    .split('\n')
    .filter((f) => f && !NOT_RUN.test(f));
  for (const f of files) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    await writeFile(join(dir, f), (await git('show', `${rev}:${f}`)).stdoutBytes!);
  }
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin', 'natops.js');
}

/** Time of one `node ARGV` process, start to exit; it must succeed and must not fall back to tsx. */
async function processTime(argv: string[]): Promise<number> {
  if (settle > 0) await new Promise((r) => setTimeout(r, settle));
  return timed(
    () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.on('error', reject);
        child.on('close', (code) => {
          if (code !== 0) reject(new Error(`node ${argv.join(' ')}: exit ${code}\n${stderr}`));
          else if (stderr.includes('npm run build'))
            reject(new Error(`dist/ is missing or stale; run \`npm run build\` first:\n${stderr}`));
          else resolve();
        });
      }),
  );
}

/** The seed with `n` more port forwards on 192.168.0.112 (ports 20000 and up), as manifest files. */
async function seedWithForwards(n: number) {
  const seed = await seedObjects();
  for (let i = 0; i < n; i++)
    push(seed.gateway, 'spec.dnatRules', {
      eip: '192.168.0.112',
      externalPort: 20000 + i,
      protocol: 'tcp',
      internalIp: '10.0.1.10',
      internalPort: 80,
    });
  return toFiles(seed);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-cli-'));
  try {
    const rev = await oldRev();
    const oldBin = await checkoutOld(rev, join(dir, 'old'));
    const files = await seedWithForwards(forwards);
    const many = join(dir, 'forwards');
    await mkdir(many);
    for (const f of files) await writeFile(join(many, f.path), f.text);

    const BIN = join(ROOT, 'bin', 'natops.js');
    const MAIN = join(ROOT, 'cli', 'main.ts');
    const commands = { help: ['--help'], validate: ['validate', SEED], many: ['validate', many] } as const;
    const variants = {
      compiled: (a: readonly string[]) => [BIN, ...a],
      tsx: (a: readonly string[]) => ['--import', 'tsx', MAIN, ...a],
      old: (a: readonly string[]) => [oldBin, ...a],
    } as const;
    type Key = `${keyof typeof commands} ${keyof typeof variants}`;
    const t = {} as Record<Key, number[]>;
    const floor: number[] = []; // node starting and exiting: what no change to natops can remove
    for (const c of Object.keys(commands) as (keyof typeof commands)[]) {
      for (const v of Object.keys(variants) as (keyof typeof variants)[]) {
        await processTime(variants[v](commands[c])); // warm-up: disk cache, tsx's compile cache
        t[`${c} ${v}`] = [];
      }
    }
    for (let i = 0; i < reps; i++) {
      floor.push(await processTime(['-e', '0']));
      for (const c of Object.keys(commands) as (keyof typeof commands)[]) {
        for (const v of Object.keys(variants) as (keyof typeof variants)[])
          t[`${c} ${v}`].push(await processTime(variants[v](commands[c])));
      }
      say(
        `${i + 1}/${reps}: --help ${ms(t['help compiled'].at(-1)!)} compiled, ${ms(t['help tsx'].at(-1)!)} tsx, ${ms(t['help old'].at(-1)!)} before; ` +
          `validate ${ms(t['validate compiled'].at(-1)!)} / ${ms(t['validate tsx'].at(-1)!)} / ${ms(t['validate old'].at(-1)!)}`,
      );
    }

    // In process: the modules are loaded (one untimed run), so this is YAML and validation alone.
    const check = () => {
      const r = validateManifests(files);
      if (r.issues.length || r.desired.gateways.get('ngw')?.dnats.length !== forwards + 1)
        throw new Error(`the ${forwards} port forwards do not validate`);
    };
    check();
    const inProcess: number[] = [];
    for (let i = 0; i < reps; i++) inProcess.push(await timed(async () => check()));
    const bytes = files.reduce((sum, f) => sum + Buffer.byteLength(f.text), 0);

    const m = (k: Key) => median(t[k]);
    const row = (what: string, c: keyof typeof commands, target: string) =>
      `| ${what} | ${ms(m(`${c} old`))} | ${ms(m(`${c} tsx`))} | ${ms(m(`${c} compiled`))} | ${(m(`${c} old`) / m(`${c} compiled`)).toFixed(1)}x | ${(m(`${c} tsx`) / m(`${c} compiled`)).toFixed(1)}x | ${target} |`;
    process.stdout.write(
      `${[
        `### natops start-up (median of ${reps} processes each, interleaved, ${settle} ms pause before each)`,
        '',
        `| command | before (${rev.slice(0, 7)}: tsx, all modules at start) | this tree through tsx | this tree compiled (dist/) | before / compiled | tsx / compiled | target |`,
        '|---|---:|---:|---:|---:|---:|---:|',
        row('`natops --help`', 'help', '< 150 ms'),
        row('`natops validate examples/seed`', 'validate', '< 250 ms'),
        row(`\`natops validate\` of the seed plus ${forwards} port forwards`, 'many', '–'),
        '',
        `The floor, \`node -e 0\` in the same run: ${ms(median(floor))}.`,
        `YAML and validation of the seed plus ${forwards} port forwards (${(bytes / 1024).toFixed(0)} KiB of YAML), in process: ` +
          `median ${ms(median(inProcess))} (min ${ms(Math.min(...inProcess))}, max ${ms(Math.max(...inProcess))}; ${reps} runs; target well under 100 ms).`,
      ].join('\n')}\n`,
    );

    const report = new Report('cli-start', args);
    const startTable = `natops start-up (whole processes, interleaved, ${settle} ms pause before each)`;
    const named = {
      help: ['`natops --help`', 'target < 150 ms'],
      validate: ['`natops validate examples/seed`', 'target < 250 ms'],
      many: [`\`natops validate\` of the seed plus ${forwards.toLocaleString('en')} port forwards`, undefined],
    } as const;
    for (const c of Object.keys(commands) as (keyof typeof commands)[]) {
      const [what, target] = named[c];
      const compiled = { name: `${what}, compiled (dist/, through bin/natops.js)`, values: t[`${c} compiled`] };
      report.add(
        startTable,
        'ms',
        compiled,
        {
          name: `${what}, the tree before the build step (${rev.slice(0, 7)}: tsx, all modules at start)`,
          values: t[`${c} old`],
        },
        target,
      );
      report.add(startTable, 'ms', compiled, { name: `${what}, this tree through tsx`, values: t[`${c} tsx`] }, target);
    }
    report.add(
      startTable,
      'ms',
      { name: '`natops --help`, compiled (dist/, through bin/natops.js)', values: t['help compiled'] },
      { name: '`node -e 0` (node starting and exiting: the floor)', values: floor },
    );
    report.add(
      `YAML and validation of the seed plus ${forwards.toLocaleString('en')} port forwards (${(bytes / 1024).toFixed(0)} KiB of YAML)`,
      'ms',
      { name: 'in process (modules loaded)', values: inProcess },
      { name: '`natops validate` of them, compiled, as a whole process', values: t['many compiled'] },
      'target: in process well under 100 ms',
    );
    await report.write(args.out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
