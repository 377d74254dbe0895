// The Kubernetes runtime: each gateway a workload in one of Kube-OVN's forms (1.7's Deployment or
// the current StatefulSet: workloads.ts), every change one transaction through pods/exec with the
// same reader, diff and commands as the netns runtime.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
  type V1Pod,
} from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import type { Exec as CommandExec } from '../../common/exec.ts';
import { type GatewaySpec, workloadKind } from '../../dataplane/model.ts';
import { type WorkloadPolicy, workloadPolicyViolations } from '../../dataplane/workload-policy.ts';
import { NftablesCache, readGatewayState, runCommands } from '../gateway-io.ts';
import type { GatewayHandle, GatewayRuntime } from '../runtime.ts';
import { api, ApplyConflictError, applyConflict, KubernetesApiError, maybe, statusOf } from './api.ts';
import {
  CONTAINER,
  externalNetwork,
  EXTERNAL_NETWORK,
  FIELD_MANAGER,
  GATEWAY_LABEL,
  gatewayWorkload,
  INSTANCE_LABEL,
  isLabelValue,
  isManaged,
  isOurs,
  type NetworkAttachment,
  ownSelector,
  selectorOf,
  subnetAttachment,
  subnetAttachmentName,
  type NetworkMode,
  workloadName,
} from './objects.ts';
import { macvlanOf, notOwnedReason, podController } from './ownership.ts';
import { adoptedDifferences, isAdopted } from './adoption.ts';
import { describeApiError, podExec } from './pod-exec.ts';
import { GatewayNotReadyError, notReadyReason, podReadiness } from './pods.ts';
import { watchReplacements } from './replacements.ts';
import { userlandChecker } from './userland.ts';
import {
  describeWorkload,
  type GatewayWorkloadObject,
  isCurrentPod,
  isStuckPod,
  rolledOut,
  untilPodEvent,
  Workloads,
} from './workloads.ts';

export { ApplyConflictError, KubernetesApiError } from './api.ts';
export { GatewayNotReadyError } from './pods.ts';
export { FIELD_MANAGER } from './objects.ts';

export interface KubernetesSettings {
  /**
   * where gateways run: natops's own namespace (natops-gateways by default). Kube-OVN's
   * kube-system also works, but natops's Role there amounts to cluster-admin (exec into etcd's
   * and the controller-manager's pods): deploy/kubernetes/rbac.yaml.
   */
  namespace: string;
  mode: NetworkMode;
  /** the instance label's value: this natops lists, execs into and prunes only what carries it */
  instance: string;
  /** how long a gateway pod may take to be Running and Ready */
  readyTimeoutMs: number;
  /** every command in a gateway is given up after this long */
  commandTimeoutMs: number;
  /**
   * the images and placement the operator allows; checked again here because a gateway's spec
   * reaches the runtime through Redis, which is not Git (validation checked the manifests)
   */
  policy: WorkloadPolicy;
}

const NAD = { group: 'k8s.cni.cncf.io', version: 'v1', plural: 'network-attachment-definitions' } as const;
/** Pod sysctls the gateway needs that a pod spec cannot set without unsafe-sysctl flags: replies are policy-routed. */
const POD_SYSCTLS = [
  'net.ipv4.conf.all.rp_filter=0',
  'net.ipv4.conf.default.rp_filter=0',
  'net.ipv4.conf.eth0.rp_filter=0',
  'net.ipv4.conf.net1.rp_filter=0',
];

const sameLabels = (a: Record<string, string> | undefined, b: Record<string, string>): boolean =>
  Object.keys(a ?? {}).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a?.[k] === v);

export class KubernetesRuntime implements GatewayRuntime {
  /** each gateway pod's nftables table between changes (gateway-io.ts) */
  private readonly nftables = new NftablesCache();
  readonly kind = 'kubernetes' as const;
  readonly commandTimeoutMs: number;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly objects: KubernetesObjectApi;
  private readonly exec: Exec;
  private readonly workloads: Workloads;
  /** pods already warned about as not the gateway's own (once each) */
  private readonly foreignPods = new Set<string>();
  /** the image's tools, checked once per pod before its first command (GatewayImageError) */
  private readonly checkUserland: ReturnType<typeof userlandChecker>;

  constructor(
    readonly kc: KubeConfig,
    readonly settings: KubernetesSettings,
    private readonly warn: (m: string) => void = () => undefined,
  ) {
    if (!isLabelValue(settings.instance) || !settings.instance)
      throw new PermanentError(
        `natops instance "${settings.instance}" (NATOPS_INSTANCE, else NATOPS_PREFIX) is not a Kubernetes label value (at most 63 letters, digits, "-", "_", ".", alphanumeric at both ends): set NATOPS_INSTANCE`,
      );
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.exec = new Exec(kc);
    this.workloads = new Workloads(this.apps, settings.namespace, settings.instance);
    this.checkUserland = userlandChecker(this.exec);
    this.commandTimeoutMs = settings.commandTimeoutMs;
  }

  private get ns() {
    return this.settings.namespace;
  }

  private ours(labels: Record<string, string> | undefined, gateway?: string): boolean {
    return isOurs(labels, this.settings.instance, gateway);
  }

  /** Why an object of a natops name is refused: whose it is, and how to adopt one from an older natops. */
  private notOurs(what: string, labels: Record<string, string> | undefined): PermanentError {
    const instance = labels?.[INSTANCE_LABEL];
    const whose = !isManaged(labels)
      ? 'natops did not create it'
      : instance === undefined
        ? `a natops without instance labels made it (to adopt it: label it ${INSTANCE_LABEL}=${this.settings.instance})`
        : `it is natops instance ${instance}'s, not ${this.settings.instance}'s`;
    return new PermanentError(`${what} exists but ${whose}; not touching it`);
  }

  /**
   * Server-side apply as natops, without force: the same object again writes nothing, and a
   * field another manager owns is not taken over but reported (ApplyConflictError).
   */
  private async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    const what = `apply ${obj.kind} ${obj.metadata?.namespace}/${obj.metadata?.name}`;
    try {
      return await this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, false, PatchStrategy.ServerSideApply);
    } catch (e) {
      const conflict = applyConflict(e);
      if (conflict) throw new ApplyConflictError(what, conflict.managers, conflict.fields);
      throw new KubernetesApiError(what, statusOf(e), describeApiError(e));
    }
  }

  private execIn(pod: V1Pod): CommandExec {
    return podExec(
      this.exec,
      { namespace: this.ns, name: pod.metadata!.name!, container: CONTAINER, uid: pod.metadata!.uid! },
      { timeoutMs: this.commandTimeoutMs },
    );
  }

  /** A gateway's pod, its userland checked; then its handle. */
  private async handle(name: string, pod: V1Pod): Promise<GatewayHandle> {
    const image = pod.spec?.containers.find((c) => c.name === CONTAINER)?.image ?? '(unknown image)';
    await this.checkUserland({
      namespace: this.ns,
      name: pod.metadata!.name!,
      container: CONTAINER,
      uid: pod.metadata!.uid!,
      image,
    });
    const exec = this.execIn(pod);
    // (a new pod is a new table: keyed by the pod's uid)
    const slot = { cache: this.nftables, key: pod.metadata!.uid! };
    return {
      name,
      location: `pod ${this.ns}/${pod.metadata!.name}`,
      readState: (reads) => readGatewayState(exec, reads, slot),
      runCommands: (commands) => runCommands(exec, commands, this.warn, slot),
    };
  }

  /**
   * The workload that is the gateway now: during a change of form both exist for a moment, and
   * the newer one that has rolled out is the gateway (the older one is deleted once the newer
   * one's pod is Ready; while the newer one's pod cannot start, the older one still answers).
   */
  private async current(gateway: string): Promise<GatewayWorkloadObject | undefined> {
    const rank = (w: GatewayWorkloadObject) =>
      (rolledOut(w) ? 1e15 : 0) + new Date(w.metadata?.creationTimestamp ?? 0).getTime();
    return (await this.workloads.ours(gateway)).sort((x, y) => rank(y) - rank(x))[0];
  }

  private readonly readReplicaSet = (name: string) =>
    maybe(`read ReplicaSet ${this.ns}/${name}`, () => this.apps.readNamespacedReplicaSet({ name, namespace: this.ns }));

  /** The pods of `gateway` that workload `w` made (ownership.ts, by UID); others are warned about once. */
  private async ownedPods(gateway: string, w: GatewayWorkloadObject, pods?: V1Pod[]): Promise<V1Pod[]> {
    const owned: V1Pod[] = [];
    // an adopted workload's pods made since its adoption have its template's labels, not natops's
    const expect = { instance: this.settings.instance, gateway, labelled: !isAdopted(w) };
    for (const pod of pods ?? (await this.pods(gateway, w))) {
      const why = await notOwnedReason(pod, w, expect, this.readReplicaSet);
      if (!why) owned.push(pod);
      else if (pod.metadata?.uid && !this.foreignPods.has(pod.metadata.uid)) {
        this.foreignPods.add(pod.metadata.uid);
        this.warn(`pod ${this.ns}/${pod.metadata.name} is not gateway ${gateway}'s own (${why}): never exec'd into`);
      }
    }
    return owned;
  }

  async ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }> {
    if (!spec.workload.image)
      throw new PermanentError(
        `gateway ${spec.name}: no image (the manifests have no ConfigMap ovn-vpc-nat-gw-config)`,
      );
    const refused = workloadPolicyViolations(spec.workload, this.settings.policy);
    if (refused.length)
      throw new PermanentError(
        `gateway ${spec.name}: refused by the operator's policy: ${refused.map((v) => `${v.path.join('.')}: ${v.message}`).join('; ')}`,
      );
    const kind = workloadKind(spec.workload);
    const name = workloadName(spec);
    let existing = await this.workloads.read(kind, name);
    if (existing && !this.ours(existing.metadata?.labels, spec.name))
      throw this.notOurs(`${kind} ${this.ns}/${name}`, existing.metadata?.labels);
    // the gateway's other workloads: its other form, or a StatefulSet of an older name prefix
    const others = (await this.workloads.ours(spec.name)).filter((w) => w.kind !== kind || w.metadata?.name !== name);
    const settings = { namespace: this.ns, instance: this.settings.instance };
    const external = externalNetwork(spec.workload.nic, settings);
    await this.ensureExternalNetwork(external);
    const subnet = this.settings.mode === 'multus' ? subnetAttachment(spec, settings) : undefined;
    if (subnet) {
      const have = await this.readAttachment(subnet.metadata.name);
      if (have && !this.ours(have.metadata?.labels, spec.name))
        throw this.notOurs(`NetworkAttachmentDefinition ${this.ns}/${subnet.metadata.name}`, have.metadata?.labels);
      await this.apply(subnet);
    }
    const keepOffControlPlane = !this.settings.policy.allowControlPlane;
    const desired = gatewayWorkload(spec, { ...settings, mode: this.settings.mode, keepOffControlPlane }, [
      external,
      ...(subnet ? [subnet] : []),
    ]);
    // A workload adopted from Kube-OVN (adoption.ts) is kept while its pod runs what Git asks:
    // natops's template would restart the pod. Otherwise it is replaced like an older selector.
    const differs = existing && isAdopted(existing) ? adoptedDifferences(existing, desired) : undefined;
    const keep = differs?.length === 0;
    if (differs?.length)
      this.warn(
        `${describeWorkload(existing!)}, adopted from Kube-OVN, runs other than Git asks (${differs.join('; ')}): replacing it with natops's own`,
      );
    // A selector cannot change: a workload of ours with an older one (from a natops before
    // instance labels, adopted by labelling it) is replaced, as a changed template replaces the pod.
    if (
      !keep &&
      existing &&
      (differs?.length || !sameLabels(existing.spec?.selector.matchLabels, desired.spec.selector.matchLabels))
    ) {
      this.warn(`${describeWorkload(existing)} has an older selector: recreating it`);
      await this.removeWorkload(spec.name, existing, false);
      existing = undefined;
    }
    // "created": the pod that answers now is not the one there was (any pod, ready or not: a new pod starts empty)
    const before = new Set((existing ? await this.ownedPods(spec.name, existing) : []).map((p) => p.metadata?.uid));
    if (!keep) await this.apply(desired as KubernetesObject);
    const pod = await this.waitForPod(spec.name, { kind, name });
    // A change of form: the old workload goes once the new one's pod is Ready (until then the old
    // one answers; a new pod that never gets Ready leaves it in place). Cut off first, as on removal.
    for (const old of others) {
      this.warn(`gateway ${spec.name}: replacing ${describeWorkload(old)} with ${kind} ${this.ns}/${name}`);
      await this.removeWorkload(spec.name, old, true);
    }
    const handle = await this.handle(spec.name, pod);
    await this.execIn(pod)({ argv: ['sysctl', '-q', '-w', ...POD_SYSCTLS] });
    return { handle, created: !before.has(pod.metadata?.uid) };
  }

  /**
   * The external network is one per namespace, shared by every natops instance there: this
   * instance writes it when it is absent or its own; another instance's is used as it is when it
   * is the same macvlan, else refused (pods would land on the other's nic). One natops did not
   * make (Kube-OVN's, with its IPAM) is used as it is, never taken over.
   */
  private async ensureExternalNetwork(external: NetworkAttachment): Promise<void> {
    const what = `NetworkAttachmentDefinition ${this.ns}/${EXTERNAL_NETWORK}`;
    const have = (await this.readAttachment(EXTERNAL_NETWORK)) as
      | (KubernetesObject & { spec?: { config?: unknown } })
      | undefined;
    const labels = have?.metadata?.labels;
    if (!have || this.ours(labels)) {
      await this.apply(external);
    } else if (!isManaged(labels)) {
      this.warn(`${what} was not made by natops: using it as it is`);
    } else {
      const theirs = macvlanOf(have.spec?.config);
      const mine = macvlanOf(external.spec.config)!;
      if (theirs?.type !== mine.type || theirs?.master !== mine.master || theirs?.mode !== mine.mode)
        throw new PermanentError(
          `${what} is natops instance ${labels?.[INSTANCE_LABEL] ?? '(unlabelled)'}'s, a ${String(theirs?.type)} on ${String(theirs?.master)}; gateways of instance ${this.settings.instance} need a ${String(mine.type)} on ${String(mine.master)}, and a namespace has one external network`,
        );
    }
  }

  /**
   * The gateway's pods by natops's labels; those of an adopted workload by its selector, which is
   * Kube-OVN's (adoption.ts): ownership (ownedPods) is checked by UID either way.
   */
  private podSelector(gateway: string, w: GatewayWorkloadObject | undefined): string {
    if (!w || !isAdopted(w)) return ownSelector(this.settings.instance, gateway);
    return selectorOf(w.spec?.selector.matchLabels ?? {});
  }

  private async pods(gateway: string, w?: GatewayWorkloadObject): Promise<V1Pod[]> {
    const labelSelector = this.podSelector(gateway, w);
    return (
      await api(`list pods of gateway ${gateway}`, () =>
        this.core.listNamespacedPod({ namespace: this.ns, labelSelector }),
      )
    ).items;
  }

  /** The pod of workload `w` that is Running, Ready, of its current template and not being deleted, if there is one now. */
  private async readyPod(gateway: string, w: GatewayWorkloadObject): Promise<V1Pod | undefined> {
    const ready = (await this.pods(gateway, w)).filter((p) => podReadiness(p).ready && isCurrentPod(w, p));
    return (await this.ownedPods(gateway, w, ready))[0];
  }

  private async readAttachment(name: string): Promise<KubernetesObject | undefined> {
    return (await maybe(`read NetworkAttachmentDefinition ${this.ns}/${name}`, () =>
      this.custom.getNamespacedCustomObject({ ...NAD, namespace: this.ns, name }),
    )) as KubernetesObject | undefined;
  }

  /**
   * Waits with a watch until the gateway's workload (`target`, else its current one) has rolled
   * out to one pod, Running and Ready: an old pod still answering is not taken for the new one.
   * A StatefulSet's pod of an older template that is not Ready is deleted (workloads.ts,
   * isStuckPod). On timeout the cluster's own reason is given.
   */
  async waitForPod(gateway: string, target?: { kind: GatewayWorkloadObject['kind']; name: string }): Promise<V1Pod> {
    const deadline = Date.now() + this.settings.readyTimeoutMs;
    const read = async (): Promise<GatewayWorkloadObject | undefined> => {
      const w = target ? await this.workloads.read(target.kind, target.name) : await this.current(gateway);
      if (w && !this.ours(w.metadata?.labels, gateway)) throw this.notOurs(describeWorkload(w), w.metadata?.labels);
      return w;
    };
    const readyNow = async () => {
      const w = await read();
      if (!w) return undefined;
      if (rolledOut(w)) return this.readyPod(gateway, w);
      await this.unstick(gateway, w);
      return undefined;
    };
    const pod = await untilPodEvent(
      this.kc,
      { namespace: this.ns, labelSelector: this.podSelector(gateway, await read()) },
      deadline,
      readyNow,
    );
    if (pod) return pod;
    const w = await read();
    const pods = w ? await this.ownedPods(gateway, w) : [];
    const events = await api(`list events of gateway ${gateway}`, () =>
      this.core.listNamespacedEvent({ namespace: this.ns, fieldSelector: 'involvedObject.kind=Pod' }),
    );
    throw new GatewayNotReadyError(gateway, notReadyReason(pods, events.items, this.settings.readyTimeoutMs));
  }

  /** Deletes a StatefulSet's pod that its controller would leave broken (exactly that pod: a UID precondition). */
  private async unstick(gateway: string, w: GatewayWorkloadObject): Promise<void> {
    if (w.kind !== 'StatefulSet') return;
    for (const pod of await this.ownedPods(gateway, w)) {
      if (!isStuckPod(w, pod, podReadiness(pod).ready)) continue;
      const name = pod.metadata!.name!;
      this.warn(`gateway ${gateway}: pod ${this.ns}/${name} of an older template is not ready: deleting it`);
      await maybe(`delete pod ${this.ns}/${name}`, () =>
        this.core.deleteNamespacedPod({
          name,
          namespace: this.ns,
          body: { preconditions: { uid: pod.metadata?.uid }, gracePeriodSeconds: 0 },
        }),
      );
    }
  }

  async gateway(name: string): Promise<GatewayHandle | undefined> {
    const w = await this.current(name);
    if (!w) return undefined;
    return this.handle(name, await this.waitForPod(name, { kind: w.kind, name: w.metadata!.name! }));
  }

  /** This instance's gateways: its Deployments and StatefulSets, by their labels and name. */
  async listGateways(): Promise<string[]> {
    const names = (await this.workloads.ours()).map((w) => w.metadata!.labels![GATEWAY_LABEL]!);
    return [...new Set(names)].sort();
  }

  /**
   * Removes the gateway's workloads (and its subnet attachment) if this instance made them; the
   * external network goes when no natops gateway of any instance is left in the namespace.
   */
  async removeGateway(name: string): Promise<boolean> {
    let removed = false;
    for (const w of await this.workloads.ours(name)) removed = (await this.removeWorkload(name, w, true)) || removed;
    await this.deleteAttachment(subnetAttachmentName(name), (labels) => this.ours(labels, name));
    if (!(await this.workloads.anyManaged())) await this.deleteAttachment(EXTERNAL_NETWORK, isManaged);
    return removed;
  }

  /**
   * Deletes one workload of the gateway, exactly the one read (a UID precondition), and waits
   * until its pods are gone: removed means no pod answers for it any more, as with a namespace
   * deleted. `cutOff`: its Ready pod's links go down first, because a deleted pod's network lives
   * on for a moment after its API object is gone (best effort: it may be broken).
   */
  private async removeWorkload(gateway: string, w: GatewayWorkloadObject, cutOff: boolean): Promise<boolean> {
    const pod = cutOff ? await this.readyPod(gateway, w) : undefined;
    if (pod) {
      const exec = this.execIn(pod);
      for (const dev of ['net1', 'eth0'])
        await exec({ argv: ['ip', 'link', 'set', dev, 'down'] }).catch((e: unknown) =>
          this.warn(`gateway ${gateway}: ${(e as Error).message}`),
        );
    }
    const removed = await this.workloads.delete(w);
    if (removed) await this.waitForPodsGone(gateway, w);
    return removed;
  }

  /** Waits until the pods of the deleted workload `uid` are gone (a pod that is not its is no reason to wait). */
  private async waitForPodsGone(gateway: string, w: GatewayWorkloadObject): Promise<void> {
    const deadline = Date.now() + this.settings.readyTimeoutMs;
    const uid = w.metadata?.uid;
    for (;;) {
      const left: V1Pod[] = [];
      for (const pod of await this.pods(gateway, w)) {
        const controller = await podController(pod, this.readReplicaSet);
        if (controller === 'gone' || ('uid' in controller && controller.uid === uid)) left.push(pod);
      }
      if (!left.length) return;
      if (Date.now() > deadline)
        throw new KubernetesApiError(
          `remove gateway ${gateway}`,
          undefined,
          `pods ${left.map((p) => p.metadata?.name).join(', ')} still there after ${this.settings.readyTimeoutMs} ms`,
        );
      // the pods of a deleted workload go within a second or two (grace period 0)
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Deletes a NetworkAttachmentDefinition if its labels pass `mine`, exactly the one read (a UID precondition). */
  private async deleteAttachment(name: string, mine: (labels: Record<string, string> | undefined) => boolean) {
    const nad = await this.readAttachment(name);
    if (!nad || !mine(nad.metadata?.labels)) return;
    await maybe(`delete NetworkAttachmentDefinition ${this.ns}/${name}`, () =>
      this.custom.deleteNamespacedCustomObject({
        ...NAD,
        namespace: this.ns,
        name,
        body: { preconditions: { uid: nad.metadata?.uid } },
      }),
    );
  }

  /**
   * Calls `replaced(gateway)` whenever one of this instance's gateway pods becomes Ready with a
   * UID not seen Ready before (replacements.ts). A pod its workload did not make is ignored.
   */
  watchReplacements(
    replaced: (gateway: string) => void,
    log: (m: string) => void = () => undefined,
  ): { started: Promise<void>; stop(): void } {
    return watchReplacements(
      this.kc,
      { namespace: this.ns, labelSelector: ownSelector(this.settings.instance) },
      async (gateway, pod) => {
        for (const w of await this.workloads.ours(gateway))
          if ((await this.ownedPods(gateway, w, [pod])).length > 0) return true;
        return false;
      },
      replaced,
      log,
    );
  }
}
