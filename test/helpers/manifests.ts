// Manifest fixtures for tests: the seed's resources as objects, changed per test, written as YAML.
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { DEFAULT_GATEWAY_IMAGES, type WorkloadPolicy } from '../../dataplane/workload-policy.ts';

export const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
export const SEED_DIR = join(EXAMPLES, 'seed');
export const SEED_VERBATIM = join(EXAMPLES, 'seed-verbatim.yaml');

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
/** The gateway image the test cluster runs (scripts/gateway-image.sh makes it, .ci/run loads it). */
export const TEST_CLUSTER_IMAGE = process.env.NATOPS_GATEWAY_IMAGE ?? `natops/vpc-nat-gateway:${VERSION}`;

/**
 * A gateway image whose userland is BusyBox's, as Kube-OVN's own (Alpine) image is
 * (scripts/gateway-busybox-image.sh makes it, .ci/run loads it): the current form's tests run on it.
 */
export const TEST_BUSYBOX_IMAGE =
  process.env.NATOPS_GATEWAY_BUSYBOX_IMAGE ?? `natops/vpc-nat-gateway-busybox:${VERSION}`;

/**
 * The images tests' manifests name: the product's default and the test cluster's two. The harnesses
 * that run natops (pipeline.ts, cli.ts) allow these; the product's default stays the one image.
 */
export const TEST_GATEWAY_IMAGES: readonly string[] = [
  ...DEFAULT_GATEWAY_IMAGES,
  TEST_CLUSTER_IMAGE,
  TEST_BUSYBOX_IMAGE,
];

/** The product's workload policy with TEST_GATEWAY_IMAGES: for in-process validation of the cluster's manifests. */
export const TEST_WORKLOAD_POLICY: WorkloadPolicy = { images: TEST_GATEWAY_IMAGES, allowControlPlane: false };

/** A manifest as a plain object; tests change it through set()/unset() and may make it invalid. */
export type Obj = Record<string, unknown>;

function walk(obj: Obj, path: string): { parent: Record<string, unknown>; key: string } {
  const keys = path.split('.');
  let node: unknown = obj;
  for (const k of keys.slice(0, -1)) {
    if (node === null || typeof node !== 'object') throw new TypeError(`no ${path} in fixture`);
    node = (node as Record<string, unknown>)[k];
  }
  if (node === null || typeof node !== 'object') throw new TypeError(`no ${path} in fixture`);
  return { parent: node as Record<string, unknown>, key: keys[keys.length - 1]! };
}

/** set(gw, 'spec.dnatRules.0.externalPort', 70000) */
export function set(obj: Obj, path: string, value: unknown): void {
  const { parent, key } = walk(obj, path);
  parent[key] = value;
}

export function get(obj: Obj, path: string): unknown {
  const { parent, key } = walk(obj, path);
  return parent[key];
}

/** Appends to an array field. */
export function push(obj: Obj, path: string, value: unknown): void {
  const list = get(obj, path);
  if (!Array.isArray(list)) throw new TypeError(`${path} is not a list in fixture`);
  list.push(value);
}

/** A copy of `seed` with one more port forward: tcp 192.168.0.112:`port` -> 10.0.1.10:80 (a lab's `web`). */
export function withPortForward(seed: SeedObjects, port: number): SeedObjects {
  const s = structuredClone(seed);
  push(s.gateway, 'spec.dnatRules', {
    eip: '192.168.0.112',
    externalPort: port,
    protocol: 'tcp',
    internalIp: '10.0.1.10',
    internalPort: 80,
  });
  return s;
}

export function unset(obj: Obj, path: string): void {
  const { parent, key } = walk(obj, path);
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete parent[key];
}

export interface SeedObjects {
  config: Obj;
  vpc: Obj;
  subnet: Obj;
  gateway: Obj;
  extra: Obj[];
}

export async function seedObjects(): Promise<SeedObjects> {
  const read = async (f: string) => parse(await readFile(join(SEED_DIR, f), 'utf8')) as Obj;
  return {
    config: await read('00-config.yaml'),
    vpc: await read('10-vpc.yaml'),
    subnet: await read('20-subnet.yaml'),
    gateway: await read('30-nat-gateway.yaml'),
    extra: [],
  };
}

export function toFiles(seed: SeedObjects): ManifestFile[] {
  return [
    { path: '00-config.yaml', text: stringify(seed.config) },
    { path: '10-vpc.yaml', text: stringify(seed.vpc) },
    { path: '20-subnet.yaml', text: stringify(seed.subnet) },
    { path: '30-nat-gateway.yaml', text: stringify(seed.gateway) },
    ...seed.extra.map((o, i) => ({ path: `40-extra-${i}.yaml`, text: stringify(o) })),
  ];
}

/** Writes the manifests to a fresh temporary directory and returns it. */
export async function writeManifestDir(seed: SeedObjects): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'natops-manifests-'));
  for (const f of toFiles(seed)) await writeFile(join(dir, f.path), f.text);
  return dir;
}

export function subnet(name: string, vpc: string, cidrBlock: string, gateway: string): Obj {
  return {
    apiVersion: 'kubeovn.io/v1',
    kind: 'Subnet',
    metadata: { name },
    spec: { vpc, protocol: 'IPv4', cidrBlock, gateway },
  };
}

/**
 * A gateway in a VPC of its own: subnet 10.0.N.0/24, lanIp 10.0.N.254 (the VPC's default route),
 * one EIP and one port forward `eip:8000 -> 10.0.N.10:80`. (Two gateways in one VPC would share
 * its default route: replies would all leave through one of them.)
 */
export function gatewayInOwnVpc(o: { gateway: string; vpc: string; subnet: string; n: number; eip: string }): Obj[] {
  const net = `10.0.${o.n}`;
  return [
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'Vpc',
      metadata: { name: o.vpc },
      spec: { staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: `${net}.254`, policy: 'policyDst' }] },
    },
    subnet(o.subnet, o.vpc, `${net}.0/24`, `${net}.1`),
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'VpcNatGateway',
      metadata: { name: o.gateway },
      spec: {
        vpc: o.vpc,
        subnet: o.subnet,
        lanIp: `${net}.254`,
        eips: [{ eipCIDR: `${o.eip}/24`, gateway: '192.168.0.254' }],
        dnatRules: [{ eip: o.eip, externalPort: 8000, protocol: 'tcp', internalIp: `${net}.10`, internalPort: 80 }],
      },
    },
  ];
}

/** The seed's gateway `ngw` resolved, after `change` edits the seed's objects; fails on any issue. */
export async function seedSpec(
  change: (s: Awaited<ReturnType<typeof seedObjects>>) => void = () => undefined,
): Promise<GatewaySpec> {
  const seed = await seedObjects();
  change(seed);
  const { desired, issues } = validateManifests(toFiles(seed));
  if (issues.length)
    throw new Error(`seed fixture does not validate:\n${issues.map((i) => `${i.field}: ${i.message}`).join('\n')}`);
  return desired.gateways.get('ngw')!;
}
