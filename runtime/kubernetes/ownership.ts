// Whether a pod is the gateway's own: natops execs its transaction, its reads and its
// `ip link set down` only into a pod its own workload made. Labels can be copied by anyone who
// may create pods in the namespace (or come from Kube-OVN's own gateway of the same name), so
// the check is the chain of controller references, by UID: pod -> ReplicaSet -> the Deployment
// (Kube-OVN 1.7's form), or pod -> the StatefulSet (the current form). Owner references are
// written by whoever creates the pod: this stops mistakes and other controllers, not someone
// allowed to create pods in the namespace.
import type { V1OwnerReference, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import type { WorkloadKind } from '../../dataplane/model.ts';
import { CONTAINER, isOurs } from './objects.ts';

/** The ReplicaSet of that name, or undefined when there is none. */
export type ReadReplicaSet = (name: string) => Promise<V1ReplicaSet | undefined>;

/** A gateway workload as ownership needs it: its kind (absent: a Deployment, as before StatefulSets) and UID. */
export interface WorkloadIdentity {
  kind?: string | undefined;
  metadata?: { uid?: string | undefined } | undefined;
}

const controllerOf = (refs: V1OwnerReference[] | undefined) => refs?.find((r) => r.controller === true);

/**
 * Who controls a pod: a Deployment through its ReplicaSet, or a StatefulSet directly (its kind
 * and UID); `gone` when the ReplicaSet it names no longer exists (the garbage collector removes
 * such a pod); `other` for any other chain (a bare pod, a ReplicaSet of its own, a Job).
 */
export async function podController(
  pod: V1Pod,
  readReplicaSet: ReadReplicaSet,
): Promise<{ kind: WorkloadKind; uid: string } | 'gone' | { other: string }> {
  const ref = controllerOf(pod.metadata?.ownerReferences);
  if (!ref) return { other: 'it has no controller' };
  // a StatefulSet's pod names it directly (no ReplicaSet between them)
  if (ref.kind === 'StatefulSet' && ref.apiVersion === 'apps/v1' && ref.uid)
    return { kind: 'StatefulSet', uid: ref.uid };
  if (ref.kind !== 'ReplicaSet' || ref.apiVersion !== 'apps/v1')
    return { other: `its controller is ${ref.kind} ${ref.name}, not a ReplicaSet or a StatefulSet` };
  const rs = await readReplicaSet(ref.name);
  if (!rs || rs.metadata?.uid !== ref.uid) return 'gone';
  const owner = controllerOf(rs.metadata?.ownerReferences);
  if (owner?.kind !== 'Deployment' || owner.apiVersion !== 'apps/v1' || !owner.uid)
    return { other: `its ReplicaSet ${ref.name} is not a Deployment's` };
  return { kind: 'Deployment', uid: owner.uid };
}

/**
 * Why a pod is not the gateway's own pod of workload `w` (undefined: it is). Besides the
 * ownership chain: natops's labels for this instance and gateway (unless `labelled` is false: an
 * adopted workload's later pods have Kube-OVN's template's), the container natops execs into,
 * and not the host's network (`ip link set eth0 down` there would take the node's down).
 */
export async function notOwnedReason(
  pod: V1Pod,
  w: WorkloadIdentity,
  expect: { instance: string; gateway: string; labelled?: boolean },
  readReplicaSet: ReadReplicaSet,
): Promise<string | undefined> {
  if (expect.labelled !== false && !isOurs(pod.metadata?.labels, expect.instance, expect.gateway))
    return `it lacks natops's labels for instance ${expect.instance}`;
  if (pod.spec?.hostNetwork === true) return "it uses the host's network";
  if (!pod.spec?.containers.some((c) => c.name === CONTAINER)) return `it has no container ${CONTAINER}`;
  const kind: WorkloadKind = w.kind === 'StatefulSet' ? 'StatefulSet' : 'Deployment';
  const controller = await podController(pod, readReplicaSet);
  if (controller === 'gone') return 'its ReplicaSet is gone';
  if ('other' in controller) return controller.other;
  if (controller.kind !== kind) return `its controller is a ${controller.kind}, not the gateway's ${kind}`;
  if (controller.uid !== w.metadata?.uid)
    return kind === 'Deployment'
      ? `its ReplicaSet belongs to another Deployment (UID ${controller.uid}, not ${w.metadata?.uid})`
      : `its StatefulSet is another one (UID ${controller.uid}, not ${w.metadata?.uid})`;
  return undefined;
}

/** The macvlan an external network's CNI config describes, for comparing two of them. */
export function macvlanOf(config: unknown): { type?: unknown; master?: unknown; mode?: unknown } | undefined {
  if (typeof config !== 'string') return undefined;
  try {
    const c = JSON.parse(config) as unknown;
    if (!c || typeof c !== 'object') return undefined;
    const { type, master, mode } = c as Record<string, unknown>;
    return { type, master, mode };
  } catch {
    return undefined;
  }
}
