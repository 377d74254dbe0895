// natops installed by its chart and running in the cluster it manages, end to end: helm install
// of natops's image (built by .ci/run) with the chart's Redis (a locally built image on a real
// PersistentVolume), a Git server reachable from the pod (git-http-backend over https with basic
// auth on the node's address), a push whose hook delivers to the webhook Service, the gateway
// Deployment made by the natops pod with its own ServiceAccount, statuses read from the release's
// Redis, and real packets from lab hosts through the gateway pod (test/helpers/chart-release.ts).
// Then the release's life: an upgrade to split mode with the handlers at zero (a push's jobs wait
// in Redis), an upgrade to a new image tag that brings the handlers back (every queued job done,
// the gateway's pod never restarted), an uninstall that leaves the gateway answering, a reinstall
// that adopts it untouched, and an uninstall with uninstall.removeGateways that removes it first.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../common/exec.ts';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { deploymentName, INSTANCE_LABEL } from '../../runtime/kubernetes/objects.ts';
import { ChartRelease, IMAGE_REPOSITORY, NATOPS_IMAGE } from '../helpers/chart-release.ts';
import { forCluster, KUBECONFIG } from '../helpers/k8s.ts';
import { set, type SeedObjects } from '../helpers/manifests.ts';
import { scenarioManifests } from '../helpers/scenario.ts';

describe('natops installed by its chart, running in the cluster it manages', () => {
  let r: ChartRelease;
  let seed: SeedObjects;
  /** the same image under a second tag, for the upgrade */
  let nextTag: string;

  const ctr = async (...args: string[]) => {
    const sock = (await readFile(join(KUBECONFIG, '..', 'containerd.sock.path'), 'utf8')).trim();
    return run(['ctr', '--address', sock, '--namespace', 'k8s.io', ...args]);
  };
  const answers = (port: number) => r.lab.tcp('ext', '192.168.0.112', port);
  const gatewayPod = () => r.gatewayPod('ngw');

  before(async () => {
    r = await ChartRelease.create();
    nextTag = `e2e${r.id}`;
    await ctr('images', 'tag', `docker.io/${NATOPS_IMAGE}`, `docker.io/${IMAGE_REPOSITORY}:${nextTag}`);
    seed = forCluster(await scenarioManifests());
    // what Kube-OVN would provide: the subnets and the external network the gateway pod joins
    await r.lab.provide(seed);
  });
  after(async () => {
    try {
      await r?.cleanup();
    } finally {
      if (nextTag) await ctr('images', 'rm', `docker.io/${IMAGE_REPOSITORY}:${nextTag}`).catch(() => undefined);
    }
  });

  it('helm install, then a push: the natops pod makes the gateway, statuses come back, packets pass', async () => {
    // the lab's workload hosts start meanwhile: they need nothing of natops
    const hosts = r.lab.seedHosts({ tcp: [80, 9000] });
    hosts.catch(() => undefined);
    const notes = await r.install(await r.values());
    assert.match(notes, /LEAVES THE GATEWAYS RUNNING/);
    await r.settledPods(1);
    await r.deliverPushes();
    const sha = await r.work.push(seed, 'seed');
    const statuses = await r.settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.match(statuses.get('natops/ngw')!.description, /live: 2 EIPs, 1 floating IP, 3 port forwards, 2 SNATs/);
    const gw = await r.apps.readNamespacedDeployment({ name: deploymentName('ngw'), namespace: r.gatewaysNamespace });
    assert.equal(gw.metadata?.labels?.[INSTANCE_LABEL], r.name, 'the instance label is the release');
    await hosts;
    assert.equal(await r.lab.tcp('ext', '192.168.0.111', 80), 'fip 192.168.0.50', 'floating IP inbound');
    assert.equal(await answers(8888), 'web 192.168.0.50', 'port forward');
    assert.equal(await r.lab.tcp('client', '192.168.0.50', 9000), 'ext 192.168.0.112', 'SNAT');
  });

  it('helm upgrade while jobs wait: split mode with no handlers, then a new tag; nothing lost, the gateway untouched', async () => {
    const pod = (await gatewayPod())!;
    await r.upgrade({ mode: 'split', workers: { replicas: 0 } });
    await r.settledPods(1);
    set(seed.gateway, 'spec.dnatRules.0.externalPort', 8080);
    const sha = await r.work.push(seed, 'move a port while no handler runs');
    // planned by the webhook's Deployment; the handler jobs wait in Redis for a handler
    const redis = await r.connectRedis();
    const waiting = await r.until('jobs waiting for a handler', async () => {
      const counts = await Promise.all(HANDLER_KINDS.map((q) => redis.llen(`natops:bull:${q}:wait`)));
      const total = counts.reduce((a, b) => a + b, 0);
      return total > 0 && total;
    });
    assert.ok(waiting > 0);
    assert.equal(await answers(8888), 'web 192.168.0.50', 'nothing applied yet');
    await r.upgrade({ image: { tag: nextTag }, workers: { replicas: 1 } });
    const pods = await r.settledPods(1 + HANDLER_KINDS.length);
    assert.ok(
      pods.every((p) => p.spec?.containers[0]?.image === `${IMAGE_REPOSITORY}:${nextTag}`),
      'every natops pod runs the new tag',
    );
    const statuses = await r.settled(sha);
    assert.equal(statuses.get('natops')?.state, 'success', JSON.stringify([...statuses.values()]));
    assert.equal(await answers(8080), 'web 192.168.0.50');
    assert.equal(await answers(8888), undefined, 'the old port is closed');
    for (const q of HANDLER_KINDS) {
      assert.equal(await redis.llen(`natops:bull:${q}:wait`), 0, `${q}: no job left waiting`);
      assert.equal(await redis.zcard(`natops:bull:${q}:failed`), 0, `${q}: no job failed`);
    }
    const now = (await gatewayPod())!;
    assert.equal(now.metadata?.uid, pod.metadata?.uid, "the gateway's pod is the same");
    assert.equal(now.status?.containerStatuses?.[0]?.restartCount, 0);
  });

  it('helm uninstall leaves the gateway answering; a reinstall adopts it untouched', async () => {
    const pod = (await gatewayPod())!;
    await r.uninstall();
    assert.equal(await answers(8080), 'web 192.168.0.50', 'the gateway runs without natops');
    assert.equal((await gatewayPod())?.metadata?.uid, pod.metadata?.uid);
    const notes = await r.install({ ...(await r.values()), uninstall: { removeGateways: true } });
    assert.match(notes, /REMOVES THE GATEWAYS first/);
    await r.settledPods(1);
    await r.deliverPushes();
    // the Redis volume was kept: the new release knows the commit it applied
    const head = (await run(['git', '-C', r.work.dir, 'rev-parse', 'HEAD'])).stdout.trim();
    assert.equal((await r.settled(head)).get('natops')?.state, 'success');
    const next = await r.work.push(seed, 'the same manifests, pushed again');
    assert.equal((await r.settled(next)).get('natops/ngw')?.state, 'success');
    assert.equal((await gatewayPod())?.metadata?.uid, pod.metadata?.uid, 'adopted, not replaced');
  });

  it('helm uninstall with uninstall.removeGateways: the gateways go first', async () => {
    await r.uninstall();
    const left = await r.apps.listNamespacedDeployment({
      namespace: r.gatewaysNamespace,
      labelSelector: `${INSTANCE_LABEL}=${r.name}`,
    });
    assert.deepEqual(
      left.items.map((d) => d.metadata?.name),
      [],
    );
    await r.until('the gateway pod to go', async () => (await gatewayPod()) === undefined);
    assert.equal(await answers(8080), undefined);
  });
});
