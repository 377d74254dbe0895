// Least privilege, both ways: the runtime's whole sequence (a pod that never gets ready and why,
// server-side apply, exec, the replacement watch, listing, a change to the StatefulSet form with
// a stuck pod deleted, removal) passes under the shipped Role, and fails when any one permission
// of that Role is taken away; every variant runs at once. Network mode kube-ovn on the cluster's
// own network, with a host veth of the test's own as the macvlan master: no traffic.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayNotReadyError } from '../../runtime/kubernetes/runtime.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { KubeHarness, seedOnHostVeth, shippedPermissions, type Permission } from '../helpers/k8s.ts';

/** an image the policy allows that is not on the node (and no registry is reachable) */
const MISSING_IMAGE = 'kubeovn/vpc-nat-gateway:v1.7.0';

/** What the runtime does in production, in order; throws at the first refusal. */
async function sequence(k: KubeHarness, spec: GatewaySpec): Promise<void> {
  // (every variant runs at once: on two cores a pod may take more than a few seconds to start,
  // so the pods that do start get the runtime's default readiness timeout)
  const runtime = k.runtime({ mode: 'kube-ovn' });
  // The same runtime for the pods that never get ready: it gives up after 3 s instead of waiting
  // out a long timeout, and the admin then sees the pod there, failing to pull its image.
  const impatient = k.runtime({ mode: 'kube-ovn', readyTimeoutMs: 3_000 });
  const neverReady = async (s: GatewaySpec, controller: 'ReplicaSet' | 'StatefulSet') => {
    await impatient.ensureGateway(s).then(
      () => {
        throw new Error(`a ${s.workload.kind ?? 'Deployment'} pod with a missing image became ready`);
      },
      (e: unknown) => {
        if (!(e instanceof GatewayNotReadyError)) throw e;
      },
    );
    await k.podFailingToPull(MISSING_IMAGE, controller);
  };
  const watch = runtime.watchReplacements(() => undefined);
  try {
    await Promise.race([
      watch.started,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the pod watch did not start')), 10_000)),
    ]);
    const broken = { ...spec, workload: { ...spec.workload, image: MISSING_IMAGE } };
    await neverReady(broken, 'ReplicaSet');
    const { handle } = await runtime.ensureGateway(spec);
    await handle.readState();
    assert.deepEqual(await runtime.listGateways(), [spec.name]);
    // Kube-OVN's current form: a StatefulSet whose pod never gets ready (the Deployment stays),
    // then the fixed one, whose stuck pod natops deletes; the Deployment goes once it answers
    const sts = { ...spec, workload: { ...spec.workload, kind: 'StatefulSet' as const } };
    await neverReady({ ...sts, workload: { ...sts.workload, image: MISSING_IMAGE } }, 'StatefulSet');
    // meanwhile the gateway is still the Deployment's pod, which answers
    assert.match((await runtime.gateway(spec.name))?.location ?? '', /^pod \S+\/vpc-nat-gw-ngw-[a-z0-9]+-[a-z0-9]+$/);
    await (await runtime.ensureGateway(sts)).handle.readState();
    assert.deepEqual(await runtime.listGateways(), [spec.name]);
    assert.equal(await runtime.removeGateway(spec.name), true);
  } finally {
    watch.stop();
  }
}

/** The sequence in a namespace of its own whose Role lacks `without` (none: the whole Role): its error, if any. */
async function attempt(spec: GatewaySpec, without?: Permission): Promise<Error | undefined> {
  const k = await KubeHarness.create({ without });
  try {
    await sequence(k, spec);
    return undefined;
  } catch (e) {
    return e as Error;
  } finally {
    await k.close();
  }
}

describe('the shipped Role is what the runtime needs, no more', () => {
  let veth: Awaited<ReturnType<typeof seedOnHostVeth>> | undefined;
  /** the sequence under the whole Role, and under the Role less each permission: all at once */
  let whole: Promise<Error | undefined> | undefined;
  let lessOne: Promise<{ without: Permission; failed: boolean; why: string }[]> | undefined;

  before(async () => {
    veth = await seedOnHostVeth('nr');
    const spec = veth.spec;
    // WebSocket exec is authorized as "get" on pods/exec before Kubernetes 1.30 and as "create"
    // from then on; the Role grants both and this 1.20 cluster can show only the first.
    const permissions = (await shippedPermissions()).filter(
      (p) => !(p.resource === 'pods/exec' && p.verb === 'create'),
    );
    whole = attempt(spec);
    lessOne = Promise.all(
      permissions.map(async (without) => {
        const e = await attempt(spec, without);
        return { without, failed: e !== undefined, why: e?.message ?? '' };
      }),
    );
    // each is awaited by its test: a harness that could not be made fails that test, and is never
    // an unhandled rejection meanwhile
    for (const p of [whole, lessOne]) p.catch(() => undefined);
  });
  after(async () => {
    await Promise.allSettled([whole, lessOne]);
    await veth?.remove();
  });

  it('with the whole Role the sequence passes', async () => {
    const e = await whole!;
    if (e) throw e;
  });

  it('without any one of its permissions the sequence fails', async () => {
    const outcomes = await lessOne!;
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
