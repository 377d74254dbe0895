// Kube-OVN's side of the test cluster for the tests that read or adopt what Kube-OVN made:
// its CRDs (test/fixtures/kube-ovn/crds.yaml, from its chart), objects of those kinds made with
// kubectl as its users make them, and its ConfigMaps in kube-system. Each `remove` undoes only
// what was made here: CRDs already installed stay, and a ConfigMap already in kube-system is an
// error, never used or changed.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1ConfigMap,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { run } from '../../common/exec.ts';
import { KUBECONFIG } from './k8s.ts';
import type { Obj } from './manifests.ts';

const CRDS = fileURLToPath(new URL('../fixtures/kube-ovn/crds.yaml', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function kubectl(args: string[], okExitCodes = [0]) {
  return run(['kubectl', '--kubeconfig', KUBECONFIG, ...args], { okExitCodes, timeoutMs: 60_000 });
}

/**
 * Installs the CRDs the cluster lacks and waits until all are established. `apply` makes objects
 * with kubectl (retried while its discovery does not know the new kinds yet); `remove` deletes
 * those objects and the CRDs made here, and waits until the CRDs are gone.
 */
export async function installKubeOvnCrds(admin: KubeConfig) {
  const ext = admin.makeApiClient(ApiextensionsV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'natops-kube-ovn-'));
  const created: string[] = [];
  const files: string[] = [];
  const crds = parseAllDocuments(await readFile(CRDS, 'utf8'))
    .map((d) => d.toJS() as V1CustomResourceDefinition | null)
    .filter((d): d is V1CustomResourceDefinition => d?.kind === 'CustomResourceDefinition');
  const remove = async () => {
    for (const f of files) await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', f], [0, 1]);
    for (const name of created) await ext.deleteCustomResourceDefinition({ name }).catch(() => undefined);
    for (const name of created)
      for (let i = 0; i < 300; i++) {
        const gone = await ext.readCustomResourceDefinition({ name }).then(
          () => false,
          () => true,
        );
        if (gone) break;
        await sleep(200);
      }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const crd of crds) {
      const name = crd.metadata!.name!;
      const present = await ext.readCustomResourceDefinition({ name }).then(
        () => true,
        () => false,
      );
      if (present) continue;
      await ext.createCustomResourceDefinition({ body: crd });
      created.push(name);
    }
    for (const crd of crds) {
      const name = crd.metadata!.name!;
      for (let i = 0; ; i++) {
        const c = await ext.readCustomResourceDefinition({ name });
        if (c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) break;
        if (i > 100) throw new Error(`CRD ${name} not established`);
        await sleep(100);
      }
    }
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    /** `kubectl apply` of the objects, as one file (kept, to delete them in `remove`) */
    async apply(objects: readonly Obj[]): Promise<string> {
      const file = join(dir, `objects-${files.length}.yaml`);
      await writeFile(file, objects.map((o) => stringify(o)).join('---\n'));
      files.push(file);
      for (let i = 0; ; i++) {
        const r = await kubectl(['apply', '-f', file], [0, 1]);
        if (r.code === 0) return file;
        if (i > 30) throw new Error(`kubectl apply: ${r.stderr}`);
        await sleep(500);
      }
    },
    remove,
  };
}

/** Creates Kube-OVN's ConfigMaps in kube-system, refusing any that is already there; `remove` deletes them. */
export async function kubeOvnConfigMaps(admin: KubeConfig, configMaps: readonly Obj[]) {
  const core = admin.makeApiClient(CoreV1Api);
  const made: { name: string; namespace: string }[] = [];
  const remove = async () => {
    for (const m of made) await core.deleteNamespacedConfigMap(m).catch(() => undefined);
  };
  try {
    for (const cm of configMaps as unknown as V1ConfigMap[]) {
      const at = { name: cm.metadata!.name!, namespace: cm.metadata!.namespace ?? 'kube-system' };
      const there = await core.readNamespacedConfigMap(at).then(
        () => true,
        () => false,
      );
      if (there)
        throw new Error(`${at.namespace}/${at.name} exists and is not this test's: it neither uses nor changes it`);
      await core.createNamespacedConfigMap({ namespace: at.namespace, body: cm });
      made.push(at);
    }
  } catch (e) {
    await remove();
    throw e;
  }
  return { remove };
}

/** Every file under `dir` (an export), relative and sorted. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}
