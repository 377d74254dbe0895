// Least privilege, both ways: the runtime's whole sequence (a pod that never gets ready and why,
// server-side apply, exec, the replacement watch, listing, a change to the StatefulSet form with
// a stuck pod deleted, removal) passes under the shipped Role, and fails when any one permission
// of that Role is taken away. Network mode kube-ovn on the cluster's own network, with a host
// veth of the test's own as the macvlan master: no traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayNotReadyError } from '../../runtime/kubernetes/runtime.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { KubeHarness, seedOnHostVeth, shippedPermissions, type Permission } from '../helpers/k8s.ts';

/** What the runtime does in production, in order; throws at the first refusal. */
async function sequence(k: KubeHarness, spec: GatewaySpec): Promise<void> {
  // (every variant runs at once: on two cores a pod may take more than a few seconds to start)
  const runtime = k.runtime({ mode: 'kube-ovn', readyTimeoutMs: 20_000 });
  const watch = runtime.watchReplacements(() => undefined);
  try {
    await Promise.race([
      watch.started,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the pod watch did not start')), 10_000)),
    ]);
    // an image the policy allows that is not on the node (and no registry is reachable)
    const broken = { ...spec, workload: { ...spec.workload, image: 'kubeovn/vpc-nat-gateway:v1.7.0' } };
    await runtime.ensureGateway(broken).then(
      () => {
        throw new Error('a pod with a missing image became ready');
      },
      (e: unknown) => {
        if (!(e instanceof GatewayNotReadyError)) throw e;
      },
    );
    const { handle } = await runtime.ensureGateway(spec);
    await handle.readState();
    assert.deepEqual(await runtime.listGateways(), [spec.name]);
    // Kube-OVN's current form: a StatefulSet whose pod never gets ready (the Deployment stays),
    // then the fixed one, whose stuck pod natops deletes; the Deployment goes once it answers
    const sts = { ...spec, workload: { ...spec.workload, kind: 'StatefulSet' as const } };
    await runtime.ensureGateway({ ...sts, workload: { ...sts.workload, image: broken.workload.image } }).then(
      () => {
        throw new Error('a StatefulSet pod with a missing image became ready');
      },
      (e: unknown) => {
        if (!(e instanceof GatewayNotReadyError)) throw e;
      },
    );
    // meanwhile the gateway is still the Deployment's pod, which answers
    assert.match((await runtime.gateway(spec.name))?.location ?? '', /^pod \S+\/vpc-nat-gw-ngw-[a-z0-9]+-[a-z0-9]+$/);
    await (await runtime.ensureGateway(sts)).handle.readState();
    assert.deepEqual(await runtime.listGateways(), [spec.name]);
    assert.equal(await runtime.removeGateway(spec.name), true);
  } finally {
    watch.stop();
  }
}

describe('the shipped Role is what the runtime needs, no more', () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  let spec: GatewaySpec;

  before(async () => {
    veth = await seedOnHostVeth('nr');
    spec = veth.spec;
  });
  after(async () => {
    await veth?.remove();
  });

  it('with the whole Role the sequence passes', async () => {
    const k = await KubeHarness.create();
    try {
      await sequence(k, spec);
    } finally {
      await k.close();
    }
  });

  it('without any one of its permissions the sequence fails', async () => {
    // WebSocket exec is authorized as "get" on pods/exec before Kubernetes 1.30 and as "create"
    // from then on; the Role grants both and this 1.20 cluster can show only the first.
    const permissions = (await shippedPermissions()).filter(
      (p) => !(p.resource === 'pods/exec' && p.verb === 'create'),
    );
    const outcomes = await Promise.all(
      permissions.map(async (without: Permission) => {
        const k = await KubeHarness.create({ without });
        try {
          await sequence(k, spec);
          return { without, failed: false, why: '' };
        } catch (e) {
          return { without, failed: true, why: (e as Error).message };
        } finally {
          await k.close();
        }
      }),
    );
    const excess = outcomes
      .filter((o) => !o.failed)
      .map((o) => `${o.without.group || 'core'}/${o.without.resource} ${o.without.verb}`);
    assert.deepEqual(excess, [], `the runtime does not need: ${excess.join(', ')}`);
    for (const o of outcomes)
      assert.match(
        o.why,
        /forbidden|Forbidden|\b403\b|did not start/,
        `${o.without.resource} ${o.without.verb}: ${o.why}`,
      );
  });
});
