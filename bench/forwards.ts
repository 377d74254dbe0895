// The gateways the benchmarks change: the seed's gateway plus N port forwards, one of them
// possibly with another backend port. Every value is generated here, none comes from a manifest.
import type { DnatSpec, GatewaySpec } from '../dataplane/model.ts';

export const EIP = '192.168.0.112';
export const BACKEND = '10.0.1.10';

/** tcp ports from 20000 for the first forwards, then udp ports from 10000: 100,000 fit on one EIP */
const TCP_PORTS = 45_000;

/** Forward `i` of the benches' N, on 192.168.0.112, to the backend's port 80 unless told. */
export const forwardAt = (i: number, internalPort = 80): DnatSpec => ({
  eip: EIP,
  externalPort: i < TCP_PORTS ? 20000 + i : 10000 + i - TCP_PORTS,
  protocol: i < TCP_PORTS ? 'tcp' : 'udp',
  internalIp: BACKEND,
  internalPort,
});

/** The seed's gateway plus `n` port forwards (forwardAt), the one at `changed.index` to another backend port. */
export function withForwards(
  base: GatewaySpec,
  n: number,
  changed?: { index: number; internalPort: number },
): GatewaySpec {
  const dnats = [...base.dnats];
  for (let i = 0; i < n; i++) dnats.push(forwardAt(i, changed?.index === i ? changed.internalPort : 80));
  return { ...base, dnats };
}
