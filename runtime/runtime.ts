// What a runtime gives the reconciler: a gateway to create, read, change and remove.
import type { Command } from '../dataplane/commands.ts';
import type { GatewaySpec, StateOf, StateRead } from '../dataplane/model.ts';
import type { NetworkModel } from '../dataplane/network.ts';

export type RuntimeKind = 'netns' | 'kubernetes' | 'dry-run';

export interface GatewayHandle {
  name: string;
  /** where it runs, for messages: "namespace natops-gw-ngw" */
  location: string;
  /**
   * The live state; given `reads`, only those (a read-back after a small change need not list
   * every rule). A handle may return more than asked: callers use whatever fields come back.
   */
  readState<R extends StateRead = StateRead>(reads?: readonly R[]): Promise<StateOf<R>>;
  runCommands(commands: Command[]): Promise<void>;
}

export interface GatewayRuntime {
  readonly kind: RuntimeKind;
  /** The Deployment step: the gateway exists, wired to its subnet and the underlay. */
  ensureGateway(spec: GatewaySpec): Promise<{ handle: GatewayHandle; created: boolean }>;
  /** An existing gateway, or undefined. */
  gateway(name: string): Promise<GatewayHandle | undefined>;
  listGateways(): Promise<string[]>;
  removeGateway(name: string): Promise<boolean>;
}

/** Where the networks live: the lab's bridges and VPC routers locally, OVN in a cluster. */
export interface NetworkRuntime {
  /** Makes the networks match; returns what it changed (empty: nothing). */
  apply(network: NetworkModel): Promise<string[]>;
}
