// The seed, extended so every path is exercised: a UDP port forward, a second subnet of the
// VPC with a port forward and SNAT of its own, and workload hosts in each place.
import { after, before } from 'node:test';
import type { Dataplane } from '../../dataplane/model.ts';
import { DATAPLANE_ANNOTATION } from '../../gitops/manifests/schema.ts';
import type { GatewayRuntime } from '../../runtime/runtime.ts';
import { LabHarness } from './lab-harness.ts';
import { gatewayInOwnVpc, push, seedObjects, set, subnet, withPortForward, type SeedObjects } from './manifests.ts';

export async function scenarioManifests(dataplane: Dataplane = 'iptables'): Promise<SeedObjects> {
  const seed = await seedObjects();
  if (dataplane !== 'iptables') onDataplane(seed, dataplane);
  seed.extra.push(subnet('sn2', 'test-vpc-1', '10.0.2.0/24', '10.0.2.1'));
  push(seed.gateway, 'spec.dnatRules', {
    eip: '192.168.0.112',
    externalPort: '5353',
    protocol: 'udp',
    internalIp: '10.0.1.10',
    internalPort: '53',
  });
  push(seed.gateway, 'spec.dnatRules', {
    eip: '192.168.0.112',
    externalPort: 2222,
    protocol: 'tcp',
    internalIp: '10.0.2.10',
    internalPort: 9000,
  });
  push(seed.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.2.0/24' });
  return seed;
}

/** Puts the seed's gateway on `dataplane` (its manifest's annotation). */
export function onDataplane(seed: SeedObjects, dataplane: Dataplane): SeedObjects {
  set(seed.gateway, 'metadata.annotations', { [DATAPLANE_ANNOTATION]: dataplane });
  return seed;
}

/** The seed scenarios: the seed, with one more port forward, the lab scenario, and three gateways. */
export async function seedScenarios(): Promise<[string, SeedObjects][]> {
  const seed = await seedObjects();
  const three = await seedObjects();
  three.extra.push(
    ...gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn-2', n: 2, eip: '192.168.0.120' }),
    ...gatewayInOwnVpc({ gateway: 'gw3', vpc: 'vpc3', subnet: 'sn-3', n: 3, eip: '192.168.0.130' }),
  );
  return [
    ['seed', seed],
    ['seed with a port forward', withPortForward(seed, 8080)],
    ['the lab scenario', await scenarioManifests()],
    ['three gateways', three],
  ];
}

/** Hosts: fip (the floating IP's), web, client on sn; db on sn2; ext on the underlay. */
export async function startScenario(harness: LabHarness, seed: SeedObjects, runtime?: GatewayRuntime): Promise<void> {
  await harness.apply(seed, runtime);
  const hosts: [string, string, string][] = [
    ['fip', 'sn', '10.0.1.5/24'],
    ['fip2', 'sn', '10.0.1.6/24'],
    ['web', 'sn', '10.0.1.10/24'],
    ['client', 'sn', '10.0.1.20/24'],
    ['db', 'sn2', '10.0.2.10/24'],
    ['ext', 'external', '192.168.0.50/24'],
  ];
  for (const [name, net, ip] of hosts) await harness.host(name, net, ip);
  await Promise.all(hosts.map(([name]) => harness.serve(name, { tcp: [80, 9000], udp: [53] })));
}

/** Inside a describe: the scenario's lab before the tests, removed after them even if they fail. */
export function useScenario(
  ready: (harness: LabHarness, seed: SeedObjects) => void,
  dataplane: Dataplane = 'iptables',
): void {
  let harness: LabHarness | undefined;
  before(async () => {
    harness = await LabHarness.create();
    const seed = await scenarioManifests(dataplane);
    await startScenario(harness, seed);
    ready(harness, seed);
  });
  after(async () => {
    await harness?.cleanup();
  });
}
