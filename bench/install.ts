// bench/install: natops as an operator adopts it, on the test cluster (shared/k8s). Needs root,
// the cluster (KUBECONFIG, default /var/lib/natops-k8s/kubeconfig) with natops's, the gateway's
// and the Redis image loaded (.ci/run loads them), and their archives in /var/cache/natops.
// Prints markdown tables and writes its figures to --out (bench/results/install.json).
//
//   node --import tsx bench/install.ts [--reps 3] [--out FILE]
//
// images: the size of each image natops ships (its docker-archive, as loaded, and gzipped, about
// what a registry transfers) beside the base it is built FROM, made here the same way.
// install: the repository already holds the seed; from `helm install` to the head commit applied
// (its summary status success, read from the release's Redis): the install's catch-up plans the
// head, the in-cluster natops makes the gateway. Baseline, in the same run, interleaved: `natops
// apply` of the same manifests from this machine into the same cluster, the path without an install.
// Each run starts from nothing: the uninstall removes the gateways (uninstall.removeGateways) and
// the Redis volume is replaced, so the next install has everything to do again.
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { ChartRelease } from '../test/helpers/chart-release.ts';
import { natops } from '../test/helpers/cli.ts';
import { forCluster, KUBECONFIG } from '../test/helpers/k8s.ts';
import {
  seedObjects,
  TEST_GATEWAY_IMAGES,
  toFiles,
  writeManifestDir,
  type SeedObjects,
} from '../test/helpers/manifests.ts';
import { outOption, Report } from './report.ts';
import { median, ms } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    ...outOption('install'),
  },
});
const reps = Number(args.reps);
const report = new Report('install', args);
const say = (line: string) => process.stderr.write(`${line}\n`);
const CACHE = '/var/cache/natops';
const ROOT = join(import.meta.dirname, '..');

/** bytes of a file gzipped (level 6, as registries' layers mostly are), without writing it */
async function gzippedSize(file: string): Promise<number> {
  let size = 0;
  const gz = createGzip();
  gz.on('data', (b: Buffer) => {
    size += b.length;
  });
  await new Promise<void>((resolve, reject) => {
    gz.on('end', resolve).on('error', reject);
    createReadStream(file).on('error', reject).pipe(gz);
  });
  return size;
}

/** A base image of natops's buildah store written as a docker-archive, as the images are. */
async function baseArchive(kind: 'debian' | 'node', out: string): Promise<string> {
  const script =
    '. images/buildah.sh && image=$(bash images/base-image.sh "$2") && rm -f "$1" && bah push --quiet "$image" "docker-archive:$1:$image" >/dev/null';
  await promisify(execFile)('bash', ['-c', script, 'bash', out, kind], { cwd: ROOT });
  return out;
}

const MB = (bytes: number) => Math.round((bytes / 1e6) * 10) / 10;

async function images(): Promise<void> {
  const bases = {
    node: await baseArchive('node', '/tmp/natops-bench-node-base.tar'),
    debian: await baseArchive('debian', '/tmp/natops-bench-debian-base.tar'),
  };
  try {
    await sizes(bases);
  } finally {
    await rm(bases.node, { force: true });
    await rm(bases.debian, { force: true });
  }
}

async function sizes(bases: { node: string; debian: string }): Promise<void> {
  const shipped = [
    { name: 'natops/natops', file: join(CACHE, 'natops-image.tar'), base: 'node' as const },
    { name: 'natops/vpc-nat-gateway', file: join(CACHE, 'vpc-nat-gateway.tar'), base: 'debian' as const },
    { name: 'natops/redis (test cluster only)', file: join(CACHE, 'redis-image.tar'), base: 'debian' as const },
  ];
  const lines = [
    '| image | archive MB | gzipped MB | its base | base MB | base gzipped MB |',
    '|---|---:|---:|---|---:|---:|',
  ];
  for (const img of shipped) {
    const baseName = img.base === 'node' ? 'node:24-bookworm-slim (made here)' : 'debian:bookworm-slim (made here)';
    const [size, gz, baseSize, baseGz] = [
      (await stat(img.file)).size,
      await gzippedSize(img.file),
      (await stat(bases[img.base])).size,
      await gzippedSize(bases[img.base]),
    ];
    report.add(
      'image sizes (MB)',
      'MB',
      { name: `${img.name}, archive`, values: [MB(size)] },
      { name: baseName, values: [MB(baseSize)] },
    );
    report.add(
      'image sizes (MB)',
      'MB',
      { name: `${img.name}, gzipped`, values: [MB(gz)] },
      { name: `${baseName}, gzipped`, values: [MB(baseGz)] },
    );
    lines.push(`| ${img.name} | ${MB(size)} | ${MB(gz)} | ${baseName} | ${MB(baseSize)} | ${MB(baseGz)} |`);
  }
  console.log(['### image sizes', '', ...lines, ''].join('\n'));
}

async function install(): Promise<void> {
  const r = await ChartRelease.create();
  const stop = () => r.cleanup();
  /** the manifest directories this run wrote */
  const made: string[] = [];
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const seed: SeedObjects = forCluster(await seedObjects());
    await r.lab.provide(seed);
    // the repository holds the seed before natops is installed (no hook: nothing delivers it)
    const sha = await r.work.push(seed, 'seed');
    const seedDir = await writeManifestDir(seed);
    made.push(seedDir);
    // the ConfigMap alone: apply removes every gateway of the instance
    const emptyDir = await mkdtemp(join(tmpdir(), 'natops-bench-empty-'));
    made.push(emptyDir);
    const config = toFiles(seed).find((f) => f.path === '00-config.yaml')!;
    await writeFile(join(emptyDir, config.path), config.text);
    const toInstalled: number[] = [];
    const toApplied: number[] = [];
    const applyFromHere: number[] = [];
    const env = {
      KUBECONFIG,
      NATOPS_GATEWAY_IMAGES: TEST_GATEWAY_IMAGES.join(','),
      NATOPS_INSTANCE: 'bench-apply',
    };
    const applyArgs = (dir: string) => [
      'apply',
      dir,
      '--runtime',
      'kubernetes',
      '--namespace',
      r.gatewaysNamespace,
      '--network-mode',
      'multus',
    ];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await r.install({ ...(await r.values()), uninstall: { removeGateways: true } });
      const installed = performance.now();
      const statuses = await r.settled(sha, 300_000);
      const applied = performance.now();
      if (statuses.get('natops')?.state !== 'success')
        throw new Error(`the seed did not apply: ${JSON.stringify([...statuses.values()])}`);
      toInstalled.push(installed - t0);
      toApplied.push(applied - t0);
      await r.uninstall();
      await r.until('the gateway to go', async () => (await r.gatewayPod('ngw')) === undefined);
      await r.freshRedis();

      // baseline: the same manifests applied from this machine into the same cluster
      const t1 = performance.now();
      const out = await natops(applyArgs(seedDir), { env });
      applyFromHere.push(performance.now() - t1);
      if (out.code !== 0) throw new Error(`natops apply failed: ${out.stderr}`);
      const removed = await natops(applyArgs(emptyDir), { env });
      if (removed.code !== 0) throw new Error(`natops apply (removal) failed: ${removed.stderr}`);
      await r.until('the gateway to go', async () => (await r.gatewayPod('ngw')) === undefined);
      say(
        `run ${i + 1}: helm install ${ms(installed - t0)}, seed applied ${ms(applied - t0)}; natops apply from here ${ms(applyFromHere.at(-1)!)}`,
      );
    }
    const baseline = { name: '`natops apply` of the same manifests from this machine', values: applyFromHere };
    report.add(
      'from helm install to the first applied commit',
      'ms',
      { name: '`helm install --wait` returns', values: toInstalled },
      baseline,
    );
    report.add(
      'from helm install to the first applied commit',
      'ms',
      { name: 'the head commit applied (its status success)', values: toApplied },
      baseline,
    );
    console.log(
      [
        '### from helm install to the first applied commit',
        '',
        '| | median |',
        '|---|---:|',
        `| helm install --wait returns | ${ms(median(toInstalled))} |`,
        `| the head commit applied | ${ms(median(toApplied))} |`,
        `| baseline: natops apply from this machine | ${ms(median(applyFromHere))} |`,
        '',
      ].join('\n'),
    );
  } finally {
    await stop();
    for (const d of made) await rm(d, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/install needs root (buildah, the lab)');
  await images();
  await install();
  await report.write(args.out);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
