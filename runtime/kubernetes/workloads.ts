// A gateway's workload in either of Kube-OVN's forms, as the runtime reads, lists, waits for and
// deletes it: 1.7's Deployment (pods through a ReplicaSet) or the current StatefulSet (pods of
// its own). Everything here is one kind's API call or status rule; runtime.ts decides what to do.
import {
  type AppsV1Api,
  type KubeConfig,
  type V1Deployment,
  type V1Pod,
  type V1StatefulSet,
  Watch,
} from '@kubernetes/client-node';
import type { WorkloadKind } from '../../dataplane/model.ts';
import { api, maybe } from './api.ts';
import { GATEWAY_LABEL, isOurs, MANAGED_SELECTOR, ownSelector } from './objects.ts';

/** A workload as read, its kind always set (the API's list items may leave it out). */
export type GatewayWorkloadObject = (V1Deployment & { kind: 'Deployment' }) | (V1StatefulSet & { kind: 'StatefulSet' });

/** The label a StatefulSet's controller puts on each pod: the revision its template is. */
const REVISION_LABEL = 'controller-revision-hash';

const describeWorkload = (w: { kind: string; metadata?: { namespace?: string; name?: string } }) =>
  `${w.kind} ${w.metadata?.namespace}/${w.metadata?.name}`;
export { describeWorkload };

export class Workloads {
  constructor(
    private readonly apps: AppsV1Api,
    private readonly ns: string,
    private readonly instance: string,
  ) {}

  /** The workload of that kind and name, whoever made it. */
  async read(kind: WorkloadKind, name: string): Promise<GatewayWorkloadObject | undefined> {
    const what = `read ${kind} ${this.ns}/${name}`;
    if (kind === 'Deployment') {
      const d = await maybe(what, () => this.apps.readNamespacedDeployment({ name, namespace: this.ns }));
      return d && { ...d, kind };
    }
    const s = await maybe(what, () => this.apps.readNamespacedStatefulSet({ name, namespace: this.ns }));
    return s && { ...s, kind };
  }

  /**
   * This instance's workloads, of one gateway or of all: both kinds, by natops's labels, and only
   * those whose name is the gateway's in their form (`app` is the name, and it ends in the
   * gateway's: a StatefulSet's prefix is the ConfigMap's of its day).
   */
  async ours(gateway?: string): Promise<GatewayWorkloadObject[]> {
    const labelSelector = ownSelector(this.instance, gateway);
    const [deployments, statefulSets] = await Promise.all([
      api('list gateway Deployments', () => this.apps.listNamespacedDeployment({ namespace: this.ns, labelSelector })),
      api('list gateway StatefulSets', () =>
        this.apps.listNamespacedStatefulSet({ namespace: this.ns, labelSelector }),
      ),
    ]);
    const all: GatewayWorkloadObject[] = [
      ...deployments.items.map((d) => ({ ...d, kind: 'Deployment' as const })),
      ...statefulSets.items.map((s) => ({ ...s, kind: 'StatefulSet' as const })),
    ];
    return all.filter((w) => {
      const g = w.metadata?.labels?.[GATEWAY_LABEL];
      const name = w.metadata?.name ?? '';
      return (
        g !== undefined &&
        isOurs(w.metadata?.labels, this.instance, g) &&
        name.endsWith(`-${g}`) &&
        (w.kind === 'StatefulSet' || name === `vpc-nat-gw-${g}`)
      );
    });
  }

  /** Whether any natops instance has a gateway workload in the namespace (the shared external network stays). */
  async anyManaged(): Promise<boolean> {
    const [d, s] = await Promise.all([
      api('list natops Deployments', () =>
        this.apps.listNamespacedDeployment({ namespace: this.ns, labelSelector: MANAGED_SELECTOR, limit: 1 }),
      ),
      api('list natops StatefulSets', () =>
        this.apps.listNamespacedStatefulSet({ namespace: this.ns, labelSelector: MANAGED_SELECTOR, limit: 1 }),
      ),
    ]);
    return d.items.length + s.items.length > 0;
  }

  /** Deletes exactly the workload read (a UID precondition): one made again meanwhile is not ours to delete. */
  async delete(w: GatewayWorkloadObject): Promise<boolean> {
    const name = w.metadata!.name!;
    const body = { preconditions: { uid: w.metadata?.uid }, propagationPolicy: 'Background', gracePeriodSeconds: 0 };
    const gone = await maybe(`delete ${describeWorkload(w)}`, () =>
      w.kind === 'Deployment'
        ? this.apps.deleteNamespacedDeployment({ name, namespace: this.ns, body })
        : this.apps.deleteNamespacedStatefulSet({ name, namespace: this.ns, body }),
    );
    return gone !== undefined;
  }
}

/**
 * Whether the workload has rolled out its current template to one Ready pod, none other: an old
 * pod still answering is not taken for the new one.
 */
export function rolledOut(w: GatewayWorkloadObject): boolean {
  const s = w.status;
  const observed = (s?.observedGeneration ?? 0) >= (w.metadata?.generation ?? 0);
  const one = s?.replicas === 1 && s?.readyReplicas === 1 && s?.updatedReplicas === 1;
  if (w.kind === 'Deployment') return observed && one;
  // a StatefulSet's rollout is done when its current revision is the update revision
  return observed && one && w.status?.currentRevision === w.status?.updateRevision;
}

/** Whether a pod runs the workload's current template (a Deployment's pods are told apart by rolledOut). */
export function isCurrentPod(w: GatewayWorkloadObject, pod: V1Pod): boolean {
  if (w.kind === 'Deployment') return true;
  const update = w.status?.updateRevision;
  return update === undefined || pod.metadata?.labels?.[REVISION_LABEL] === update;
}

/**
 * A StatefulSet's pod of an older template that is not Ready: the StatefulSet controller does
 * not replace it (it waits for every pod to be Ready before it rolls one, Kubernetes issue
 * 67250), so a gateway whose pod never started (a wrong image) would stay broken after the fix.
 * natops deletes such a pod; the controller then makes it again from the current template.
 */
export function isStuckPod(w: GatewayWorkloadObject, pod: V1Pod, ready: boolean): boolean {
  return w.kind === 'StatefulSet' && !ready && pod.metadata?.deletionTimestamp === undefined && !isCurrentPod(w, pod);
}

/**
 * Calls `check` until it returns a value or the deadline passes (then undefined): again on each
 * event of the pods `where` selects, else every half second (a workload's status trails its
 * pods'). The common case, a pod that is there already, costs no watch.
 */
export async function untilPodEvent<T>(
  kc: KubeConfig,
  where: { namespace: string; labelSelector: string },
  deadline: number,
  check: () => Promise<T | undefined>,
): Promise<T | undefined> {
  const now = await check();
  if (now !== undefined) return now;
  let watch: AbortController | undefined;
  // each pod event wakes the loop once; the watch ending early leaves the short pause
  let wake: () => void = () => undefined;
  let finished = false;
  try {
    void new Watch(kc)
      .watch(
        `/api/v1/namespaces/${where.namespace}/pods`,
        { labelSelector: where.labelSelector },
        () => wake(),
        () => wake(),
      )
      .then(
        (w) => {
          watch = w;
          if (finished) w.abort(); // done before the watch was up
        },
        () => wake(),
      );
    for (;;) {
      const found = await check();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    finished = true;
    watch?.abort();
  }
}
