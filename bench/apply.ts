// bench/apply: natops's one-transaction apply against one iptables command per rule (Kube-OVN's
// way), in the same run, on real gateway namespaces. Needs root. Prints markdown tables and
// writes its figures to --out (bench/results/apply.json).
//
//   node --import tsx bench/apply.ts [--sizes 100,1000,10000] [--reps 5] [--churn 100] [--churn-naive 10]
//                                    [--churn-rules 1000] [--change-size 10000] [--remove-size 1000] [--out FILE]
//
// The baseline runs its iptables commands through one bash, as Kube-OVN 1.7 does inside the
// gateway pod; every value in them is generated here, none comes from a manifest.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { portForward } from '../dataplane/rules.ts';
import { Lab } from '../runtime/netns/lab.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { networkModel } from '../gitops/manifests/network.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { reconcileGateway, type GatewayResult } from '../runtime/reconcile.ts';
import { BACKEND, EIP, withForwards } from './forwards.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,10000' },
    reps: { type: 'string', default: '5' },
    churn: { type: 'string', default: '100' },
    // the baseline rewrites the whole chain per change: fewer rounds keep the run short
    'churn-naive': { type: 'string', default: '10' },
    'churn-rules': { type: 'string', default: '1000' },
    'change-size': { type: 'string', default: '10000' },
    'remove-size': { type: 'string', default: '1000' },
    ...outOption('apply'),
  },
});
const sizes = args.sizes.split(',').map(Number);
const reps = Number(args.reps);
const churn = Number(args.churn);
const churnNaive = Number(args['churn-naive']);
const churnRules = Number(args['churn-rules']);
const changeSize = Number(args['change-size']);
const removeSize = Number(args['remove-size']);
const report = new Report('apply', args);

const BIN = fileURLToPath(new URL('../bin/natops.js', import.meta.url));
const SEED = fileURLToPath(new URL('../examples/seed', import.meta.url));

/** Kube-OVN's way: one iptables command per rule, run by one bash inside the gateway. */
function naiveScript(n: number, opts: { flush: boolean; changed?: { index: number; internalPort: number } }): string {
  const lines = opts.flush ? ['iptables -t nat -F SHARED_DNAT'] : [];
  for (let i = 0; i < n; i++) {
    const port = opts.changed?.index === i ? opts.changed.internalPort : 80;
    lines.push(
      `iptables -t nat -A SHARED_DNAT -p tcp -d ${EIP} --dport ${20000 + i} -j DNAT --to-destination ${BACKEND}:${port}`,
    );
  }
  return `set -e\n${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/apply needs root (network namespaces)');
  const lab = new Lab(`b${randomBytes(4).toString('hex')}`);
  const procs: ReturnType<typeof spawn>[] = [];
  const stop = async () => {
    for (const p of procs) p.kill('SIGKILL');
    await lab.down();
  };
  // Interrupted runs clean up too: the lab's namespaces must not outlive the benchmark.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const desired = await readDesired(SEED);
    await lab.up(networkModel(desired));
    const runtime = new NetnsRuntime(lab);
    const base = desired.gateways.get('ngw')!;
    const gw = lab.names.gateway('ngw');
    // The baselines' one command per rule takes minutes at 10,000 rules (flush and re-add: about
    // 110 s), past the runner's default timeout of a minute, which is for natops's own commands.
    // `iptables` in them is the gateway's iptables, as nat-gateway.sh's $iptables_cmd is in Kube-OVN's.
    let programs: Awaited<ReturnType<typeof gatewayIptables>> | undefined; // (known once fresh() ran)
    const naive = (script: string) =>
      inNamespace(gw, {
        argv: ['bash', '-s'],
        stdin: `iptables() { ${programs!.iptables} "$@"; }\n${script}`,
        timeoutMs: 30 * 60_000,
      });
    /** A fresh gateway with the seed applied: chains made, no extra forwards. */
    const fresh = async () => {
      await runtime.removeGateway('ngw');
      await reconcileGateway(runtime, base);
      programs = await gatewayIptables((req) => inNamespace(gw, req));
    };
    const countRules = async () =>
      (await inNamespace(gw, { argv: [programs!.save, '-t', 'nat'] })).stdout
        .split('\n')
        .filter((l) => l.startsWith('-A SHARED_DNAT')).length;

    const out: string[] = [];
    out.push(
      `## apply N port forwards to a fresh gateway (median of ${reps} runs; naive at 10,000: ${Math.min(reps, 3)})`,
      '',
    );
    out.push(
      '| N | natops: read, diff, one iptables-restore, read back | one iptables command per rule | ratio |',
      '|---:|---:|---:|---:|',
    );
    for (const n of sizes) {
      const natopsTimes: number[] = [];
      const naiveTimes: number[] = [];
      const naiveReps = n >= 10000 ? Math.min(reps, 3) : reps;
      for (let r = 0; r < reps; r++) {
        await fresh();
        natopsTimes.push(await timed(() => reconcileGateway(runtime, withForwards(base, n))));
        if ((await countRules()) !== n + 1)
          throw new Error(`natops left ${await countRules()} forwards, expected ${n + 1}`);
        if (r < naiveReps) {
          await fresh();
          naiveTimes.push(await timed(() => naive(naiveScript(n, { flush: false }))));
          if ((await countRules()) !== n + 1) throw new Error('the naive run did not add every rule');
        }
      }
      const a = median(natopsTimes);
      const b = median(naiveTimes);
      out.push(`| ${n.toLocaleString('en')} | ${ms(a)} | ${ms(b)} | ${(b / a).toFixed(1)}x |`);
      report.add(
        'apply N port forwards to a fresh gateway',
        'ms',
        {
          name: `natops, N = ${n.toLocaleString('en')}: read, diff, one iptables-restore, read back`,
          values: natopsTimes,
        },
        { name: `one iptables command per rule, N = ${n.toLocaleString('en')}`, values: naiveTimes },
      );
      process.stderr.write(`apply N=${n}: natops ${ms(a)}, naive ${ms(b)}\n`);
    }

    out.push(
      '',
      `## change one rule in a gateway holding ${changeSize.toLocaleString('en')} port forwards (median of ${reps} runs; flush and re-add: ${Math.min(reps, 3)})`,
      '',
    );
    out.push('| method | time | ratio to natops |', '|---|---:|---:|');
    await fresh();
    await reconcileGateway(runtime, withForwards(base, changeSize));
    const natopsChange: number[] = [];
    const naiveFlush: number[] = [];
    const naivePair: number[] = [];
    for (let r = 0; r < reps; r++) {
      const port = 1000 + r;
      let result: GatewayResult | undefined;
      natopsChange.push(
        await timed(
          async () =>
            (result = await reconcileGateway(
              runtime,
              withForwards(base, changeSize, { index: 7, internalPort: port }),
            )),
        ),
      );
      // What the row says it measures: one -D and one -I, not a rewrite of the chain
      const ops = result?.changes.chains.flatMap((e) => (e.rewrite ? ['rewrite'] : e.ops.map((o) => o.op)));
      if (ops?.join(',') !== 'delete,insert') throw new Error(`natops changed more than one rule: ${ops?.join(',')}`);
      const rule = (p: number) => portForward(EIP, 'tcp', 20007, BACKEND, p);
      // Kube-OVN today: delete the old rule and append the new one, one iptables command each.
      naivePair.push(
        await timed(() =>
          naive(`iptables -t nat -D SHARED_DNAT ${rule(port)}\niptables -t nat -A SHARED_DNAT ${rule(port + 100)}\n`),
        ),
      );
      await reconcileGateway(runtime, withForwards(base, changeSize, { index: 7, internalPort: port + 100 }));
      if (r < Math.min(reps, 3)) {
        naiveFlush.push(
          await timed(() =>
            naive(naiveScript(changeSize, { flush: true, changed: { index: 7, internalPort: port + 200 } })),
          ),
        );
        await naive(`iptables -t nat -A SHARED_DNAT ${portForward(EIP, 'tcp', 8888, BACKEND, 80)}\n`);
        // The re-add put the seed's forward last: back to natops's order before the next timed
        // change, which would otherwise rewrite the whole chain instead of changing one rule.
        await reconcileGateway(runtime, withForwards(base, changeSize, { index: 7, internalPort: port + 100 }));
      }
    }
    const c = median(natopsChange);
    out.push(`| natops: read, diff, one transaction (-D, -I), read back | ${ms(c)} | 1.0x |`);
    out.push(
      `| one iptables -D and one -A (Kube-OVN today) | ${ms(median(naivePair))} | ${(median(naivePair) / c).toFixed(2)}x |`,
    );
    out.push(
      `| flush the chain, re-add every rule one command at a time (Kube-OVN 1.7) | ${ms(median(naiveFlush))} | ${(median(naiveFlush) / c).toFixed(1)}x |`,
    );
    const changeTable = `change one rule in a gateway holding ${changeSize.toLocaleString('en')} port forwards`;
    const natopsChangeSeries = {
      name: 'natops: read, diff, one transaction (-D, -I), read back',
      values: natopsChange,
    };
    report.add(changeTable, 'ms', natopsChangeSeries, {
      name: 'one iptables -D and one -A (Kube-OVN today)',
      values: naivePair,
    });
    report.add(changeTable, 'ms', natopsChangeSeries, {
      name: 'flush the chain, re-add every rule one command at a time (Kube-OVN 1.7)',
      values: naiveFlush,
    });

    out.push(
      '',
      `## remove ${removeSize.toLocaleString('en')} port forwards, with the conntrack clean-up that stops their established flows (median of ${reps} runs)`,
      '',
    );
    out.push('| method | time | ratio |', '|---|---:|---:|');
    const natopsRemove: number[] = [];
    const naiveRemove: number[] = [];
    for (let r = 0; r < reps; r++) {
      await fresh();
      await reconcileGateway(runtime, withForwards(base, removeSize));
      natopsRemove.push(await timed(() => reconcileGateway(runtime, base)));
      if ((await countRules()) !== 1) throw new Error('natops did not remove every forward');
      await reconcileGateway(runtime, withForwards(base, removeSize));
      const lines: string[] = [];
      for (let i = 0; i < removeSize; i++) {
        lines.push(`iptables -t nat -D SHARED_DNAT ${portForward(EIP, 'tcp', 20000 + i, BACKEND, 80)}`);
        // exit 1 means no entry matched, as for natops
        lines.push(`conntrack -D -p tcp -d ${EIP} --dport ${20000 + i} 2>/dev/null || [ $? -eq 1 ]`);
      }
      naiveRemove.push(await timed(() => naive(`set -e\n${lines.join('\n')}\n`)));
      if ((await countRules()) !== 1) throw new Error('the naive run did not remove every forward');
    }
    const d = median(natopsRemove);
    out.push(`| natops: one transaction, one conntrack listing, deletions only for listed flows | ${ms(d)} | 1.0x |`);
    out.push(
      `| one iptables -D and one conntrack -D per forward | ${ms(median(naiveRemove))} | ${(median(naiveRemove) / d).toFixed(1)}x |`,
    );
    process.stderr.write(`remove ${removeSize}: natops ${ms(d)}, naive ${ms(median(naiveRemove))}\n`);
    report.add(
      `remove ${removeSize.toLocaleString('en')} port forwards, with the conntrack clean-up that stops their established flows`,
      'ms',
      { name: 'natops: one transaction, one conntrack listing, deletions only for listed flows', values: natopsRemove },
      { name: 'one iptables -D and one conntrack -D per forward', values: naiveRemove },
    );

    out.push(
      '',
      `## connections through an unchanged port forward while another rule changes (gateway holding ${churnRules.toLocaleString('en')} forwards)`,
      '',
    );
    out.push('| method | changes | connections ok | connections failed | failures |', '|---|---:|---:|---:|---|');
    await lab.addHost({ name: 'web', net: 'sn', ip: `${BACKEND}/24` });
    await lab.addHost({ name: 'ext', net: 'external', ip: '192.168.0.50/24' });
    await inNamespace(lab.names.host('ext'), {
      argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000'],
    });
    const server = spawn(
      'ip',
      ['netns', 'exec', lab.names.host('web'), process.execPath, BIN, 'probe', '--name', 'web', '--tcp', '80'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    procs.push(server);
    await new Promise<void>((resolve) => server.stdout!.on('data', () => resolve()));
    const churned: Record<string, { rounds: number; ok: number; failed: number; why: string }> = {};
    for (const method of ['natops', 'flush and re-add'] as const) {
      await fresh();
      await reconcileGateway(runtime, withForwards(base, churnRules));
      const loop = spawn(
        'ip',
        [
          'netns',
          'exec',
          lab.names.host('ext'),
          process.execPath,
          '--import',
          'tsx',
          fileURLToPath(new URL('./connect-loop.ts', import.meta.url)),
          EIP,
          '8888',
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      procs.push(loop);
      let result = '';
      loop.stdout!.on('data', (b: Buffer) => (result += b.toString()));
      await new Promise((r) => setTimeout(r, 1500));
      const rounds = method === 'natops' ? churn : churnNaive;
      for (let i = 0; i < rounds; i++) {
        const change = { index: 3, internalPort: 81 + (i % 2) };
        if (method === 'natops') await reconcileGateway(runtime, withForwards(base, churnRules, change));
        else
          await naive(
            `${naiveScript(churnRules, { flush: true, changed: change })}iptables -t nat -A SHARED_DNAT ${portForward(EIP, 'tcp', 8888, BACKEND, 80)}\n`,
          );
      }
      loop.kill('SIGTERM');
      await new Promise((r) => loop.on('close', r));
      const { ok, failed, reasons } = JSON.parse(result) as {
        ok: number;
        failed: number;
        reasons: Record<string, number>;
      };
      const why =
        Object.entries(reasons)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ') || '-';
      out.push(
        `| ${method === 'natops' ? 'natops (one transaction per change)' : 'flush and re-add one command at a time (Kube-OVN 1.7)'} | ${rounds} | ${ok} | ${failed} | ${why} |`,
      );
      process.stderr.write(`churn ${method}: ok ${ok}, failed ${failed} (${why})\n`);
      churned[method] = { rounds, ok, failed, why };
    }
    const churnTable = `connections through an unchanged port forward while another rule changes (gateway holding ${churnRules.toLocaleString('en')} forwards)`;
    const [mine, theirs] = [churned.natops!, churned['flush and re-add']!];
    for (const what of ['ok', 'failed'] as const)
      report.add(
        churnTable,
        'count',
        { name: `natops, ${mine.rounds} changes (one transaction each): connections ${what}`, values: [mine[what]] },
        {
          name: `flush and re-add one command at a time (Kube-OVN 1.7), ${theirs.rounds} changes: connections ${what}`,
          values: [theirs[what]],
        },
        what === 'failed' ? `failures: natops ${mine.why}; flush and re-add ${theirs.why}` : undefined,
      );
    process.stdout.write(`${out.join('\n')}\n`);
    await report.write(args.out);
  } finally {
    await stop();
  }
}

await main();
