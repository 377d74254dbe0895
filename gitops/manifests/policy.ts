// The operator's rules that manifests cannot override, as positioned problems: the workload
// policy (dataplane/workload-policy.ts) on the ConfigMap's image and each gateway's placement,
// and the most gateways one commit may describe. Called from validate.ts.
import type { GatewayWorkload, Json } from '../../dataplane/model.ts';
import {
  DEFAULT_WORKLOAD_POLICY,
  imageViolation,
  placementViolations,
  type Placement,
  type WorkloadPolicy,
} from '../../dataplane/workload-policy.ts';
import { formatFieldPath, type ManifestIssue } from './issues.ts';
import type { FieldPath, LoadedDoc } from './load.ts';
import type { VpcNatGateway } from './schema.ts';

export type Report = (doc: LoadedDoc, id: string, path: FieldPath, message: string) => void;

/** The setting naming the most gateways per commit (server/config.ts reads it). */
export const MAX_GATEWAYS_SETTING = 'NATOPS_MANIFEST_MAX_GATEWAYS';

/** A problem that refuses the whole commit although one document holds it (see refusesCommit). */
function refusing(doc: LoadedDoc, id: string, path: FieldPath, message: string): ManifestIssue {
  return { pos: doc.locate(path), resource: id, field: formatFieldPath(path), message, unattributed: true };
}

/**
 * The ConfigMap's image against the operator's list, reported once at `data.image`. It refuses
 * the whole commit: every gateway would run that image, so none may be planned, and a gateway
 * merely left out of the valid ones would read as deleted.
 */
export function checkImage(
  doc: LoadedDoc,
  id: string,
  image: string,
  policy: WorkloadPolicy = DEFAULT_WORKLOAD_POLICY,
): ManifestIssue | undefined {
  const v = imageViolation(image, policy);
  return v && refusing(doc, id, ['data', 'image'], v.message);
}

/**
 * More gateways than the operator allows: one problem, on the first past the limit, that refuses
 * the commit (the ones past it are not read, and must not look deleted). Returns those within it.
 */
export function withinGatewayLimit<T extends { doc: LoadedDoc; id: string }>(
  gateways: T[],
  max: number,
  issues: ManifestIssue[],
): T[] {
  const first = gateways[max];
  if (!first) return gateways;
  issues.push(
    refusing(
      first.doc,
      first.id,
      ['metadata', 'name'],
      `this commit describes ${gateways.length} gateways, more than ${MAX_GATEWAYS_SETTING} (${max}); none is applied`,
    ),
  );
  return gateways.slice(0, max);
}

/** Where the gateway's pod may run, against the policy: each violation at the field that asks for it. */
export function checkPlacement(
  doc: LoadedDoc,
  id: string,
  gateway: VpcNatGateway,
  policy: WorkloadPolicy = DEFAULT_WORKLOAD_POLICY,
  report: Report,
): void {
  const selector = gateway.spec.selector ?? [];
  for (const v of placementViolations(gatewayPlacement(gateway), policy)) {
    const [field, ...rest] = v.path;
    if (field === 'nodeSelector') {
      // the workload's map is keyed by label; the manifest lists "key: value" strings
      selector.forEach((entry, i) => {
        if (selectorEntry(entry)[0] === rest[0]) report(doc, id, ['spec', 'selector', i], v.message);
      });
    } else {
      report(doc, id, ['spec', ...v.path], v.message);
    }
  }
}

/** The pod's image, nic and placement as a gateway's manifest and the ConfigMap give them. */
export function gatewayWorkload(gateway: VpcNatGateway, image: string | undefined, nic: string): GatewayWorkload {
  return { ...(image === undefined ? {} : { image }), nic, ...gatewayPlacement(gateway) };
}

function gatewayPlacement(gateway: VpcNatGateway): Placement {
  const { spec } = gateway;
  return {
    nodeSelector: Object.fromEntries((spec.selector ?? []).map(selectorEntry)),
    tolerations: spec.tolerations.map((t) => ({ ...t })),
    ...(spec.affinity === undefined ? {} : { affinity: structuredClone(spec.affinity) as Record<string, Json> }),
  };
}

/** Kube-OVN's "key: value" node selector string as its label and value. */
function selectorEntry(kv: string): [string, string] {
  const at = kv.indexOf(':');
  return [kv.slice(0, at).trim(), kv.slice(at + 1).trim()];
}
