// The handler kinds, one per Kube-OVN worker type, and which part of a gateway each owns. Pure:
// the planner, the queues and the handlers all take them from here.
import { GATEWAY_PARTS, type GatewayPart } from './parts.ts';

export const HANDLER_KINDS = [
  'vpc',
  'gateway',
  'gateway-init',
  'gateway-delete',
  'eip',
  'fip',
  'dnat',
  'snat',
  'subnet-route',
] as const;
export type HandlerKind = (typeof HANDLER_KINDS)[number];

/** The handler that owns each part of a live gateway. */
export const PART_KIND: Record<GatewayPart, HandlerKind> = {
  init: 'gateway-init',
  eip: 'eip',
  'subnet-route': 'subnet-route',
  fip: 'fip',
  dnat: 'dnat',
  snat: 'snat',
};

/** A gateway's jobs in the order they run (docs/architecture.md, "The loop"): networks, Deployment, init, the rest. */
export const KIND_ORDER: readonly HandlerKind[] = ['vpc', 'gateway', ...GATEWAY_PARTS.map((p) => PART_KIND[p])];

/** Every job that builds a gateway from nothing (a recreated gateway starts empty). */
export const FULL_GATEWAY: readonly HandlerKind[] = KIND_ORDER.filter((k) => k !== 'vpc');
