// What an operator allows a gateway's pod to be and where it may run, whatever the manifests say:
// merging to the tracked branch must not mean choosing any image or any node (docs/security.md).

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
