// The Kubernetes runtime: each gateway a Deployment in Kube-OVN's form, every change one
// transaction through pods/exec with the same reader, diff and commands as the netns runtime.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  type KubernetesObject,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { NatopsError, PermanentError } from '../../common/errors.ts';
import type { Exec as CommandExec } from '../../common/exec.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { readGatewayState, runCommands } from '../gateway-io.ts';
import type { GatewayHandle, GatewayRuntime } from '../runtime.ts';
import {
  CONTAINER,
  deploymentName,
  externalNetwork,
  EXTERNAL_NETWORK,
  GATEWAY_LABEL,
  gatewayDeployment,
  isManaged,
  MANAGED_SELECTOR,
  subnetAttachment,
  subnetAttachmentName,
  ANNOTATIONS,
  VPC_NAT_GW_LABEL,
  type NetworkMode,
} from './objects.ts';
import { describeApiError, podExec } from './pod-exec.ts';
import { notReadyReason, podReadiness } from './pods.ts';

export interface KubernetesSettings {
  /** where gateways run (Kube-OVN: the controller's namespace, kube-system) */
  namespace: string;
  mode: NetworkMode;
  /** how long a gateway pod may take to be Running and Ready */
  readyTimeoutMs: number;
  /** every command in a gateway is given up after this long */
  commandTimeoutMs: number;
}

export const FIELD_MANAGER = 'natops';
const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' } as const;
/** Pod sysctls the gateway needs that a pod spec cannot set without unsafe-sysctl flags: replies are policy-routed. */
const POD_SYSCTLS = [
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  'net.ipv4.conf.eth0.rp_filter=0',
  'net.ipv4.conf.net1.rp_filter=0',
];

/** An API call failed; 5xx, 409 and network errors may pass on a retry, other 4xx will not. */
export class KubernetesApiError extends NatopsError {
  constructor(
    readonly what: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`${what}: ${detail}`, {
      retryable: status === undefined || status >= 500 || status === 409 || status === 429,
    });
  }
}

/** The gateway's pod did not become Running and Ready in time; the message is the cluster's reason. */
export class GatewayNotReadyError extends NatopsError {
  constructor(
    readonly gateway: string,
    readonly reason: string,
  ) {
    super(`gateway ${gateway}: pod not ready: ${reason}`);
  }
}

const statusOf = (e: unknown): number | undefined => {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
};

async function api<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw new KubernetesApiError(what, statusOf(e), describeApiError(e));
  }
}

/** undefined for a 404, else the object (or the API error) */
async function maybe<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw new KubernetesApiError(what, statusOf(e), describeApiError(e));
  }
}

export class KubernetesRuntime implements GatewayRuntime {
  readonly kind = 'kubernetes' as const;
  readonly commandTimeoutMs: number;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly objects: KubernetesObjectApi;
  private readonly exec: Exec;

  constructor(
    readonly kc: KubeConfig,
    readonly settings: KubernetesSettings,
    private readonly warn: (m: string) => void = () => undefined,
  ) {
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.exec = new Exec(kc);
    this.commandTimeoutMs = settings.commandTimeoutMs;
  }

  private get ns() {
    return this.settings.namespace;
  }

  /** Server-side apply as natops: the same object again writes nothing. */
  private apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return api(`apply ${obj.kind} ${obj.metadata?.namespace}/${obj.metadata?.name}`, () =>
      this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    );
  }

  private execIn(pod: V1Pod): CommandExec {
    return podExec(
      this.exec,
      { namespace: this.ns, name: pod.metadata!.name!, container: CONTAINER },
      { timeoutMs: this.commandTimeoutMs },
    );
  }

  private handle(name: string, pod: V1Pod): GatewayHandle {
    const exec = this.execIn(pod);
    return {
      name,
      location: `pod ${this.ns}/${pod.metadata!.name}`,
      readState: (reads) => readGatewayState(exec, reads),
      runCommands: (commands) => runCommands(exec, commands, this.warn),
    };
  }

  private async deployment(gateway: string): Promise<V1Deployment | undefined> {
    return maybe(`read Deployment ${this.ns}/${deploymentName(gateway)}`, () =>
      this.apps.readNamespacedDeployment({ name: deploymentName(gateway), namespace: this.ns }),
    );
  }

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    if (!spec.workload.image)
      throw new PermanentError(
        `gateway ${spec.name}: no image (the manifests have no ConfigMap ovn-vpc-nat-gw-config)`,
      );
    const existing = await this.deployment(spec.name);
    if (existing && existing.metadata?.labels?.[GATEWAY_LABEL] !== spec.name) {
      throw new PermanentError(
        `Deployment ${this.ns}/${deploymentName(spec.name)} exists but natops did not create it; not touching it`,
      );
    }
    // An external network someone else made (Kube-OVN's, with its IPAM) is used as it is, never taken over.
    const external = externalNetwork(spec.workload.nic, { namespace: this.ns });
    const theirs = await this.readAttachment(EXTERNAL_NETWORK);
    if (theirs && !isManaged(theirs.metadata?.labels)) {
      this.warn(`NetworkAttachmentDefinition ${this.ns}/${EXTERNAL_NETWORK} was not made by natops: using it as it is`);
    } else {
      await this.apply(external);
    }
    const subnet = this.settings.mode === 'multus' ? subnetAttachment(spec, { namespace: this.ns }) : undefined;
    if (subnet) await this.apply(subnet);
    // "created": the pod that answers now is not the one there was (any pod, ready or not: a new pod starts empty)
    const before = new Set((await this.pods(spec.name)).map((p) => p.metadata?.uid));
    await this.apply(
      gatewayDeployment(spec, { namespace: this.ns, mode: this.settings.mode }, [
        external,
        ...(subnet ? [subnet] : []),
      ]) as KubernetesObject,
    );
    const pod = await this.waitForPod(spec.name);
    await this.execIn(pod)({ argv: ['sysctl', '-q', '-w', ...POD_SYSCTLS] });
    return { handle: this.handle(spec.name, pod), created: !before.has(pod.metadata?.uid) };
  }

  private async pods(gateway: string): Promise<V1Pod[]> {
    return (
      await api(`list pods of ${deploymentName(gateway)}`, () =>
        this.core.listNamespacedPod({ namespace: this.ns, labelSelector: `app=${deploymentName(gateway)}` }),
      )
    ).items;
  }

  /** The gateway's pod that is Running, Ready and not being deleted, if there is one now. */
  private async readyPod(gateway: string): Promise<V1Pod | undefined> {
    return (await this.pods(gateway)).find((p) => podReadiness(p).ready);
  }

  private async readAttachment(name: string): Promise<KubernetesObject | undefined> {
    return (await maybe(`read NetworkAttachmentDefinition ${this.ns}/${name}`, () =>
      this.custom.getNamespacedCustomObject({ ...NAD, namespace: this.ns, name }),
    )) as KubernetesObject | undefined;
  }

  /**
   * Waits with a watch until the Deployment's current pod is Running and Ready. The Deployment
   * must have rolled out (observed generation, one updated replica, none other), so an old pod
   * still answering is not taken for the new one. On timeout the cluster's own reason is given.
   */
  async waitForPod(gateway: string): Promise<V1Pod> {
    const name = deploymentName(gateway);
    const deadline = Date.now() + this.settings.readyTimeoutMs;
    const rolledOut = async () => {
      const d = await this.deployment(gateway);
      const s = d?.status;
      return (
        d !== undefined &&
        (s?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
        s?.updatedReplicas === 1 &&
        s?.replicas === 1 &&
        s?.readyReplicas === 1
      );
    };
    // The common case, a pod that is there already, costs two reads and no watch.
    if (await rolledOut()) {
      const pod = await this.readyPod(gateway);
      if (pod) return pod;
    }
    let watch: AbortController | undefined;
    // each pod event wakes the loop once; the watch ending early leaves the short pause
    let wake: () => void = () => undefined;
    let finished = false;
    try {
      void new Watch(this.kc)
        .watch(
          `/api/v1/namespaces/${this.ns}/pods`,
          { labelSelector: `app=${name}` },
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
        if (await rolledOut()) {
          const pod = await this.readyPod(gateway);
          if (pod) return pod;
        }
        const left = deadline - Date.now();
        if (left <= 0) break;
        // a pod event, or a short pause (the Deployment's status trails its pods')
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
    const pods = await api(`list pods of ${name}`, () =>
      this.core.listNamespacedPod({ namespace: this.ns, labelSelector: `app=${name}` }),
    );
    const events = await api(`list events of ${name}`, () =>
      this.core.listNamespacedEvent({ namespace: this.ns, fieldSelector: 'involvedObject.kind=Pod' }),
    );
    throw new GatewayNotReadyError(gateway, notReadyReason(pods.items, events.items, this.settings.readyTimeoutMs));
  }

  async gateway(name: string): Promise<GatewayHandle | undefined> {
    const d = await this.deployment(name);
    if (!d || d.metadata?.labels?.[GATEWAY_LABEL] !== name) return undefined;
    return this.handle(name, await this.waitForPod(name));
  }

  async listGateways(): Promise<string[]> {
    const list = await api('list gateway Deployments', () =>
      this.apps.listNamespacedDeployment({ namespace: this.ns, labelSelector: MANAGED_SELECTOR }),
    );
    return list.items.flatMap((d) => d.metadata?.labels?.[GATEWAY_LABEL] ?? []).sort();
  }

  /** Removes the gateway's Deployment (and its subnet attachment); the external network goes with the last gateway. */
  async removeGateway(name: string): Promise<boolean> {
    const d = await this.deployment(name);
    let removed = false;
    if (d && d.metadata?.labels?.[GATEWAY_LABEL] === name) {
      // A deleted pod's network lives on for a moment after its API object is gone: the gateway
      // is cut off first, so "removed" means it answers no more (best effort: it may be broken).
      const pod = await this.readyPod(name);
      if (pod) {
        const exec = this.execIn(pod);
        for (const dev of ['net1', 'eth0'])
          await exec({ argv: ['ip', 'link', 'set', dev, 'down'] }).catch((e: unknown) =>
            this.warn(`gateway ${name}: ${(e as Error).message}`),
          );
      }
      removed =
        (await maybe(`delete Deployment ${this.ns}/${deploymentName(name)}`, () =>
          this.apps.deleteNamespacedDeployment({
            name: deploymentName(name),
            namespace: this.ns,
            propagationPolicy: 'Background',
            gracePeriodSeconds: 0,
          }),
        )) !== undefined;
    }
    // Removed means no pod answers for it any more, as with a namespace deleted.
    if (removed) await this.waitForPodsGone(name);
    await this.deleteAttachment(subnetAttachmentName(name), { [GATEWAY_LABEL]: name });
    if (!(await this.listGateways()).length) await this.deleteAttachment(EXTERNAL_NETWORK, {});
    return removed;
  }

  private async waitForPodsGone(gateway: string): Promise<void> {
    const name = deploymentName(gateway);
    const deadline = Date.now() + this.settings.readyTimeoutMs;
    for (;;) {
      const pods = await api(`list pods of ${name}`, () =>
        this.core.listNamespacedPod({ namespace: this.ns, labelSelector: `app=${name}` }),
      );
      if (!pods.items.length) return;
      if (Date.now() > deadline)
        throw new KubernetesApiError(
          `remove gateway ${gateway}`,
          undefined,
          `pods ${pods.items.map((p) => p.metadata?.name).join(', ')} still there after ${this.settings.readyTimeoutMs} ms`,
        );
      // the pods of a deleted ReplicaSet go within a second or two (grace period 0)
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Deletes a NetworkAttachmentDefinition only if natops made it (and for that gateway). */
  private async deleteAttachment(name: string, labels: Record<string, string>): Promise<void> {
    const what = `NetworkAttachmentDefinition ${this.ns}/${name}`;
    const nad = await this.readAttachment(name);
    const have = nad?.metadata?.labels ?? {};
    if (!nad || !isManaged(have) || !Object.entries(labels).every(([k, v]) => have[k] === v)) return;
    await maybe(`delete ${what}`, () => this.custom.deleteNamespacedCustomObject({ ...NAD, namespace: this.ns, name }));
  }

  /**
   * Calls `replaced(gateway)` whenever a gateway's pod becomes Ready with a UID not seen Ready
   * before (deleted, evicted, node restarted): it starts empty and needs its rules again.
   * The watch is restarted when the API server ends it. `started` resolves once it first listens
   * (it then sees every current pod first, so a pod replaced after that is noticed).
   */
  watchReplacements(
    replaced: (gateway: string) => void,
    log: (m: string) => void = () => undefined,
  ): { started: Promise<void>; stop(): void } {
    const seen = new Map<string, string>();
    let stopped = false;
    let current: AbortController | undefined;
    let listening: () => void = () => undefined;
    const started = new Promise<void>((r) => (listening = r));
    const start = () => {
      if (stopped) return;
      // client-node reports a refused watch (403) through `done`, then resolves all the same
      let refused = false;
      new Watch(this.kc)
        .watch(
          `/api/v1/namespaces/${this.ns}/pods`,
          { labelSelector: `${VPC_NAT_GW_LABEL}=true` },
          (phase, pod: V1Pod) => {
            const gateway = pod.metadata?.annotations?.[ANNOTATIONS.gateway];
            const uid = pod.metadata?.uid;
            if (!gateway || !uid || phase === 'DELETED' || !podReadiness(pod).ready) return;
            const before = seen.get(gateway);
            seen.set(gateway, uid);
            if (before !== undefined && before !== uid) replaced(gateway);
          },
          (err: unknown) => {
            if (err) refused = true;
            if (stopped) return;
            if (err) log(`pod watch ended: ${describeApiError(err)}; restarting`);
            // (the API server ends a watch every few minutes; one that ends at once must not spin)
            setTimeout(start, err ? 5000 : 1000).unref();
          },
        )
        .then(
          (c) => {
            current = c;
            if (stopped) c.abort();
            else if (!refused) listening();
          },
          (e: unknown) => {
            log(`pod watch failed: ${describeApiError(e)}; retrying`);
            setTimeout(start, 5000).unref();
          },
        );
    };
    start();
    return {
      started,
      stop: () => {
        stopped = true;
        current?.abort();
      },
    };
  }
}
