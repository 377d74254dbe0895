// Kube-OVN's current form (IptablesEIP and the rule kinds) beside the 1.7 form: one gateway state
// from both, and each rule Kube-OVN's webhook and controller enforce as a problem at its line.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import { formatIssue, refusesCommit, type ManifestIssue } from '../../gitops/manifests/issues.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { validateManifests, type ValidationResult } from '../../gitops/manifests/validate.ts';
import { natops } from '../helpers/cli.ts';
import { asOneFile, EXTERNAL_NETWORK, externalNad, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { gatewayInOwnVpc, seedObjects, SEED_DIR, toFiles, type Obj } from '../helpers/manifests.ts';
import { seedScenarios } from '../helpers/scenario.ts';

function valid(result: ValidationResult): ValidationResult {
  assert.deepEqual(result.issues.map(formatIssue), []);
  return result;
}

const current = (objects: readonly Obj[]) => validateManifests([asOneFile(toCurrentForm(objects))]);

describe('the current form and the 1.7 form compile to one gateway state', () => {
  it('for every seed scenario: the same GatewaySpecs, states and network model', async () => {
    for (const [name, seed] of await seedScenarios()) {
      const old = valid(validateManifests(toFiles(seed))).desired;
      const now = valid(current(seedList(seed))).desired;
      assert.deepEqual([...now.gateways.keys()].sort(), [...old.gateways.keys()].sort(), name);
      for (const [gw, spec] of old.gateways) {
        assert.deepEqual(now.gateways.get(gw), spec, `${name}: ${gw}`);
        assert.deepEqual(compileGateway(now.gateways.get(gw)!), compileGateway(spec), `${name}: ${gw}`);
      }
      // the external network is the underlay (the next hop), not a subnet natops builds
      assert.deepEqual(networkModel(now), networkModel(old), name);
    }
  });

  describe('natops plan NEWFORM --against OLDFORM says unchanged', () => {
    for (const which of ['seed', 'the lab scenario']) {
      it(which, async () => {
        const seed = new Map(await seedScenarios()).get(which)!;
        const newForm = await mkdtemp(join(tmpdir(), 'natops-current-'));
        await writeFile(join(newForm, 'manifests.yaml'), asOneFile(toCurrentForm(seedList(seed))).text);
        const oldForm = await mkdtemp(join(tmpdir(), 'natops-old-'));
        for (const f of toFiles(seed)) await writeFile(join(oldForm, f.path), f.text);
        const r = await natops(['plan', newForm, '--against', which === 'seed' ? SEED_DIR : oldForm]);
        assert.equal(r.stderr, '');
        assert.equal(r.code, 0);
        assert.equal(r.stdout, 'gateway ngw: unchanged\n  no changes\n');
      });
    }
  });

  it('natops validate says what it accepts and does not apply', async () => {
    const objects = toCurrentForm(seedList(await seedObjects()));
    specOf(objects, 'ngw-eip-0').qosPolicy = 'qos-eip';
    const dir = await mkdtemp(join(tmpdir(), 'natops-current-'));
    await writeFile(join(dir, 'manifests.yaml'), asOneFile(objects).text);
    const r = await natops(['validate', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok: 1 VPC\(s\), 1 subnet\(s\), 1 gateway\(s\)\n/);
    assert.match(
      r.stdout,
      /manifests\.yaml:\d+:\d+ {2}IptablesEIP\/ngw-eip-0 {2}spec\.qosPolicy: QoS is accepted and not applied/,
    );
  });

  it('both forms in one repository: a 1.7 gateway beside a current one', async () => {
    const seed = await seedObjects();
    const other = gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn-2', n: 2, eip: '192.168.0.120' });
    const mixed = [...toCurrentForm(seedList(seed)), ...other];
    const result = valid(validateManifests([asOneFile(mixed)]));
    const both = await seedObjects();
    both.extra.push(...other);
    const old = valid(validateManifests(toFiles(both))).desired;
    assert.deepEqual(result.desired.gateways, old.gateways);
  });

  it('one gateway in both forms at once: inline entries first, then the resources', async () => {
    const seed = await seedObjects();
    const objects = toCurrentForm(seedList(seed));
    const gw = objects.find((o) => o.kind === 'VpcNatGateway')!;
    (gw.spec as Obj).snatRules = [{ eip: '192.168.0.112', internalCIDR: '10.0.1.128/25' }];
    const spec = valid(validateManifests([asOneFile(objects)])).desired.gateways.get('ngw')!;
    assert.deepEqual(spec.snats, [
      { eip: '192.168.0.112', internalCidr: '10.0.1.128/25' },
      { eip: '192.168.0.112', internalCidr: '10.0.1.0/24' },
    ]);
  });
});

/** The seed in the current form, changed; its problems, formatted. */
async function problems(change: (objects: Obj[]) => void): Promise<{ issues: ManifestIssue[]; text: string }> {
  const objects = toCurrentForm(seedList(await seedObjects()));
  change(objects);
  const file = asOneFile(objects, 'current.yaml');
  return { issues: validateManifests([file]).issues, text: file.text };
}

const named = (objects: Obj[], name: string) => objects.find((o) => (o.metadata as { name: string }).name === name)!;
const specOf = (objects: Obj[], name: string) => named(objects, name).spec as Obj;

/** The line `needle` is on, counted from the line `after` is on (the resource's document). */
function lineOf(text: string, after: string, needle: string): number {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.includes(after));
  const i = lines.findIndex((l, n) => n >= start && l.includes(needle));
  assert.ok(start >= 0 && i >= 0, `${needle} after ${after}`);
  return i + 1;
}

function one(issues: ManifestIssue[]): ManifestIssue {
  assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
  return issues[0]!;
}

describe("the current form's rules, each a problem at its file, line and field", () => {
  it('an EIP used by a floating IP and by a port forward', async () => {
    const { issues, text } = await problems((o) => void (specOf(o, 'ngw-dnat-0').eip = 'ngw-eip-0'));
    const issue = one(issues);
    assert.equal(
      formatIssue(issue),
      `current.yaml:${lineOf(text, 'name: ngw-dnat-0', 'eip: ngw-eip-0')}:8  IptablesDnatRule/ngw-dnat-0  spec.eip: EIP 192.168.0.111 is the floating IP of IptablesFIPRule/ngw-fip-0 and cannot also carry a port forward`,
    );
    assert.equal(issue.gateway, 'ngw');
    assert.equal(refusesCommit(issue), false);
  });

  it('an EIP used by a floating IP and by SNAT', async () => {
    const { issues } = await problems((o) => void (specOf(o, 'ngw-snat-0').eip = 'ngw-eip-0'));
    assert.match(
      formatIssue(one(issues)),
      /IptablesSnatRule\/ngw-snat-0 {2}spec\.eip: EIP 192\.168\.0\.111 is the floating IP of IptablesFIPRule\/ngw-fip-0 and cannot also carry SNAT$/,
    );
  });

  it('a rule naming a missing EIP refuses the commit: no gateway can be told', async () => {
    const { issues, text } = await problems((o) => void (specOf(o, 'ngw-fip-0').eip = 'nope'));
    const issue = one(issues);
    assert.equal(
      formatIssue(issue),
      `current.yaml:${lineOf(text, 'name: ngw-fip-0', 'eip: nope')}:8  IptablesFIPRule/ngw-fip-0  spec.eip: IptablesEIP nope is not in the manifests`,
    );
    assert.equal(refusesCommit(issue), true);
  });

  it('an EIP naming a missing gateway refuses the commit', async () => {
    const { issues, text } = await problems((o) => void (specOf(o, 'ngw-eip-1').natGwDp = 'ngx'));
    const eip = issues.find((i) => i.resource === 'IptablesEIP/ngw-eip-1')!;
    assert.equal(
      formatIssue(eip),
      `current.yaml:${lineOf(text, 'name: ngw-eip-1', 'natGwDp: ngx')}:12  IptablesEIP/ngw-eip-1  spec.natGwDp: VpcNatGateway ngx is not in the manifests`,
    );
    assert.equal(refusesCommit(eip), true);
  });

  it('one EIP claimed twice: two floating IPs, two EIPs of one address', async () => {
    const twice = await problems((o) => {
      o.push({ ...structuredClone(named(o, 'ngw-fip-0')), metadata: { name: 'ngw-fip-9' } });
      specOf(o, 'ngw-fip-9').internalIp = '10.0.1.6';
    });
    assert.match(
      formatIssue(one(twice.issues)),
      /IptablesFIPRule\/ngw-fip-9 {2}spec\.eip: EIP 192\.168\.0\.111 is already the floating IP of IptablesFIPRule\/ngw-fip-0$/,
    );
    const address = await problems((o) => void (specOf(o, 'ngw-eip-1').v4ip = '192.168.0.111'));
    const issue = one(address.issues);
    assert.match(
      formatIssue(issue),
      /^current\.yaml:\d+:9 {2}IptablesEIP\/ngw-eip-1 {2}spec\.v4ip: 192\.168\.0\.111 is already the address of IptablesEIP\/ngw-eip-0 \(current\.yaml:\d+\)$/,
    );
    assert.equal(issue.pos.line, lineOf(address.text, 'name: ngw-eip-1', 'v4ip:'));
  });

  it("a rule whose EIP is another gateway's", async () => {
    const other = gatewayInOwnVpc({ gateway: 'gw2', vpc: 'vpc2', subnet: 'sn-2', n: 2, eip: '192.168.0.120' });
    // the 1.7 gateway gw2 forwards on the address of ngw's IptablesEIP
    const { issues } = await problems((o) => {
      o.push(...other);
      ((named(o, 'gw2').spec as Obj).dnatRules as Obj[])[0]!.eip = '192.168.0.112';
    });
    assert.match(
      formatIssue(one(issues)),
      /VpcNatGateway\/gw2 {2}spec\.dnatRules\[0\]\.eip: 192\.168\.0\.112 is not one of this gateway's EIPs \(192\.168\.0\.120\)$/,
    );
    // and an inline EIP of gw2 that is ngw's IptablesEIP
    const { issues: owned } = await problems((o) => {
      o.push(...other);
      ((named(o, 'gw2').spec as Obj).eips as Obj[])[0]!.eipCIDR = '192.168.0.112/24';
      ((named(o, 'gw2').spec as Obj).dnatRules as Obj[])[0]!.eip = '192.168.0.112';
    });
    assert.match(
      formatIssue(one(owned)),
      /VpcNatGateway\/gw2 {2}spec\.eips\[0\]\.eipCIDR: EIP 192\.168\.0\.112 already belongs to VpcNatGateway\/ngw$/,
    );
  });

  it('two resources of one kind and name', async () => {
    const { issues } = await problems((o) => o.push(structuredClone(named(o, 'ngw-snat-0'))));
    assert.match(
      formatIssue(one(issues)),
      /IptablesSnatRule\/ngw-snat-0 {2}metadata\.name: IptablesSnatRule\/ngw-snat-0 is already defined at current\.yaml:\d+$/,
    );
  });

  it('an EIP without v4ip gets an address from its external subnet (test/unit/eip-allocation.test.ts)', async () => {
    const { issues } = await problems((o) => void delete specOf(o, 'ngw-eip-0').v4ip);
    assert.deepEqual(issues, []);
  });

  it('an EIP outside its external subnet, or on a subnet not in the manifests', async () => {
    const outside = await problems((o) => void (specOf(o, 'ngw-eip-0').v4ip = '192.168.1.5'));
    assert.match(
      formatIssue(one(outside.issues)),
      /IptablesEIP\/ngw-eip-0 {2}spec\.v4ip: 192\.168\.1\.5 is not in the range of subnet ovn-vpc-external-network \(192\.168\.0\.0\/24\)$/,
    );
    const missing = await problems((o) => void (specOf(o, 'ngw-eip-0').externalSubnet = 'ext2'));
    assert.match(
      formatIssue(one(missing.issues)),
      /IptablesEIP\/ngw-eip-0 {2}spec\.externalSubnet: Subnet ext2 is not in the manifests: natops takes the EIP's prefix length from its cidrBlock; add it/,
    );
  });

  it("the gateway's external network without its Subnet or NetworkAttachmentDefinition: what to add", async () => {
    const noSubnet = await problems((o) =>
      o.splice(
        o.findIndex((x) => (x.metadata as Obj).name === EXTERNAL_NETWORK && x.kind === 'Subnet'),
        1,
      ),
    );
    const messages = noSubnet.issues.map(formatIssue).join('\n');
    assert.match(
      messages,
      /VpcNatGateway\/ngw {2}metadata\.name: natops cannot tell this gateway's nic: ConfigMap ovn-vpc-nat-gw-config has no nic \(Kube-OVN 1\.7's\), and its external network's Subnet ovn-vpc-external-network is not in the manifests; add it/,
    );
    assert.match(
      messages,
      /IptablesEIP\/ngw-eip-0 {2}spec\.externalSubnet: Subnet ovn-vpc-external-network is not in the manifests/,
    );
    const noNad = await problems((o) =>
      o.splice(
        o.findIndex((x) => x.kind === 'NetworkAttachmentDefinition'),
        1,
      ),
    );
    assert.match(
      formatIssue(one(noNad.issues)),
      /VpcNatGateway\/ngw {2}metadata\.name: .*there is no NetworkAttachmentDefinition kube-system\/ovn-vpc-external-network \(Subnet ovn-vpc-external-network's provider ovn-vpc-external-network\.kube-system\) in the manifests; add it, its spec\.config naming the macvlan master, or give the ConfigMap a nic$/,
    );
    const noMaster = await problems((o) => {
      const nad = o.find((x) => x.kind === 'NetworkAttachmentDefinition')!;
      (nad.spec as Obj).config = '{"type": "macvlan"}';
    });
    assert.match(formatIssue(one(noMaster.issues)), /its spec\.config names no "master"/);
  });

  it("NetworkAttachmentDefinitions of the repository's workloads, or exported with cluster fields, are no problem", async () => {
    const objects = toCurrentForm(seedList(await seedObjects()));
    objects.push(
      {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: 'workload-net', namespace: 'apps', uid: '1b4e', resourceVersion: '77' },
        spec: {},
      },
      {
        apiVersion: 'k8s.cni.cncf.io/v1',
        kind: 'NetworkAttachmentDefinition',
        metadata: { name: 'sriov', namespace: 'apps' },
        spec: { config: { cniVersion: '0.3.1', type: 'sriov' } },
      },
    );
    const nad = objects.find((x) => x.kind === 'NetworkAttachmentDefinition')!;
    (nad.metadata as Obj).uid = 'd9a1';
    (nad.metadata as Obj).creationTimestamp = '2026-01-01T00:00:00Z';
    const result = validateManifests([asOneFile(objects)]);
    assert.deepEqual(result.issues.map(formatIssue), []);
    // the external network's own, without a configuration: said where the gateway needs it
    delete (nad.spec as Obj).config;
    assert.match(
      formatIssue(one(validateManifests([asOneFile(objects)]).issues)),
      /VpcNatGateway\/ngw {2}metadata\.name: .*NetworkAttachmentDefinition kube-system\/ovn-vpc-external-network .*: its spec\.config is missing/,
    );
  });

  it("without the ConfigMap's nic, the lab's underlay is the first gateway's by name, in any order", async () => {
    const desired = valid(current(seedList(await seedObjects()))).desired;
    assert.equal(desired.config?.data.nic, undefined);
    const ngw = desired.gateways.get('ngw')!;
    const other = { ...ngw, name: 'agw', workload: { ...ngw.workload, nic: 'eth9' } };
    for (const gateways of [
      new Map([
        ['ngw', ngw],
        ['agw', other],
      ]),
      new Map([
        ['agw', other],
        ['ngw', ngw],
      ]),
    ])
      assert.equal(networkModel({ ...desired, gateways }).nic, 'eth9');
  });

  it('the ConfigMap nic, when given, is the nic (Kube-OVN 1.7); else the NAD master', async () => {
    const objects = toCurrentForm(seedList(await seedObjects()));
    objects.splice(
      objects.findIndex((x) => x.kind === 'NetworkAttachmentDefinition'),
      1,
      externalNad('eth7'),
    );
    const spec = valid(validateManifests([asOneFile(objects)])).desired.gateways.get('ngw')!;
    assert.equal(spec.workload.nic, 'eth7');
    (objects[0]!.data as Obj).nic = 'eth1';
    assert.equal(valid(validateManifests([asOneFile(objects)])).desired.gateways.get('ngw')!.workload.nic, 'eth1');
  });

  it('a rule problem that checkGateway finds is at the resource, and makes its gateway invalid', async () => {
    const { issues, text } = await problems((o) => void (specOf(o, 'ngw-dnat-0').internalIp = '172.16.0.53'));
    const issue = one(issues);
    assert.equal(
      formatIssue(issue),
      `current.yaml:${lineOf(text, 'name: ngw-dnat-0', 'internalIp:')}:15  IptablesDnatRule/ngw-dnat-0  spec.internalIp: 172.16.0.53 is not a host address of any subnet of VPC test-vpc-1 (sn 10.0.1.0/24)`,
    );
    assert.equal(issue.gateway, 'ngw');
    const objects = toCurrentForm(seedList(await seedObjects()));
    specOf(objects, 'ngw-dnat-0').internalIp = '172.16.0.53';
    assert.equal(validateManifests([asOneFile(objects)]).desired.gateways.has('ngw'), false);
  });

  it('ports are strings, as the CRD says (share DNAT: test/unit/shared-dnat.test.ts)', async () => {
    const number = await problems((o) => void (specOf(o, 'ngw-dnat-0').externalPort = 8888));
    assert.match(
      formatIssue(one(number.issues)),
      /IptablesDnatRule\/ngw-dnat-0 {2}spec\.externalPort: `externalPort: 8888` is a number to Kubernetes; quote it \('8888'\)$/,
    );
    assert.equal(one(number.issues).gateway, 'ngw');
  });

  it('an SNAT of one address, written bare, is a /32 (as Kube-OVN makes it)', async () => {
    const objects = toCurrentForm(seedList(await seedObjects()));
    specOf(objects, 'ngw-snat-0').internalCIDR = '10.0.1.7';
    const spec = valid(validateManifests([asOneFile(objects)])).desired.gateways.get('ngw')!;
    assert.deepEqual(spec.snats, [{ eip: '192.168.0.112', internalCidr: '10.0.1.7/32' }]);
  });

  it('qosPolicy and the pod fields are accepted and reported as not applied', async () => {
    const objects = toCurrentForm(seedList(await seedObjects()));
    specOf(objects, 'ngw-eip-0').qosPolicy = 'qos-eip';
    Object.assign(specOf(objects, 'ngw'), {
      externalSubnets: [EXTERNAL_NETWORK],
      routes: [{ cidr: '10.96.0.0/12', nextHopIP: '10.0.1.1' }],
      annotations: { 'example.com/x': 'z1' },
      namespace: 'kube-system',
      noDefaultEIP: true,
    });
    const result = valid(validateManifests([asOneFile(objects, 'current.yaml')]));
    assert.deepEqual(
      result.notApplied.map((n) => `${n.resource} ${n.reason.split(':')[0]}`),
      [
        'IptablesEIP/ngw-eip-0 spec.qosPolicy',
        'VpcNatGateway/ngw spec.routes',
        'VpcNatGateway/ngw spec.annotations',
        'VpcNatGateway/ngw spec.namespace',
      ],
    );
    assert.match(result.notApplied[0]!.reason, /QoS is accepted and not applied/);
  });

  it('a problem in a rule does not cascade: only the kinds natops reads are read', async () => {
    const { issues } = await problems((o) => o.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' } }));
    assert.deepEqual(issues, []);
  });
});
