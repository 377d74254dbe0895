// Where gateways and networks live, from the configuration: the one place that picks a runtime
// (serve, worker, apply and plan --against live all come here).
// netns: the local lab's namespaces. kubernetes: Deployments or StatefulSets in a cluster
// (KUBECONFIG, or the in-cluster service account); its networks are Kube-OVN's, or the local
// lab's when a lab is named (network mode multus on this machine's cluster: the lab provides
// the attachment points).
// dry-run: nothing runs; every gateway starts empty and its commands are recorded.
import type { KubeConfig } from '@kubernetes/client-node';
import { instanceOf } from '../common/instance.ts';
import type { NetworkModel } from '../dataplane/network.ts';
import { DryRunRuntime } from './dry-run.ts';
import type { NetworkMode } from './kubernetes/objects.ts';
import { Lab } from './netns/lab.ts';
import { NetnsRuntime } from './netns/runtime.ts';
import type { GatewayRuntime, NetworkRuntime } from './runtime.ts';

export type RuntimeConfig =
  | { runtime: 'dry-run' }
  | { runtime: 'netns'; lab?: string | undefined; commandTimeoutMs: number }
  | {
      runtime: 'kubernetes';
      /** a lab that provides the networks and the pods' attachment points (network mode multus here) */
      lab?: string | undefined;
      commandTimeoutMs: number;
      kubeconfig?: string | undefined;
      namespace: string;
      /** the instance label on everything natops makes there (unset: the prefix) */
      instance?: string | undefined;
      prefix: string;
      networkMode: NetworkMode;
      podReadyTimeoutMs: number;
      /** the operator's workload policy (NATOPS_GATEWAY_IMAGES, NATOPS_ALLOW_CONTROL_PLANE) */
      gatewayImages: readonly string[];
      allowControlPlane: boolean;
    };

export interface Runtimes {
  runtime: GatewayRuntime;
  network: NetworkRuntime;
  /** where gateways run, for the start-up line */
  describe: string;
  /** Kubernetes: calls back when a gateway's pod was replaced (it needs a repair); returns a stop function */
  watchReplacements?: (
    replaced: (gateway: string) => void,
    log: (m: string) => void,
  ) => { started: Promise<void>; stop(): void };
}

/** The kubeconfig file named, else client-node's default search (~/.kube/config, then in-cluster). */
async function kubeConfig(file?: string): Promise<KubeConfig> {
  // Loaded only for kubernetes: a netns apply never pays for the Kubernetes client.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

export async function makeRuntimes(c: RuntimeConfig, warn: (m: string) => void): Promise<Runtimes> {
  if (c.runtime === 'dry-run')
    return { runtime: new DryRunRuntime(), network: { apply: async () => [] }, describe: 'dry run' };
  if (c.runtime === 'netns') {
    const lab = new Lab(c.lab, { commandTimeoutMs: c.commandTimeoutMs });
    return {
      runtime: new NetnsRuntime(lab, warn),
      network: { apply: (network: NetworkModel) => lab.up(network) },
      describe: `netns (lab ${lab.names.prefix})`,
    };
  }
  const kc = await kubeConfig(c.kubeconfig);
  const { KubernetesRuntime } = await import('./kubernetes/runtime.ts');
  const runtime = new KubernetesRuntime(
    kc,
    {
      namespace: c.namespace,
      mode: c.networkMode,
      // Two installations in one namespace tell their objects apart by it (review K4).
      instance: instanceOf(c),
      readyTimeoutMs: c.podReadyTimeoutMs,
      commandTimeoutMs: c.commandTimeoutMs,
      policy: { images: c.gatewayImages, allowControlPlane: c.allowControlPlane },
    },
    warn,
  );
  const lab = c.lab === undefined ? undefined : new Lab(c.lab, { commandTimeoutMs: c.commandTimeoutMs });
  const network: NetworkRuntime = lab
    ? { apply: async (n: NetworkModel) => [...(await lab.up(n)), ...(await lab.attachHost(n))] }
    : // Kube-OVN owns the VPCs, subnets and static routes; natops runs only the gateways.
      { apply: async () => [] };
  return {
    runtime,
    network,
    describe: `kubernetes (${kc.getCurrentCluster()?.server ?? 'in-cluster'}, namespace ${c.namespace}, instance ${instanceOf(c)}, network mode ${c.networkMode}${lab ? `, lab ${lab.names.prefix}` : ''})`,
    watchReplacements: (replaced, log) => runtime.watchReplacements(replaced, log),
  };
}
