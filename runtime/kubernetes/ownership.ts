// Whether a pod is the gateway's own: natops execs its transaction, its reads and its
// `ip link set down` only into a pod its own Deployment made. Labels can be copied by anyone who
// may create pods in the namespace (or come from Kube-OVN's own gateway of the same name), so
// the check is the chain of controller references: pod -> ReplicaSet -> the Deployment's UID
// (written by whoever creates the pod: it stops mistakes and other controllers, not someone
// allowed to create pods in the namespace).
import type { V1Deployment, V1OwnerReference, V1Pod, V1ReplicaSet } from '@kubernetes/client-node';
import { CONTAINER, isOurs } from './objects.ts';

/** The ReplicaSet of that name, or undefined when there is none. */
export type ReadReplicaSet = (name: string) => Promise<V1ReplicaSet | undefined>;

const controllerOf = (refs: V1OwnerReference[] | undefined) => refs?.find((r) => r.controller === true);

/**
 * Who controls a pod, through its ReplicaSet: a Deployment (its UID); `gone` when the ReplicaSet
 * it names no longer exists (the garbage collector removes such a pod); `other` when the chain is
 * not ReplicaSet -> Deployment (a bare pod, a pod of a StatefulSet, of a ReplicaSet of its own).
 */
export async function podController(
  pod: V1Pod,
  readReplicaSet: ReadReplicaSet,
): Promise<{ deployment: string } | 'gone' | { other: string }> {
  const ref = controllerOf(pod.metadata?.ownerReferences);
  if (!ref) return { other: 'it has no controller' };
  if (ref.kind !== 'ReplicaSet' || ref.apiVersion !== 'apps/v1')
    return { other: `its controller is ${ref.kind} ${ref.name}, not a ReplicaSet` };
  const rs = await readReplicaSet(ref.name);
  if (!rs || rs.metadata?.uid !== ref.uid) return 'gone';
  const owner = controllerOf(rs.metadata?.ownerReferences);
  if (owner?.kind !== 'Deployment' || owner.apiVersion !== 'apps/v1' || !owner.uid)
    return { other: `its ReplicaSet ${ref.name} is not a Deployment's` };
  return { deployment: owner.uid };
}

/**
 * Why a pod is not the gateway's own pod of Deployment `d` (undefined: it is). Besides the
 * ownership chain: natops's labels for this instance and gateway, the container natops execs
 * into, and not the host's network (`ip link set eth0 down` there would take the node's down).
 */
export async function notOwnedReason(
  pod: V1Pod,
  d: V1Deployment,
  expect: { instance: string; gateway: string },
  readReplicaSet: ReadReplicaSet,
): Promise<string | undefined> {
  if (!isOurs(pod.metadata?.labels, expect.instance, expect.gateway))
    return `it lacks natops's labels for instance ${expect.instance}`;
  if (pod.spec?.hostNetwork === true) return "it uses the host's network";
  if (!pod.spec?.containers.some((c) => c.name === CONTAINER)) return `it has no container ${CONTAINER}`;
  const controller = await podController(pod, readReplicaSet);
  if (controller === 'gone') return 'its ReplicaSet is gone';
  if ('other' in controller) return controller.other;
  if (controller.deployment !== d.metadata?.uid)
    return `its ReplicaSet belongs to another Deployment (UID ${controller.deployment}, not ${d.metadata?.uid})`;
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
