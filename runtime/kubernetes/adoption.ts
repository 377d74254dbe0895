// Adopting the gateways Kube-OVN runs (docs/export.md, "Adopting Kube-OVN's gateways"): natops
// takes over Kube-OVN's workload as it is, so its pod, the rules in it and the connections through
// them live on. Adopting only relabels: the workload gets natops's labels and a record of the
// adoption, loses Kube-OVN's owner reference (deleting the VpcNatGateway would delete it) and
// Kube-OVN's own label on the workload object (Kube-OVN's garbage collector deletes a labelled
// StatefulSet no VpcNatGateway names); its pods get natops's labels. Neither selector nor template
// changes, so no pod restarts. natops keeps such a workload while its pod runs what Git asks
// (adoptedDifferences), and replaces it with its own at the first change that needs another pod.
// A pod the workload makes later has its template's labels only: adopting again labels it.
import {
  type AppsV1Api,
  type CoreV1Api,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  type V1Pod,
} from '@kubernetes/client-node';
import { NatopsError } from '../../common/errors.ts';
import { api, maybe } from './api.ts';
import { ANNOTATIONS, CONTAINER, isManaged, isOurs, ownLabels, VPC_NAT_GW_LABEL } from './objects.ts';
import { podController } from './ownership.ts';
import { describeWorkload, type GatewayWorkloadObject, Workloads } from './workloads.ts';
import type { WorkloadKind } from '../../dataplane/model.ts';

/** On an adopted workload: when, and by what, as JSON (AdoptionRecord). */
export const ADOPTED_ANNOTATION = 'natops.io/adopted';

export interface AdoptionRecord {
  at: string;
  from: 'kube-ovn';
  by: string;
}

export const isAdopted = (w: { metadata?: { annotations?: Record<string, string> } }): boolean =>
  w.metadata?.annotations?.[ADOPTED_ANNOTATION] !== undefined;

/** The pod template as natops would write it (runtime/kubernetes/objects.ts, gatewayWorkload). */
interface DesiredTemplate {
  spec: {
    template: {
      metadata: { annotations: Record<string, string> };
      spec: { containers: { name: string; image?: string | undefined; securityContext?: { privileged?: boolean } }[] };
    };
  };
}

/**
 * What the adopted workload's pod does differently from the one natops would make (empty: it
 * runs what Git asks, and natops keeps it): the image, whether it is privileged, and the
 * annotations that place it (its gateway, logical switch, lanIp and networks). Placement
 * (nodeSelector, tolerations, affinity) and Kube-OVN's own parts (route annotations, its
 * environment) are not compared: they act only when a pod starts, and natops's own pod gets
 * natops's when it replaces this one.
 */
export function adoptedDifferences(have: GatewayWorkloadObject, want: DesiredTemplate): string[] {
  const differs: string[] = [];
  const hc = have.spec?.template.spec?.containers.find((c) => c.name === CONTAINER);
  const wc = want.spec.template.spec.containers.find((c) => c.name === CONTAINER);
  if (!hc) return [`it has no container ${CONTAINER}`];
  if (hc.image !== wc?.image) differs.push(`image ${hc.image}, Git asks ${wc?.image}`);
  if ((hc.securityContext?.privileged ?? false) !== (wc?.securityContext?.privileged ?? false))
    differs.push('privileged');
  const ha = have.spec?.template.metadata?.annotations ?? {};
  const wa = want.spec.template.metadata.annotations;
  for (const key of Object.values(ANNOTATIONS))
    if (wa[key] !== undefined && ha[key] !== wa[key])
      differs.push(`annotation ${key} ${ha[key] ?? '(none)'}, Git asks ${wa[key]}`);
  return differs;
}

/** A workload adoption refused: another natops instance's, or a pod not the workload's own. */
export class AdoptionError extends NatopsError {}

/** One gateway to adopt: its name and the workload Git says runs it. */
export interface AdoptionTarget {
  gateway: string;
  kind: WorkloadKind;
  workload: string;
}

/**
 * Adopts each target's workload in `namespace` for natops instance `instance`; returns one line
 * per gateway saying what was done. A workload that is not there is said and left to natops to
 * make; one already this instance's is left as it is; another instance's is refused. The patches
 * carry the resourceVersion read, so a workload changed meanwhile fails the adoption, not
 * overwritten.
 */
export async function adoptGateways(
  clients: { apps: AppsV1Api; core: CoreV1Api; objects: KubernetesObjectApi },
  where: { namespace: string; instance: string },
  targets: readonly AdoptionTarget[],
  record: AdoptionRecord,
): Promise<string[]> {
  const workloads = new Workloads(clients.apps, where.namespace, where.instance);
  const lines: string[] = [];
  for (const t of targets) {
    const w = await workloads.read(t.kind, t.workload);
    const what = `${t.kind} ${where.namespace}/${t.workload}`;
    if (!w) {
      lines.push(`gateway ${t.gateway}: no ${what}: natops makes it`);
      continue;
    }
    if (isOurs(w.metadata?.labels, where.instance, t.gateway)) {
      // a pod an adopted workload made since (from Kube-OVN's template) lacks natops's labels
      const labelled = isAdopted(w) ? await labelAdoptedPods(clients, where, t.gateway, w) : [];
      lines.push(
        `gateway ${t.gateway}: ${what} is already natops's (instance ${where.instance})${labelled.length ? `; labelled its pod ${labelled.join(', ')}` : ''}`,
      );
      continue;
    }
    if (isManaged(w.metadata?.labels))
      throw new AdoptionError(`gateway ${t.gateway}: ${what} belongs to another natops instance: not adopted`);
    const pods = await podsOf(clients, where.namespace, w);
    await patch(clients.objects, {
      apiVersion: 'apps/v1',
      kind: t.kind,
      patch: {
        name: t.workload,
        namespace: where.namespace,
        resourceVersion: w.metadata?.resourceVersion,
        labels: { ...ownLabels(where.instance, t.gateway), [VPC_NAT_GW_LABEL]: null },
        annotations: { [ADOPTED_ANNOTATION]: JSON.stringify(record) },
        ownerReferences: null,
      },
    });
    await labelPods(clients.objects, where, t.gateway, pods);
    lines.push(
      `gateway ${t.gateway}: adopted ${what} and ${pods.length} pod${pods.length === 1 ? '' : 's'} (labels only: no pod restarts)`,
    );
  }
  return lines;
}

/**
 * Gives an adopted workload's pods that lack them natops's labels: one its StatefulSet or
 * ReplicaSet made after the adoption (a pod deleted, a node restarted) has Kube-OVN's template's
 * labels only. Returns the pods labelled.
 */
async function labelAdoptedPods(
  clients: { apps: AppsV1Api; core: CoreV1Api; objects: KubernetesObjectApi },
  where: { namespace: string; instance: string },
  gateway: string,
  w: GatewayWorkloadObject,
): Promise<string[]> {
  const bare = (await podsOf(clients, where.namespace, w)).filter(
    (p) => !isOurs(p.metadata?.labels, where.instance, gateway),
  );
  await labelPods(clients.objects, where, gateway, bare);
  return bare.map((p) => p.metadata!.name!);
}

async function labelPods(
  objects: KubernetesObjectApi,
  where: { namespace: string; instance: string },
  gateway: string,
  pods: readonly V1Pod[],
): Promise<void> {
  for (const pod of pods)
    await patch(objects, {
      apiVersion: 'v1',
      kind: 'Pod',
      patch: {
        name: pod.metadata!.name!,
        namespace: where.namespace,
        resourceVersion: pod.metadata?.resourceVersion,
        labels: ownLabels(where.instance, gateway),
      },
    });
}

/** The workload's own pods: its selector's, controlled by it (by UID). */
async function podsOf(
  { apps, core }: { apps: AppsV1Api; core: CoreV1Api },
  namespace: string,
  w: GatewayWorkloadObject,
): Promise<V1Pod[]> {
  const labelSelector = Object.entries(w.spec?.selector.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  if (!labelSelector) throw new AdoptionError(`${describeWorkload(w)} has no matchLabels selector: not adopted`);
  const { items } = await api(`list pods of ${describeWorkload(w)}`, () =>
    core.listNamespacedPod({ namespace, labelSelector }),
  );
  const own: V1Pod[] = [];
  for (const pod of items) {
    const c = await podController(pod, (name) =>
      maybe(`read ReplicaSet ${namespace}/${name}`, () => apps.readNamespacedReplicaSet({ name, namespace })),
    );
    if (typeof c === 'object' && 'uid' in c && c.uid === w.metadata?.uid) own.push(pod);
  }
  return own;
}

/** A JSON merge patch of an object's metadata: null removes a key (Kube-OVN's label, the owner references). */
interface MetadataPatch {
  apiVersion: string;
  kind: string;
  patch: { name: string; namespace: string; resourceVersion?: string | undefined } & Record<string, unknown>;
}
async function patch(objects: KubernetesObjectApi, { apiVersion, kind, patch }: MetadataPatch): Promise<void> {
  // (client-node types the body as an object; a merge patch's nulls are what the API server reads)
  const body = { apiVersion, kind, metadata: patch } as KubernetesObject;
  await api(`adopt ${kind} ${patch.namespace}/${patch.name}`, () =>
    objects.patch(body, undefined, undefined, 'natops', undefined, PatchStrategy.MergePatch),
  );
}
