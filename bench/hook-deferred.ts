// bench/hook-deferred: how long `git push` to the local repository takes while natops is down
// (nothing listens on the webhook's port), with the post-receive hook of this tree (one quick
// try, then the delivery is kept in the spool) and, in the same run, the hook before it (retries
// for 30 s). Also, for reference: the same push with a webhook that answers at once (a stub in
// this process answering 202), the first push after the outage (it sends the backlog first), the
// floor: a hook that only starts node and sends nothing, and the hook alone (run as git runs it,
// without git around it) delivering one push to the stub.
//
//   node --import tsx bench/hook-deferred.ts [--reps 9] [--old-reps 3] [--old-rev REV] [--out FILE]
//
// The old hook is rebuilt from Git (its gitops/git/, common/ and bin/natops-hook.js at --old-rev;
// default: the commit before deferred deliveries came) in a temp directory. Each of its pushes
// takes about 30 s, so it runs --old-reps times only (0 skips it). Pushes are real: a new empty
// commit each, `git push` timed from start to exit. Table on stdout, progress on stderr, figures
// to --out (bench/results/hook-deferred.json).
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { run } from '../common/exec.ts';
import type { RepoSettings } from '../gitops/hook/delivery.ts';
import { initRepo } from '../gitops/hook/init.ts';
import { listDeferred } from '../gitops/hook/spool.ts';
import { freePort } from '../server/redis-server.ts';

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '9' },
    'old-reps': { type: 'string', default: '3' },
    'old-rev': { type: 'string' },
    ...outOption('hook-deferred'),
  },
});
const reps = Number(args.reps);
const oldReps = Number(args['old-reps']);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string) => process.stderr.write(`${line}\n`);
const git = (...argv: string[]) => run(['git', '-C', ROOT, ...argv]);

/** The commit whose hook retried for 30 s: before the first commit that has drainDeferred. */
async function oldRev(): Promise<string> {
  if (args['old-rev']) return (await git('rev-parse', '--verify', `${args['old-rev']}^{commit}`)).stdout.trim();
  const head = await git('show', 'HEAD:gitops/hook/spool.ts');
  if (!head.stdout.includes('drainDeferred')) return (await git('rev-parse', 'HEAD')).stdout.trim();
  const first = (
    await git('log', '--format=%H', '--reverse', '-S', 'drainDeferred', 'HEAD', '--', 'gitops/git/local-repo.ts')
  ).stdout.split('\n')[0];
  if (!first) throw new Error('cannot find the commit that brought deferred deliveries; give --old-rev');
  return (await git('rev-parse', `${first}^`)).stdout.trim();
}

/** The old hook's sources at `rev`, runnable from `dir` (node_modules linked, ESM package). */
async function checkoutOldHook(rev: string, dir: string): Promise<string> {
  const files = (
    await git('ls-tree', '-r', '--name-only', rev, '--', 'common', 'gitops/git', 'bin/natops-hook.js')
  ).stdout
    .split('\n')
    .filter(Boolean);
  for (const f of files) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    await writeFile(join(dir, f), (await git('show', `${rev}:${f}`)).stdoutBytes!);
  }
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  await writeFile(join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
  return join(dir, 'gitops', 'git', 'local-repo.ts');
}

/** Answers every delivery 202 at once, as natops's webhook does; counts them. */
async function stubWebhook(port: number): Promise<{ server: Server; count: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res
        .writeHead(202, { 'content-type': 'application/json' })
        .end(JSON.stringify({ delivery: req.headers['x-github-delivery'], outcome: 'queued' }));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { server, count: () => n };
}

/** A bare repository with `init`'s hook and a clone to push from; `push()` times one push of a new commit. */
async function repository(
  dir: string,
  init: (path: string, s: RepoSettings) => Promise<string>,
  settings: RepoSettings,
) {
  const bare = join(dir, 'gitops.git');
  const work = join(dir, 'work');
  await init(bare, settings);
  await run(['git', 'clone', '--quiet', bare, work]);
  for (const [k, v] of [
    ['user.name', 'natops bench'],
    ['user.email', 'bench@example.com'],
    ['commit.gpgsign', 'false'],
  ] as const) {
    await run(['git', '-C', work, 'config', k, v]);
  }
  let n = 0;
  return {
    bare,
    async push(): Promise<number> {
      await run(['git', '-C', work, 'commit', '--quiet', '--allow-empty', '-m', `bench ${++n}`]);
      return timed(() => run(['git', '-C', work, 'push', '--quiet', 'origin', 'HEAD:main'], { timeoutMs: 120_000 }));
    },
  };
}

/** A hook that only starts node, as natops's does, reads its stdin and sends nothing: the floor. */
async function floorInit(dir: string): Promise<(path: string) => Promise<string>> {
  const script = join(dir, 'floor-hook.mjs');
  await writeFile(script, 'for await (const _ of process.stdin);\n');
  return async (path) => {
    await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', '--', path]);
    await writeFile(join(path, 'hooks', 'post-receive'), `#!/bin/sh\nexec '${process.execPath}' '${script}'\n`, {
      mode: 0o755,
    });
    return path;
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-hook-'));
  try {
    const secretFile = join(dir, 'secret');
    await writeFile(secretFile, 'bench-secret\n');
    const settings = (port: number) => ({
      webhookUrl: `http://127.0.0.1:${port}/webhook`,
      secretFile,
      name: 'bench/gitops',
    });
    const [downPort, upPort, oldPort] = [await freePort(), await freePort(), await freePort()]; // nothing listens on downPort and oldPort
    for (const d of ['down', 'up', 'floor', 'old']) await mkdir(join(dir, d));
    const down = await repository(join(dir, 'down'), (p, s) => initRepo(p, s), settings(downPort));
    const up = await repository(join(dir, 'up'), (p, s) => initRepo(p, s), settings(upPort));
    const floor = await repository(join(dir, 'floor'), await floorInit(dir), settings(downPort));
    const stub = await stubWebhook(upPort);

    // Interleaved, so the machine's load (other work) weighs on each kind alike.
    const t = { down: [] as number[], up: [] as number[], floor: [] as number[] };
    for (let i = 0; i < reps; i++) {
      for (const [k, r] of [
        ['down', down],
        ['up', up],
        ['floor', floor],
      ] as const)
        t[k].push(await r.push());
      say(
        `${i + 1}/${reps}: natops down ${ms(t.down.at(-1)!)}, webhook answering ${ms(t.up.at(-1)!)}, floor ${ms(t.floor.at(-1)!)}`,
      );
    }
    // The hook alone, as git runs it (in the repository, one ref update on stdin), delivering one push.
    const hook: number[] = [];
    const delivered = stub.count();
    const head = (await run(['git', '-C', up.bare, 'rev-parse', 'main', 'main^'])).stdout.trim().split('\n');
    for (let i = 0; i < reps; i++) {
      hook.push(
        await timed(() =>
          run(['sh', '-c', 'cd "$1" && exec hooks/post-receive', 'sh', up.bare], {
            stdin: `${head[1]} ${head[0]} refs/heads/main\n`,
          }),
        ),
      );
    }
    if (stub.count() !== delivered + reps)
      throw new Error(`the hook run alone delivered ${stub.count() - delivered} of ${reps} pushes`);
    say(`the hook alone: ${ms(median(hook))}`);
    await new Promise<void>((r) => stub.server.close(() => r()));
    const backlog = (await listDeferred(down.bare)).length;
    if (backlog !== reps) throw new Error(`expected ${reps} deferred deliveries, the spool holds ${backlog}`);

    // natops is back: the next push sends the backlog first.
    const back = await stubWebhook(downPort);
    const catchUp = await down.push();
    await new Promise<void>((r) => back.server.close(() => r()));
    say(`webhook back, sending ${backlog} deferred first: ${ms(catchUp)} (${back.count()} deliveries)`);
    if (back.count() !== backlog + 1 || (await listDeferred(down.bare)).length)
      throw new Error(`the backlog was not sent: ${back.count()} deliveries`);

    const oldDown: number[] = [];
    let rev = '';
    if (oldReps > 0) {
      rev = await oldRev();
      const oldRepo = await checkoutOldHook(rev, join(dir, 'old-src'));
      const old = (await import(pathToFileURL(oldRepo).href)) as { initRepo: typeof initRepo };
      const previous = await repository(join(dir, 'old'), (p, s) => old.initRepo(p, s), settings(oldPort));
      for (let i = 0; i < oldReps; i++) {
        oldDown.push(await previous.push());
        say(`old hook (${rev.slice(0, 7)}), natops down ${i + 1}/${oldReps}: ${ms(oldDown.at(-1)!)}`);
      }
    }

    const row = (what: string, natops: string, xs: number[]) =>
      `| ${what} | ${natops} | ${ms(median(xs))} | ${ms(Math.min(...xs))} – ${ms(Math.max(...xs))} | ${xs.length} |`;
    const lines = [
      `### \`git push\` to the local repository (median of ${reps}, interleaved; the old hook: ${oldReps}, each ~30 s)`,
      '',
      '| hook | natops | median | min – max | pushes |',
      '|---|---|---:|---:|---:|',
      row('this tree: one try (1 s at most), then the delivery is kept', 'down (nothing listening)', t.down),
    ];
    if (oldDown.length)
      lines.push(row(`before (${rev.slice(0, 7)}): retries for 30 s`, 'down (nothing listening)', oldDown));
    lines.push(
      row('this tree', 'up (a stub answering 202)', t.up),
      row(
        `this tree: first push after the outage, sending the ${backlog} kept deliveries first`,
        'back (a stub answering 202)',
        [catchUp],
      ),
      row('floor: a hook that starts node and sends nothing', '–', t.floor),
      row('the hook alone (no git around it), delivering one push', 'up (a stub answering 202)', hook),
    );
    if (oldDown.length)
      lines.push(
        '',
        `With natops down, \`git push\` returns ${(median(oldDown) / median(t.down)).toFixed(0)}x sooner.`,
      );
    process.stdout.write(`${lines.join('\n')}\n`);

    const report = new Report('hook-deferred', args);
    const table = '`git push` to the local repository';
    const downSeries = {
      name: 'this tree: one try (1 s at most), then the delivery is kept; natops down',
      values: t.down,
    };
    const upSeries = { name: 'this tree; natops up (a stub answering 202)', values: t.up };
    const floorSeries = { name: 'floor: a hook that starts node and sends nothing', values: t.floor };
    if (oldDown.length)
      report.add(table, 'ms', downSeries, {
        name: `the hook before (${rev.slice(0, 7)}): retries for 30 s; natops down`,
        values: oldDown,
      });
    report.add(table, 'ms', downSeries, upSeries);
    report.add(table, 'ms', upSeries, floorSeries);
    report.add(
      table,
      'ms',
      {
        name: `this tree: first push after the outage, sending the ${backlog} kept deliveries first`,
        values: [catchUp],
      },
      upSeries,
    );
    report.add(
      table,
      'ms',
      { name: 'the hook alone (no git around it) delivering one push; natops up', values: hook },
      floorSeries,
    );
    await report.write(args.out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
