// bench/nftables: the nftables data plane at 100,000 port forwards, against a bare `nft` doing
// the same change, and the connection rate at the last forward against the first, on each data
// plane. Needs root. Writes its figures to --out (bench/results/nftables.json).
//
//   node --import tsx bench/nftables.ts [--forwards 100000] [--iptables-forwards 10000] [--reps 15]
//                                       [--apply-reps 3] [--connections 2000] [--rate-reps 5] [--out FILE]
//
// Every value in the rules is generated here, none comes from a manifest.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { GatewaySpec } from '../dataplane/model.ts';
import { networkModel } from '../gitops/manifests/network.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { Lab } from '../runtime/netns/lab.ts';
import { inNamespace } from '../runtime/netns/netns.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { reconcileGateway, reconcilePart } from '../runtime/reconcile.ts';
import { BACKEND } from './forwards.ts';
import { outOption, Report } from './report.ts';
import { median, ms, timed } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    forwards: { type: 'string', default: '100000' },
    'iptables-forwards': { type: 'string', default: '10000' },
    reps: { type: 'string', default: '15' },
    'apply-reps': { type: 'string', default: '3' },
    connections: { type: 'string', default: '2000' },
    'rate-reps': { type: 'string', default: '5' },
    ...outOption('nftables'),
  },
});
const n = Number(args.forwards);
const nIptables = Number(args['iptables-forwards']);
const reps = Number(args.reps);
const applyReps = Number(args['apply-reps']);
const connections = Number(args.connections);
const rateReps = Number(args['rate-reps']);
const report = new Report('nftables', args);

const SEED = fileURLToPath(new URL('../examples/seed', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/natops.js', import.meta.url));
const RATE = fileURLToPath(new URL('./connect-rate.ts', import.meta.url));
/** forwards per EIP (ports 20000 and up), on EIPs 192.168.0.121 and up */
const PER_EIP = 25_000;
const eipOf = (i: number) => `192.168.0.${121 + Math.floor(i / PER_EIP)}`;
const portOf = (i: number) => 20000 + (i % PER_EIP);

/** The seed's gateway plus `count` forwards on extra EIPs; forward `changed` to backend port 81. */
function withMany(base: GatewaySpec, count: number, dataplane: 'iptables' | 'nftables', changed?: number): GatewaySpec {
  const eips = [...base.eips];
  for (let e = 0; e * PER_EIP < count; e++)
    eips.push({ cidr: `${eipOf(e * PER_EIP)}/24`, gateway: base.eips[0]!.gateway });
  const dnats = [...base.dnats];
  for (let i = 0; i < count; i++)
    dnats.push({
      eip: eipOf(i),
      externalPort: portOf(i),
      protocol: 'tcp',
      internalIp: BACKEND,
      internalPort: i === changed ? 81 : 80,
    });
  return { ...base, eips, dnats, dataplane };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/nftables needs root (network namespaces)');
  const lab = new Lab(`b${randomBytes(4).toString('hex')}`);
  const procs: ReturnType<typeof spawn>[] = [];
  const stop = async () => {
    for (const p of procs) p.kill('SIGKILL');
    await lab.down();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const desired = await readDesired(SEED);
    await lab.up(networkModel(desired));
    const runtime = new NetnsRuntime(lab);
    const base = desired.gateways.get('ngw')!;
    const gw = lab.names.gateway('ngw');
    const nft = (stdin: string) => inNamespace(gw, { argv: ['nft', '-f', '-'], stdin, timeoutMs: 10 * 60_000 });
    const count = async () =>
      (
        await inNamespace(gw, { argv: ['nft', 'list', 'map', 'ip', 'natops', 'forwards'], timeoutMs: 10 * 60_000 })
      ).stdout.match(/\d+\.\d+\.\d+\.\d+ \. (?:tcp|udp) \. \d+ : /g)?.length ?? 0;
    const onNft = { ...base, dataplane: 'nftables' as const };
    const all = Array.from({ length: n }, (_, i) => `${eipOf(i)} . tcp . ${portOf(i)} : ${BACKEND} . 80`);

    // 1. n forwards into a gateway holding the seed, against one `nft -f` adding the same elements
    const natopsApply: number[] = [];
    const bareApply: number[] = [];
    for (let r = 0; r < applyReps; r++) {
      await runtime.removeGateway('ngw');
      await reconcileGateway(runtime, onNft);
      // the EIPs first, untimed (adding an address waits for its gratuitous ARP): only elements differ
      await reconcileGateway(runtime, { ...withMany(base, n, 'nftables'), dnats: base.dnats });
      natopsApply.push(await timed(() => reconcileGateway(runtime, withMany(base, n, 'nftables'))));
      if ((await count()) !== n + base.dnats.length)
        throw new Error(`natops left ${await count()} forwards, expected ${n + base.dnats.length}`);
      await reconcileGateway(runtime, onNft);
      // the addresses natops adds with them, so that only the elements differ
      await reconcileGateway(runtime, { ...withMany(base, n, 'nftables'), dnats: base.dnats });
      const lines: string[] = [];
      for (let i = 0; i < n; i += 10_000)
        lines.push(`add element ip natops forwards { ${all.slice(i, i + 10_000).join(', ')} }`);
      bareApply.push(await timed(() => nft(`${lines.join('\n')}\n`)));
      if ((await count()) !== n + base.dnats.length) throw new Error('the bare nft -f did not add every forward');
      process.stderr.write(`apply ${n}: natops ${ms(natopsApply.at(-1)!)}, nft -f ${ms(bareApply.at(-1)!)}\n`);
    }
    report.add(
      `apply ${n.toLocaleString('en')} port forwards to a gateway (nftables)`,
      'ms',
      { name: 'natops, in process: compile, diff, one nft -f, read back', values: natopsApply },
      { name: 'one bare nft -f adding the same elements', values: bareApply },
    );

    // 2. one forward changed among n, in process (the runtime knows the table it wrote), interleaved
    await runtime.removeGateway('ngw');
    await reconcileGateway(runtime, withMany(base, n, 'nftables'));
    const natopsChange: number[] = [];
    const workerChange: number[] = [];
    const bareChange: number[] = [];
    let port = 80;
    for (let r = 0; r < reps; r++) {
      port = port === 80 ? 81 : 80;
      const spec = withMany(base, n, 'nftables', port === 81 ? 7 : undefined);
      natopsChange.push(await timed(() => reconcileGateway(runtime, spec)));
      // what a worker's dnat job runs for the same change (and back, for the next round)
      const other = withMany(base, n, 'nftables', port === 81 ? undefined : 7);
      workerChange.push(await timed(() => reconcilePart(runtime, other, 'dnat')));
      await reconcilePart(runtime, spec, 'dnat');
      const key = `${eipOf(8)} . tcp . ${portOf(8)}`;
      bareChange.push(
        await timed(() =>
          nft(
            `delete element ip natops forwards { ${key} }\nadd element ip natops forwards { ${key} : ${BACKEND} . ${port} }\n`,
          ),
        ),
      );
    }
    const last = await reconcileGateway(runtime, withMany(base, n, 'nftables', 3));
    const payload = last.commands.find((c) => c.argv[0] === 'nft')?.stdin ?? '';
    if ((payload.match(/ forwards /g) ?? []).length !== 2)
      throw new Error(`a one-forward change was not one delete and one add:\n${payload}`);
    report.add(
      `change one forward in a gateway holding ${n.toLocaleString('en')} port forwards (nftables)`,
      'ms',
      { name: "natops, in process, the gateway's whole reconcile (as natops apply)", values: natopsChange },
      { name: 'one bare nft -f: delete element, add element', values: bareChange },
    );
    report.add(
      `change one forward in a gateway holding ${n.toLocaleString('en')} port forwards, as a worker's dnat job (nftables)`,
      'ms',
      { name: 'natops, in process: the dnat part reconciled', values: workerChange },
      { name: 'one bare nft -f: delete element, add element', values: bareChange },
      'target: under 20 ms',
    );
    process.stderr.write(
      `change 1 of ${n}: natops ${ms(median(natopsChange))}, dnat job ${ms(median(workerChange))}, nft -f ${ms(median(bareChange))}\n`,
    );

    // 3. new connections per second at the first and the last forward, on each data plane
    await lab.addHost({ name: 'web', net: 'sn', ip: `${BACKEND}/24` });
    await lab.addHost({ name: 'ext', net: 'external', ip: '192.168.0.50/24' });
    const server = spawn(
      'ip',
      ['netns', 'exec', lab.names.host('web'), process.execPath, BIN, 'probe', '--name', 'web', '--tcp', '80'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    procs.push(server);
    await new Promise<void>((resolve) => server.stdout!.on('data', () => resolve()));
    const rate = async (i: number): Promise<number> => {
      const r = await new Promise<string>((resolve, reject) => {
        const p = spawn(
          'ip',
          [
            'netns',
            'exec',
            lab.names.host('ext'),
            process.execPath,
            '--import',
            'tsx',
            RATE,
            eipOf(i),
            String(portOf(i)),
            String(connections),
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        procs.push(p);
        let out = '';
        p.stdout!.on('data', (b: Buffer) => (out += b.toString()));
        p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`connect-rate exited ${code}`))));
      });
      const { perSecond, failed } = JSON.parse(r) as { perSecond: number; failed: number };
      if (failed) throw new Error(`${failed} connections to forward ${i} failed`);
      return 1000 / perSecond;
    };
    for (const [plane, size] of [
      ['nftables', n],
      ['iptables', nIptables],
    ] as const) {
      await runtime.removeGateway('ngw');
      await reconcileGateway(runtime, withMany(base, size, plane));
      const first: number[] = [];
      const lastOne: number[] = [];
      for (let r = 0; r < rateReps; r++) {
        first.push(await rate(0));
        lastOne.push(await rate(size - 1));
      }
      report.add(
        `time per new connection (8 clients, reset on connect), ${plane}, gateway holding ${size.toLocaleString('en')} forwards`,
        'ms',
        { name: `the ${size.toLocaleString('en')}th forward`, values: lastOne },
        { name: 'the first forward', values: first },
      );
      process.stderr.write(`${plane} ${size}: first ${ms(median(first))}/conn, last ${ms(median(lastOne))}/conn\n`);
    }
    await report.write(args.out);
  } finally {
    await stop();
  }
}

await main();
