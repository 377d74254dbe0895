// The Kubernetes objects of a gateway, pure: the Deployment in Kube-OVN 1.7's form or the
// StatefulSet of its current one, the external network's NetworkAttachmentDefinition and, in
// network mode `multus`, the gateway's subnet attachment. natops labels everything it makes with its instance, so it finds, execs into and
// prunes only that, and two installations in one namespace leave each other alone.
import type { V1Affinity, V1Container, V1NodeSelectorTerm } from '@kubernetes/client-node';
import { hexDigest } from '../../common/digest.ts';
import { parseCidr } from '../../common/ipv4.ts';
import { DEFAULT_NAT_GW_NAME_PREFIX, type GatewaySpec, workloadKind } from '../../dataplane/model.ts';
import { CONTROL_PLANE_KEYS } from '../../dataplane/workload-policy.ts';
import { subnetAttachmentBridge } from '../../dataplane/network.ts';

/**
 * How gateway pods reach their networks. `kube-ovn`: annotations only, Kube-OVN's CNI attaches
 * eth0 to the subnet and Multus net1 to the external network. `multus`: natops also writes a
 * subnet attachment per gateway (bridge plugin, the lanIp as a static address) and makes it the
 * pod's default network, for clusters without Kube-OVN.
 */
export const NETWORK_MODES = ['kube-ovn', 'multus'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'natops' } as const;
/** the field manager of everything natops writes (server-side apply, patches) */
export const FIELD_MANAGER = 'natops';
/** anything any natops instance made */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=natops';
/** the gateway an object belongs to (a Deployment, its pods, its subnet attachment) */
export const GATEWAY_LABEL = 'natops.io/gateway';
/** which natops installation made an object (NATOPS_INSTANCE, else NATOPS_PREFIX) */
export const INSTANCE_LABEL = 'natops.io/instance';

/** A label value as the API server takes it: at most 63 characters, alphanumeric at both ends. */
export const isLabelValue = (v: string): boolean =>
  v.length <= 63 && /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(v);

/** natops's labels: made by natops, by this instance, for this gateway (when one is named) */
export const ownLabels = (instance: string, gateway?: string): Record<string, string> => ({
  ...MANAGED_BY,
  [INSTANCE_LABEL]: instance,
  ...(gateway === undefined ? {} : { [GATEWAY_LABEL]: gateway }),
});

/** A label selector matching exactly these labels. */
export const selectorOf = (labels: Record<string, string>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** A label selector for ownLabels: what this instance made (for this gateway). */
export const ownSelector = (instance: string, gateway?: string): string => selectorOf(ownLabels(instance, gateway));

/** Whether an object's labels say natops made it (any instance). */
export const isManaged = (labels: Record<string, string> | undefined): boolean =>
  labels?.['app.kubernetes.io/managed-by'] === MANAGED_BY['app.kubernetes.io/managed-by'];

/** Whether an object's labels say this instance made it (for this gateway, when one is named). */
export const isOurs = (labels: Record<string, string> | undefined, instance: string, gateway?: string): boolean =>
  Object.entries(ownLabels(instance, gateway)).every(([k, v]) => labels?.[k] === v);

export const VPC_NAT_GW_LABEL = 'ovn.kubernetes.io/vpc-nat-gw';
export const EXTERNAL_NETWORK = 'ovn-vpc-external-network';
export const CONTAINER = 'vpc-nat-gw';

export const ANNOTATIONS = {
  gateway: 'ovn.kubernetes.io/vpc_nat_gw',
  logicalSwitch: 'ovn.kubernetes.io/logical_switch',
  ipAddress: 'ovn.kubernetes.io/ip_address',
  networks: 'k8s.v1.cni.cncf.io/networks',
  defaultNetwork: 'v1.multus-cni.io/default-network',
} as const;

/** a hash of the pod's attachment configs, in its template */
export const ATTACHMENTS_ANNOTATION = 'natops.io/attachments';

export const deploymentName = (gateway: string) => `vpc-nat-gw-${gateway}`;
/** Kube-OVN's util.GenNatGwName: the prefix from ovn-vpc-nat-config, vpc-nat-gw by default */
export const statefulSetName = (gateway: string, prefix = DEFAULT_NAT_GW_NAME_PREFIX) => `${prefix}-${gateway}`;
export const subnetAttachmentName = (gateway: string) => `vpc-nat-gw-${gateway}-lan`;

export interface ObjectSettings {
  namespace: string;
  mode: NetworkMode;
  /** the instance label's value (ownLabels) */
  instance: string;
  /** the operator does not allow control-plane nodes: the pod is kept off them, not only not sent there */
  keepOffControlPlane: boolean;
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A NetworkAttachmentDefinition as the CRD has it (config is CNI JSON, as a string). */
export interface NetworkAttachment {
  apiVersion: 'k8s.cni.cncf.io/v1';
  kind: 'NetworkAttachmentDefinition';
  metadata: ObjectMeta;
  spec: { config: string };
}

/**
 * The gateway's Deployment: Kube-OVN 1.7's labels, annotations, container and Recreate strategy,
 * with HEAD's scheduling fields and its terminationGracePeriodSeconds 0 (a replacement pod
 * reuses the lanIp at once; the old one must not linger with it). The command only waits: every
 * change arrives through pods/exec.
 */
export function gatewayDeployment(
  spec: GatewaySpec,
  s: ObjectSettings,
  attachments: readonly NetworkAttachment[] = [],
) {
  const { labels, template } = gatewayPod(deploymentName(spec.name), spec, s, attachments);
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(spec.name), namespace: s.namespace, labels },
    spec: { replicas: 1, strategy: { type: 'Recreate' }, selector: { matchLabels: labels }, template },
  };
}

/**
 * The gateway's StatefulSet, as Kube-OVN makes it since v1.11 (pkg/controller/vpc_nat_gateway.go,
 * genNatGwStatefulSet): `<natGwNamePrefix>-<name>`, one replica, RollingUpdate, the same labels
 * and annotations, and its container's postStart hook turning on forwarding. natops's own parts
 * stay: its labels in the selector, no service-account token, its attachments.
 */
export function gatewayStatefulSet(
  spec: GatewaySpec,
  s: ObjectSettings,
  attachments: readonly NetworkAttachment[] = [],
) {
  const name = statefulSetName(spec.name, spec.workload.namePrefix);
  const { labels, template } = gatewayPod(name, spec, s, attachments);
  const [container] = template.spec.containers;
  // Kube-OVN's hook; natops sets the same sysctl again through exec (the data plane's)
  container!.lifecycle = { postStart: { exec: { command: ['sh', '-c', 'sysctl -w net.ipv4.ip_forward=1'] } } };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace: s.namespace, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template,
      updateStrategy: { type: 'RollingUpdate' },
    },
  };
}

/** The gateway's workload object in the form its spec asks for. */
export function gatewayWorkload(spec: GatewaySpec, s: ObjectSettings, attachments: readonly NetworkAttachment[] = []) {
  return workloadKind(spec.workload) === 'StatefulSet'
    ? gatewayStatefulSet(spec, s, attachments)
    : gatewayDeployment(spec, s, attachments);
}

/** The workload's name: Deployment vpc-nat-gw-<name>, StatefulSet <natGwNamePrefix>-<name>. */
export const workloadName = (spec: Pick<GatewaySpec, 'name' | 'workload'>): string =>
  workloadKind(spec.workload) === 'StatefulSet'
    ? statefulSetName(spec.name, spec.workload.namePrefix)
    : deploymentName(spec.name);

/** The pod both workload forms run: Kube-OVN's labels and annotations for `app`, natops's own parts. */
function gatewayPod(app: string, spec: GatewaySpec, s: ObjectSettings, attachments: readonly NetworkAttachment[]) {
  // The selector holds natops's labels too, not only Kube-OVN's `app`: a ReplicaSet adopts any
  // ownerless pod its selector matches, so a pod someone made by hand with `app=vpc-nat-gw-<name>`
  // would otherwise become the gateway's pod. A selector is immutable: a workload of ours with
  // another one (labelled by hand from a natops before instance labels) is recreated (runtime.ts).
  const labels: Record<string, string> = { app, [VPC_NAT_GW_LABEL]: 'true', ...ownLabels(s.instance, spec.name) };
  const annotations: Record<string, string> = {
    [ANNOTATIONS.gateway]: spec.name,
    [ANNOTATIONS.logicalSwitch]: spec.subnet.name,
    [ANNOTATIONS.ipAddress]: spec.lanIp,
    [ANNOTATIONS.networks]: `${s.namespace}/${EXTERNAL_NETWORK}`,
    ...(s.mode === 'multus'
      ? { [ANNOTATIONS.defaultNetwork]: `${s.namespace}/${subnetAttachmentName(spec.name)}` }
      : {}),
    // A pod's attachments are made once, when it starts: a changed one (the subnet's gateway, the
    // nic) must roll the pod, as a changed template does.
    ...(attachments.length
      ? {
          [ATTACHMENTS_ANNOTATION]: hexDigest('sha256', JSON.stringify(attachments.map((a) => a.spec.config))).slice(
            0,
            16,
          ),
        }
      : {}),
  };
  const w = spec.workload;
  const container: V1Container = {
    name: CONTAINER,
    image: w.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['sleep', 'infinity'],
    securityContext: { privileged: true, allowPrivilegeEscalation: true },
  };
  const template = {
    metadata: { labels, annotations },
    spec: {
      terminationGracePeriodSeconds: 0,
      // The pod talks to no API (natops execs into it): a privileged pod with the namespace's
      // token would hand that token to whoever controls its image (review K1).
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [container],
      ...(Object.keys(w.nodeSelector).length ? { nodeSelector: w.nodeSelector } : {}),
      ...(w.tolerations.length ? { tolerations: w.tolerations } : {}),
      ...(s.keepOffControlPlane
        ? { affinity: offControlPlane(w.affinity as V1Affinity | undefined) }
        : w.affinity
          ? { affinity: w.affinity as V1Affinity }
          : {}),
    },
  };
  return { labels, template };
}

/**
 * The affinity with every required node term also excluding control-plane nodes (the terms are
 * ORed, so each must): validation refuses manifests that ask for those nodes, and this keeps the
 * privileged pod off them where nothing taints them (k3s, one-node clusters).
 */
export function offControlPlane(affinity: V1Affinity | undefined): V1Affinity {
  const keepOff = CONTROL_PLANE_KEYS.map((key) => ({ key, operator: 'DoesNotExist' }));
  const a = structuredClone(affinity ?? {});
  const required = a.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  const terms: V1NodeSelectorTerm[] = required?.nodeSelectorTerms.length ? required.nodeSelectorTerms : [{}];
  a.nodeAffinity = {
    ...a.nodeAffinity,
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: terms.map((t) => ({ ...t, matchExpressions: [...(t.matchExpressions ?? []), ...keepOff] })),
    },
  };
  return a;
}

/** Kube-OVN's external network: a macvlan in bridge mode on the ConfigMap's nic. */
export function externalNetwork(nic: string, s: Pick<ObjectSettings, 'namespace' | 'instance'>): NetworkAttachment {
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    // One per namespace, shared by every natops instance there; the label says who wrote it.
    metadata: { name: EXTERNAL_NETWORK, namespace: s.namespace, labels: ownLabels(s.instance) },
    spec: { config: JSON.stringify({ cniVersion: '0.3.1', type: 'macvlan', master: nic, mode: 'bridge' }) },
  };
}

/**
 * Network mode `multus`: the gateway's eth0 on its subnet, through the host bridge the subnet is
 * reached by, with the lanIp and a default route via the subnet's gateway, as Kube-OVN would give it.
 */
export function subnetAttachment(
  spec: GatewaySpec,
  s: Pick<ObjectSettings, 'namespace' | 'instance'>,
): NetworkAttachment {
  const { prefix } = parseCidr(spec.subnet.cidr)!;
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: {
      name: subnetAttachmentName(spec.name),
      namespace: s.namespace,
      labels: ownLabels(s.instance, spec.name),
    },
    spec: {
      config: JSON.stringify({
        cniVersion: '0.3.1',
        name: `natops-${spec.subnet.name}`,
        type: 'bridge',
        bridge: subnetAttachmentBridge(spec.subnet.name),
        ipam: {
          type: 'static',
          addresses: [{ address: `${spec.lanIp}/${prefix}`, gateway: spec.subnet.gateway }],
          routes: [{ dst: '0.0.0.0/0', gw: spec.subnet.gateway }],
        },
      }),
    },
  };
}
