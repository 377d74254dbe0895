// The Helm chart charts/natops, with a real helm (test/helpers/helm.ts): it lints strictly,
// renders in both modes, and what it renders holds the trust model (docs/security.md): secrets
// only as mounted files, non-root pods without capabilities, the Role in the gateways' namespace
// only and equal to deploy/kubernetes/rbac.yaml's; a wrong value fails with the schema's message.
// KEDA's objects, which the test cluster lacks, are validated against @kubernetes-models/keda.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type {
  V1Container,
  V1Deployment,
  V1Ingress,
  V1Job,
  V1PodSpec,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { parse, parseAllDocuments } from 'yaml';
import { HANDLER_KINDS } from '../../dataplane/kinds.ts';
import { loadConfig } from '../../server/config.ts';
import { QUEUE_NAMES } from '../../queue/jobs.ts';
import { bullPrefix } from '../../queue/queues.ts';
import { BASE_SET, CHART, helm, helmTemplate, renderChart, type Rendered } from '../helpers/helm.ts';

const ROOT = join(import.meta.dirname, '../..');

/** every rendered object of a kind, typed as client-node's type for it */
const all = <T>(objs: Rendered[], kind: string): T[] => objs.filter((o) => o.kind === kind) as unknown as T[];

const podSpecs = (objs: Rendered[]): { owner: string; spec: V1PodSpec }[] =>
  [...all<V1Deployment>(objs, 'Deployment'), ...all<V1StatefulSet>(objs, 'StatefulSet')].map((d) => ({
    owner: d.metadata!.name!,
    spec: d.spec!.template.spec!,
  }));

const natopsPods = (objs: Rendered[]) => podSpecs(objs).filter((p) => p.spec.containers[0]?.name === 'natops');

const SPLIT_VALUES = {
  mode: 'split',
  keda: { enabled: true },
  redis: { enabled: false },
  externalRedis: { url: 'redis://redis.example:6380/2', existingSecret: 'ext-redis', existingSecretKey: 'pw' },
  ingress: { enabled: true, host: 'natops.example.org', className: 'nginx' },
  git: { url: 'ssh://git@git.example/infra/nat.git' },
  secrets: { gitSshKey: 'k', gitKnownHosts: 'h' },
  env: { NATOPS_LOG_LEVEL: 'debug', NATOPS_REPOSITORY: 'infra/nat' },
};

/** Secret values given in the values: none may show up anywhere but in the chart's Secret. */
const GIVEN_SECRETS = {
  webhookSecret: 'given-webhook-secret-3f9a',
  dashboardPassword: 'given-dashboard-password-77c1',
  githubToken: 'ghp_given-token-0d2e',
  githubPrivateKey: '-----BEGIN RSA PRIVATE KEY-----given-key-9b8c',
  gitPassword: 'given-git-password-41aa',
  gitSshKey: '-----BEGIN OPENSSH PRIVATE KEY-----given-ssh-5e6f',
};

function checkSecurity(objs: Rendered[]): void {
  const pods = natopsPods(objs);
  assert.ok(pods.length > 0, 'no natops pods rendered');
  for (const { owner, spec } of podSpecs(objs)) {
    assert.equal(spec.securityContext?.runAsNonRoot, true, `${owner}: runAsNonRoot`);
    assert.notEqual(spec.hostNetwork, true, `${owner}: hostNetwork`);
    for (const c of spec.containers) {
      const sc = c.securityContext;
      assert.equal(sc?.allowPrivilegeEscalation, false, `${owner}/${c.name}: allowPrivilegeEscalation`);
      assert.equal(sc?.readOnlyRootFilesystem, true, `${owner}/${c.name}: readOnlyRootFilesystem`);
      assert.deepEqual(sc?.capabilities?.drop, ['ALL'], `${owner}/${c.name}: capabilities`);
      assert.notEqual(sc?.privileged, true, `${owner}/${c.name}: privileged`);
      assert.ok(c.resources?.requests && c.resources.limits, `${owner}/${c.name}: resources`);
      for (const e of c.env ?? [])
        if (/SECRET|PASSWORD|TOKEN|PRIVATE_KEY|CREDENTIALS|AUTH/.test(e.name) && !e.name.endsWith('_FILE'))
          assert.ok(e.valueFrom?.secretKeyRef && e.value === undefined, `${owner}: ${e.name} is a plain value`);
    }
  }
  for (const { owner, spec } of pods) {
    const c = spec.containers[0] as V1Container;
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${owner}: liveness`);
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${owner}: readiness`);
    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    assert.equal(env.get('NATOPS_RUNTIME')?.value, 'kubernetes');
    // every *_FILE setting names a file of a mounted Secret volume
    const files = [...env.values()].filter((e) => e.name.endsWith('_FILE'));
    if (c.args?.[0] === 'worker') {
      // a handler worker needs no secret but Redis's, and reads no repository
      assert.deepEqual(files, [], `${owner}: secrets in a handler worker`);
      assert.ok(!spec.volumes?.some((v) => v.secret), `${owner}: a Secret volume in a handler worker`);
      assert.deepEqual(
        [...env.keys()].filter((n) => /^NATOPS_(SOURCE|REPOSITORY|GIT_|GITHUB_)/.test(n)),
        [],
        `${owner}: the source's settings in a handler worker`,
      );
    } else assert.ok(files.length >= 2, `${owner}: the webhook secret and dashboard password as files`);
    for (const e of files) {
      const path = e.value ?? '';
      const mount = c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${owner}: ${e.name}=${path} is not under a mount`);
      assert.equal(mount.readOnly, true);
      const volume = spec.volumes?.find((v) => v.name === mount.name);
      const key = path.slice(mount.mountPath.length + 1);
      assert.ok(
        volume?.secret?.items?.some((i) => i.path === key),
        `${owner}: ${e.name}: ${key} is not an item of the Secret volume`,
      );
    }
    // the data directory: one natops makes (0700) inside a writable volume, not the volume's
    // root (an emptyDir is 0777, which natops refuses as shared)
    const dataDir = env.get('NATOPS_DATA_DIR')?.value ?? '';
    const dataMount = c.volumeMounts?.find((m) => dataDir.startsWith(`${m.mountPath}/`));
    assert.ok(dataMount && !dataMount.readOnly, `${owner}: NATOPS_DATA_DIR=${dataDir} is not below a writable mount`);
    assert.ok(spec.volumes?.find((v) => v.name === dataMount.name)?.emptyDir, `${owner}: data volume`);
    // the Redis password is expanded by the kubelet from a Secret, never written into the spec
    assert.match(
      env.get('NATOPS_REDIS_URL')?.value ?? '',
      /^rediss?:\/\/(:\$\(NATOPS_REDIS_PASSWORD\)@)?[^:@]+:\d+\/\d+$/,
    );
  }
  // RBAC: a Role and its binding in the gateways' namespace only; nothing cluster-wide
  assert.equal(all(objs, 'ClusterRole').length + all(objs, 'ClusterRoleBinding').length, 0);
  const roles = all<V1Role>(objs, 'Role');
  const bindings = all<V1RoleBinding>(objs, 'RoleBinding');
  assert.equal(roles.length, 1);
  assert.equal(bindings.length, 1);
  const gatewaysNs = natopsPods(objs)[0]?.spec.containers[0]?.env?.find((e) => e.name === 'NATOPS_NAMESPACE')?.value;
  assert.equal(roles[0]?.metadata?.namespace, gatewaysNs);
  assert.equal(bindings[0]?.metadata?.namespace, gatewaysNs);
  const sa = natopsPods(objs)[0]?.spec.serviceAccountName;
  assert.deepEqual(
    bindings[0]?.subjects?.map((s) => [s.kind, s.name, s.namespace]),
    [['ServiceAccount', sa, 'natops']],
  );
}

describe('the Helm chart', () => {
  let defaults: Rendered[];
  let split: Rendered[];
  before(async () => {
    defaults = await renderChart();
    split = await renderChart(SPLIT_VALUES);
  });

  it('passes helm lint --strict, in both modes', async () => {
    for (const set of [[], ['--set', 'mode=split,keda.enabled=true']]) {
      const r = await helm(['lint', '--strict', CHART, ...BASE_SET, ...set]);
      assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}\n${r.stderr}`);
    }
  });

  it("has package.json's version as appVersion and natops/natops:<appVersion> as image", async () => {
    const chart = parse(await readFile(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(chart.appVersion, pkg.version);
    for (const { spec } of natopsPods(defaults))
      assert.equal(spec.containers[0]?.image, `natops/natops:${pkg.version}`);
  });

  it('grants the Role of deploy/kubernetes/rbac.yaml, no more and no less', async () => {
    const shipped = parseAllDocuments(await readFile(join(ROOT, 'deploy/kubernetes/rbac.yaml'), 'utf8'))
      .map((d) => d.toJS() as Rendered & { rules?: unknown })
      .find((d) => d.kind === 'Role');
    assert.ok(shipped?.rules);
    for (const objs of [defaults, split]) assert.deepEqual(all<V1Role>(objs, 'Role')[0]?.rules, shipped.rules);
  });

  it('all-in-one: one natops Deployment running serve, Redis with a password and persistence', () => {
    const pods = natopsPods(defaults);
    assert.deepEqual(
      pods.map((p) => p.spec.containers[0]?.args?.[0]),
      ['serve'],
    );
    checkSecurity(defaults);
    const redis = all<V1StatefulSet>(defaults, 'StatefulSet')[0];
    assert.ok(redis);
    const c = redis.spec!.template.spec!.containers[0] as V1Container;
    const script = c.command?.join(' ') ?? '';
    assert.match(script, /appendonly yes/);
    assert.match(script, /requirepass \$REDIS_PASSWORD/);
    assert.ok(redis.spec?.volumeClaimTemplates?.length, 'a volume for the append-only file');
    assert.equal(c.env?.find((e) => e.name === 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef?.name, 'natops-redis');
    // the gateways' namespace allows privileged pods and survives helm uninstall
    const ns = all<Rendered>(defaults, 'Namespace')[0];
    assert.equal(ns?.metadata.name, 'natops-gateways');
    assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged');
    assert.equal(ns?.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    assert.equal(all(defaults, 'Ingress').length, 0);
    assert.equal(all(defaults, 'ScaledObject').length, 0);
    assert.equal(all<Rendered>(defaults, 'PodDisruptionBudget')[0]?.apiVersion, 'policy/v1beta1');
  });

  it('picks policy/v1 for the PodDisruptionBudget from Kubernetes 1.21', async () => {
    const objs = await renderChart({}, { kubeVersion: '1.21.0' });
    assert.equal(all<Rendered>(objs, 'PodDisruptionBudget')[0]?.apiVersion, 'policy/v1');
  });

  it('split: the webhook runs serve and every handler kind has its own worker Deployment', () => {
    checkSecurity(split);
    const pods = natopsPods(split);
    assert.deepEqual(
      pods.filter((p) => p.spec.containers[0]?.args?.[0] === 'serve').map((p) => p.owner),
      ['natops'],
    );
    const workers = new Map(
      pods
        .filter((p) => p.spec.containers[0]?.args?.[0] === 'worker')
        .map((p) => {
          const args = p.spec.containers[0]?.args ?? [];
          return [args[args.indexOf('--handlers') + 1], p.owner] as const;
        }),
    );
    assert.deepEqual([...workers.keys()].sort(), [...HANDLER_KINDS].sort());
    // every queue is worked by exactly one Deployment: serve takes the rest
    const serveArgs = pods.find((p) => p.spec.containers[0]?.args?.[0] === 'serve')?.spec.containers[0]?.args ?? [];
    const served = serveArgs[serveArgs.indexOf('--handlers') + 1]?.split(',') ?? [];
    assert.deepEqual([...served, ...workers.keys()].sort(), [...QUEUE_NAMES].sort());
    // plain settings reach every pod; the source's only the webhook's
    for (const p of pods) {
      const names = new Map((p.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
      assert.equal(names.get('NATOPS_LOG_LEVEL'), 'debug', p.owner);
      const serve = p.spec.containers[0]?.args?.[0] === 'serve';
      assert.equal(names.get('NATOPS_REPOSITORY'), serve ? 'infra/nat' : undefined, p.owner);
      assert.equal(names.get('NATOPS_GIT_URL'), serve ? 'ssh://git@git.example/infra/nat.git' : undefined, p.owner);
    }
    // an external Redis: no StatefulSet, its password from the given Secret
    assert.equal(all(split, 'StatefulSet').length, 0);
    const env = pods[0]?.spec.containers[0]?.env ?? [];
    assert.deepEqual(env.find((e) => e.name === 'NATOPS_REDIS_PASSWORD')?.valueFrom?.secretKeyRef, {
      name: 'ext-redis',
      key: 'pw',
    });
    assert.equal(
      env.find((e) => e.name === 'NATOPS_REDIS_URL')?.value,
      'redis://:$(NATOPS_REDIS_PASSWORD)@redis.example:6380/2',
    );
  });

  it('the Ingress routes /webhook alone, to the webhook Service', () => {
    const [ing] = all<V1Ingress>(split, 'Ingress');
    assert.ok(ing);
    const paths = ing.spec?.rules?.flatMap((r) => r.http?.paths ?? []) ?? [];
    assert.deepEqual(
      paths.map((p) => [p.path, p.pathType, p.backend.service?.name, p.backend.service?.port?.name]),
      [['/webhook', 'Exact', 'natops-webhook', 'webhook']],
    );
    const dashboard = all<Rendered>(split, 'Service').find((s) => s.metadata.name === 'natops-dashboard');
    assert.ok(dashboard);
    assert.equal((dashboard.spec as { type?: string }).type, 'ClusterIP');
  });

  it("KEDA: a valid ScaledObject per handler on its queue's BullMQ lists, the password by TriggerAuthentication", () => {
    const auths = all<Rendered>(split, 'TriggerAuthentication');
    assert.equal(auths.length, 1);
    const auth = new TriggerAuthentication(
      auths[0] as unknown as ConstructorParameters<typeof TriggerAuthentication>[0],
    );
    auth.validate();
    assert.deepEqual(auth.spec.secretTargetRef, [{ parameter: 'password', name: 'ext-redis', key: 'pw' }]);
    const scaled = all<Rendered>(split, 'ScaledObject').map(
      (o) => new ScaledObject(o as unknown as ConstructorParameters<typeof ScaledObject>[0]),
    );
    assert.equal(scaled.length, HANDLER_KINDS.length);
    const deployments = new Set(all<V1Deployment>(split, 'Deployment').map((d) => d.metadata?.name));
    for (const kind of HANDLER_KINDS) {
      const so = scaled.find((s) => s.metadata?.labels?.['natops.io/handler'] === kind);
      assert.ok(so, `no ScaledObject for ${kind}`);
      so.validate();
      assert.ok(deployments.has(so.spec.scaleTargetRef.name), `${kind}: scales a Deployment the chart has`);
      assert.equal(so.spec.minReplicaCount, 0);
      assert.deepEqual(
        so.spec.triggers.map((t) => [t.type, t.metadata.listName, t.metadata.address, t.metadata.databaseIndex]),
        ['wait', 'active'].map((list) => [
          'redis',
          `${bullPrefix('natops')}:${kind}:${list}`,
          'redis.example:6380',
          '2',
        ]),
      );
      for (const t of so.spec.triggers) assert.equal(t.authenticationRef?.name, auths[0]?.metadata.name);
    }
    // the worker Deployments leave their replicas to KEDA
    for (const d of all<V1Deployment>(split, 'Deployment'))
      if (d.metadata?.labels?.['natops.io/handler']) assert.equal(d.spec?.replicas, undefined);
  });

  it('given secrets appear only in the Secret, and only as files in the pods', async () => {
    const objs = await renderChart({
      secrets: GIVEN_SECRETS,
      git: { url: 'https://git.example/infra/nat.git', username: 'natops' },
      publicUrl: 'https://natops.example.org',
    });
    checkSecurity(objs);
    const secret = all<V1Secret>(objs, 'Secret').find((s) => s.metadata?.name === 'natops');
    assert.ok(secret?.data);
    assert.equal(Buffer.from(secret.data['webhook-secret'] ?? '', 'base64').toString(), GIVEN_SECRETS.webhookSecret);
    const rest = JSON.stringify(objs.filter((o) => o.kind !== 'Secret'));
    for (const value of Object.values(GIVEN_SECRETS)) assert.ok(!rest.includes(value), `${value} leaked`);
    const env = natopsPods(objs)[0]?.spec.containers[0]?.env ?? [];
    for (const name of [
      'NATOPS_WEBHOOK_SECRET_FILE',
      'NATOPS_DASHBOARD_PASSWORD_FILE',
      'NATOPS_GITHUB_TOKEN_FILE',
      'NATOPS_GITHUB_PRIVATE_KEY_FILE',
      'NATOPS_GIT_PASSWORD_FILE',
      'NATOPS_GIT_SSH_KEY_FILE',
    ])
      assert.ok(
        env.some((e) => e.name === name),
        `${name} missing`,
      );
    assert.equal(env.find((e) => e.name === 'NATOPS_SOURCE')?.value, 'git-url');
    assert.equal(env.find((e) => e.name === 'NATOPS_GIT_URL')?.value, 'https://git.example/infra/nat.git');
    assert.ok(!env.some((e) => e.name === 'NATOPS_GIT_TOKEN_FILE'), 'a file for a secret not given');
    for (const name of ['NATOPS_WEBHOOK_SECRET', 'NATOPS_DASHBOARD_PASSWORD', 'NATOPS_GITHUB_TOKEN'])
      assert.ok(!env.some((e) => e.name === name), `${name} as an environment value`);
  });

  it('an existing Secret: the chart makes none and mounts the keys it is told of', async () => {
    const objs = await renderChart({
      secrets: { existingSecret: 'mine', existingKeys: ['webhook-secret', 'dashboard-password', 'github-token'] },
      publicUrl: 'https://natops.example.org',
    });
    assert.deepEqual(
      all<V1Secret>(objs, 'Secret').map((s) => s.metadata?.name),
      ['natops-redis'],
    );
    checkSecurity(objs);
    const vol = natopsPods(objs)[0]?.spec.volumes?.find((v) => v.name === 'secrets');
    assert.equal(vol?.secret?.secretName, 'mine');
  });

  it('the gateway settings: instance is the release name, images and namespace from the values', async () => {
    const objs = await renderChart(
      { gateways: { namespace: 'gw-prod', createNamespace: false, images: ['a/b:1', 'c/d:2'] } },
      { release: 'prod' },
    );
    assert.equal(all(objs, 'Namespace').length, 0);
    checkSecurity(
      objs.map((o) =>
        o.kind === 'RoleBinding'
          ? { ...o, subjects: (o.subjects as { namespace: string }[]).map((s) => ({ ...s, namespace: 'natops' })) }
          : o,
      ),
    );
    const env = new Map((natopsPods(objs)[0]?.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.get('NATOPS_INSTANCE'), 'prod');
    assert.equal(env.get('NATOPS_NAMESPACE'), 'gw-prod');
    assert.equal(env.get('NATOPS_GATEWAY_IMAGES'), 'a/b:1,c/d:2');
    assert.equal(env.get('NATOPS_ALLOW_CONTROL_PLANE'), 'false');
  });

  it("every natops pod's environment is a configuration natops accepts", () => {
    for (const objs of [defaults, split])
      for (const { owner, spec } of natopsPods(objs)) {
        // as the kubelet builds it: secretKeyRefs read, $(VAR) expanded from earlier variables
        const env: Record<string, string> = {};
        for (const e of spec.containers[0]?.env ?? []) {
          const raw = e.valueFrom?.secretKeyRef ? 'from-a-secret' : (e.value ?? '');
          env[e.name] = raw.replace(/\$\(([A-Z0-9_]+)\)/g, (m, name: string) => env[name] ?? m);
        }
        const c = loadConfig({}, env);
        assert.equal(c.runtime, 'kubernetes', owner);
        assert.equal(c.redisUrl?.includes(':from-a-secret@'), true, owner);
        assert.equal(c.instance, 'natops', owner);
        assert.deepEqual(c.gatewayImages, ['kubeovn/vpc-nat-gateway:v1.7.0'], owner);
        if (spec.containers[0]?.args?.[0] === 'serve') assert.equal(c.dashboardListen, '0.0.0.0:8081', owner);
      }
  });

  it('a wrong value fails helm template with the schema naming it', async () => {
    const cases: [object, RegExp][] = [
      [{ mode: 'bogus' }, /\/mode.*one of 'all-in-one', 'split'/],
      [{ webhook: { replicas: -1 } }, /\/webhook\/replicas.*minimum/],
      [{ workers: { kinds: ['dnat', 'nope'] } }, /\/workers\/kinds\/1/],
      [{ env: { NATOPS_WEBHOOK_SECRET: 'x' } }, /invalid propertyName 'NATOPS_WEBHOOK_SECRET'/],
      [{ redis: { enabled: false } }, /\/externalRedis\/url/],
      [{ keda: { enabled: true } }, /\/mode.*'split'/],
      [{ podSecurityContext: { runAsNonRoot: false } }, /\/podSecurityContext\/runAsNonRoot/],
      [{ gateways: { namespace: 'Not_A_Name' } }, /\/gateways\/namespace/],
      [{ replicas: 2 }, /additional properties 'replicas' not allowed/],
    ];
    for (const [values, message] of cases) {
      const r = await helmTemplate(values);
      assert.notEqual(r.code, 0, `${JSON.stringify(values)} rendered`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, message, `${JSON.stringify(values)}: ${r.stderr}`);
    }
  });

  it('GitHub credentials without publicUrl: refused, naming it (status links would point at 0.0.0.0)', async () => {
    const r = await helmTemplate({ secrets: { githubToken: 'ghp_x' } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /publicUrl: GitHub's statuses link to natops's dashboard/);
    const ok = await renderChart({ secrets: { githubToken: 'ghp_x' }, publicUrl: 'https://natops.example.org' });
    const env = natopsPods(ok)[0]?.spec.containers[0]?.env ?? [];
    assert.equal(env.find((e) => e.name === 'NATOPS_PUBLIC_URL')?.value, 'https://natops.example.org');
  });

  it('NOTES.txt says how to reach the dashboard and that uninstall leaves the gateways', async () => {
    const r = await helm(['install', 'natops', CHART, '--namespace', 'natops', '--dry-run=client', ...BASE_SET]);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    assert.match(notes, /port-forward svc\/natops-dashboard 8081/);
    assert.match(notes, /LEAVES THE GATEWAYS RUNNING/);
  });

  it('a mode change is an upgrade: the serve Deployment and its Services select the same pods in both modes', () => {
    const selector = (objs: Rendered[]) =>
      all<V1Deployment>(objs, 'Deployment').find((d) => d.metadata?.name === 'natops')?.spec?.selector;
    assert.ok(selector(defaults)?.matchLabels);
    assert.deepEqual(selector(split), selector(defaults), 'a Deployment selector cannot change');
    for (const svc of all<V1Service>(split, 'Service').filter((s) => s.metadata?.name !== 'natops-redis'))
      assert.deepEqual(svc.spec?.selector, selector(defaults)?.matchLabels, svc.metadata?.name);
  });

  it('every port names its protocol (server-side apply on older API servers needs it)', () => {
    for (const objs of [defaults, split]) {
      for (const svc of all<V1Service>(objs, 'Service'))
        for (const port of svc.spec?.ports ?? [])
          assert.equal(port.protocol, 'TCP', `${svc.metadata?.name} ${port.name}`);
      for (const { owner, spec } of podSpecs(objs))
        for (const port of spec.containers.flatMap((c) => c.ports ?? []))
          assert.equal(port.protocol, 'TCP', `${owner} ${port.name}`);
    }
  });

  it('uninstall.removeGateways: a pre-delete hook Job runs `natops remove-gateways --yes` as natops, and NOTES say so', async () => {
    assert.equal(all(defaults, 'Job').length, 0, 'no Job unless asked');
    const objs = await renderChart({ uninstall: { removeGateways: true, timeoutSeconds: 120 } });
    const [job] = all<V1Job>(objs, 'Job');
    assert.ok(job);
    assert.equal(job.metadata?.annotations?.['helm.sh/hook'], 'pre-delete');
    assert.equal(job.spec?.activeDeadlineSeconds, 120);
    const pod = job.spec!.template.spec!;
    assert.equal(pod.serviceAccountName, 'natops');
    // its own wait ends 30 s before the Job's deadline: a busy job fails it with its own message
    assert.deepEqual(pod.containers[0]?.args, ['remove-gateways', '--yes', '--timeout', '90']);
    const env = pod.containers[0]?.env ?? [];
    assert.equal(env.find((e) => e.name === 'NATOPS_INSTANCE')?.value, 'natops');
    assert.equal(env.find((e) => e.name === 'NATOPS_NAMESPACE')?.value, 'natops-gateways');
    assert.ok(!pod.volumes?.some((v) => v.secret), "no secret of natops but Redis's password");
    const r = await helm([
      'install',
      'natops',
      CHART,
      '--dry-run=client',
      ...BASE_SET,
      '--set',
      'uninstall.removeGateways=true',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.slice(r.stdout.indexOf('NOTES:')), /REMOVES THE GATEWAYS first/);
  });

  it('renders for a release whose values predate uninstall.* (helm upgrade --reuse-values)', async () => {
    const objs = await renderChart({ uninstall: null });
    assert.equal(all(objs, 'Job').length, 0);
    const r = await helm(['install', 'natops', CHART, '--dry-run=client', ...BASE_SET, '--set', 'uninstall=null']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /LEAVES THE GATEWAYS RUNNING/);
  });

  it('no repository to read: refused at install, naming git.url (a pod would crash-loop saying it)', async () => {
    const r = await helmTemplate({ git: { url: null } });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /git\.url: natops needs a repository to read/);
    const github = await renderChart({
      git: { url: null },
      env: { NATOPS_SOURCE: 'github', NATOPS_REPOSITORY: 'infra/nat' },
      secrets: { githubToken: 'ghp_x' },
      publicUrl: 'https://natops.example.org',
    });
    assert.ok(natopsPods(github).length);
  });
});
