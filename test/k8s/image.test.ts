// natops's own image (Dockerfile; scripts/natops-image.sh builds it and .ci/run loads it into the
// test cluster) run as a pod: as its unprivileged user, on Node 24 in production mode, with the
// compiled code and production dependencies only; `natops serve --runtime kubernetes` in it, on
// a Redis outside the pod and the cluster's API through its ServiceAccount, answers /healthz and
// /readyz, and the image's own HEALTHCHECK command is what makes the pod Ready.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { podReadiness } from '../../runtime/kubernetes/pods.ts';
import { KUBECONFIG, KubeHarness } from '../helpers/k8s.ts';

const VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
/** loaded into the cluster by .ci/run (scripts/natops-image.sh, then cluster.sh load-image) */
const IMAGE = process.env.NATOPS_IMAGE ?? `natops/natops:${VERSION}`;
const IMAGE_TAR = process.env.NATOPS_IMAGE_TAR ?? '/var/cache/natops/natops-image.tar';
/** the test cluster's bridge address on the node: pods reach the host there */
const NODE_ADDRESS = '10.244.0.1';
const run = promisify(execFile);

/** The image's configuration (User, Env, Healthcheck, ...) from its docker-archive. */
async function imageConfig(): Promise<{
  User?: string;
  Env?: string[];
  Healthcheck?: { Test?: string[] };
  Entrypoint?: string[];
}> {
  if (!existsSync(IMAGE_TAR))
    throw new Error(`no image archive ${IMAGE_TAR}: make it with scripts/natops-image.sh (as .ci/run does)`);
  const manifest = JSON.parse((await run('tar', ['-xOf', IMAGE_TAR, 'manifest.json'])).stdout) as {
    Config: string;
    RepoTags: string[];
  }[];
  // the tag the cluster's containerd takes it as (a short name is docker.io's)
  assert.ok(manifest[0]?.RepoTags.includes(`docker.io/${IMAGE}`), String(manifest[0]?.RepoTags));
  const config = JSON.parse((await run('tar', ['-xOf', IMAGE_TAR, manifest[0]!.Config])).stdout);
  return config.config;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, NODE_ADDRESS, r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("natops's image, run as a pod", () => {
  let k: KubeHarness;
  let redis: ChildProcess | undefined;
  let podIp = '';
  const pod = 'natops';
  const exec = async (...argv: string[]) =>
    run('kubectl', ['--kubeconfig', KUBECONFIG, '-n', k.namespace, 'exec', pod, '--', ...argv], { timeout: 30_000 });

  before(async () => {
    const config = await imageConfig();
    k = await KubeHarness.create();
    // natops's Redis (with a password, as natops wants it) on the node, where the pod reaches it
    const port = await freePort();
    const password = randomBytes(12).toString('hex');
    redis = spawn(
      'redis-server',
      ['--bind', NODE_ADDRESS, '--port', String(port), '--requirepass', password, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const redisFailed = new Promise<never>((_, reject) => {
      redis!.once('error', (e) => reject(new Error(`redis-server: ${e.message}`)));
    });
    redisFailed.catch(() => undefined);
    // serve as the image's entrypoint runs it, on a bare repository of its own (the planner needs one)
    await k.core.createNamespacedPod({
      namespace: k.namespace,
      body: {
        metadata: { name: pod },
        spec: {
          serviceAccountName: 'natops',
          terminationGracePeriodSeconds: 0,
          securityContext: { runAsNonRoot: true },
          containers: [
            {
              name: 'natops',
              image: IMAGE,
              imagePullPolicy: 'Never',
              command: ['sh', '-c', 'git init -q --bare /var/lib/natops/gitops.git && exec natops serve'],
              env: [
                { name: 'NATOPS_RUNTIME', value: 'kubernetes' },
                { name: 'NATOPS_NAMESPACE', value: k.namespace },
                { name: 'NATOPS_REPO', value: '/var/lib/natops/gitops.git' },
                { name: 'NATOPS_LISTEN', value: '0.0.0.0:8080' },
                { name: 'NATOPS_WEBHOOK_SECRET', value: randomBytes(12).toString('hex') },
                { name: 'NATOPS_REDIS_URL', value: `redis://:${password}@${NODE_ADDRESS}:${port}` },
              ],
              // the image's own HEALTHCHECK command decides readiness
              readinessProbe: {
                exec: { command: config.Healthcheck?.Test?.slice(1) ?? ['false'] },
                periodSeconds: 1,
                timeoutSeconds: 5,
              },
            },
          ],
        },
      },
    });
    const end = Date.now() + 90_000;
    for (;;) {
      const p = await k.core.readNamespacedPod({ name: pod, namespace: k.namespace });
      if (podReadiness(p).ready) {
        podIp = p.status!.podIP!;
        break;
      }
      if (Date.now() > end) {
        const logs = await run('kubectl', ['--kubeconfig', KUBECONFIG, '-n', k.namespace, 'logs', pod]).catch(
          (e: Error) => ({ stdout: e.message }),
        );
        throw new Error(`natops pod not ready: ${JSON.stringify(p.status)}\n${logs.stdout}`);
      }
      await Promise.race([new Promise((r) => setTimeout(r, 500)), redisFailed]);
    }
  });
  after(async () => {
    redis?.kill();
    await k?.close();
  });

  it('is configured as it should be: non-root user, NODE_ENV=production, a HEALTHCHECK on /healthz with node', async () => {
    const config = await imageConfig();
    assert.equal(config.User, '10001:10001');
    assert.ok(config.Env?.includes('NODE_ENV=production'), String(config.Env));
    assert.deepEqual(config.Healthcheck?.Test, ['CMD', 'node', '/opt/natops/healthcheck.mjs']);
    assert.deepEqual(config.Entrypoint, ['node', '/opt/natops/bin/natops.js']);
  });

  it('runs as uid 10001 (natops), not root, with NODE_ENV=production on Node 24', async () => {
    assert.equal((await exec('id', '-u')).stdout.trim(), '10001');
    assert.equal((await exec('id', '-un')).stdout.trim(), 'natops');
    assert.equal((await exec('node', '-p', 'process.env.NODE_ENV')).stdout.trim(), 'production');
    assert.match((await exec('node', '--version')).stdout, /^v24\./);
  });

  it('natops --version and --help run the compiled code, without a warning', async () => {
    const version = await exec('natops', '--version');
    assert.equal(version.stdout.trim(), VERSION);
    assert.equal(version.stderr, '');
    const help = await exec('natops', '--help');
    assert.match(help.stdout, /^\s+serve\b/m);
    assert.match(help.stdout, /^\s+worker\b/m);
    assert.equal(help.stderr, '');
  });

  it('holds the compiled code and production dependencies only', async () => {
    const present = async (path: string) =>
      (await exec('sh', '-c', `test -e ${path} && echo yes || echo no`)).stdout.trim();
    assert.equal(await present('/opt/natops/dist/cli/main.js'), 'yes');
    assert.equal(await present('/opt/natops/node_modules/bullmq'), 'yes');
    for (const absent of [
      '/opt/natops/cli',
      '/opt/natops/test',
      '/opt/natops/node_modules/@biomejs',
      '/opt/natops/node_modules/fast-check',
      '/opt/natops/node_modules/playwright-core',
    ])
      assert.equal(await present(absent), 'no', absent);
  });

  it('natops serve in it answers /healthz, and /readyz with its Redis and cluster reached', async () => {
    const health = await fetch(`http://${podIp}:8080/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    // ready: Redis answered (through its password) and the Kubernetes API through the pod's ServiceAccount
    let ready: Response | undefined;
    for (let i = 0; i < 40; i++) {
      ready = await fetch(`http://${podIp}:8080/readyz`);
      if (ready.status === 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(ready?.status, 200, await ready?.text());
    // the HEALTHCHECK command itself, as the container runtime would run it
    await exec('node', '/opt/natops/healthcheck.mjs');
  });
});
