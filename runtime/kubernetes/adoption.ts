// Adopting the gateways Kube-OVN runs (docs/export.md, "Adopting Kube-OVN's gateways"): natops
// takes over Kube-OVN's workload as it is, so its pod, the rules in it and the connections through
// them live on. Adopting only relabels: the workload gets natops's labels and a record of the
// adoption, loses Kube-OVN's owner reference (deleting the VpcNatGateway would delete it) and
// Kube-OVN's own label on the workload object (Kube-OVN's garbage collector deletes a labelled
// StatefulSet no VpcNatGateway names); its pods get natops's labels (for the pod watch). Neither
// selector nor template changes, so no pod restarts. natops keeps such a workload while its pod
// runs what Git asks (adoptedDifferences), finds its pods by its own selector (runtime.ts), and
// replaces it with its own at the first change that needs another pod.
import {
  type AppsV1Api,
  type AuthorizationV1Api,
  type CoreV1Api,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  type V1OwnerReference,
  type V1Pod,
} from '@kubernetes/client-node';
import { NatopsError } from '../../common/errors.ts';
import { api, maybe } from './api.ts';
import {
  ANNOTATIONS,
  CONTAINER,
  FIELD_MANAGER,
  GATEWAY_LABEL,
  INSTANCE_LABEL,
  isManaged,
  isOurs,
  ownLabels,
  selectorOf,
  VPC_NAT_GW_LABEL,
} from './objects.ts';
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

/** A workload natops cannot tell the pods of (no matchLabels selector). */
export class AdoptionError extends NatopsError {}

/** One gateway to adopt: its name and the workload Git says runs it. */
export interface AdoptionTarget {
  gateway: string;
  kind: WorkloadKind;
  workload: string;
}

export interface AdoptionResult {
  /** what was done, one line per gateway */
  lines: string[];
  /** why nothing was adopted, one line per gateway refused (empty: every target adopted or already natops's) */
  refused: string[];
}

type Clients = { apps: AppsV1Api; core: CoreV1Api; objects: KubernetesObjectApi; authz: AuthorizationV1Api };

/** A permission the adoption needs in the gateways' namespace: verb, group, resource (and subresource). */
type Permission = [verb: string, group: string, resource: string, subresource?: string];

/**
 * What adopting `kinds` needs (deploy/kubernetes/adopt-rbac.yaml) and what rewriting their rules
 * after needs (an exec into each pod, the runtime Role's): asked of the API server before anything
 * changes, so a missing one refuses the adoption whole instead of leaving it half done.
 */
async function missingPermissions(authz: AuthorizationV1Api, namespace: string, kinds: readonly WorkloadKind[]) {
  const needed: Permission[] = [
    ...[...new Set(kinds)].flatMap((k): Permission[] => {
      const resource = k === 'StatefulSet' ? 'statefulsets' : 'deployments';
      return [
        ['get', 'apps', resource],
        ['patch', 'apps', resource],
      ];
    }),
    ...(kinds.includes('Deployment') ? [['get', 'apps', 'replicasets'] as Permission] : []),
    ['list', '', 'pods'],
    ['patch', '', 'pods'],
    ['create', '', 'pods', 'exec'],
  ];
  const missing: string[] = [];
  for (const [verb, group, resource, subresource] of needed) {
    const review = await api(`ask whether it may ${verb} ${resource}`, () =>
      authz.createSelfSubjectAccessReview({
        body: {
          spec: { resourceAttributes: { namespace, verb, group, resource, ...(subresource ? { subresource } : {}) } },
        },
      }),
    );
    if (!review.status?.allowed)
      missing.push(`${verb} ${resource}${subresource ? `/${subresource}` : ''}${group ? `.${group}` : ''}`);
  }
  return missing;
}

/** Whether Kube-OVN made the workload: its label, or its owner reference to the gateway's VpcNatGateway. */
const isKubeOvns = (w: GatewayWorkloadObject, gateway: string): boolean =>
  w.metadata?.labels?.[VPC_NAT_GW_LABEL] === 'true' ||
  (w.metadata?.ownerReferences ?? []).some((r) => isVpcNatGatewayRef(r) && r.name === gateway);

const isVpcNatGatewayRef = (r: V1OwnerReference) =>
  r.kind === 'VpcNatGateway' && r.apiVersion.startsWith('kubeovn.io/');

/**
 * Adopts each target's workload in `namespace` for natops instance `instance`, or none: every
 * target is looked at first, and one that is missing (natops would make a second gateway beside
 * Kube-OVN's), another natops's, or not Kube-OVN's refuses them all. One already this instance's
 * is left as it is (its pods made since get natops's labels). The workload patch carries the
 * resourceVersion read, so one changed meanwhile fails, not overwritten.
 */
export async function adoptGateways(
  clients: Clients,
  where: { namespace: string; instance: string },
  targets: readonly AdoptionTarget[],
  record: AdoptionRecord,
): Promise<AdoptionResult> {
  const workloads = new Workloads(clients.apps, where.namespace, where.instance);
  const refused: string[] = [];
  const found: { t: AdoptionTarget; w: GatewayWorkloadObject; what: string }[] = [];
  for (const t of targets) {
    const w = await workloads.read(t.kind, t.workload);
    const what = `${t.kind} ${where.namespace}/${t.workload}`;
    if (!w)
      refused.push(
        `gateway ${t.gateway}: no ${what}, so natops would make a second gateway beside Kube-OVN's: check --namespace, and that the export's form of workload (ovn-vpc-nat-config: a StatefulSet) is the one Kube-OVN runs`,
      );
    else if (isManaged(w.metadata?.labels) && !isOurs(w.metadata?.labels, where.instance, t.gateway))
      refused.push(
        `gateway ${t.gateway}: ${what} is natops's (instance ${w.metadata?.labels?.[INSTANCE_LABEL] ?? '(none)'}, gateway ${w.metadata?.labels?.[GATEWAY_LABEL] ?? '(none)'}), not this instance's for ${t.gateway}`,
      );
    else if (!isManaged(w.metadata?.labels) && !isKubeOvns(w, t.gateway))
      refused.push(
        `gateway ${t.gateway}: ${what} is not Kube-OVN's (no label ${VPC_NAT_GW_LABEL}, no owner VpcNatGateway ${t.gateway})`,
      );
    else found.push({ t, w, what });
  }
  if (refused.length) return { lines: [], refused };
  const missing = await missingPermissions(
    clients.authz,
    where.namespace,
    found.map((f) => f.t.kind),
  );
  if (missing.length)
    return {
      lines: [],
      refused: [
        `may not ${missing.join(', ')} in namespace ${where.namespace}: bind deploy/kubernetes/adopt-rbac.yaml's Role and the runtime's (deploy/kubernetes/rbac.yaml) there`,
      ],
    };

  const lines: string[] = [];
  for (const { t, w, what } of found) {
    if (isOurs(w.metadata?.labels, where.instance, t.gateway)) {
      const labelled = isAdopted(w) ? await labelAdoptedPods(clients, where, t.gateway, w) : [];
      lines.push(
        `gateway ${t.gateway}: ${what} is already natops's (instance ${where.instance})${labelled.length ? `; labelled its pod ${labelled.join(', ')}` : ''}`,
      );
      continue;
    }
    const pods = await podsOf(clients, where.namespace, w);
    const owners = (w.metadata?.ownerReferences ?? []).filter((r) => !isVpcNatGatewayRef(r));
    await patch(clients.objects, {
      apiVersion: 'apps/v1',
      kind: t.kind,
      patch: {
        name: t.workload,
        namespace: where.namespace,
        resourceVersion: w.metadata?.resourceVersion,
        labels: { ...ownLabels(where.instance, t.gateway), [VPC_NAT_GW_LABEL]: null },
        annotations: { [ADOPTED_ANNOTATION]: JSON.stringify(record) },
        // a merge patch replaces the list: the others are written back, Kube-OVN's left out
        ownerReferences: owners.length ? owners : null,
      },
    });
    await labelPods(clients.objects, where, t.gateway, pods);
    lines.push(
      `gateway ${t.gateway}: adopted ${what} and ${pods.length} pod${pods.length === 1 ? '' : 's'} (labels only: no pod restarts)`,
    );
  }
  return { lines, refused };
}

/**
 * Gives an adopted workload's pods that lack them natops's labels: one its StatefulSet or
 * ReplicaSet made after the adoption (a pod deleted, a node restarted) has Kube-OVN's template's
 * labels only. Returns the pods labelled.
 */
async function labelAdoptedPods(
  clients: Clients,
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
        // labels only: no resourceVersion, or the kubelet's status updates would fail it
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
  const labelSelector = selectorOf(w.spec?.selector.matchLabels ?? {});
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
    objects.patch(body, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch),
  );
}
