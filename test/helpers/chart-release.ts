// natops installed by its chart into the test cluster, for a test or a bench: a release namespace
// of its own, natops's image and a Redis image (loaded by .ci/run) with the Redis volume on a real
// PersistentVolume, a Git server the pods reach over https (git-http-backend with basic auth on
// the node's address) and a work tree pushing to it, and a lab providing the networks the gateway
// pods join, as Kube-OVN would. Everything is removed by `cleanup`, even after a failure.
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { run } from '../../common/exec.ts';
import { initRepo } from '../../gitops/hook/init.ts';
import { GATEWAY_LABEL } from '../../runtime/kubernetes/objects.ts';
import { podReadiness } from '../../runtime/kubernetes/pods.ts';
import { type CommitStatus, StatusBook } from '../../state/statuses.ts';
import { startGitHttps, type GitHttpsServer } from './git-https.ts';
import { WorkTree } from './git-work.ts';
import { CHART, helm } from './helm.ts';
import { adminConfig, GATEWAY_IMAGE, KUBECONFIG } from './k8s.ts';
import { LabHarness } from './lab-harness.ts';
import { settledStatuses } from './pipeline.ts';

/** loaded into the cluster by .ci/run (scripts/natops-image.sh, scripts/redis-image.sh) */
export const NATOPS_IMAGE = process.env.NATOPS_IMAGE ?? 'natops/natops:0.1.0';
const REDIS_IMAGE = process.env.NATOPS_REDIS_IMAGE ?? 'natops/redis:7-bookworm';
/** the node's address on the cluster bridge: where pods reach the Git server */
const NODE_IP = '10.244.0.1';
const SECRET = 'chart-release-webhook-secret';
const GIT_PASSWORD = 'chart-release-git-5ecret';

const splitImage = (ref: string) => ref.split(/:(?=[^:/]+$)/) as [string, string];
export const [IMAGE_REPOSITORY, IMAGE_TAG] = splitImage(NATOPS_IMAGE);

/** A deleted pod whose containers (init containers too) have all exited, as its kubelet reports them. */
function exited(p: V1Pod): boolean {
  const containers = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])];
  return (
    p.metadata?.deletionTimestamp !== undefined &&
    containers.length > 0 &&
    containers.every((c) => c.state?.terminated !== undefined)
  );
}

export class ChartRelease {
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  private redis: Redis | undefined;

  private constructor(
    readonly id: string,
    readonly kc: KubeConfig,
    readonly lab: LabHarness,
    readonly dir: string,
    private readonly https: GitHttpsServer,
    readonly work: WorkTree,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
  }

  get name(): string {
    return `e2e${this.id}`;
  }
  get namespace(): string {
    return `natops-e2e-${this.id}`;
  }
  get gatewaysNamespace(): string {
    return `natops-e2e-gw-${this.id}`;
  }
  /** the PersistentVolume's name and storage class */
  private get volume(): string {
    return `natops-e2e-${this.id}`;
  }

  static async create(): Promise<ChartRelease> {
    const id = randomBytes(4).toString('hex');
    const kc = adminConfig();
    const lab = await LabHarness.create();
    const dir = await mkdtemp(join(tmpdir(), 'natops-release-'));
    const bare = join(dir, 'gitops.git');
    await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', bare]);
    const https = await startGitHttps(dir, dir, 'natops', GIT_PASSWORD, NODE_IP);
    const r = new ChartRelease(id, kc, lab, dir, https, await WorkTree.clone(bare, join(dir, 'work')));
    try {
      await r.core.createNamespace({ body: { metadata: { name: r.namespace } } });
      await r.makeVolume();
    } catch (e) {
      await r.cleanup();
      throw e;
    }
    return r;
  }

  /** The Redis volume: a real PersistentVolume on the node, bound to the StatefulSet's claim. */
  private async makeVolume(): Promise<void> {
    const path = join(this.dir, `redis-data-${randomBytes(3).toString('hex')}`);
    await mkdir(path);
    await chown(path, 999, 999);
    await this.core.createPersistentVolume({
      body: {
        metadata: { name: this.volume },
        spec: {
          storageClassName: this.volume,
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path, type: 'Directory' },
        },
      },
    });
  }

  /** Forgets Redis: the claim and the volume go, and a new empty volume waits for the next install. */
  async freshRedis(): Promise<void> {
    const claim = `data-${this.name}-natops-redis-0`;
    await this.core.deleteNamespacedPersistentVolumeClaim({ name: claim, namespace: this.namespace });
    await this.core.deletePersistentVolume({ name: this.volume });
    await this.until('the Redis volume to go', async () => {
      const left = await this.core.readPersistentVolume({ name: this.volume }).catch(() => undefined);
      return left === undefined;
    });
    await this.makeVolume();
  }

  /** The values every install starts from: the images, the Git server, the lab's network mode. */
  async values(): Promise<object> {
    const [redisRepository, redisTag] = splitImage(REDIS_IMAGE);
    return {
      image: { repository: IMAGE_REPOSITORY, tag: IMAGE_TAG, pullPolicy: 'Never' },
      redis: {
        image: { repository: redisRepository, tag: redisTag, pullPolicy: 'Never' },
        persistence: { storageClass: this.volume },
      },
      gateways: { namespace: this.gatewaysNamespace, images: [GATEWAY_IMAGE], networkMode: 'multus' },
      git: { url: `${this.https.url}gitops.git`, username: 'natops' },
      secrets: {
        webhookSecret: SECRET,
        gitPassword: GIT_PASSWORD,
        gitCa: await readFile(this.https.caFile, 'utf8'),
      },
    };
  }

  /** helm against the test cluster in the release's namespace; throws with helm's message */
  async helm(...args: string[]): Promise<string> {
    const r = await helm([...args, '--kubeconfig', KUBECONFIG, '--namespace', this.namespace]);
    if (r.code !== 0) throw new Error(`helm ${args[0]} failed: ${r.stderr}`);
    return r.stdout;
  }

  private async valuesFile(values: object): Promise<string> {
    const file = join(this.dir, `values-${randomBytes(3).toString('hex')}.json`);
    await writeFile(file, JSON.stringify(values));
    return file;
  }

  /** helm install with these values (give `values()` and more); returns helm's output (NOTES) */
  async install(values: object): Promise<string> {
    await this.earlierRedisGone();
    const file = await this.valuesFile(values);
    return this.helm('install', this.name, CHART, '--values', file, '--wait=watcher', '--timeout', '4m');
  }

  /**
   * The Redis pod an earlier install left on its way out, gone: the new StatefulSet can make its
   * pod of the same name only then (and backs off meanwhile, for many seconds). Once Redis has
   * exited, its container terminated (its data as a clean shutdown leaves it), the pod's object
   * is removed at once instead of after the kubelet's container garbage collection (1.20: up to
   * a minute later).
   */
  private async earlierRedisGone(): Promise<void> {
    const name = `${this.name}-natops-redis-0`;
    const read = () => this.core.readNamespacedPod({ name, namespace: this.namespace }).catch(() => undefined);
    if (!(await read())) return;
    await this.until('the Redis pod of the earlier install to go', async () => {
      const pod = await read();
      if (!pod) return true;
      if (exited(pod))
        await this.core
          .deleteNamespacedPod({
            name,
            namespace: this.namespace,
            body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid } },
          })
          .catch(() => undefined);
      return false;
    });
  }

  /** helm upgrade keeping the release's values, with these on top */
  async upgrade(values: object): Promise<string> {
    const file = await this.valuesFile(values);
    return this.helm(
      'upgrade',
      this.name,
      CHART,
      '--reuse-values',
      '--values',
      file,
      '--wait=watcher',
      '--timeout',
      '4m',
    );
  }

  async uninstall(): Promise<void> {
    this.redis?.disconnect();
    this.redis = undefined;
    await this.helm('uninstall', this.name, '--wait=watcher', '--timeout', '4m');
  }

  async until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 180_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * natops's pods of the release (not Redis's), once there are `count`, all ready, none on its way
   * out. A deleted pod whose every container has exited is gone: no natops runs in it any more,
   * though the kubelet (1.20) may keep its object up to a minute longer, until its container
   * garbage collection.
   */
  settledPods(count: number): Promise<V1Pod[]> {
    return this.until(`${count} natops pods of ${this.name}, all ready, none terminating`, async () => {
      const pods = (
        await this.core.listNamespacedPod({
          namespace: this.namespace,
          labelSelector: `app.kubernetes.io/instance=${this.name}`,
        })
      ).items.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] !== 'redis' && !exited(p));
      const ok = pods.every((p) => !p.metadata?.deletionTimestamp && podReadiness(p).ready);
      return ok && pods.length === count && pods;
    });
  }

  /** The release's Redis, from this machine (the node reaches pod addresses), with the chart's password. */
  async connectRedis(): Promise<Redis> {
    this.redis?.disconnect();
    const pod = await this.until('the Redis pod', async () => {
      const p = await this.core
        .readNamespacedPod({ name: `${this.name}-natops-redis-0`, namespace: this.namespace })
        .catch(() => undefined);
      return p && podReadiness(p).ready && p;
    });
    const secret = await this.core.readNamespacedSecret({
      name: `${this.name}-natops-redis`,
      namespace: this.namespace,
    });
    const password = Buffer.from(secret.data!['redis-password']!, 'base64').toString();
    this.redis = new Redis({
      host: pod.status!.podIP!,
      port: 6379,
      password,
      lazyConnect: true,
      maxRetriesPerRequest: 3,
    });
    await this.redis.connect();
    return this.redis;
  }

  /** The commit's statuses once settled, read from the release's Redis (connected first). */
  async settled(sha: string, timeoutMs = 180_000): Promise<Map<string, CommitStatus>> {
    const redis = this.redis ?? (await this.connectRedis());
    return settledStatuses(new StatusBook(redis, 'natops'), sha, timeoutMs);
  }

  /** The repository's hook delivers each push to the release's webhook Service from now on. */
  async deliverPushes(): Promise<void> {
    const svc = await this.core.readNamespacedService({
      name: `${this.name}-natops-webhook`,
      namespace: this.namespace,
    });
    const secretFile = join(this.dir, 'webhook-secret');
    await writeFile(secretFile, SECRET, { mode: 0o600 });
    await initRepo(join(this.dir, 'gitops.git'), {
      webhookUrl: `http://${svc.spec!.clusterIP}:8080/webhook`,
      secretFile,
      name: 'test/gitops',
    });
  }

  /** The running pod of a gateway, if any. */
  async gatewayPod(gateway: string): Promise<V1Pod | undefined> {
    const pods = await this.core.listNamespacedPod({
      namespace: this.gatewaysNamespace,
      labelSelector: `${GATEWAY_LABEL}=${gateway}`,
    });
    return pods.items.find((p) => !p.metadata?.deletionTimestamp);
  }

  async cleanup(): Promise<void> {
    this.redis?.disconnect();
    await helm([
      'uninstall',
      this.name,
      '--kubeconfig',
      KUBECONFIG,
      '--namespace',
      this.namespace,
      '--wait=watcher',
    ]).catch(() => undefined);
    for (const name of [this.namespace, this.gatewaysNamespace])
      await this.core.deleteNamespace({ name, gracePeriodSeconds: 0 }).catch(() => undefined);
    await this.core.deletePersistentVolume({ name: this.volume }).catch(() => undefined);
    await this.https.close();
    await this.lab.cleanup();
    await rm(this.dir, { recursive: true, force: true });
  }
}
