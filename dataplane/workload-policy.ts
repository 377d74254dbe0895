// What an operator allows a gateway's pod to be and where it may run, whatever the manifests say:
// merging to the tracked branch must not mean choosing any image or any node (docs/security.md).
// Pure and zod-free: validation checks manifests with it, and anything holding a workload can too.
import type { GatewayWorkload, Json } from './model.ts';

/** The images allowed when the operator names none: Kube-OVN's gateway image the examples use. */
export const DEFAULT_GATEWAY_IMAGES: readonly string[] = Object.freeze(['kubeovn/vpc-nat-gateway:v1.7.0']);

export interface WorkloadPolicy {
  /** exact image references or digests; `*` allows any */
  images: readonly string[];
  /** whether tolerations, node selectors and affinity may name control-plane nodes */
  allowControlPlane: boolean;
}

export const DEFAULT_WORKLOAD_POLICY: Readonly<WorkloadPolicy> = Object.freeze({
  images: DEFAULT_GATEWAY_IMAGES,
  allowControlPlane: false,
});

/** The settings that widen the policy, named in every violation's message. */
export const IMAGES_SETTING = 'NATOPS_GATEWAY_IMAGES';
export const CONTROL_PLANE_SETTING = 'NATOPS_ALLOW_CONTROL_PLANE';

/** The node labels and taints that mark control-plane nodes (kubeadm's current and former names). */
export const CONTROL_PLANE_KEYS: readonly string[] = Object.freeze([
  'node-role.kubernetes.io/control-plane',
  'node-role.kubernetes.io/master',
]);

export interface WorkloadViolation {
  /** the GatewayWorkload field concerned: ['image'], ['tolerations', 0, 'key'], ['nodeSelector', key], ['affinity', …] */
  path: (string | number)[];
  message: string;
}

/** Every way `workload` steps outside `policy`: its image, then its placement. */
export function workloadPolicyViolations(workload: GatewayWorkload, policy: WorkloadPolicy): WorkloadViolation[] {
  const image = workload.image === undefined ? undefined : imageViolation(workload.image, policy);
  return [...(image ? [image] : []), ...placementViolations(workload, policy)];
}

/**
 * Docker Hub's names for one image: `kubeovn/x:1`, `docker.io/kubeovn/x:1` and
 * `index.docker.io/kubeovn/x:1` are one reference, as are `nginx:1` and `docker.io/library/nginx:1`.
 * Nothing else is rewritten: no tag is added (`x` is not `x:latest`), other registries stay as written.
 */
export function normalizeImage(ref: string): string {
  let r = ref;
  for (const host of ['docker.io/', 'index.docker.io/']) {
    if (r.startsWith(host)) {
      r = r.slice(host.length);
      break;
    }
  }
  const rest = r.slice('library/'.length);
  return r.startsWith('library/') && !rest.includes('/') ? rest : r;
}

/**
 * Whether `image` is one the policy lists. An entry matches exactly (after normalizeImage); a
 * digest entry (`repo@sha256:…` or `repo:tag@sha256:…`) allows that repository and digest with
 * any tag or none, since the runtime pulls by the digest. An entry `repo:tag` allows no digest:
 * `repo:tag@sha256:…` may be any image of the repository.
 */
export function imageAllowed(image: string, images: readonly string[]): boolean {
  if (images.includes('*')) return true;
  const wanted = normalizeImage(image);
  const byDigest = digestForm(wanted);
  return images.some((entry) => {
    const allowed = normalizeImage(entry);
    return allowed === wanted || (allowed.includes('@') && digestForm(allowed) === byDigest);
  });
}

/** `repo:tag@digest` as `repo@digest`; anything else as it is. */
function digestForm(ref: string): string {
  const at = ref.indexOf('@');
  if (at < 0) return ref;
  const name = ref.slice(0, at);
  // a tag's colon comes after the last slash; a registry's port comes before it
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? `${name.slice(0, colon)}${ref.slice(at)}` : ref;
}

export function imageViolation(image: string, policy: WorkloadPolicy): WorkloadViolation | undefined {
  if (imageAllowed(image, policy.images)) return undefined;
  const list = policy.images.length ? policy.images.join(', ') : 'none';
  return {
    path: ['image'],
    message: `image ${image} is not one the operator allows (${list}); the operator lists images in ${IMAGES_SETTING}`,
  };
}

/** Where the pod may be scheduled. */
export type Placement = Pick<GatewayWorkload, 'nodeSelector' | 'tolerations' | 'affinity'>;

/** The tolerations, node selector and affinity that step outside the policy. */
export function placementViolations(workload: Placement, policy: WorkloadPolicy): WorkloadViolation[] {
  const out: WorkloadViolation[] = [];
  const controlPlane = (what: string) =>
    `${what} places the gateway's privileged pod on control-plane nodes; refused unless the operator sets ${CONTROL_PLANE_SETTING}=true`;
  workload.tolerations.forEach((t, i) => {
    // Kubernetes reads a toleration without a key as "every taint" (with operator Exists) or refuses it
    if (!t.key) {
      out.push({
        path: ['tolerations', i],
        message: `a toleration without a key tolerates every taint, control-plane nodes' included; name the taint's key (no setting allows this)`,
      });
    } else if (!policy.allowControlPlane && CONTROL_PLANE_KEYS.includes(t.key)) {
      out.push({ path: ['tolerations', i, 'key'], message: controlPlane(`tolerating ${t.key}`) });
    }
  });
  if (!policy.allowControlPlane) {
    for (const key of Object.keys(workload.nodeSelector)) {
      if (CONTROL_PLANE_KEYS.includes(key))
        out.push({ path: ['nodeSelector', key], message: controlPlane(`selecting nodes by ${key}`) });
    }
    if (workload.affinity !== undefined) {
      for (const at of controlPlaneTerms(workload.affinity, ['affinity']))
        out.push({ path: at.path, message: controlPlane(`an affinity term on ${at.key}`) });
    }
  }
  return out;
}

/** Operators that keep control-plane nodes out rather than select them. */
const EXCLUDING = new Set(['NotIn', 'DoesNotExist']);

/**
 * Every object in the affinity with `key` naming a control-plane label, unless its operator
 * excludes such nodes. Walked generically: node affinity's terms and any other place a label key
 * can go, whatever their nesting.
 */
function controlPlaneTerms(value: Json, path: (string | number)[]): { path: (string | number)[]; key: string }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => controlPlaneTerms(v, [...path, i]));
  if (value === null || typeof value !== 'object') return [];
  const found: { path: (string | number)[]; key: string }[] = [];
  const key = value.key;
  const operator = value.operator;
  if (
    typeof key === 'string' &&
    CONTROL_PLANE_KEYS.includes(key) &&
    !(typeof operator === 'string' && EXCLUDING.has(operator))
  )
    found.push({ path: [...path, 'key'], key });
  for (const [k, v] of Object.entries(value)) found.push(...controlPlaneTerms(v, [...path, k]));
  return found;
}
