// bench/apply-cli: `natops apply` as a user runs it, whole processes, on real gateway namespaces
// (needs root and a fresh `npm run build`: natops runs dist/). Three tables, each against its
// baseline in the same run on the same gateway:
// - adding N port forwards to a live gateway: against Kube-OVN's way (one iptables command per
//   rule, through one bash in the gateway) and the floor, one bare `iptables-restore --noflush`;
// - changing one forward in a gateway holding M: natops minus `node -e 0` against Kube-OVN's
//   `iptables -D` plus `iptables -A` of that rule;
// - a new gateway (the seed's): from the command's start to the first answer through its port
//   forward, against `node -e 0`;
// - changing one forward in a gateway on nftables holding K: against `node -e 0` plus one bare
//   `nft -f` doing the same element delete and add, and against `natops validate` of the same
//   manifests (reading and checking them, the part a bare `nft` has no equivalent of).
// Prints a markdown table and writes its figures to --out (bench/results/apply-cli.json).
//
//   node --import tsx bench/apply-cli.ts [--forwards 2000] [--reps 7] [--naive-reps 3]
//     [--change-forwards 10000] [--change-reps 7] [--new-reps 7]
//     [--nft-forwards 100000] [--nft-reps 5] [--out FILE]
//
// Interleaved, median of each; between runs the gateway goes back to where it started (not
// timed). Every value in the commands is generated here.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import { pollOpen } from './poll-open.ts';
import { BACKEND, EIP, forwardAt, withForwards } from './forwards.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { networkModel } from '../gitops/manifests/network.ts';
import { portForward } from '../dataplane/rules.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { reconcileGateway } from '../runtime/reconcile.ts';
import { push, seedObjects, toFiles, type SeedObjects } from '../test/helpers/manifests.ts';
import { LabHarness } from '../test/helpers/lab-harness.ts';
import { onDataplane } from '../test/helpers/scenario.ts';

const { values: args } = parseArgs({
  options: {
    forwards: { type: 'string', default: '2000' },
    reps: { type: 'string', default: '7' },
    'naive-reps': { type: 'string', default: '3' },
    'change-forwards': { type: 'string', default: '10000' },
    'change-reps': { type: 'string', default: '7' },
    'new-reps': { type: 'string', default: '7' },
    'nft-forwards': { type: 'string', default: '100000' },
    'nft-reps': { type: 'string', default: '5' },
    ...outOption('apply-cli'),
  },
});
const forwards = Number(args.forwards);
const reps = Number(args.reps);
const naiveReps = Number(args['naive-reps']);
const changeForwards = Number(args['change-forwards']);
const changeReps = Number(args['change-reps']);
const newReps = Number(args['new-reps']);
const nftForwards = Number(args['nft-forwards']);
const nftReps = Number(args['nft-reps']);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SEED = join(ROOT, 'examples/seed');
const say = (line: string) => process.stderr.write(`${line}\n`);
const epochNow = () => performance.timeOrigin + performance.now();

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

/** The seed plus `n` port forwards (forwardAt), the one at `changed.index` to another backend port. */
async function forwardsSeed(n: number, changed?: { index: number; internalPort: number }): Promise<SeedObjects> {
  const seed = await seedObjects();
  for (let i = 0; i < n; i++)
    push(seed.gateway, 'spec.dnatRules', forwardAt(i, changed?.index === i ? changed.internalPort : 80));
  return seed;
}

async function writeSeed(dir: string, seed: SeedObjects): Promise<string> {
  for (const f of toFiles(seed)) {
    await mkdir(dirname(join(dir, f.path)), { recursive: true });
    await writeFile(join(dir, f.path), f.text);
  }
  return dir;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/apply-cli needs root (network namespaces)');
  const dir = await mkdtemp(join(tmpdir(), 'natops-bench-apply-cli-'));
  const h = await LabHarness.create();
  const lab = h.lab;
  const stop = async () => {
    await h.cleanup();
    await rm(dir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
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
    const forwardRules = async () =>
      (await inNamespace(gw, { argv: [programs.save, '-t', 'nat'] })).stdout
        .split('\n')
        .filter((l) => l.startsWith('-A SHARED_DNAT'));
    const natopsApply = (manifests: string) => [
      process.execPath,
      join(ROOT, 'bin/natops.js'),
      'apply',
      manifests,
      '--lab',
      lab.names.prefix,
    ];
    const nodeFloor = [process.execPath, '-e', '0'];
    const report = new Report('apply-cli', args);

    // ---- N port forwards added to a live gateway ------------------------------------------------
    const many = await writeSeed(join(dir, 'forwards'), await forwardsSeed(forwards));
    const expectAll = async (who: string) => {
      const n = (await forwardRules()).length;
      if (n !== forwards + 1) throw new Error(`${who} left ${n} port forwards, expected ${forwards + 1}`);
    };
    const rules = Array.from({ length: forwards }, (_, i) => portForward(EIP, 'tcp', 20000 + i, BACKEND, 80));
    const restore = `*nat\n${rules.map((r) => `-A SHARED_DNAT ${r}`).join('\n')}\nCOMMIT\n`;
    const naive = `set -e\n${rules.map((r) => `${programs.iptables} -t nat -A SHARED_DNAT ${r}`).join('\n')}\n`;

    const t = { natops: [] as number[], restore: [] as number[], naive: [] as number[] };
    for (let i = 0; i < reps; i++) {
      t.natops.push(await timed(() => proc(natopsApply(many))));
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
    const addTable = `add ${forwards.toLocaleString('en')} port forwards to a live gateway, whole processes`;
    const natops = {
      name: '`natops apply DIR` (start, YAML, validation, read, diff, one `iptables-restore`, read back)',
      values: t.natops,
    };
    report.add(addTable, 'ms', natops, {
      name: "one `iptables` command per rule, one bash in the gateway (Kube-OVN's way)",
      values: t.naive,
    });
    report.add(addTable, 'ms', natops, {
      name: 'one bare `iptables-restore --noflush` of the same rules (the floor)',
      values: t.restore,
    });

    // ---- one port forward changed in a gateway holding M ---------------------------------------
    const mid = Math.floor(changeForwards / 2);
    const changed = await writeSeed(
      join(dir, 'changed'),
      await forwardsSeed(changeForwards, { index: mid, internalPort: 81 }),
    );
    const holding = withForwards(base, changeForwards);
    const before = portForward(EIP, 'tcp', 20000 + mid, BACKEND, 80);
    const after = portForward(EIP, 'tcp', 20000 + mid, BACKEND, 81);
    const backToM = async () => {
      await reconcileGateway(runtime, holding);
      const live = await forwardRules();
      if (live.length !== changeForwards + 1 || !live.includes(`-A SHARED_DNAT ${before}`))
        throw new Error(`the gateway does not hold the ${changeForwards} forwards`);
    };
    const expectChanged = async (who: string) => {
      const live = await forwardRules();
      if (
        live.length !== changeForwards + 1 ||
        !live.includes(`-A SHARED_DNAT ${after}`) ||
        live.includes(`-A SHARED_DNAT ${before}`)
      )
        throw new Error(`${who} did not change the one forward`);
    };
    const twoCommands = `set -e\n${programs.iptables} -t nat -D SHARED_DNAT ${before}\n${programs.iptables} -t nat -A SHARED_DNAT ${after}\n`;
    const c = { natops: [] as number[], floor: [] as number[], pair: [] as number[] };
    await backToM();
    for (let i = 0; i < changeReps; i++) {
      c.floor.push(await timed(() => proc(nodeFloor)));
      c.natops.push(await timed(() => proc(natopsApply(changed))));
      await expectChanged('natops apply');
      await backToM();
      c.pair.push(await timed(() => proc(['ip', 'netns', 'exec', gw, 'bash', '-s'], twoCommands)));
      await expectChanged('iptables -D and -A');
      await backToM();
      say(
        `${i + 1}/${changeReps}: one of ${changeForwards}: natops apply ${ms(c.natops.at(-1)!)}, node -e 0 ${ms(c.floor.at(-1)!)}, -D and -A ${ms(c.pair.at(-1)!)}`,
      );
    }
    const changeTable = `change one port forward in a gateway holding ${changeForwards.toLocaleString('en')}, whole processes`;
    // paired per round: the floor runs right before its natops apply
    const minusNode = c.natops.map((x, k) => x - c.floor[k]!);
    const pair = {
      name: "one `iptables -D` and one `iptables -A` of that rule, one bash in the gateway (Kube-OVN's way)",
      values: c.pair,
    };
    report.add(
      changeTable,
      'ms',
      { name: '`natops apply DIR` minus `node -e 0` (paired per round)', values: minusNode },
      pair,
      'target: within 2x',
    );
    report.add(
      changeTable,
      'ms',
      { name: '`natops apply DIR`, whole', values: c.natops },
      { name: '`node -e 0` (the floor)', values: c.floor },
    );
    process.stdout.write(
      `| natops apply, one forward of ${changeForwards} changed, minus node -e 0 | ${ms(median(minusNode))} | -D and -A ${ms(median(c.pair))} | ${(median(minusNode) / median(c.pair)).toFixed(2)}x |\n`,
    );

    // ---- a new gateway ---------------------------------------------------------------------------
    await reset();
    await h.host('web', 'sn', '10.0.1.10/24');
    await h.host('ext', 'external', '192.168.0.50/24');
    await h.serve('web', { tcp: [80] });
    const forward = desired.gateways.get('ngw')!.dnats[0]!;
    const g = { answered: [] as number[], exited: [] as number[], floor: [] as number[] };
    for (let i = 0; i < newReps; i++) {
      if (!(await runtime.removeGateway('ngw'))) throw new Error('the gateway was not there to remove');
      const { live } = await pollOpen(h.lab.names.host('ext'), EIP, forward.externalPort, 30_000);
      const t0 = epochNow();
      await proc(natopsApply(SEED));
      g.exited.push(epochNow() - t0);
      g.answered.push((await live) - t0);
      g.floor.push(await timed(() => proc(nodeFloor)));
      say(
        `${i + 1}/${newReps}: new gateway answers after ${ms(g.answered.at(-1)!)}, natops apply exits after ${ms(g.exited.at(-1)!)}`,
      );
    }
    const newTable = "a new gateway (the seed's): `natops apply` started -> its port forward answers";
    const floor = { name: '`node -e 0` (the floor)', values: g.floor };
    report.add(
      newTable,
      'ms',
      { name: 'first answer through the port forward', values: g.answered },
      floor,
      'target: within 0.5 s',
    );
    report.add(newTable, 'ms', { name: '`natops apply` exits', values: g.exited }, floor);
    process.stdout.write(
      `| a new gateway: first answer | ${ms(median(g.answered))} | natops apply exits ${ms(median(g.exited))} | node -e 0 ${ms(median(g.floor))} |\n`,
    );

    // ---- one port forward changed in a gateway on nftables holding K ------------------------------
    const k = Math.floor(nftForwards / 2);
    const nftSeed = async (changedPort?: number) =>
      onDataplane(
        await forwardsSeed(nftForwards, changedPort ? { index: k, internalPort: changedPort } : undefined),
        'nftables',
      );
    const nftChanged = await writeSeed(join(dir, 'nft-changed'), await nftSeed(81));
    // (100,000 forwards in the gateway's one file are 12 MB, over the default limit of 8 MiB a file)
    process.env.NATOPS_MANIFEST_MAX_FILE_BYTES = String(64 * 1024 * 1024);
    const nftHolding: typeof base = {
      ...base,
      dataplane: 'nftables',
      dnats: [...base.dnats, ...Array.from({ length: nftForwards }, (_, i) => forwardAt(i))],
    };
    const key = `${EIP} . ${forwardAt(k).protocol} . ${forwardAt(k).externalPort}`;
    const element = async () =>
      (
        await inNamespace(gw, { argv: ['nft', 'get', 'element', 'ip', 'natops', 'forwards', `{ ${key} }`] })
      ).stdout.match(/ : \S+ \. (\d+)/)?.[1];
    const bareNft = (port: number) =>
      [
        `delete element ip natops forwards { ${key} }`,
        `add element ip natops forwards { ${key} : ${BACKEND} . ${port} }`,
        '',
      ].join('\n');
    // back with a bare nft (the revision stays: a natops apply, a new process, reads the table whole)
    const backToK = async () => {
      await inNamespace(gw, { argv: ['nft', '-f', '-'], stdin: bareNft(80) });
      if ((await element()) !== '80') throw new Error(`the gateway does not hold the ${nftForwards} forwards`);
    };
    const nftValidate = [process.execPath, join(ROOT, 'bin/natops.js'), 'validate', nftChanged];
    const x = { natops: [] as number[], floor: [] as number[], nft: [] as number[], validate: [] as number[] };
    await reconcileGateway(runtime, nftHolding);
    if ((await element()) !== '80') throw new Error(`the gateway does not hold the ${nftForwards} forwards`);
    for (let i = 0; i < nftReps; i++) {
      x.floor.push(await timed(() => proc(nodeFloor)));
      x.nft.push(await timed(() => proc(['ip', 'netns', 'exec', gw, 'nft', '-f', '-'], bareNft(81))));
      if ((await element()) !== '81') throw new Error('the bare nft -f did not change the forward');
      await backToK();
      x.validate.push(await timed(() => proc(nftValidate)));
      x.natops.push(await timed(() => proc(natopsApply(nftChanged))));
      if ((await element()) !== '81') throw new Error('natops apply did not change the forward');
      await backToK();
      say(
        `${i + 1}/${nftReps}: one of ${nftForwards} on nftables: natops apply ${ms(x.natops.at(-1)!)}, node -e 0 ${ms(x.floor.at(-1)!)}, nft -f ${ms(x.nft.at(-1)!)}, natops validate ${ms(x.validate.at(-1)!)}`,
      );
    }
    const nftTable = `change one port forward in a gateway on nftables holding ${nftForwards.toLocaleString('en')}, whole processes`;
    const nftApply = { name: '`natops apply DIR`, whole', values: x.natops };
    report.add(
      nftTable,
      'ms',
      nftApply,
      {
        name: '`node -e 0` plus one bare `nft -f` of the element delete and add (paired per round)',
        values: x.floor.map((f, r) => f + x.nft[r]!),
      },
      'target: within 1.5x',
    );
    report.add(nftTable, 'ms', nftApply, {
      name: '`natops validate DIR` of the same manifests (reading and checking them)',
      values: x.validate,
    });
    process.stdout.write(
      `| natops apply, one forward of ${nftForwards} on nftables | ${ms(median(x.natops))} | node -e 0 + nft -f ${ms(median(x.floor) + median(x.nft))} | natops validate ${ms(median(x.validate))} |\n`,
    );
    await report.write(args.out);
  } finally {
    await stop();
  }
}

await main();
