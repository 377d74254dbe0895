// bench/pipeline: the GitOps loop end to end on this machine (real redis-server, real Git, real
// namespaces). Needs root. Prints markdown tables and writes its figures to --out
// (bench/results/pipeline.json).
//
//   node --import tsx bench/pipeline.ts [--reps 7] [--bulk 1000] [--bulk-reps 5] [--rates 100,300,500] [--seconds 10]
//                                       [--webhook-only] [--out FILE]
//
// push to live: from the start of `git push` to the first TCP connection answered through the
// new rule, seen from an underlay host polling every 2 ms. (`git push` to the local repository
// returns only after its hook has delivered the push, by which time the rule is often live
// already; so the clock starts when the push starts, and the push's own duration is shown.)
// Baseline in the same run: Kube-OVN's way of adding the same rules (one iptables command per
// rule in the gateway), timed to the same first answer, with no pipeline in front of it.
// webhook: a second process sends signed deliveries at a fixed rate (open loop) and measures
// the answer time; baseline: the planning work a webhook that planned before answering would do.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms } from './stats.ts';
import { pollOpen } from './poll-open.ts';
import { outOption, Report, type Series } from './report.ts';
import { decide } from '../functions/planner/decide.ts';
import { GitRepo } from '../gitops/git/local-source.ts';
import { validateManifests } from '../gitops/manifests/validate.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { loadConfig } from '../server/config.ts';
import { serve } from '../server/serve.ts';
import { silentLogger } from '../common/log.ts';
import { push as pushItem, seedObjects, set, type SeedObjects } from '../test/helpers/manifests.ts';
import { PipelineHarness, SECRET } from '../test/helpers/pipeline.ts';

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '7' },
    bulk: { type: 'string', default: '1000' },
    'bulk-reps': { type: 'string', default: '5' },
    rates: { type: 'string', default: '100,300,500' },
    seconds: { type: 'string', default: '10' },
    // only the webhook under load (no pushes, no lab traffic)
    'webhook-only': { type: 'boolean', default: false },
    ...outOption('pipeline'),
  },
});
const reps = Number(args.reps);
const bulk = Number(args.bulk);
const bulkReps = Number(args['bulk-reps']);
const rates = args.rates.split(',').map(Number);
const seconds = Number(args.seconds);
const webhookOnly = args['webhook-only'];
const report = new Report('pipeline', args);

const EIP = '192.168.0.112';
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const say = (line: string) => process.stderr.write(`${line}\n`);

function withBulk(seed: SeedObjects, n: number): SeedObjects {
  const s = structuredClone(seed);
  for (let i = 0; i < n; i++)
    pushItem(s.gateway, 'spec.dnatRules', {
      eip: EIP,
      externalPort: 20000 + i,
      protocol: 'tcp',
      internalIp: '10.0.1.10',
      internalPort: 80,
    });
  return s;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/pipeline needs root (network namespaces)');
  const p = await PipelineHarness.create({ resyncMs: 0 });
  const stop = () => p.cleanup();
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  const out: string[] = [];
  let planNote = '';
  /** planning inline, the seed: what a webhook that planned before answering would add (not with --webhook-only) */
  let planSeed: Series | undefined;
  try {
    if (!webhookOnly) {
      const seed = await seedObjects();
      const first = await p.push(seed, 'seed');
      if ((await p.settled(first)).get('natops')?.state !== 'success') throw new Error('the seed did not go live');
      await p.lab.host('web', 'sn', '10.0.1.10/24');
      await p.lab.host('ext', 'external', '192.168.0.50/24');
      await p.lab.serve('web', { tcp: [80] });

      /** A poller in ext for EIP:port, polling; `.live`: the epoch ms of the first answer. */
      const poll = (port: number) => pollOpen(p.lab.lab.names.host('ext'), EIP, port);

      let lastSha = first;
      /** One push; returns ms from the push's start to [first answer, success status, the push returning]. */
      const measure = async (next: SeedObjects, port: number, message: string) => {
        const { live } = await poll(port);
        const sha = await p.push(next, message);
        lastSha = sha;
        const t0 = p.lastPush.start;
        const at = await live;
        const statuses = await p.settled(sha, 120_000);
        if (statuses.get('natops')?.state !== 'success')
          throw new Error(`${message}: ${JSON.stringify([...statuses.values()])}`);
        const statusAt = Math.max(...[...statuses.values()].map((s) => s.updatedAt));
        return [at - t0, statusAt - t0, p.lastPush.end - t0] as const;
      };

      // ---- one rule changed ----------------------------------------------------------------------
      const oneLive: number[] = [];
      const oneStatus: number[] = [];
      const onePush: number[] = [];
      for (let i = 0; i < reps; i++) {
        const next = structuredClone(seed);
        set(next.gateway, 'spec.dnatRules.0.externalPort', 9000 + i);
        const [live, status, pushed] = await measure(next, 9000 + i, `port forward to ${9000 + i}`);
        oneLive.push(live);
        oneStatus.push(status);
        onePush.push(pushed);
        say(`one rule: live after ${ms(live)}, status after ${ms(status)}, git push took ${ms(pushed)}`);
      }

      // ---- bulk add ------------------------------------------------------------------------------
      const bulkLive: number[] = [];
      const bulkStatus: number[] = [];
      const bulkPush: number[] = [];
      let bulkSha = first;
      for (let i = 0; i < bulkReps; i++) {
        const [live, status, pushed] = await measure(withBulk(seed, bulk), 20000 + bulk - 1, `${bulk} port forwards`);
        bulkSha = lastSha;
        bulkLive.push(live);
        bulkStatus.push(status);
        bulkPush.push(pushed);
        say(`${bulk} rules: live after ${ms(live)}, status after ${ms(status)}, git push took ${ms(pushed)}`);
        const back = await p.push(seed, 'remove them');
        await p.settled(back, 120_000);
      }

      // ---- baseline: Kube-OVN's way, same rules, no pipeline -------------------------------------
      const gw = p.lab.lab.names.gateway('ngw');
      const naive: number[] = [];
      // the gateway's iptables, as Kube-OVN's nat-gateway.sh runs the one its gateway uses
      const { iptables } = await gatewayIptables((req) => inNamespace(gw, req));
      const script = Array.from(
        { length: bulk },
        (_, i) =>
          `${iptables} -t nat -A SHARED_DNAT -d ${EIP}/32 -p tcp --dport ${20000 + i} -j DNAT --to-destination 10.0.1.10:80`,
      ).join('\n');
      for (let i = 0; i < Math.min(bulkReps, 3); i++) {
        const { live } = await poll(20000 + bulk - 1);
        const t0 = now();
        await inNamespace(gw, { argv: ['bash', '-s'], stdin: `set -e\n${script}\n` });
        naive.push((await live) - t0);
        say(`${bulk} rules, one iptables command each: live after ${ms(naive.at(-1)!)}`);
        await inNamespace(gw, { argv: [iptables, '-t', 'nat', '-F', 'SHARED_DNAT'] });
      }

      out.push(
        `## push to live (median of ${reps} pushes; ${bulk.toLocaleString('en')} rules: ${bulkReps}; one command per rule: ${Math.min(bulkReps, 3)})`,
        '',
      );
      out.push(
        '| change | git push started -> rule answers traffic | -> commit status success | git push itself (hook delivers) |',
        '|---|---:|---:|---:|',
      );
      out.push(
        `| change 1 port forward | ${ms(median(oneLive))} | ${ms(median(oneStatus))} | ${ms(median(onePush))} |`,
      );
      out.push(
        `| add ${bulk.toLocaleString('en')} port forwards | ${ms(median(bulkLive))} | ${ms(median(bulkStatus))} | ${ms(median(bulkPush))} |`,
      );
      out.push(
        `| add ${bulk.toLocaleString('en')} port forwards, one iptables command per rule, no pipeline (Kube-OVN's way; clock starts at the first command) | ${ms(median(naive))} | - | - |`,
      );
      out.push(
        '',
        `Ratio, ${bulk.toLocaleString('en')} rules: whole natops pipeline ${ms(median(bulkLive))} vs Kube-OVN's apply alone ${ms(median(naive))} = ${(median(naive) / median(bulkLive)).toFixed(1)}x.`,
      );
      const toLive = 'push to live';
      const onePushed = { name: 'change 1 port forward: `git push` itself (the hook delivers)', values: onePush };
      const byHand = {
        name: `add ${bulk.toLocaleString('en')} port forwards, one iptables command per rule, no pipeline (Kube-OVN's way; clock starts at the first command) -> rule answers traffic`,
        values: naive,
      };
      report.add(
        toLive,
        'ms',
        { name: 'change 1 port forward: git push started -> rule answers traffic', values: oneLive },
        onePushed,
      );
      report.add(
        toLive,
        'ms',
        { name: 'change 1 port forward: git push started -> commit status success', values: oneStatus },
        onePushed,
      );
      report.add(
        toLive,
        'ms',
        {
          name: `add ${bulk.toLocaleString('en')} port forwards: git push started -> rule answers traffic`,
          values: bulkLive,
        },
        byHand,
      );
      report.add(
        toLive,
        'ms',
        {
          name: `add ${bulk.toLocaleString('en')} port forwards: git push started -> commit status success`,
          values: bulkStatus,
        },
        byHand,
      );

      // ---- baseline for the webhook: the planning a webhook would do if it planned before answering
      const repo = new GitRepo(p.bare);
      const planTime = async (sha: string) => {
        const times: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t0 = now();
          decide(
            validateManifests(await repo.manifestsAt(sha, '.')),
            { gateways: new Map(), networks: undefined },
            { sha, gen: 1, cause: 'push', at: Date.now(), planUrl: '', jobUrl: () => '' },
          );
          times.push(now() - t0);
        }
        return times;
      };
      const planFirst = await planTime(first);
      const planBulk = await planTime(bulkSha);
      planSeed = {
        name: 'planning inline instead: read the commit with git, validate, plan (the seed)',
        values: planFirst,
      };
      planNote =
        `Planning inline instead (read the commit with git, validate, plan; median of 20): ${ms(median(planFirst))} for the seed, ` +
        `${ms(median(planBulk))} for the commit with ${bulk.toLocaleString('en')} port forwards, before any rule is applied.`;
      report.add(
        'planning inline (what a webhook that planned before answering would do)',
        'ms',
        { name: `the commit with ${bulk.toLocaleString('en')} port forwards`, values: planBulk },
        planSeed,
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }

  // ---- webhook under load -------------------------------------------------------------------------
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-webhook-'));
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, SECRET);
  // The webhook alone (no workers), on the same Redis under its own prefix: what it enqueues stays queued.
  const app = await serve(
    loadConfig(
      {
        redisUrl: p.redis.url,
        prefix: 'bench-webhook',
        webhookSecret: SECRET,
        repo: p.bare,
        listen: '127.0.0.1:0',
        resyncMs: 0,
        dataDir: dir,
      },
      {},
    ),
    {
      queues: [],
      http: true,
      log: silentLogger(),
    },
  );
  try {
    out.push(
      '',
      `## webhook answer time under load (a second process, open loop, ${seconds} s per rate; signed push deliveries, each enqueued; then malformed ones at the highest rate)`,
      '',
    );
    out.push(
      '| deliveries | rate sent | answered as expected | errors | p50 | p90 | p99 | max |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    const answered: { series: Series; note: string }[] = [];
    const runs: [string, number][] = [
      ...rates.map((r): [string, number] => ['push (202)', r]),
      ['malformed (400, 415, 401)', Math.max(...rates)],
    ];
    for (const [mix, rate] of runs) {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          here('./webhook-load.ts'),
          `${app.url}/webhook`,
          secretFile,
          String(rate),
          String(seconds),
          mix.startsWith('push') ? 'push' : 'malformed',
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let text = '';
      child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
      await new Promise((r) => child.on('close', r));
      const r = JSON.parse(text) as {
        sent: number;
        ok: number;
        errors: number;
        rate: number;
        min: number;
        p50: number;
        p90: number;
        p99: number;
        max: number;
      };
      out.push(
        `| ${mix} | ${r.rate.toFixed(0)}/s | ${r.ok} | ${r.errors} | ${ms(r.p50)} | ${ms(r.p90)} | ${ms(r.p99)} | ${ms(r.max)} |`,
      );
      say(`webhook, ${mix} at ${rate}/s: p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, errors ${r.errors}`);
      answered.push({
        // the load generator keeps quantiles, not samples: its p50 is the median
        series: {
          name: `${mix} at ${r.rate.toFixed(0)}/s: answer time (p50)`,
          values: { n: r.ok, min: r.min, median: r.p50, max: r.max },
        },
        note: `p90 ${ms(r.p90)}, p99 ${ms(r.p99)}; ${r.ok} of ${r.sent} answered as expected, ${r.errors} errors`,
      });
    }
    // The baseline: planning before answering; with --webhook-only there is no commit to plan, so
    // the malformed deliveries, which touch no Redis, stand in for pushes (and the fastest push for them).
    const malformed = answered.at(-1)!;
    const webhookTable = `webhook answer time under load (a second process, open loop, ${seconds} s per rate)`;
    for (const a of answered) {
      const baseline = planSeed ?? (a === malformed ? answered[0]!.series : malformed.series);
      report.add(webhookTable, 'ms', a.series, baseline, a.note);
    }
    if (planNote) out.push('', planNote);
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
    await stop();
  }
  process.stdout.write(`${out.join('\n')}\n`);
  await report.write(args.out);
}

await main();
