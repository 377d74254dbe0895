// The clients a handler gets under a lease: every transaction in a gateway, creating or removing
// a gateway and applying the networks first check, in one Redis round trip, that the lease is
// still held (and extend it). Reads need no check: they change nothing.
import type { Lease } from '../../state/lock.ts';
import type { GatewayHandle, GatewayRuntime } from '../../runtime/runtime.ts';
import type { HandlerClients } from './handlers.ts';

function fencedHandle(h: GatewayHandle, lease: Lease): GatewayHandle {
  return {
    ...h,
    readState: (reads) => h.readState(reads),
    runCommands: async (commands) => {
      await lease.check();
      return h.runCommands(commands);
    },
  };
}

export function fenced(clients: HandlerClients, lease: Lease): HandlerClients {
  const rt = clients.runtime;
  const runtime: GatewayRuntime = {
    kind: rt.kind,
    async ensureGateway(spec) {
      await lease.check();
      const r = await rt.ensureGateway(spec);
      return { ...r, handle: fencedHandle(r.handle, lease) };
    },
    async gateway(name) {
      const h = await rt.gateway(name);
      return h && fencedHandle(h, lease);
    },
    listGateways: () => rt.listGateways(),
    async removeGateway(name) {
      await lease.check();
      return rt.removeGateway(name);
    },
  };
  return {
    runtime,
    network: {
      async apply(network) {
        await lease.check();
        return clients.network.apply(network);
      },
    },
  };
}
