// Reads a cluster's Kube-OVN objects for `natops export`, with read-only verbs only: list on the
// kubeovn.io kinds (cluster-scoped), get on the two ConfigMaps in kube-system and on the external
// networks' NetworkAttachmentDefinitions. docs/export.md lists the RBAC this needs.
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { NatopsError } from '../../common/errors.ts';
import { statusOf } from '../../runtime/kubernetes/api.ts';
import { describeApiError } from '../../runtime/kubernetes/pod-exec.ts';
import { ClusterObjectSchema, EXPORT_KINDS, nadsNeeded, type ClusterObject } from './clean.ts';

/** A read the export cannot do without: the cluster unreachable, a permission missing. */
export class ClusterReadError extends NatopsError {
  constructor(
    readonly what: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`${what}: ${detail}${status === 403 ? ` (${what} needs the RBAC in docs/export.md)` : ''}`);
  }
}

/** Kube-OVN's two gateway ConfigMaps: 1.7's (natops reads it) and the current one (exported beside it). */
export const CONFIG_MAPS = ['ovn-vpc-nat-gw-config', 'ovn-vpc-nat-config'] as const;
const KUBE_SYSTEM = 'kube-system';

export interface ClusterRead {
  objects: ClusterObject[];
  /** what is not there, said once each (a kind whose CRD is not installed, a ConfigMap or attachment missing) */
  notes: string[];
}

function parseObject(raw: unknown, what: string): ClusterObject {
  const read = ClusterObjectSchema.safeParse(raw);
  if (!read.success)
    throw new ClusterReadError(
      what,
      undefined,
      `the API returned an object natops cannot place: ${read.error.message}`,
    );
  return read.data;
}

function failed(what: string, e: unknown): ClusterReadError {
  return new ClusterReadError(what, statusOf(e), describeApiError(e));
}

export async function readCluster(kc: KubeConfig): Promise<ClusterRead> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const objects: ClusterObject[] = [];
  const notes: string[] = [];

  for (const name of CONFIG_MAPS) {
    const what = `get configmaps ${KUBE_SYSTEM}/${name}`;
    try {
      const cm = await core.readNamespacedConfigMap({ name, namespace: KUBE_SYSTEM });
      // typed models carry Dates and undefined fields; only what a manifest has is taken
      const { metadata, data, binaryData, immutable } = cm;
      objects.push(
        parseObject(
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: {
              name: metadata?.name,
              namespace: metadata?.namespace,
              labels: metadata?.labels,
              annotations: metadata?.annotations,
            },
            data,
            binaryData,
            immutable,
          },
          what,
        ),
      );
    } catch (e) {
      if (statusOf(e) !== 404) throw failed(what, e);
      notes.push(`ConfigMap ${KUBE_SYSTEM}/${name} is not in the cluster`);
    }
  }

  for (const k of EXPORT_KINDS) {
    if (k.namespaced) continue; // the ConfigMaps above, the attachments below
    const [group, version] = k.apiVersion.split('/') as [string, string];
    const what = `list ${k.plural}.${group}`;
    let list: unknown;
    try {
      list = await custom.listClusterCustomObject({ group, version, plural: k.plural });
    } catch (e) {
      if (statusOf(e) !== 404) throw failed(what, e);
      notes.push(`${k.kind}: the cluster has no such kind (its CRD ${k.plural}.${group} is not installed)`);
      continue;
    }
    const items = (list as { items?: unknown })?.items;
    if (!Array.isArray(items)) throw new ClusterReadError(what, undefined, 'the API returned no items list');
    for (const item of items) objects.push(parseObject(item, what));
  }

  for (const ref of nadsNeeded(objects)) {
    const what = `get network-attachment-definitions.k8s.cni.cncf.io ${ref.namespace}/${ref.name}`;
    try {
      const nad = await custom.getNamespacedCustomObject({
        group: 'k8s.cni.cncf.io',
        version: 'v1',
        namespace: ref.namespace,
        plural: 'network-attachment-definitions',
        name: ref.name,
      });
      objects.push(parseObject(nad, what));
    } catch (e) {
      if (statusOf(e) !== 404) throw failed(what, e);
      notes.push(
        `NetworkAttachmentDefinition ${ref.namespace}/${ref.name} (an external network's) is not in the cluster`,
      );
    }
  }
  return { objects, notes };
}
