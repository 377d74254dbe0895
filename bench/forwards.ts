// The gateways the benchmarks change: the seed's gateway plus N port forwards, one of them
// possibly with another backend port. Every value is generated here, none comes from a manifest.
import type { GatewaySpec } from '../dataplane/model.ts';

export const EIP = '192.168.0.112';
export const BACKEND = '10.0.1.10';

/** The seed's gateway plus `n` port forwards on 192.168.0.112, ports 20000 and up. */
export function withForwards(
  base: GatewaySpec,
  n: number,
  changed?: { index: number; internalPort: number },
): GatewaySpec {
  const dnats = [...base.dnats];
  for (let i = 0; i < n; i++) {
    dnats.push({
      eip: EIP,
      externalPort: 20000 + i,
      protocol: 'tcp',
      internalIp: BACKEND,
      internalPort: changed?.index === i ? changed.internalPort : 80,
    });
  }
  return { ...base, dnats };
}
