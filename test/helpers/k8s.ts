// The test cluster (shared/k8s, brought up by .ci/run): a namespace of the test's own, the
// runtime's Role from deploy/kubernetes/rbac.yaml bound to a ServiceAccount there, and a
// KubeConfig with that account's token, so the runtime runs with exactly the permissions it
// ships with. Everything is removed after the test, even when it fails. No cluster: a loud failure.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  CoreV1Api,
  Exec,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { KubernetesRuntime, type KubernetesSettings } from '../../runtime/kubernetes/runtime.ts';
import { run, type Exec as CommandExec } from '../../common/exec.ts';
import { CONTAINER } from '../../runtime/kubernetes/objects.ts';
import { podExec } from '../../runtime/kubernetes/pod-exec.ts';
import { podReadiness } from '../../runtime/kubernetes/pods.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import type { ReadOptions } from '../../gitops/manifests/read-dir.ts';
import { seedSpec, set, TEST_CLUSTER_IMAGE, TEST_WORKLOAD_POLICY, type SeedObjects } from './manifests.ts';
import { PipelineHarness } from './pipeline.ts';

export const KUBECONFIG = process.env.KUBECONFIG ?? '/var/lib/natops-k8s/kubeconfig';
/** loaded into the cluster by .ci/run (scripts/gateway-image.sh, then cluster.sh load-image) */
export const GATEWAY_IMAGE = TEST_CLUSTER_IMAGE;
const RBAC = fileURLToPath(new URL('../../deploy/kubernetes/rbac.yaml', import.meta.url));

export function adminConfig(): KubeConfig {
  if (!existsSync(KUBECONFIG)) {
    throw new Error(
      `no test cluster: ${KUBECONFIG} is missing. Start one with \`../shared/k8s/cluster.sh up /var/lib/natops-k8s\` and load the gateway image (see .ci/run), or set KUBECONFIG`,
    );
  }
  const kc = new KubeConfig();
  kc.loadFromFile(KUBECONFIG);
  return kc;
}

export interface RoleRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
export interface Permission {
  group: string;
  resource: string;
  verb: string;
}

type RbacDocument = KubernetesObject & { subjects?: { namespace?: string }[]; rules?: RoleRule[] };

/** deploy/kubernetes/rbac.yaml's objects */
async function rbacDocuments(): Promise<RbacDocument[]> {
  return parseAllDocuments(await readFile(RBAC, 'utf8')).map((d) => d.toJS() as RbacDocument);
}

/** Every (group, resource, verb) the shipped Role grants. */
export async function shippedPermissions(): Promise<Permission[]> {
  const role = (await rbacDocuments()).find((d) => d.kind === 'Role')!;
  return role.rules!.flatMap((r) =>
    r.apiGroups.flatMap((group) =>
      r.resources.flatMap((resource) => r.verbs.map((verb) => ({ group, resource, verb }))),
    ),
  );
}

function withoutPermission(rules: RoleRule[], p: Permission): RoleRule[] {
  return rules.flatMap((r) => {
    if (!r.apiGroups.includes(p.group) || !r.resources.includes(p.resource)) return [r];
    const rest = { ...r, resources: r.resources.filter((x) => x !== p.resource) };
    const narrowed = { ...r, resources: [p.resource], verbs: r.verbs.filter((v) => v !== p.verb) };
    return [...(rest.resources.length ? [rest] : []), ...(narrowed.verbs.length ? [narrowed] : [])];
  });
}

export class KubeHarness {
  private constructor(
    readonly admin: KubeConfig,
    readonly namespace: string,
    readonly runtimeConfig: KubeConfig,
    readonly dir: string,
  ) {}

  /** the ServiceAccount's kubeconfig as a file, for a natops process or config (KUBECONFIG) */
  get kubeconfigPath(): string {
    return join(this.dir, 'kubeconfig');
  }

  /**
   * A namespace with the runtime's ServiceAccount and Role; `runtimeConfig` authenticates as
   * that account. `without` takes one verb on one resource out of the Role.
   */
  static async create(opts: { without?: Permission } = {}): Promise<KubeHarness> {
    const admin = adminConfig();
    const core = admin.makeApiClient(CoreV1Api);
    const namespace = `natops-t${randomBytes(4).toString('hex')}`;
    // the shipped Namespace's labels (Pod Security: privileged there), on the test's own namespace
    const labels = (await rbacDocuments()).find((d) => d.kind === 'Namespace')?.metadata?.labels;
    await core.createNamespace({ body: { metadata: { name: namespace, labels } } });
    try {
      return await KubeHarness.setUp(admin, namespace, opts);
    } catch (e) {
      await core.deleteNamespace({ name: namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
      throw e;
    }
  }

  private static async setUp(
    admin: KubeConfig,
    namespace: string,
    opts: { without?: Permission },
  ): Promise<KubeHarness> {
    const core = admin.makeApiClient(CoreV1Api);
    const objects = KubernetesObjectApi.makeApiClient(admin);
    for (const obj of await rbacDocuments()) {
      if (obj.kind === 'Namespace') continue; // the test's own namespace stands for it
      obj.metadata!.namespace = namespace;
      for (const s of obj.subjects ?? []) s.namespace = namespace;
      if (obj.rules && opts.without) obj.rules = withoutPermission(obj.rules, opts.without);
      await objects.patch(obj, undefined, undefined, 'natops-test', true, PatchStrategy.ServerSideApply);
    }
    // Kubernetes 1.20 makes the account's token secret by itself, shortly after the account.
    let token: string | undefined;
    for (let i = 0; i < 100 && !token; i++) {
      const secrets = await core.listNamespacedSecret({ namespace });
      const secret = secrets.items.find(
        (s: V1Secret) =>
          s.type === 'kubernetes.io/service-account-token' &&
          s.metadata?.annotations?.['kubernetes.io/service-account.name'] === 'natops',
      );
      token = secret?.data?.token ? Buffer.from(secret.data.token, 'base64').toString() : undefined;
      if (!token) await new Promise((r) => setTimeout(r, 100));
    }
    if (!token) throw new Error(`no token for ServiceAccount ${namespace}/natops`);
    const cluster = admin.getCurrentCluster()!;
    const runtimeConfig = new KubeConfig();
    runtimeConfig.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'natops', token }],
      contexts: [{ name: 'natops', cluster: cluster.name, user: 'natops', namespace }],
      currentContext: 'natops',
    });
    const dir = await mkdtemp(join(tmpdir(), 'natops-k8s-'));
    await writeFile(join(dir, 'kubeconfig'), runtimeConfig.exportConfig(), { mode: 0o600 });
    return new KubeHarness(admin, namespace, runtimeConfig, dir);
  }

  /**
   * The runtime as natops runs it: this namespace, network mode multus, the ServiceAccount's
   * token, instance `natops` (NATOPS_PREFIX's default) unless another is given.
   */
  runtime(settings: Partial<KubernetesSettings> = {}, warn?: (m: string) => void): KubernetesRuntime {
    return new KubernetesRuntime(
      this.runtimeConfig,
      {
        namespace: this.namespace,
        mode: 'multus',
        instance: 'natops',
        readyTimeoutMs: 60_000,
        commandTimeoutMs: 30_000,
        policy: TEST_WORKLOAD_POLICY,
        ...settings,
      },
      warn,
    );
  }

  get core(): CoreV1Api {
    return this.admin.makeApiClient(CoreV1Api);
  }

  /**
   * Waits, as the admin, until a pod of this namespace made by a `controller` (its owner's kind)
   * runs `image` and cannot pull it (ErrImagePull, ImagePullBackOff): a pod that never gets
   * ready, there as it is. A runtime given up on it sooner than that is then shown right.
   */
  async podFailingToPull(image: string, controller: 'ReplicaSet' | 'StatefulSet', timeoutMs = 60_000): Promise<V1Pod> {
    const end = Date.now() + timeoutMs;
    let seen: V1Pod[] = [];
    for (;;) {
      seen = (await this.core.listNamespacedPod({ namespace: this.namespace })).items;
      const pod = seen.find(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.metadata?.ownerReferences?.some((o) => o.controller && o.kind === controller) &&
          p.spec?.containers.some((c) => c.image === image) &&
          p.status?.containerStatuses?.some((c) =>
            /^(ErrImagePull|ImagePullBackOff)$/.test(c.state?.waiting?.reason ?? ''),
          ),
      );
      if (pod) return pod;
      if (Date.now() > end)
        throw new Error(
          `no pod of a ${controller} in ${this.namespace} failing to pull ${image} after ${timeoutMs} ms: ${JSON.stringify(seen.map((p) => [p.metadata?.name, p.status]))}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async close(): Promise<void> {
    await this.core.deleteNamespace({ name: this.namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** readDesired's options for manifests naming the test cluster's image (the operator's policy allows it here). */
export const CLUSTER_READ: ReadOptions = { limits: { policy: TEST_WORKLOAD_POLICY } };

/** The seed for the cluster: the test image, and an external nic of the test's own (a host interface the lab makes). */
export function forCluster(seed: SeedObjects): SeedObjects {
  set(seed.config, 'data.image', GATEWAY_IMAGE);
  set(seed.config, 'data.nic', `nx${randomBytes(4).toString('hex')}`);
  return seed;
}

/**
 * The seed's gateway for the cluster's own network (network mode kube-ovn), with a host veth of
 * the test's own as the macvlan master: no traffic leaves it. `remove` deletes the veth.
 */
export async function seedOnHostVeth(prefix: string): Promise<{ spec: GatewaySpec; remove(): Promise<void> }> {
  const nic = `${prefix}${randomBytes(4).toString('hex')}`;
  await run(['ip', 'link', 'add', nic, 'type', 'veth', 'peer', 'name', `${nic}p`]);
  await run(['ip', 'link', 'set', nic, 'up']);
  const base = await seedSpec();
  return {
    spec: { ...base, workload: { ...base.workload, image: GATEWAY_IMAGE, nic } },
    remove: async () => void (await run(['ip', 'link', 'del', nic], { okExitCodes: [0, 1] })),
  };
}

/**
 * A pod natops's Deployment did not make, Ready, with the gateway image and container name, the
 * `labels` given and a marker file: what natops must never exec into. Its controller is a
 * ConfigMap: a pod without one would be adopted by a ReplicaSet whose selector it matches (and
 * then it would be that ReplicaSet's). `exec` runs a command in it as the admin.
 */
export async function foreignPod(
  k: KubeHarness,
  name: string,
  labels: Record<string, string>,
): Promise<{ uid: string; exec: CommandExec }> {
  const core = k.core;
  const owner = await core.createNamespacedConfigMap({
    namespace: k.namespace,
    body: { metadata: { name: `${name}-owner` }, data: { why: 'the controller of a pod natops did not make' } },
  });
  const pod = await core.createNamespacedPod({
    namespace: k.namespace,
    body: {
      metadata: {
        name,
        labels,
        annotations: { 'ovn.kubernetes.io/vpc_nat_gw': labels['natops.io/gateway'] ?? 'ngw' },
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            name: owner.metadata!.name!,
            uid: owner.metadata!.uid!,
            controller: true,
          },
        ],
      },
      spec: {
        terminationGracePeriodSeconds: 0,
        automountServiceAccountToken: false,
        containers: [
          {
            name: CONTAINER,
            image: GATEWAY_IMAGE,
            imagePullPolicy: 'IfNotPresent',
            command: ['sh', '-c', 'echo foreign > /marker && exec sleep infinity'],
            securityContext: { privileged: true },
          },
        ],
      },
    },
  });
  const end = Date.now() + 60_000;
  for (;;) {
    const p = await core.readNamespacedPod({ name, namespace: k.namespace });
    if (podReadiness(p).ready) break;
    if (Date.now() > end) throw new Error(`foreign pod ${name} not ready: ${JSON.stringify(p.status)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    uid: pod.metadata!.uid!,
    exec: podExec(new Exec(k.admin), { namespace: k.namespace, name, container: CONTAINER }),
  };
}

/**
 * The GitOps loop with natops running gateways in `k`'s namespace under its ServiceAccount,
 * network mode multus on the lab's networks.
 */
export function clusterPipeline(k: KubeHarness): Promise<PipelineHarness> {
  return PipelineHarness.create({
    runtime: 'kubernetes',
    kubeconfig: k.kubeconfigPath,
    namespace: k.namespace,
    networkMode: 'multus',
    podReadyTimeoutMs: 90_000,
  });
}
