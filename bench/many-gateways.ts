// Repositories of many gateways for the benches (plan-scale, pipeline-rate): every gateway in a
// VPC and subnet of its own with two EIPs, a floating IP, eight port forwards and one SNAT
// (twelve rules). Every value is generated here.
import { stringify } from 'yaml';

/** The external network's addresses: 172.16.0.0/12, two EIPs per gateway. */
function eip(k: number): string {
  const a = 2 + k; // .0.0 and .0.1 are the network and its gateway
  return `172.${16 + (a >> 16)}.${(a >> 8) & 255}.${a & 255}`;
}

/** The n-th gateway's name. */
export const gatewayName = (n: number): string => `gw-${n}`;

/** The n-th gateway, its VPC and subnet; `forwardPort`: its first port forward's backend port (default 80). */
export function gatewayObjects(n: number, opts: { forwardPort?: number } = {}): object[] {
  const net = `10.${n >> 8}.${n & 255}`;
  const [e1, e2] = [eip(2 * n), eip(2 * n + 1)];
  const vpc = `vpc-${n}`;
  return [
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'Vpc',
      metadata: { name: vpc },
      spec: { staticRoutes: [{ cidr: '0.0.0.0/0', nextHopIP: `${net}.254`, policy: 'policyDst' }] },
    },
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'Subnet',
      metadata: { name: `sn-${n}` },
      spec: { vpc, protocol: 'IPv4', cidrBlock: `${net}.0/24`, gateway: `${net}.1` },
    },
    {
      apiVersion: 'kubeovn.io/v1',
      kind: 'VpcNatGateway',
      metadata: { name: gatewayName(n) },
      spec: {
        vpc,
        subnet: `sn-${n}`,
        lanIp: `${net}.254`,
        eips: [
          { eipCIDR: `${e1}/12`, gateway: '172.16.0.1' },
          { eipCIDR: `${e2}/12`, gateway: '172.16.0.1' },
        ],
        floatingIpRules: [{ eip: e1, internalIp: `${net}.5` }],
        dnatRules: Array.from({ length: 8 }, (_, i) => ({
          eip: e2,
          externalPort: 8000 + i,
          protocol: 'tcp',
          internalIp: `${net}.${10 + i}`,
          internalPort: i === 0 && opts.forwardPort !== undefined ? opts.forwardPort : 80,
        })),
        snatRules: [{ eip: e2, internalCIDR: `${net}.0/24` }],
      },
    },
  ];
}

const CONFIG = {
  kind: 'ConfigMap',
  apiVersion: 'v1',
  metadata: { name: 'ovn-vpc-nat-gw-config', namespace: 'kube-system' },
  data: { image: 'kubeovn/vpc-nat-gateway:v1.7.0', 'enable-vpc-nat-gw': 'true', nic: 'eth1' },
};

/**
 * The repository's files: 00-config.yaml and gateways-NNN.yaml. `changed`: a gateway whose first
 * port forward goes to another backend port than 80 (a one-file change).
 */
export function manyGatewayFiles(
  files: number,
  perFile: number,
  changed?: { gateway: number; internalPort: number },
): { path: string; text: string }[] {
  const out = [{ path: '00-config.yaml', text: stringify(CONFIG) }];
  for (let f = 0; f < files; f++) {
    const docs: string[] = [];
    for (let g = 0; g < perFile; g++) {
      const n = f * perFile + g;
      for (const o of gatewayObjects(n, n === changed?.gateway ? { forwardPort: changed.internalPort } : {}))
        docs.push(stringify(o));
    }
    out.push({ path: `gateways-${String(f).padStart(3, '0')}.yaml`, text: docs.join('---\n') });
  }
  return out;
}

/**
 * `count` gateways, one file each (gateways/gw-N.yaml), every first port forward to backend port
 * `forwardPort`: a new port changes every gateway's port forwards and nothing else.
 */
export function gatewayPerFile(count: number, forwardPort: number): { path: string; text: string }[] {
  const files = Array.from({ length: count }, (_, n) => ({
    path: `gateways/${gatewayName(n)}.yaml`,
    text: gatewayObjects(n, { forwardPort })
      .map((o) => stringify(o))
      .join('---\n'),
  }));
  return [{ path: '00-config.yaml', text: stringify(CONFIG) }, ...files];
}
