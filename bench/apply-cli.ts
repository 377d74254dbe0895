// bench/apply-cli: adding N port forwards to a live gateway as a user does it, `natops apply DIR`
// as a whole process (start, YAML, validation, read, diff, one iptables-restore, read back),
// against, in the same run on the same gateway namespace: Kube-OVN's way (one iptables command
// per rule, through one bash in the gateway) and the floor, one bare `iptables-restore --noflush`
// process holding the same rules. Needs root and a fresh `npm run build` (natops runs dist/).
// Prints a markdown table and writes its figures to --out (bench/results/apply-cli.json).
//
//   node --import tsx bench/apply-cli.ts [--forwards 2000] [--reps 7] [--naive-reps 3] [--out FILE]
//
// Interleaved, median of each; between runs the gateway goes back to the seed (not timed). Every
// value in the commands is generated here.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { BACKEND, EIP } from './forwards.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { networkModel } from '../gitops/manifests/network.ts';
import { portForward } from '../dataplane/rules.ts';
import { Lab } from '../runtime/netns/lab.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { reconcileGateway } from '../runtime/reconcile.ts';
import { push, seedObjects, toFiles } from '../test/helpers/manifests.ts';

const { values: args } = parseArgs({
  options: {
    forwards: { type: 'string', default: '2000' },
    reps: { type: 'string', default: '7' },
    'naive-reps': { type: 'string', default: '3' },
    ...outOption('apply-cli'),
  },
});
const forwards = Number(args.forwards);
const reps = Number(args.reps);
const naiveReps = Number(args['naive-reps']);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SEED = join(ROOT, 'examples/seed');
const say = (line: string) => process.stderr.write(`${line}\n`);

/** A whole process; rejects on a non-zero exit or when natops says it is not running dist/. */
function proc(argv: string[], stdin?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${argv.join(' ')}: exit ${code}\n${stderr}`));
      else if (stderr.includes('npm run build'))
        reject(new Error(`dist/ is missing or stale; run \`npm run build\` first:\n${stderr}`));
      else resolve();
    });
    child.stdin.end(stdin ?? '');
  });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/apply-cli needs root (network namespaces)');
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-apply-cli-'));
  const lab = new Lab(`b${randomBytes(4).toString('hex')}`);
  const stop = async () => {
    await lab.down();
    await rm(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    // The manifests a user would apply: the seed plus N port forwards on one EIP.
    const seed = await seedObjects();
    for (let i = 0; i < forwards; i++)
      push(seed.gateway, 'spec.dnatRules', {
        eip: EIP,
        externalPort: 20000 + i,
        protocol: 'tcp',
        internalIp: BACKEND,
        internalPort: 80,
      });
    const many = join(dir, 'forwards');
    for (const f of toFiles(seed)) {
      await mkdir(dirname(join(many, f.path)), { recursive: true });
      await writeFile(join(many, f.path), f.text);
    }
    const desired = await readDesired(SEED);
    await lab.up(networkModel(desired));
    const runtime = new NetnsRuntime(lab);
    const base = desired.gateways.get('ngw')!;
    const gw = lab.names.gateway('ngw');
    const reset = () => reconcileGateway(runtime, base);
    await reset();
    // the gateway's iptables, for the baselines as for the count (Kube-OVN's gateway also runs
    // iptables-legacy wherever the kernel has it)
    const programs = await gatewayIptables((req) => inNamespace(gw, req));
    const count = async () =>
      (await inNamespace(gw, { argv: [programs.save, '-t', 'nat'] })).stdout
        .split('\n')
        .filter((l) => l.startsWith('-A SHARED_DNAT')).length;
    const expectAll = async (who: string) => {
      const n = await count();
      if (n !== forwards + 1) throw new Error(`${who} left ${n} port forwards, expected ${forwards + 1}`);
    };

    const rules = Array.from({ length: forwards }, (_, i) => portForward(EIP, 'tcp', 20000 + i, BACKEND, 80));
    const restore = `*nat\n${rules.map((r) => `-A SHARED_DNAT ${r}`).join('\n')}\nCOMMIT\n`;
    const naive = `set -e\n${rules.map((r) => `${programs.iptables} -t nat -A SHARED_DNAT ${r}`).join('\n')}\n`;
    const natopsArgv = [process.execPath, join(ROOT, 'bin/natops.js'), 'apply', many, '--lab', lab.names.prefix];

    const t = { natops: [] as number[], restore: [] as number[], naive: [] as number[] };
    for (let i = 0; i < reps; i++) {
      t.natops.push(await timed(() => proc(natopsArgv)));
      await expectAll('natops apply');
      await reset();
      t.restore.push(await timed(() => proc(['ip', 'netns', 'exec', gw, programs.restore, '--noflush'], restore)));
      await expectAll('iptables-restore');
      await reset();
      if (i < naiveReps) {
        t.naive.push(await timed(() => proc(['ip', 'netns', 'exec', gw, 'bash', '-s'], naive)));
        await expectAll('one iptables command per rule');
        await reset();
      }
      say(
        `${i + 1}/${reps}: natops apply ${ms(t.natops.at(-1)!)}, iptables-restore ${ms(t.restore.at(-1)!)}${i < naiveReps ? `, one command per rule ${ms(t.naive.at(-1)!)}` : ''}`,
      );
    }
    const [a, r, n] = [median(t.natops), median(t.restore), median(t.naive)];
    process.stdout.write(
      [
        `### add ${forwards.toLocaleString('en')} port forwards to a live gateway, whole processes (median of ${reps}; one command per rule: ${naiveReps})`,
        '',
        '| how | time | natops is |',
        '|---|---:|---:|',
        `| \`natops apply DIR\` (start, YAML, validation, read, diff, one \`iptables-restore\`, read back) | ${ms(a)} | 1.0x |`,
        `| one \`iptables\` command per rule, one bash in the gateway (Kube-OVN's way) | ${ms(n)} | ${(n / a).toFixed(1)}x faster |`,
        `| one bare \`iptables-restore --noflush\` of the same rules (the floor) | ${ms(r)} | ${(a / r).toFixed(1)}x slower |`,
        '',
      ].join('\n'),
    );
    const report = new Report('apply-cli', args);
    const table = `add ${forwards.toLocaleString('en')} port forwards to a live gateway, whole processes`;
    const natops = {
      name: '`natops apply DIR` (start, YAML, validation, read, diff, one `iptables-restore`, read back)',
      values: t.natops,
    };
    report.add(table, 'ms', natops, {
      name: "one `iptables` command per rule, one bash in the gateway (Kube-OVN's way)",
      values: t.naive,
    });
    report.add(table, 'ms', natops, {
      name: 'one bare `iptables-restore --noflush` of the same rules (the floor)',
      values: t.restore,
    });
    await report.write(args.out);
  } finally {
    await stop();
  }
}

await main();
