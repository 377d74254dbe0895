import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { formatIssue, refusesCommit } from '../../gitops/manifests/issues.ts';
import { readManifestDir } from '../../gitops/manifests/read-dir.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import {
  SEED_DIR,
  SEED_VERBATIM,
  push,
  seedObjects,
  set,
  subnet,
  toFiles,
  unset,
  type SeedObjects,
} from '../helpers/manifests.ts';

async function issuesFor(change: (s: SeedObjects) => void) {
  const seed = await seedObjects();
  change(seed);
  return validateManifests(toFiles(seed));
}

describe('manifests', () => {
  it('accepts the seed and resolves its gateway', async () => {
    const { desired, issues } = validateManifests(await readManifestDir(SEED_DIR));
    assert.deepEqual(issues, []);
    assert.equal(desired.enabled, true);
    assert.deepEqual(desired.gateways.get('ngw'), {
      name: 'ngw',
      vpc: 'test-vpc-1',
      subnet: { name: 'sn', cidr: '10.0.1.0/24', gateway: '10.0.1.1' },
      lanIp: '10.0.1.254',
      vpcSubnets: [{ name: 'sn', cidr: '10.0.1.0/24' }],
      eips: [
        { cidr: '192.168.0.111/24', gateway: '192.168.0.254' },
        { cidr: '192.168.0.112/24', gateway: '192.168.0.254' },
      ],
      floatingIps: [{ eip: '192.168.0.111', internalIp: '10.0.1.5' }],
      dnats: [{ eip: '192.168.0.112', externalPort: 8888, protocol: 'tcp', internalIp: '10.0.1.10', internalPort: 80 }],
      snats: [{ eip: '192.168.0.112', internalCidr: '10.0.1.0/24' }],
      workload: { image: 'kubeovn/vpc-nat-gateway:v1.7.0', nic: 'eth1', nodeSelector: {}, tolerations: [] },
    });
  });

  it('rejects the seed as printed, at the line of the first bad indentation, and every such line', async () => {
    const { issues, desired } = validateManifests(await readManifestDir(SEED_VERBATIM));
    assert.equal(desired.gateways.size, 0);
    const lines = issues.map((i) => i.pos.line);
    assert.deepEqual(lines, [6, 13, 15, 27]);
    const text = await readFile(SEED_VERBATIM, 'utf8');
    assert.equal(text.split('\n')[5], '  name: ngw', 'line 6 is the over-indented metadata name');
    assert.match(formatIssue(issues[0]!), /seed-verbatim\.yaml:6:3 {2}VpcNatGateway\/\? {2}\(yaml\): bad indentation/);
  });

  it('points at file, line and column of the bad field', () => {
    const text = [
      'kind: Vpc',
      'apiVersion: kubeovn.io/v1',
      'metadata:',
      '  name: v1',
      'spec:',
      '  staticRoutes:',
      '    - cidr: 10.0.0.0/33',
      '      nextHopIP: 10.0.1.254',
      '      colour: blue',
    ].join('\n');
    const { issues } = validateManifests([{ path: 'dir/vpc.yaml', text }]);
    assert.deepEqual(issues.map(formatIssue), [
      'dir/vpc.yaml:7:13  Vpc/v1  spec.staticRoutes[0].cidr: must be an IPv4 CIDR such as 10.0.1.0/24',
      "dir/vpc.yaml:9:7  Vpc/v1  spec.staticRoutes[0].colour: unknown field (not part of Kube-OVN 1.7's Vpc spec.staticRoutes[0])",
    ]);
  });

  it('reads several documents per file and skips empty ones', () => {
    const text =
      '---\n# only a comment\n---\nkind: Vpc\napiVersion: kubeovn.io/v1\nmetadata: {name: a}\n---\nkind: Vpc\napiVersion: kubeovn.io/v1\nmetadata: {name: b}\n';
    const { desired, issues } = validateManifests([{ path: 'v.yml', text }]);
    assert.deepEqual(issues, []);
    assert.deepEqual([...desired.vpcs.keys()], ['a', 'b']);
  });

  it('the fast reader and the yaml library agree on values, issues and where ignored documents start', async () => {
    const text = [
      '# other things in the same file',
      '---',
      '# a comment first',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: web',
      'spec:',
      '  replicas: 2',
      '---',
      '---',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: other}',
      'data:',
      '  a: "1"',
      '...',
      '  # trailing comment',
      '',
    ].join('\n');
    const files = [...toFiles(await seedObjects()), { path: 'others.yaml', text }];
    const fast = validateManifests(files);
    const slow = validateManifests(files, { positionsFirst: true });
    assert.deepEqual(fast.issues.map(formatIssue), slow.issues.map(formatIssue));
    assert.deepEqual(fast.desired, slow.desired);
    assert.deepEqual(
      fast.ignored.map((d) => `${d.pos.line}:${d.pos.column} ${d.resource}`),
      ['4:1 Deployment/web', '12:1 ConfigMap/other'],
    );
    assert.deepEqual(fast.ignored, slow.ignored);
  });

  it('accepts ports written as strings, as Kube-OVN does', async () => {
    const { issues, desired } = await issuesFor((s) => {
      set(s.gateway, 'spec.dnatRules.0.externalPort', '8888');
      set(s.gateway, 'spec.dnatRules.0.internalPort', '80');
      set(s.gateway, 'spec.dnatRules.0.protocol', 'TCP');
    });
    assert.deepEqual(issues, []);
    const d = desired.gateways.get('ngw')!.dnats[0]!;
    assert.equal(d.externalPort, 8888);
    assert.equal(d.internalPort, 80);
    assert.equal(d.protocol, 'tcp');
  });

  it('reports every problem at once', async () => {
    const { issues } = await issuesFor((s) => {
      set(s.gateway, 'spec.lanIp', '10.9.9.9');
      set(s.gateway, 'spec.dnatRules.0.externalPort', 0);
      set(s.vpc, 'spec.staticRoutes.0.nextHopIP', 'nope');
    });
    assert.deepEqual(issues.map((i) => i.field).sort(), [
      'spec.dnatRules[0].externalPort',
      'spec.staticRoutes[0].nextHopIP',
    ]);
    // The gateway's schema error stops its cross checks; fix it and the lanIp is reported too.
    const again = await issuesFor((s) => set(s.gateway, 'spec.lanIp', '10.9.9.9'));
    assert.deepEqual(
      again.issues.map((i) => i.field),
      ['spec.lanIp'],
    );
  });

  const badInputs: {
    name: string;
    change: (s: SeedObjects) => void;
    field: string;
    message: RegExp;
    resource?: string;
    dependent?: RegExp;
  }[] = [
    {
      name: 'bad CIDR',
      change: (s) => set(s.subnet, 'spec.cidrBlock', '10.0.1.0/40'),
      field: 'spec.cidrBlock',
      message: /IPv4 CIDR/,
      resource: 'Subnet/sn',
      dependent: /subnet "sn" has errors/,
    },
    {
      name: 'CIDR with host bits',
      change: (s) => set(s.gateway, 'spec.snatRules.0.internalCIDR', '10.0.1.7/24'),
      field: 'spec.snatRules[0].internalCIDR',
      message: /host bits set; the network is 10\.0\.1\.0\/24/,
    },
    {
      name: 'bad eipCIDR',
      change: (s) => set(s.gateway, 'spec.eips.0.eipCIDR', '192.168.0.300/24'),
      field: 'spec.eips[0].eipCIDR',
      message: /address with a prefix/,
    },
    {
      name: 'lanIp outside the subnet',
      change: (s) => set(s.gateway, 'spec.lanIp', '10.0.2.254'),
      field: 'spec.lanIp',
      message: /not a host address of subnet sn \(10\.0\.1\.0\/24\)/,
    },
    {
      name: 'lanIp is the subnet gateway',
      change: (s) => set(s.gateway, 'spec.lanIp', '10.0.1.1'),
      field: 'spec.lanIp',
      message: /gateway address of subnet sn/,
    },
    {
      name: 'internalIp outside the VPC',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.internalIp', '10.0.7.10'),
      field: 'spec.dnatRules[0].internalIp',
      message: /not a host address of any subnet of VPC test-vpc-1/,
    },
    {
      name: 'eip not owned',
      change: (s) => set(s.gateway, 'spec.snatRules.0.eip', '192.168.0.113'),
      field: 'spec.snatRules[0].eip',
      message: /not one of this gateway's EIPs/,
    },
    {
      name: 'eip shared by a floating IP and a DNAT',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.eip', '192.168.0.111'),
      field: 'spec.dnatRules[0].eip',
      message: /floating IP of floatingIpRules\[0\] and cannot also carry a port forward/,
    },
    {
      name: 'eip shared by a floating IP and SNAT',
      change: (s) => set(s.gateway, 'spec.snatRules.0.eip', '192.168.0.111'),
      field: 'spec.snatRules[0].eip',
      message: /cannot also carry SNAT/,
    },
    {
      name: 'duplicate DNAT',
      change: (s) =>
        push(s.gateway, 'spec.dnatRules', {
          eip: '192.168.0.112',
          externalPort: '8888',
          protocol: 'tcp',
          internalIp: '10.0.1.11',
          internalPort: 81,
        }),
      field: 'spec.dnatRules[1].externalPort',
      message: /already forwarded by dnatRules\[0\]/,
    },
    {
      name: 'port 0',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.externalPort', 0),
      field: 'spec.dnatRules[0].externalPort',
      message: /1 to 65535, not 0/,
    },
    {
      name: 'port 70000',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.internalPort', '70000'),
      field: 'spec.dnatRules[0].internalPort',
      message: /1 to 65535, not "70000"/,
    },
    {
      name: 'protocol icmp',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.protocol', 'icmp'),
      field: 'spec.dnatRules[0].protocol',
      message: /tcp or udp, not "icmp"/,
    },
    {
      name: 'missing subnet',
      change: (s) => set(s.gateway, 'spec.subnet', 'nosuch'),
      field: 'spec.subnet',
      message: /subnet "nosuch" is not defined/,
    },
    {
      name: 'missing VPC',
      change: (s) => set(s.gateway, 'spec.vpc', 'nosuch'),
      field: 'spec.vpc',
      message: /VPC "nosuch" is not defined/,
    },
    {
      name: 'subnet of another VPC',
      change: (s) => {
        s.extra.push({ apiVersion: 'kubeovn.io/v1', kind: 'Vpc', metadata: { name: 'other' } });
        set(s.subnet, 'spec.vpc', 'other');
      },
      field: 'spec.subnet',
      message: /belongs to VPC other, not test-vpc-1/,
    },
    {
      name: 'required field missing',
      change: (s) => unset(s.gateway, 'spec.lanIp'),
      field: 'spec.lanIp',
      message: /^is required$/,
    },
    {
      name: 'unknown field',
      change: (s) => set(s.gateway, 'spec.dnatRules.0.externalPorts', 9),
      field: 'spec.dnatRules[0].externalPorts',
      message: /unknown field/,
    },
    {
      name: 'shell metacharacters in an address',
      change: (s) => set(s.gateway, 'spec.floatingIpRules.0.internalIp', '10.0.1.5; rm -rf /'),
      field: 'spec.floatingIpRules[0].internalIp',
      message: /IPv4 address/,
    },
    {
      name: 'shell metacharacters in a name',
      change: (s) => set(s.gateway, 'metadata.name', 'ngw$(reboot)'),
      field: 'metadata.name',
      message: /valid Kubernetes name/,
      resource: 'VpcNatGateway/ngw$(reboot)',
    },
    {
      name: 'shell metacharacters in the nic',
      change: (s) => set(s.config, 'data.nic', 'eth1;ls'),
      field: 'data.nic',
      message: /network interface name/,
      resource: 'ConfigMap/ovn-vpc-nat-gw-config',
    },
    {
      name: 'unquoted ConfigMap boolean',
      change: (s) => set(s.config, 'data.enable-vpc-nat-gw', true),
      field: 'data.enable-vpc-nat-gw',
      message: /must be strings: quote it \('true'\)/,
      resource: 'ConfigMap/ovn-vpc-nat-gw-config',
    },
    {
      name: 'EIP gateway outside its network',
      change: (s) => set(s.gateway, 'spec.eips.1.gateway', '192.168.1.254'),
      field: 'spec.eips[1].gateway',
      message: /not another host/,
    },
    {
      name: 'EIP listed twice',
      change: (s) => push(s.gateway, 'spec.eips', { eipCIDR: '192.168.0.111/24', gateway: '192.168.0.254' }),
      field: 'spec.eips[2].eipCIDR',
      message: /listed twice/,
    },
    {
      name: 'two floating IPs for one host',
      change: (s) => {
        push(s.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
        push(s.gateway, 'spec.floatingIpRules', { eip: '192.168.0.113', internalIp: '10.0.1.5' });
      },
      field: 'spec.floatingIpRules[1].internalIp',
      message: /already has a floating IP/,
    },
    {
      name: 'overlapping subnets in a VPC',
      change: (s) => s.extra.push(subnet('sn2', 'test-vpc-1', '10.0.1.128/25', '10.0.1.129')),
      field: 'spec.cidrBlock',
      message: /overlaps subnet sn/,
      resource: 'Subnet/sn2',
    },
    {
      name: 'subnet gateway outside its CIDR',
      change: (s) => set(s.subnet, 'spec.gateway', '10.0.2.1'),
      field: 'spec.gateway',
      message: /not a host address of 10\.0\.1\.0\/24/,
      resource: 'Subnet/sn',
      dependent: /subnet "sn" has errors/,
    },
    {
      name: "a gateway named preview (its status context is the pull-request preview's)",
      change: (s) => set(s.gateway, 'metadata.name', 'preview'),
      field: 'metadata.name',
      message: /reserved.*natops\/preview/,
      resource: 'VpcNatGateway/preview',
    },
    {
      name: 'duplicate name',
      change: (s) => s.extra.push(structuredClone(s.vpc)),
      field: 'metadata.name',
      message: /Vpc\/test-vpc-1 is already defined at 10-vpc\.yaml:1/,
      resource: 'Vpc/test-vpc-1',
    },
    {
      name: 'wrong apiVersion',
      change: (s) => set(s.vpc, 'apiVersion', 'kubeovn.io/v2'),
      field: 'apiVersion',
      message: /read as apiVersion kubeovn\.io\/v1/,
      resource: 'Vpc/test-vpc-1',
    },
  ];

  for (const row of badInputs) {
    it(`rejects ${row.name}`, async () => {
      const { issues, desired } = await issuesFor(row.change);
      const expected = row.dependent ? 2 : 1;
      assert.equal(
        issues.length,
        expected,
        `${expected} issue(s) expected, got:\n${issues.map(formatIssue).join('\n')}`,
      );
      const [issue, dependent] = issues;
      if (row.dependent) assert.match(dependent!.message, row.dependent);
      assert.equal(issue!.field, row.field);
      assert.match(issue!.message, row.message);
      assert.equal(issue!.resource, row.resource ?? 'VpcNatGateway/ngw');
      assert.ok(issue!.pos.line >= 1 && issue!.pos.file.endsWith('.yaml'));
      if ((row.resource ?? 'VpcNatGateway/ngw').startsWith('VpcNatGateway'))
        assert.equal(desired.gateways.size, 0, 'an invalid gateway is not in the desired state');
    });
  }

  it('keeps valid gateways when another one is invalid', async () => {
    const { desired, issues } = await issuesFor((s) => {
      s.extra.push({
        apiVersion: 'kubeovn.io/v1',
        kind: 'VpcNatGateway',
        metadata: { name: 'bad' },
        spec: {
          vpc: 'test-vpc-1',
          subnet: 'sn',
          lanIp: '10.0.1.253',
          eips: [{ eipCIDR: '192.168.0.111/24', gateway: '192.168.0.254' }],
        },
      });
    });
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /already belongs to VpcNatGateway\/ngw/);
    assert.deepEqual([...desired.gateways.keys()], ['ngw']);
  });

  it("reads enable-vpc-nat-gw: 'false' as disabled", async () => {
    const { desired, issues } = await issuesFor((s) => set(s.config, 'data.enable-vpc-nat-gw', 'false'));
    assert.deepEqual(issues, []);
    assert.equal(desired.enabled, false);
  });
});

// ---- documents natops cannot attribute -----------------------------------------------------------

/** The seed's files as written (comments and all), with `edit` applied to one file's text. */
async function seedTexts(
  edit: Record<string, (text: string) => string> = {},
  extra: { path: string; text: string }[] = [],
) {
  const names = ['00-config.yaml', '10-vpc.yaml', '20-subnet.yaml', '30-nat-gateway.yaml'];
  const files = await Promise.all(
    names.map(async (name) => {
      const text = await readFile(`${SEED_DIR}/${name}`, 'utf8');
      return { path: name, text: (edit[name] ?? ((t: string) => t))(text) };
    }),
  );
  return [...files, ...extra];
}

const gatewayDoc = (name: string, eip: string) =>
  [
    'apiVersion: kubeovn.io/v1',
    'kind: VpcNatGateway',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  vpc: test-vpc-1',
    '  subnet: sn',
    '  lanIp: 10.0.1.250',
    '  eips:',
    `    - eipCIDR: ${eip}/24`,
    '      gateway: 192.168.0.254',
  ].join('\n');

describe('documents natops cannot attribute refuse the commit', () => {
  /** The one issue of a validation that refuses the commit (what refers to it may have its own). */
  function refusing(result: ReturnType<typeof validateManifests>) {
    const refused = result.issues.filter(refusesCommit);
    assert.equal(
      refused.length,
      1,
      `one issue must refuse the commit, got:\n${result.issues.map(formatIssue).join('\n')}`,
    );
    assert.ok(result.issues.length <= 2, result.issues.map(formatIssue).join('\n'));
    return refused[0]!;
  }

  it('a misspelt kind: "did you mean", at the kind', async () => {
    const issue = refusing(
      validateManifests(
        await seedTexts({ '30-nat-gateway.yaml': (t) => t.replace('kind: VpcNatGateway', 'kind: VpcNatGatway') }),
      ),
    );
    assert.equal(
      formatIssue(issue),
      '30-nat-gateway.yaml:1:7  VpcNatGatway/ngw  kind: unknown kind VpcNatGatway (did you mean VpcNatGateway?)',
    );
  });

  it('a kind in the wrong case, or another misspelling of each kind natops reads', async () => {
    for (const [file, from, to, meant] of [
      ['30-nat-gateway.yaml', 'kind: VpcNatGateway', 'kind: vpcNatGateway', 'VpcNatGateway'],
      ['30-nat-gateway.yaml', 'kind: VpcNatGateway', 'kind: VpcNatGateways', 'VpcNatGateway'],
      ['10-vpc.yaml', 'kind: Vpc', 'kind: VPC', 'Vpc'],
      ['20-subnet.yaml', 'kind: Subnet', 'kind: Sunbet', 'Subnet'],
      ['00-config.yaml', 'kind: ConfigMap', 'kind: Configmap', 'ConfigMap'],
    ] as const) {
      const issue = refusing(validateManifests(await seedTexts({ [file]: (t) => t.replace(from, to) })));
      assert.equal(issue.field, 'kind');
      assert.equal(issue.pos.file, file);
      assert.match(issue.message, new RegExp(`did you mean ${meant}\\?`));
    }
  });

  it('a gateway without a readable metadata.name, at the metadata', async () => {
    const cases: [string, (t: string) => string, RegExp, number][] = [
      ['no name', (t) => t.replace('  name: ngw\n', '  labels: {a: b}\n'), /metadata\.name is required/, 3],
      ['no metadata', (t) => t.replace('metadata:\n  name: ngw\n', ''), /metadata\.name is required/, 1],
      ['a number', (t) => t.replace('name: ngw', 'name: 1234'), /`name: 1234` is a number to Kubernetes; quote it/, 4],
      ['a mapping', (t) => t.replace('name: ngw', 'name: {ngw: 1}'), /metadata\.name must be a string/, 4],
    ];
    for (const [what, edit, message, line] of cases) {
      const issue = refusing(validateManifests(await seedTexts({ '30-nat-gateway.yaml': edit })));
      assert.match(issue.message, message, what);
      assert.equal(issue.pos.line, line, `${what}: ${formatIssue(issue)}`);
      assert.equal(issue.resource, 'VpcNatGateway/?', what);
    }
  });

  it('a Vpc, Subnet or the ConfigMap without a name refuses too', async () => {
    for (const file of ['00-config.yaml', '10-vpc.yaml', '20-subnet.yaml']) {
      const issue = refusing(validateManifests(await seedTexts({ [file]: (t) => t.replace(/ {2}name: .*\n/, '') })));
      assert.equal(issue.pos.file, file);
      assert.match(issue.message, /metadata\.name is required/);
    }
  });

  it('a wrong apiVersion for a kind natops reads, at the apiVersion', async () => {
    for (const api of ['kubeovn.io/v2', 'v1', 'kube-ovn.io/v1']) {
      const issue = refusing(
        validateManifests(
          await seedTexts({
            '30-nat-gateway.yaml': (t) => t.replace('apiVersion: kubeovn.io/v1', `apiVersion: ${api}`),
          }),
        ),
      );
      assert.equal(issue.field, 'apiVersion');
      assert.equal(issue.pos.line, 2);
      assert.match(issue.message, /VpcNatGateway is read as apiVersion kubeovn\.io\/v1/);
    }
    const missing = refusing(
      validateManifests(await seedTexts({ '10-vpc.yaml': (t) => t.replace('apiVersion: kubeovn.io/v1\n', '') })),
    );
    assert.match(missing.message, /Vpc is read as apiVersion kubeovn\.io\/v1/);
  });

  it('a kubeovn.io kind natops does not read', () => {
    // Kube-OVN's OVN-based NAT (OvnEip, OvnDnatRule), which natops does not read
    const text = 'apiVersion: kubeovn.io/v1\nkind: OvnDnatRule\nmetadata:\n  name: dnat1\nspec:\n  ovnEip: eip1\n';
    const issue = refusing(validateManifests([{ path: 'dnat.yaml', text }]));
    assert.equal(formatIssue(issue).split('  ')[0], 'dnat.yaml:2:7');
    assert.match(issue.message, /kubeovn\.io kind OvnDnatRule is not one natops reads/);
  });

  it('the gateway ConfigMap under a near-miss name', async () => {
    const issue = refusing(
      validateManifests(
        await seedTexts({
          '00-config.yaml': (t) => t.replace('name: ovn-vpc-nat-gw-config', 'name: ovn-vpc-nat-gw-confg'),
        }),
      ),
    );
    assert.equal(issue.pos.line, 5);
    assert.match(issue.message, /did you mean ovn-vpc-nat-gw-config\?/);
  });

  it('a document with metadata or spec but no kind', async () => {
    const issue = refusing(
      validateManifests(await seedTexts({ '30-nat-gateway.yaml': (t) => t.replace('kind: VpcNatGateway\n', '') })),
    );
    assert.equal(issue.field, 'kind');
    assert.match(issue.message, /no kind/);
  });

  it('a List holding a gateway', () => {
    const text =
      'apiVersion: v1\nkind: List\nitems:\n  - apiVersion: kubeovn.io/v1\n    kind: VpcNatGateway\n    metadata: {name: ngw}\n';
    const issue = refusing(validateManifests([{ path: 'list.yaml', text }]));
    assert.equal(issue.pos.line, 5);
    assert.match(issue.message, /own document/);
  });

  it('other manifests in the repository are ignored: other kinds, other ConfigMaps, other API groups, plain YAML', async () => {
    const others = [
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n',
      'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-settings}\ndata: {debug: "true"}\n',
      'apiVersion: ec2.services.k8s.aws/v1alpha1\nkind: Subnet\nmetadata: {name: public-a}\nspec: {cidrBlock: 10.9.0.0/24}\n',
      'apiVersion: ec2.services.k8s.aws/v1alpha1\nkind: VPC\nmetadata: {name: main}\n',
      'apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Service, metadata: {name: a}}\n',
      'replicaCount: 2\nimage: {repository: nginx}\n',
    ];
    const result = validateManifests(
      await seedTexts(
        {},
        others.map((text, i) => ({ path: `other-${i}.yaml`, text })),
      ),
    );
    assert.deepEqual(result.issues.map(formatIssue), []);
    assert.deepEqual([...result.desired.gateways.keys()], ['ngw']);
    assert.deepEqual(
      result.ignored.map((d) => `${d.pos.file}:${d.pos.line} ${d.resource}`),
      [
        'other-0.yaml:1 Deployment/web',
        'other-1.yaml:1 Service/web',
        'other-2.yaml:1 ConfigMap/web-settings',
        'other-3.yaml:1 Subnet/public-a',
        'other-4.yaml:1 VPC/main',
        'other-5.yaml:1 List/?',
        'other-6.yaml:1 -/?',
      ],
    );
  });

  it('a second, valid gateway in a refused commit is still desired, so a planner that went on would not prune it', async () => {
    const result = validateManifests(
      await seedTexts({ '30-nat-gateway.yaml': (t) => t.replace('kind: VpcNatGateway', 'kind: VpcNatGatway') }, [
        { path: '31-gw2.yaml', text: gatewayDoc('ngw2', '192.168.0.120') },
      ]),
    );
    assert.deepEqual([...result.desired.gateways.keys()], ['ngw2']);
    assert.equal(result.issues.filter(refusesCommit).length, 1);
  });
});

describe('gateway workload fields', () => {
  it('reads selector, tolerations and affinity as a pod spec wants them, and positions a bad selector', async () => {
    const seed = await seedObjects();
    set(seed.gateway, 'spec.selector', ['kubernetes.io/os: linux', 'natops.io/gw:  edge ']);
    set(seed.gateway, 'spec.tolerations', [
      { key: 'dedicated', operator: 'Equal', value: 'nat', effect: 'NoSchedule' },
    ]);
    set(seed.gateway, 'spec.affinity', {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
        },
      },
    });
    const { desired, issues } = validateManifests(toFiles(seed));
    assert.deepEqual(issues, []);
    const w = desired.gateways.get('ngw')!.workload;
    assert.deepEqual(w.nodeSelector, { 'kubernetes.io/os': 'linux', 'natops.io/gw': 'edge' });
    assert.deepEqual(w.tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'nat', effect: 'NoSchedule' }]);
    assert.equal((w.affinity as { nodeAffinity: unknown }).nodeAffinity !== undefined, true);

    set(seed.gateway, 'spec.selector', ['no colon here']);
    const bad = validateManifests(toFiles(seed));
    assert.equal(bad.issues.length, 1);
    assert.match(formatIssue(bad.issues[0]!), /spec\.selector\[0\]: must be "label-key: value"/);
  });
});
