// Kube-OVN's own gateway script (test/fixtures/kube-ovn/nat-gateway.sh, commit 1533681d) run in a
// lab gateway namespace with the calls Kube-OVN's controller makes for a gateway
// (test/helpers/kube-ovn-script.ts), then read with natops's reader and diffed against what natops
// compiles for the same gateway: whether natops could adopt a live Kube-OVN gateway as it is.
//
// Not as it is: the diff is not empty, and `natops export --adopt` rewrites those rules
// (docs/export.md, "Adopting Kube-OVN's gateways"). The test pins the exact differences (KNOWN_*
// below, each explained from the script's source, upstream line numbers; the fixture's are +16),
// so anything else differing fails it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { compileGateway } from '../../dataplane/compile.ts';
import { diffStates, type ChangeSet } from '../../dataplane/diff.ts';
import type { GatewaySpec, GatewayState } from '../../dataplane/model.ts';
import { readDesired } from '../../gitops/manifests/read-dir.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { readGatewayState } from '../../runtime/gateway-io.ts';
import { inNamespace } from '../../runtime/netns/netns.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { seedList, toCurrentForm } from '../helpers/current-form.ts';
import { kubeOvnScriptCalls, RANDOM_FULLY_ABOVE } from '../helpers/kube-ovn-script.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import {
  seedObjects,
  TEST_WORKLOAD_POLICY,
  writeManifestDir,
  type Obj,
  type SeedObjects,
} from '../helpers/manifests.ts';
import { scenarioManifests } from '../helpers/scenario.ts';

const SCRIPT = fileURLToPath(new URL('../fixtures/kube-ovn/nat-gateway.sh', import.meta.url));

/**
 * What the script needs beyond the netns tests' tools: bash (Kube-OVN's image has it), md5sum
 * (share DNAT's chain names), nft (share DNAT), lsmod/modprobe (init's IFB probe), which.
 */
const SCRIPT_TOOLS = ['bash', 'md5sum', 'nft', 'lsmod', 'modprobe', 'which', 'awk', 'xargs'];

/**
 * Runs argv with a private /etc: an overlay whose upper layer is the gateway's own directory, so the
 * /etc/kube-ovn/nat-gateway.env that `init` writes (nat-gateway.sh lines 150-153) and every later
 * call reads (lines 37-40) is the gateway's, as in its pod, and the host's /etc is not touched.
 * `ip netns exec` gives each call a mount namespace of its own, so the overlay goes with it.
 * A constant script: the directory and the argv are its arguments, never part of it.
 */
const PRIVATE_ETC =
  'mount -t overlay natops-kube-ovn-etc -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc && shift && exec "$@"';

interface ScriptRun {
  argv: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Lines execNatGwRules (pkg/controller/vpc_nat_gateway.go) counts as a failure even when the script
 * exits 0: every stderr line that is not blank and does not start with "Warning:".
 */
const errorLines = (stderr: string) =>
  stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('Warning:'));

/** A lab with one gateway namespace wired as natops's netns runtime wires it, nothing configured in it. */
class KubeOvnGateway {
  readonly runs: ScriptRun[] = [];
  private constructor(
    readonly h: LabHarness,
    readonly spec: GatewaySpec,
    readonly ns: string,
    private readonly etc: string,
  ) {}

  static async create(seed: SeedObjects): Promise<KubeOvnGateway> {
    const h = await LabHarness.create();
    let etc: string | undefined;
    try {
      const missing = SCRIPT_TOOLS.filter((t) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', t]).status !== 0);
      if (missing.length)
        throw new Error(`Kube-OVN's gateway script needs ${missing.join(', ')}: apt-get install nftables kmod`);
      etc = await mkdtemp(join(tmpdir(), 'natops-kube-ovn-etc-'));
      await mkdir(join(etc, 'upper'));
      await mkdir(join(etc, 'work'));
      const desired = await readDesired(await writeManifestDir(seed), { limits: { policy: TEST_WORKLOAD_POLICY } });
      const spec = desired.gateways.get('ngw');
      assert.ok(spec, 'the manifests hold gateway ngw');
      await h.lab.up(networkModel(desired));
      // the namespace and its links only: ensureGateway leaves net1 down and configures nothing
      await new NetnsRuntime(h.lab).ensureGateway(spec);
      return new KubeOvnGateway(h, spec, h.lab.names.gateway(spec.name), etc);
    } catch (e) {
      await h.cleanup();
      if (etc) await rm(etc, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * What the pod has before the controller's first call, and the script relies on: net1 up (the
   * macvlan attachment; arping fails on a link that is down) and ip_forward=1 (the StatefulSet's
   * postStart hook, `sysctl -w net.ipv4.ip_forward=1`, genNatGwStatefulSet).
   */
  async podStarted(): Promise<void> {
    await inNamespace(this.ns, { argv: ['ip', 'link', 'set', 'net1', 'up'] });
    await inNamespace(this.ns, { argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'] });
  }

  /** `bash nat-gateway.sh ARGS` in the gateway, with the container's env: one controller call. */
  async script(env: Record<string, string>, args: string[]): Promise<ScriptRun> {
    const argv = [
      'sh',
      '-c',
      PRIVATE_ETC,
      'sh',
      this.etc,
      'env',
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      'bash',
      SCRIPT,
      ...args,
    ];
    const r = await inNamespace(this.ns, { argv, okExitCodes: Array.from({ length: 256 }, (_, i) => i) });
    const run = { argv: args, code: r.code, stdout: r.stdout, stderr: r.stderr };
    this.runs.push(run);
    return run;
  }

  read(): Promise<GatewayState> {
    return readGatewayState((req) => inNamespace(this.ns, req));
  }

  async cleanup(): Promise<void> {
    try {
      await this.h.cleanup();
    } finally {
      await rm(this.etc, { recursive: true, force: true });
    }
  }
}

/** Runs every call as the controller would, each checked as execNatGwRules checks it. */
async function runControllerCalls(gw: KubeOvnGateway): Promise<void> {
  const { env, calls } = kubeOvnScriptCalls(gw.spec);
  for (const args of calls) {
    let run = await gw.script(env, args);
    // init's IFB probe (nat-gateway.sh lines 186-194) runs lsmod where modprobe fails; on a kernel
    // without loadable modules lsmod complains on stderr, execNatGwRules takes that for an error and
    // handleInitVpcNatGw requeues. The retry stops at "run once is enough" (line 156), cleanly.
    if (args[0] === 'init' && run.code === 0 && errorLines(run.stderr).length) run = await gw.script(env, args);
    assert.equal(run.code, 0, `nat-gateway.sh ${args.join(' ')} exited ${run.code}: ${run.stderr}${run.stdout}`);
    assert.deepEqual(errorLines(run.stderr), [], `nat-gateway.sh ${args.join(' ')} wrote errors`);
    if (args[0] === 'get-iptables-version') {
      // createSnatInPod's version check (vpc_nat_gw_nat.go): --random-fully above 1.6.2
      const version = /v([0-9]+(\.[0-9]+)+)/.exec(run.stdout)?.[1];
      assert.ok(version, `no iptables version in ${run.stdout}`);
      assert.ok(newer(version, RANDOM_FULLY_ABOVE), `iptables ${version} is not above ${RANDOM_FULLY_ABOVE}`);
    }
  }
}

function newer(a: string, b: string): boolean {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 4; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  return false;
}

/** The diff as data, for deepEqual: what natops would change to make the gateway its own. */
function summary(c: ChangeSet) {
  return {
    iptables: c.iptables,
    net1Up: c.net1Up,
    sysctls: c.sysctls,
    addresses: c.addresses,
    rules: c.rules,
    routes: c.routes,
    added: c.added,
    removed: c.removed,
  };
}

// ---- the known differences, each from the script's source ------------------------------------------

/**
 * Sysctls: the script sets none. ip_forward is the pod's postStart hook (podStarted above), and
 * promote_secondaries is natops's own addition (docs/architecture.md, "Deleting the first EIP keeps
 * the others"): nothing in Kube-OVN sets it, so net1 keeps the kernel's 0 and del_eip (lines 291-311)
 * deleting a network's first EIP drops the network's other EIPs with it.
 */
const KNOWN_SYSCTLS: ChangeSet['sysctls'] = [['net.ipv4.conf.net1.promote_secondaries', '1']];

/**
 * Policy rules: the script adds none (no `ip rule` anywhere in it). natops sends what enters on
 * net1 and eth0 to table 100; Kube-OVN routes from the main table.
 */
const KNOWN_RULES: ChangeSet['rules'] = {
  add: [
    { iif: 'net1', table: 100 },
    { iif: 'eth0', table: 100 },
  ],
  remove: [],
};

/**
 * Table 100: empty. eip-add puts the default route in the main table, `ip route replace default via
 * $GATEWAY_V4 dev $EXTERNAL_INTERFACE onlink` (lines 282-284), and subnet-route-add the VPC's other
 * subnets, `ip route replace $cidr via $nextHop dev $VPC_INTERFACE` (lines 217-228), also in the main
 * table; eth0's own subnet gets no route at all (the controller leaves it out, it is connected).
 * natops reads table 100 only, so it sees none of them, and would add all of its own there.
 */
const knownRoutes = (spec: GatewaySpec): ChangeSet['routes'] => ({
  add: [
    { table: 100, dst: 'default', via: spec.eips[0]!.gateway, dev: 'net1' },
    ...spec.vpcSubnets.map((s) => ({ table: 100, dst: s.cidr, via: spec.subnet.gateway, dev: 'eth0' })),
  ],
  remove: [],
  change: [],
});

/**
 * SHARED_SNAT: the same rules in the same order, plus `--random-fully`: the controller sends it as
 * the rule's third field above iptables 1.6.2 (createSnatInPod) and add_snat appends it,
 * `-I SHARED_SNAT $pos -o $EXTERNAL_INTERFACE -s $internalCIDR -j SNAT --to-source $eip
 * $randomFullyOption` (line 431). natops compiles the rule without it (dataplane/rules.ts sourceNat).
 */
const knownSnat = (spec: GatewaySpec) => ({
  kubeOvn: spec.snats.map((s) => ({
    chain: 'SHARED_SNAT' as const,
    spec: `-s ${s.internalCidr} -o net1 -j SNAT --to-source ${s.eip} --random-fully`,
  })),
  natops: spec.snats.map((s) => ({
    chain: 'SHARED_SNAT' as const,
    spec: `-s ${s.internalCidr} -o net1 -j SNAT --to-source ${s.eip}`,
  })),
});

/**
 * HAIRPIN_SNAT: Kube-OVN's is one rule per EIP, made by eip-add (lines 267-274): DNATed
 * connections to that EIP that came in on eth0 (the mark VPC_MARK sets in mangle PREROUTING,
 * `-i eth0 -j MARK --set-xmark 0x1/0x1`, lines 168, 179-180) and leave eth0 again get the EIP as
 * source, `--random-fully`. natops's is one rule per SNAT CIDR inside the VPC (dataplane/compile.ts,
 * rules.ts hairpinSnat): `-s cidr -o eth0 -m conntrack --ctstate DNAT`. Same intent, other rules.
 * (natops does not read the mangle table: VPC_MARK is neither compared nor removed.)
 */
const knownHairpin = (spec: GatewaySpec) => ({
  kubeOvn: spec.eips.map((e) => {
    const ip = e.cidr.split('/')[0]!;
    return {
      chain: 'HAIRPIN_SNAT' as const,
      spec: `-o eth0 -m mark --mark 0x1/0x1 -m conntrack --ctstate DNAT --ctorigdst ${ip} -j SNAT --to-source ${ip} --random-fully`,
    };
  }),
  natops: compileGateway(spec).nat.HAIRPIN_SNAT!.map((r) => ({ chain: 'HAIRPIN_SNAT' as const, spec: r })),
});

/**
 * Share DNAT: not in iptables at all. nft-dnat-map-add (lines 581-675) puts each shared port in
 * nftables, table `ip kube-ovn`: a prerouting chain at priority -150 (before iptables' nat at -100)
 * with a verdict map to one chain per port, `numgen random mod N` over the backends. natops reads
 * iptables' nat table only, so it sees no shared port and would add its own nth rules to
 * SHARED_DNAT; Kube-OVN's nft chain, which it neither reads nor removes, would still catch the
 * port's new connections first.
 */
const knownShared = (spec: GatewaySpec) =>
  compileGateway(spec)
    .nat.SHARED_DNAT!.filter((r) => r.includes(' -m statistic '))
    .map((r) => ({ chain: 'SHARED_DNAT' as const, spec: r }));

/** Everything natops's diff holds for a Kube-OVN-made gateway of `spec`: nothing else may differ. */
function knownDiff(spec: GatewaySpec) {
  const snat = knownSnat(spec);
  const hairpin = knownHairpin(spec);
  return {
    iptables: 'legacy' as const,
    net1Up: false,
    sysctls: KNOWN_SYSCTLS,
    addresses: { add: [], remove: [] },
    rules: KNOWN_RULES,
    routes: knownRoutes(spec),
    // (diffStates lists its chain edits in NAT_CHAINS order: SHARED_DNAT, SHARED_SNAT, HAIRPIN_SNAT)
    added: [...knownShared(spec), ...snat.natops, ...hairpin.natops],
    removed: [...snat.kubeOvn, ...hairpin.kubeOvn],
  };
}

/** The seed in the current form (IptablesEIP and rule resources) plus a port shared by three backends. */
async function sharedManifests(): Promise<SeedObjects> {
  const seed = await seedObjects();
  const nic = (seed.config.data as Record<string, string>).nic;
  const [config, vpc, subnet, gateway, ...extra] = toCurrentForm(seedList(seed));
  (config!.data as Record<string, string>).nic = nic!;
  for (const [i, ip] of ['10.0.1.33', '10.0.1.31', '10.0.1.32'].entries())
    extra.push({
      apiVersion: 'kubeovn.io/v1',
      kind: 'IptablesDnatRule',
      metadata: { name: `ngw-share-${i}` },
      spec: {
        eip: 'ngw-eip-1',
        externalPort: '8080',
        protocol: 'tcp',
        internalIp: ip,
        internalPort: '80',
        type: 'share',
      },
    } satisfies Obj);
  return { config: config!, vpc: vpc!, subnet: subnet!, gateway: gateway!, extra };
}

describe("Kube-OVN's gateway script, read by natops: the seed scenario", () => {
  let gw: KubeOvnGateway;
  before(async () => {
    gw = await KubeOvnGateway.create(await scenarioManifests());
    await gw.podStarted();
    await runControllerCalls(gw);
  });
  after(async () => {
    await gw?.cleanup();
  });

  it('makes these calls', () => {
    assert.deepEqual(kubeOvnScriptCalls(gw.spec), {
      env: { GATEWAY_V4: '192.168.0.254', GATEWAY_V6: '' },
      calls: [
        ['init'],
        ['eip-add', '192.168.0.111/24'],
        ['eip-add', '192.168.0.112/24'],
        ['subnet-route-add', '10.0.2.0/24,10.0.1.1'],
        ['floating-ip-add', '192.168.0.111,10.0.1.5'],
        ['dnat-add', '192.168.0.112,8888,tcp,10.0.1.10,80'],
        ['dnat-add', '192.168.0.112,5353,udp,10.0.1.10,53'],
        ['dnat-add', '192.168.0.112,2222,tcp,10.0.2.10,9000'],
        ['get-iptables-version'],
        ['snat-add', '192.168.0.112,10.0.1.0/24,--random-fully'],
        ['get-iptables-version'],
        ['snat-add', '192.168.0.112,10.0.2.0/24,--random-fully'],
      ],
    });
  });

  it('reads as natops compiles it except for the known differences, and only those', async () => {
    const diff = diffStates(await gw.read(), compileGateway(gw.spec));
    assert.deepEqual(summary(diff), knownDiff(gw.spec));
    // the same, spelt out
    assert.deepEqual(
      diff.removed.map((r) => `${r.chain} ${r.spec}`),
      [
        'SHARED_SNAT -s 10.0.1.0/24 -o net1 -j SNAT --to-source 192.168.0.112 --random-fully',
        'SHARED_SNAT -s 10.0.2.0/24 -o net1 -j SNAT --to-source 192.168.0.112 --random-fully',
        'HAIRPIN_SNAT -o eth0 -m mark --mark 0x1/0x1 -m conntrack --ctstate DNAT --ctorigdst 192.168.0.111 -j SNAT --to-source 192.168.0.111 --random-fully',
        'HAIRPIN_SNAT -o eth0 -m mark --mark 0x1/0x1 -m conntrack --ctstate DNAT --ctorigdst 192.168.0.112 -j SNAT --to-source 192.168.0.112 --random-fully',
      ],
    );
    assert.deepEqual(
      diff.added.map((r) => `${r.chain} ${r.spec}`),
      [
        'SHARED_SNAT -s 10.0.1.0/24 -o net1 -j SNAT --to-source 192.168.0.112',
        'SHARED_SNAT -s 10.0.2.0/24 -o net1 -j SNAT --to-source 192.168.0.112',
        'HAIRPIN_SNAT -s 10.0.1.0/24 -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source 192.168.0.112',
        'HAIRPIN_SNAT -s 10.0.2.0/24 -o eth0 -m conntrack --ctstate DNAT -j SNAT --to-source 192.168.0.112',
      ],
    );
    assert.deepEqual(
      diff.routes.add.map((r) => `${r.dst} via ${r.via} dev ${r.dev} table ${r.table}`),
      [
        'default via 192.168.0.254 dev net1 table 100',
        '10.0.1.0/24 via 10.0.1.1 dev eth0 table 100',
        '10.0.2.0/24 via 10.0.1.1 dev eth0 table 100',
      ],
    );
    // the same nat rules otherwise: the floating IP, the port forwards and the hooks read as compiled
    assert.deepEqual(
      diff.chains.map((c) => c.chain),
      ['SHARED_SNAT', 'HAIRPIN_SNAT'],
    );
  });

  it("holds Kube-OVN's equivalents where natops does not look", async () => {
    // the routes, in the main table (lines 217-228, 282-284)
    const main = await gw.h.inGateway('ngw', ['ip', 'route', 'show', 'table', 'main']);
    assert.match(main, /^default via 192\.168\.0\.254 dev net1 onlink/m);
    assert.match(main, /^10\.0\.2\.0\/24 via 10\.0\.1\.1 dev eth0/m);
    // the mark Kube-OVN's hairpin rules match (lines 168, 179-180)
    const mangle = await gw.h.inGateway('ngw', ['iptables-legacy-save', '-t', 'mangle']);
    assert.match(mangle, /^-A VPC_MARK -i eth0 -j MARK --set-xmark 0x1\/0x1$/m);
    // nothing in nf_tables' nat: the script chose iptables-legacy (lines 48-54), as natops does
    const nft = await gw.h.inGateway('ngw', ['iptables-nft-save', '-t', 'nat']);
    assert.doesNotMatch(nft, /DNAT_FILTER/);
  });
});

describe("Kube-OVN's gateway script, read by natops: a port shared by three backends", () => {
  let gw: KubeOvnGateway;
  before(async () => {
    gw = await KubeOvnGateway.create(await sharedManifests());
    await gw.podStarted();
    await runControllerCalls(gw);
  });
  after(async () => {
    await gw?.cleanup();
  });

  it('makes these calls: one nft-dnat-map-add per share rule, each with every backend', () => {
    const backends = '192.168.0.112,8080,tcp,10.0.1.31:80@10.0.1.32:80@10.0.1.33:80';
    assert.deepEqual(kubeOvnScriptCalls(gw.spec).calls, [
      ['init'],
      ['eip-add', '192.168.0.111/24'],
      ['eip-add', '192.168.0.112/24'],
      ['floating-ip-add', '192.168.0.111,10.0.1.5'],
      ['dnat-add', '192.168.0.112,8888,tcp,10.0.1.10,80'],
      ['nft-dnat-map-add', backends],
      ['nft-dnat-map-add', backends],
      ['nft-dnat-map-add', backends],
      ['get-iptables-version'],
      ['snat-add', '192.168.0.112,10.0.1.0/24,--random-fully'],
    ]);
  });

  it('reads as natops compiles it except for the known differences, the shared port among them', async () => {
    const diff = diffStates(await gw.read(), compileGateway(gw.spec));
    assert.equal(knownShared(gw.spec).length, 3);
    assert.deepEqual(summary(diff), knownDiff(gw.spec));
  });

  it('holds the shared port in nftables, where natops does not look', async () => {
    const table = await gw.h.inGateway('ngw', ['nft', 'list', 'table', 'ip', 'kube-ovn']);
    // priority -150, which nft names mangle: before iptables' nat PREROUTING (-100)
    assert.match(table, /type nat hook prerouting priority mangle;/);
    assert.match(table, /192\.168\.0\.112 \. tcp \. 8080 : goto dnat-[0-9a-f]{12}/);
    assert.match(
      table,
      /meta l4proto tcp dnat ip to numgen random mod 3 map \{ 0 : 10\.0\.1\.31 \. 80, 1 : 10\.0\.1\.32 \. 80, 2 : 10\.0\.1\.33 \. 80 \}/,
    );
  });
});
