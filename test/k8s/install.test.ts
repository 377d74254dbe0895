// natops installed by its chart and running in the cluster it manages, end to end: helm install
// of natops's image (built by .ci/run) with the chart's Redis (a locally built image on a real
// PersistentVolume), a Git server reachable from the pod (git-http-backend over https with basic
// auth on the node's address), a push whose hook delivers to the webhook Service, the gateway
// Deployment made by the natops pod with its own ServiceAccount, statuses read from the release's
// Redis, and real packets from lab hosts through the gateway pod. Then the release's life: an
// upgrade to split mode with the handlers at zero (a push's jobs wait in Redis), an upgrade to a
// new image tag that brings the handlers back (every queued job done, the gateway's pod never
// restarted), an uninstall that leaves the gateway answering, a reinstall that adopts it
// untouched, and an uninstall with uninstall.removeGateways that removes it first.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { run } from '../../common/exec.ts';
import { initRepo } from '../../gitops/hook/init.ts';
import { podReadiness } from '../../runtime/kubernetes/pods.ts';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { deploymentName, GATEWAY_LABEL, INSTANCE_LABEL } from '../../runtime/kubernetes/objects.ts';
import { StatusBook } from '../../state/statuses.ts';
import { startGitHttps, type GitHttpsServer } from '../helpers/git-https.ts';
import { WorkTree } from '../helpers/git-work.ts';
import { CHART, helm } from '../helpers/helm.ts';
import { adminConfig, forCluster, GATEWAY_IMAGE, KUBECONFIG } from '../helpers/k8s.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { set, type SeedObjects } from '../helpers/manifests.ts';
import { settledStatuses } from '../helpers/pipeline.ts';
import { scenarioManifests } from '../helpers/scenario.ts';

/** loaded into the cluster by .ci/run (scripts/natops-image.sh, scripts/redis-image.sh) */
const NATOPS_IMAGE = process.env.NATOPS_IMAGE ?? 'natops/natops:0.1.0';
const REDIS_IMAGE = process.env.NATOPS_REDIS_IMAGE ?? 'natops/redis:7-bookworm';
/** the node's address on the cluster bridge: where pods reach the Git server */
const NODE_IP = '10.244.0.1';
const SECRET = 'install-test-webhook-secret';
const GIT_PASSWORD = 'install-test-git-5ecret';

const [imageRepository, imageTag] = NATOPS_IMAGE.split(/:(?=[^:/]+$)/) as [string, string];
const [redisRepository, redisTag] = REDIS_IMAGE.split(/:(?=[^:/]+$)/) as [string, string];

describe('natops installed by its chart, running in the cluster it manages', () => {
  const id = randomBytes(4).toString('hex');
  const release = `e2e${id}`;
  const namespace = `natops-e2e-${id}`;
  const gatewaysNs = `natops-e2e-gw-${id}`;
  const storageClass = `natops-e2e-${id}`;
  /** the same image under a second tag, for the upgrade */
  const nextTag = `${imageTag}-e2e${id}`;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let lab: LabHarness;
  let dir: string;
  let https: GitHttpsServer;
  let work: WorkTree;
  let seed: SeedObjects;
  let redis: Redis | undefined;

  const ctr = async (...args: string[]) => {
    const sock = (await readFile(join(KUBECONFIG, '..', 'containerd.sock.path'), 'utf8')).trim();
    return run(['ctr', '--address', sock, '--namespace', 'k8s.io', ...args]);
  };
  const valuesFile = async (values: object) => {
    const file = join(dir, `values-${randomBytes(3).toString('hex')}.json`);
    await writeFile(file, JSON.stringify(values));
    return file;
  };
  const baseValues = async () => ({
    image: { repository: imageRepository, tag: imageTag, pullPolicy: 'Never' },
    redis: {
      image: { repository: redisRepository, tag: redisTag, pullPolicy: 'Never' },
      persistence: { storageClass },
    },
    gateways: { namespace: gatewaysNs, images: [GATEWAY_IMAGE], networkMode: 'multus' },
    git: { url: `${https.url}gitops.git`, username: 'natops' },
    secrets: { webhookSecret: SECRET, gitPassword: GIT_PASSWORD, gitCa: await readFile(https.caFile, 'utf8') },
  });
  /** helm against the test cluster, failing the test with helm's message */
  const helmOk = async (...args: string[]) => {
    const r = await helm([...args, '--kubeconfig', KUBECONFIG, '--namespace', namespace]);
    assert.equal(r.code, 0, `helm ${args[0]} failed: ${r.stderr}`);
    return r.stdout;
  };
  const install = async (values: object) =>
    helmOk('install', release, CHART, '--values', await valuesFile(values), '--wait=watcher', '--timeout', '4m');
  const upgrade = async (values: object) =>
    helmOk(
      'upgrade',
      release,
      CHART,
      '--reuse-values',
      '--values',
      await valuesFile(values),
      '--wait=watcher',
      '--timeout',
      '4m',
    );

  async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  /** natops's pods of the release (not Redis's), once none is on its way out */
  const settledPods = (count: number) =>
    until(`${count} natops pods of ${release}, all ready, none terminating`, async () => {
      const pods = (
        await core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/instance=${release}` })
      ).items.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] !== 'redis');
      const ok = pods.every((p) => !p.metadata?.deletionTimestamp && podReadiness(p).ready);
      return ok && pods.length === count && pods;
    });
  /** the release's Redis, from this machine (the node reaches pod addresses), with the chart's password */
  const connectRedis = async () => {
    redis?.disconnect();
    const pod = await until('the Redis pod', async () => {
      const p = await core.readNamespacedPod({ name: `${release}-natops-redis-0`, namespace }).catch(() => undefined);
      return p && podReadiness(p).ready && p;
    });
    const secret = await core.readNamespacedSecret({ name: `${release}-natops-redis`, namespace });
    const password = Buffer.from(secret.data!['redis-password']!, 'base64').toString();
    redis = new Redis({ host: pod.status!.podIP!, port: 6379, password, lazyConnect: true, maxRetriesPerRequest: 3 });
    await redis.connect();
    return redis;
  };
  const settled = async (sha: string) => settledStatuses(new StatusBook(redis!, 'natops'), sha, 180_000);
  /** The hook of the repository delivers each push to the release's webhook Service. */
  const deliverTo = async () => {
    const svc = await core.readNamespacedService({ name: `${release}-natops-webhook`, namespace });
    const secretFile = join(dir, 'webhook-secret');
    await writeFile(secretFile, SECRET, { mode: 0o600 });
    await initRepo(join(dir, 'gitops.git'), {
      webhookUrl: `http://${svc.spec!.clusterIP}:8080/webhook`,
      secretFile,
      name: 'test/gitops',
    });
  };
  const gatewayPod = async (): Promise<V1Pod | undefined> =>
    (await core.listNamespacedPod({ namespace: gatewaysNs, labelSelector: `${GATEWAY_LABEL}=ngw` })).items.find(
      (p) => !p.metadata?.deletionTimestamp,
    );
  const answers = (port: number) => lab.tcp('ext', '192.168.0.112', port);

  before(async () => {
    kc = adminConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    lab = await LabHarness.create();
    dir = await mkdtemp(join(tmpdir(), 'natops-install-'));
    await run(['git', 'init', '--quiet', '--bare', '--initial-branch=main', join(dir, 'gitops.git')]);
    https = await startGitHttps(dir, dir, 'natops', GIT_PASSWORD, NODE_IP);
    work = await WorkTree.clone(join(dir, 'gitops.git'), join(dir, 'work'));
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    // the Redis volume: a real PersistentVolume on the node, bound to the StatefulSet's claim
    const volume = join(dir, 'redis-data');
    await mkdir(volume);
    await chown(volume, 999, 999);
    await core.createPersistentVolume({
      body: {
        metadata: { name: storageClass },
        spec: {
          storageClassName: storageClass,
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          hostPath: { path: volume, type: 'Directory' },
        },
      },
    });
    await ctr('images', 'tag', `docker.io/${NATOPS_IMAGE}`, `docker.io/${imageRepository}:${nextTag}`);
    seed = forCluster(await scenarioManifests());
    // what Kube-OVN would provide: the subnets and the external network the gateway pod joins
    await lab.provide(seed);
  });
  after(async () => {
    redis?.disconnect();
    await helm(['uninstall', release, '--kubeconfig', KUBECONFIG, '--namespace', namespace, '--wait=watcher']).catch(
      () => undefined,
    );
    for (const name of [namespace, gatewaysNs])
      await core.deleteNamespace({ name, gracePeriodSeconds: 0 }).catch(() => undefined);
    await core.deletePersistentVolume({ name: storageClass }).catch(() => undefined);
    await ctr('images', 'rm', `docker.io/${imageRepository}:${nextTag}`).catch(() => undefined);
    await https?.close();
    await lab?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('helm install, then a push: the natops pod makes the gateway, statuses come back, packets pass', async () => {
    const notes = await install(await baseValues());
    assert.match(notes, /LEAVES THE GATEWAYS RUNNING/);
    await settledPods(1);
    await connectRedis();
    await deliverTo();
    const sha = await work.push(seed, 'seed');
    const statuses = await settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.match(statuses.get('natops/ngw')!.description, /live: 2 EIPs, 1 floating IP, 3 port forwards, 2 SNATs/);
    const gw = await apps.readNamespacedDeployment({ name: deploymentName('ngw'), namespace: gatewaysNs });
    assert.equal(gw.metadata?.labels?.[INSTANCE_LABEL], release, 'the instance label is the release');
    for (const [name, net, ip] of [
      ['fip', 'sn', '10.0.1.5/24'],
      ['web', 'sn', '10.0.1.10/24'],
      ['client', 'sn', '10.0.1.20/24'],
      ['ext', 'external', '192.168.0.50/24'],
    ] as const)
      await lab.host(name, net, ip);
    await Promise.all(['fip', 'web', 'client', 'ext'].map((h) => lab.serve(h, { tcp: [80, 9000] })));
    assert.equal(await lab.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50', 'floating IP inbound');
    assert.equal(await answers(8888), 'web 192.168.0.50', 'port forward');
    assert.equal(await lab.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112', 'SNAT');
  });

  it('helm upgrade while jobs wait: split mode with no handlers, then a new tag; nothing lost, the gateway untouched', async () => {
    const pod = (await gatewayPod())!;
    await upgrade({ mode: 'split', workers: { replicas: 0 } });
    await settledPods(1);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8080);
    const sha = await work.push(seed, 'move a port while no handler runs');
    // planned by the webhook's Deployment; the handler jobs wait in Redis for a handler
    const waiting = await until('jobs waiting for a handler', async () => {
      const counts = await Promise.all(HANDLER_KINDS.map((q) => redis!.llen(`natops:bull:${q}:wait`)));
      const total = counts.reduce((a, b) => a + b, 0);
      return total > 0 && total;
    });
    assert.ok(waiting > 0);
    assert.equal(await answers(8888), 'web 192.168.0.50', 'nothing applied yet');
    await upgrade({ image: { tag: nextTag }, workers: { replicas: 1 } });
    const pods = await settledPods(10);
    assert.ok(
      pods.every((p) => p.spec?.containers[0]?.image === `${imageRepository}:${nextTag}`),
      'every natops pod runs the new tag',
    );
    const statuses = await settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(await answers(8080), 'web 192.168.0.50');
    assert.equal(await answers(8888), undefined, 'the old port is closed');
    for (const q of HANDLER_KINDS) {
      assert.equal(await redis!.llen(`natops:bull:${q}:wait`), 0, `${q}: no job left waiting`);
      assert.equal(await redis!.zcard(`natops:bull:${q}:failed`), 0, `${q}: no job failed`);
    }
    const now = (await gatewayPod())!;
    assert.equal(now.metadata?.uid, pod.metadata?.uid, "the gateway's pod is the same");
    assert.equal(now.status?.containerStatuses?.[0]?.restartCount, 0);
  });

  it('helm uninstall leaves the gateway answering; a reinstall adopts it untouched', async () => {
    const pod = (await gatewayPod())!;
    await helmOk('uninstall', release, '--wait=watcher', '--timeout', '3m');
    redis?.disconnect();
    redis = undefined;
    assert.equal(await answers(8080), 'web 192.168.0.50', 'the gateway runs without natops');
    assert.equal((await gatewayPod())?.metadata?.uid, pod.metadata?.uid);
    const notes = await install({ ...(await baseValues()), uninstall: { removeGateways: true } });
    assert.match(notes, /REMOVES THE GATEWAYS first/);
    await settledPods(1);
    await connectRedis();
    await deliverTo();
    // the Redis volume was kept: the new release knows the commit it applied
    const sha = (await run(['git', '-C', work.dir, 'rev-parse', 'HEAD'])).stdout.trim();
    assert.equal((await settled(sha)).get('natops')?.state, 'success');
    const next = await work.push(seed, 'the same manifests, pushed again');
    assert.equal((await settled(next)).get('natops/ngw')?.state, 'success');
    assert.equal((await gatewayPod())?.metadata?.uid, pod.metadata?.uid, 'adopted, not replaced');
  });

  it('helm uninstall with uninstall.removeGateways: the gateways go first', async () => {
    await helmOk('uninstall', release, '--wait=watcher', '--timeout', '3m');
    const left = await apps.listNamespacedDeployment({
      namespace: gatewaysNs,
      labelSelector: `${INSTANCE_LABEL}=${release}`,
    });
    assert.deepEqual(
      left.items.map((d) => d.metadata?.name),
      [],
    );
    await until('the gateway pod to go', async () => (await gatewayPod()) === undefined);
    assert.equal(await answers(8080), undefined);
  });
});
