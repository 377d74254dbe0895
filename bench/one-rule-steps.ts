// bench/one-rule-steps: where a one-rule change in a big gateway spends its time, step by step,
// on a real lab gateway holding N port forwards (default 10,000): natops's whole reconcile of one
// changed rule, then each step alone (the reads, an iptables-restore that appends, inserts or
// deletes one rule, conntrack -D, a bare process in the namespace, compiling and diffing). Needs
// root. Prints a markdown table of medians and writes its figures to --out
// (bench/results/one-rule-steps.json), each step against a bare process in the namespace.
//
//   node --import tsx bench/one-rule-steps.ts [--rules 10000] [--reps 5] [--out FILE]
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { changeSetCommands } from '../dataplane/commands.ts';
import { compileGateway } from '../dataplane/compile.ts';
import { diffStates } from '../dataplane/diff.ts';
import { networkModel } from '../gitops/manifests/network.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { Lab } from '../runtime/netns/lab.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { reconcileGateway } from '../runtime/reconcile.ts';
import { BACKEND, EIP, withForwards } from './forwards.ts';

const { values: args } = parseArgs({
  options: {
    rules: { type: 'string', default: '10000' },
    reps: { type: 'string', default: '5' },
    ...outOption('one-rule-steps'),
  },
});
const rules = Number(args.rules);
const reps = Number(args.reps);
/** the baseline of every step: what any process in the gateway costs */
const FLOOR = "`true` in the namespace (a process's floor)";
/** a rule natops does not manage, added and removed by the steps below */
const SPARE = `-d ${EIP}/32 -p tcp -m tcp --dport 40000 -j DNAT --to-destination ${BACKEND}:80`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/one-rule-steps needs root (network namespaces)');
  const lab = new Lab(`b${randomBytes(4).toString('hex')}`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void lab.down().finally(() => process.exit(130)));
  try {
    const desired = await readDesired(new URL('../examples/seed', import.meta.url).pathname);
    await lab.up(networkModel(desired));
    const runtime = new NetnsRuntime(lab);
    const base = desired.gateways.get('ngw')!;
    const gw = lab.names.gateway('ngw');
    await reconcileGateway(runtime, withForwards(base, rules));
    const handle = (await runtime.gateway('ngw'))!;
    const inGateway = (argv: string[], stdin?: string) =>
      inNamespace(gw, { argv, ...(stdin === undefined ? {} : { stdin }), okExitCodes: [0, 1] });
    const programs = await gatewayIptables((req) => inGateway(req.argv, req.stdin));
    const restore = (line: string) => inGateway([programs.restore, '-w', '--noflush'], `*nat\n${line}\nCOMMIT\n`);
    const steps: [string, () => Promise<unknown>][] = [
      [
        'natops: reconcile the gateway with one rule changed',
        () =>
          reconcileGateway(
            runtime,
            withForwards(base, rules, { index: 7, internalPort: 1000 + Math.floor(Math.random() * 1000) }),
          ),
      ],
      ['natops: read the whole gateway (every read at once)', () => handle.readState()],
      [`\`${programs.save} -t nat\``, () => inGateway([programs.save, '-t', 'nat'])],
      [
        `\`${programs.iptables} -t nat -S SHARED_DNAT\` (the one chain)`,
        () => inGateway([programs.iptables, '-t', 'nat', '-S', 'SHARED_DNAT']),
      ],
      [`\`${programs.restore} --noflush\`: append one rule`, () => restore(`-A SHARED_DNAT ${SPARE}`)],
      [`\`${programs.restore} --noflush\`: delete that rule by its spec`, () => restore(`-D SHARED_DNAT ${SPARE}`)],
      [`\`${programs.restore} --noflush\`: insert one rule first`, () => restore(`-I SHARED_DNAT 1 ${SPARE}`)],
      [`\`${programs.restore} --noflush\`: delete rule 1 by number`, () => restore('-D SHARED_DNAT 1')],
      [
        "`conntrack -D` of one forward's flows",
        () => inGateway(['conntrack', '-D', '-p', 'tcp', '--orig-dst', EIP, '--orig-port-dst', '20007']),
      ],
      [FLOOR, () => inGateway(['true'])],
    ];
    const live = await handle.readState();
    steps.push([
      `compile ${rules.toLocaleString('en')} rules and diff them against the live state`,
      async () =>
        changeSetCommands(
          diffStates(live, compileGateway(withForwards(base, rules, { index: 7, internalPort: 5555 }))),
        ),
    ]);
    const times = new Map<string, number[]>(steps.map(([name]) => [name, []]));
    for (let r = 0; r < reps; r++) for (const [name, step] of steps) times.get(name)!.push(await timed(step));
    process.stdout.write(
      [
        `### one rule changed in a gateway holding ${rules.toLocaleString('en')} port forwards, step by step (median of ${reps})`,
        '',
        '| step | time |',
        '|---|---:|',
        ...steps.map(([name]) => `| ${name} | ${ms(median(times.get(name)!))} |`),
        '',
      ].join('\n'),
    );
    const report = new Report('one-rule-steps', args);
    const floor = { name: FLOOR, values: times.get(FLOOR)! };
    for (const [name] of steps)
      if (name !== FLOOR)
        report.add(
          `one rule changed in a gateway holding ${rules.toLocaleString('en')} port forwards, step by step`,
          'ms',
          { name, values: times.get(name)! },
          floor,
        );
    await report.write(args.out);
  } finally {
    await lab.down();
  }
}

await main();
