// The chart's objects pass the test cluster's API server: helm template for the cluster's own
// version, then a server-side dry run (create with dryRun=All: admission, defaulting and schema
// validation, nothing persisted) of every object, in both modes. The release's and the gateways'
// namespaces are the test's own (made here, removed after); the Namespace object itself is dry-run
// under a name that does not exist. KEDA's objects are skipped only when the cluster lacks the
// keda.sh API group, and then by name; test/unit/chart.test.ts validates them against KEDA's schema.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ApisApi, CoreV1Api, KubernetesObjectApi, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import { renderChart, type Rendered } from '../helpers/helm.ts';
import { adminConfig } from '../helpers/k8s.ts';

const KEDA_KINDS = new Set(['ScaledObject', 'TriggerAuthentication']);

describe('the chart on the test cluster: a server-side dry run', () => {
  let kc: KubeConfig;
  let kubeVersion: string;
  let hasKeda: boolean;
  const id = randomBytes(4).toString('hex');
  const releaseNs = `natops-chart-${id}`;
  const gatewaysNs = `natops-chart-gw-${id}`;

  before(async () => {
    kc = adminConfig();
    const version = await kc.makeApiClient(VersionApi).getCode();
    kubeVersion = version.gitVersion.replace(/^v/, '');
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    hasKeda = groups.groups.some((g) => g.name === 'keda.sh');
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of [releaseNs, gatewaysNs]) await core.createNamespace({ body: { metadata: { name } } });
  });
  after(async () => {
    const core = kc.makeApiClient(CoreV1Api);
    for (const name of [releaseNs, gatewaysNs]) await core.deleteNamespace({ name }).catch(() => undefined);
  });

  /** dry-runs every object; returns the kinds skipped (KEDA's, when the cluster lacks it) */
  async function dryRun(objs: Rendered[]): Promise<string[]> {
    const api = KubernetesObjectApi.makeApiClient(kc);
    const skipped: string[] = [];
    const failures: string[] = [];
    for (const o of objs) {
      if (KEDA_KINDS.has(o.kind) && !hasKeda) {
        skipped.push(`${o.kind}/${o.metadata.name}`);
        continue;
      }
      // cluster-scoped: the Namespace; every other object in its own namespace or the release's
      const namespace = o.kind === 'Namespace' ? undefined : (o.metadata.namespace ?? releaseNs);
      const spec = { ...o, metadata: { ...o.metadata, namespace } };
      await api.create(spec, undefined, 'All', 'natops-chart-test').catch((e: unknown) => {
        failures.push(`${o.kind}/${o.metadata.name}: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
    assert.deepEqual(failures, [], 'objects the API server refused');
    return skipped;
  }

  const common = () => ({ gateways: { namespace: gatewaysNs, createNamespace: false } });

  it("all-in-one with the chart's Redis", async () => {
    const objs = await renderChart(common(), { namespace: releaseNs, kubeVersion });
    assert.ok(objs.some((o) => o.kind === 'StatefulSet'));
    assert.deepEqual(await dryRun(objs), []);
  });

  it('split with KEDA, an external Redis and the Ingress', async () => {
    const objs = await renderChart(
      {
        ...common(),
        mode: 'split',
        keda: { enabled: true },
        redis: { enabled: false },
        externalRedis: { url: 'redis://redis.example:6379/0', existingSecret: 'ext-redis' },
        ingress: { enabled: true, host: 'natops.example.org' },
        secrets: { githubToken: 't', gitPassword: 'p' },
        publicUrl: 'https://natops.example.org',
        git: { url: 'https://git.example/nat.git', username: 'natops' },
      },
      { namespace: releaseNs, kubeVersion },
    );
    const skipped = await dryRun(objs);
    if (hasKeda) assert.deepEqual(skipped, []);
    else
      assert.deepEqual(
        skipped.sort(),
        objs
          .filter((o) => KEDA_KINDS.has(o.kind))
          .map((o) => `${o.kind}/${o.metadata.name}`)
          .sort(),
      );
    assert.equal(skipped.length, hasKeda ? 0 : 10, 'the ScaledObjects and the TriggerAuthentication');
  });

  it("the gateways' Namespace the chart creates (under a name that is not there yet)", async () => {
    const objs = await renderChart(
      { gateways: { namespace: `natops-chart-new-${id}`, createNamespace: true } },
      { namespace: releaseNs, kubeVersion },
    );
    const ns = objs.filter((o) => o.kind === 'Namespace');
    assert.equal(ns.length, 1);
    assert.deepEqual(await dryRun(ns), []);
  });
});
