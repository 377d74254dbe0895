// Manifests -> desired state. Checks each document against its schema, then the rules that
// span resources (docs/architecture.md, "What a gateway holds"), and reports every problem with file, line and field.
import type { z } from 'zod';
import { cidrContains, cidrsOverlap, isHostIn, networkAddress, nthAddress, parseCidr } from '../../common/ipv4.ts';
import { DEFAULT_NAT_GW_NAME_PREFIX, type Dataplane, type GatewaySpec } from '../../dataplane/model.ts';
import { DEFAULT_WORKLOAD_POLICY, type WorkloadPolicy } from '../../dataplane/workload-policy.ts';
import { DEFAULT_NIC, type StaticRoute } from '../../dataplane/network.ts';
import { classify, yaml11Hint, type NatopsKind } from './attribution.ts';
import { brokenSets, CurrentForm, firstOfEach, type Broken, type Located } from './current-form.ts';
import { formatFieldPath, type ManifestIssue, type SourcePos } from './issues.ts';
import {
  DEFAULT_LOAD_LIMITS,
  loadManifests,
  valueAt,
  type FieldPath,
  type LoadedDoc,
  type LoadLimits,
  type LoadOptions,
  type ManifestFile,
} from './load.ts';
import { checkDnatRules } from './dnat-rules.ts';
import { claimAllocated, type AllocationInput, type AllocationResult } from './eip-allocation.ts';
import { checkImage, checkPlacement, gatewayWorkload, withinGatewayLimit, type Report } from './policy.ts';
import {
  DATAPLANE_ANNOTATION,
  DEFAULT_VPC,
  RESOURCE_SCHEMAS,
  type GatewayManifest,
  NAT_CONFIG_CONFIGMAP,
  type NatConfigMap,
  type NatGwConfigMap,
  type Subnet,
  type Vpc,
  type VpcNatGateway,
} from './schema.ts';

export interface SubnetInfo {
  name: string;
  vpc: string;
  cidr: string;
  gateway: string;
  /** Kube-OVN's provider: names an external network's NetworkAttachmentDefinition (current-form.ts) */
  provider?: string;
  excludeIps?: string[];
}

export interface VpcInfo {
  name: string;
  staticRoutes: StaticRoute[];
}

export interface Desired {
  config: NatGwConfigMap | undefined;
  /** false when the ConfigMap says enable-vpc-nat-gw: 'false' */
  enabled: boolean;
  vpcs: Map<string, VpcInfo>;
  subnets: Map<string, SubnetInfo>;
  /** only the gateways that validated */
  gateways: Map<string, GatewaySpec>;
}

/** A document natops does not read (another kind, another ConfigMap, plain YAML): see attribution.ts. */
export interface IgnoredDoc {
  pos: SourcePos;
  /** "Kind/name", "-" for no kind, "?" for no name */
  resource: string;
  reason: string;
}

export interface ValidationResult {
  desired: Desired;
  issues: ManifestIssue[];
  /** documents of other kinds, which the repository may hold and natops leaves alone */
  ignored: IgnoredDoc[];
  /** fields natops accepts and does not apply (the current form's qosPolicy, ...), for `natops validate` to say */
  notApplied: IgnoredDoc[];
  allocation?: AllocationResult;
  /** per valid gateway, where a field of its spec is written (`['spec', 'snatRules', 0]`): for the preview's findings */
  sources?: Map<string, (path: FieldPath) => SourcePos>;
}

/** What the operator sets for manifests, which they cannot override: the limits and the workload policy. */
export interface ManifestRules extends LoadLimits {
  policy: WorkloadPolicy;
  /** the data plane of a gateway whose manifest names none (NATOPS_DATAPLANE) */
  dataplane?: Dataplane;
}

export type ValidateOptions = LoadOptions & {
  policy?: WorkloadPolicy;
  allocations?: AllocationInput;
  dataplane?: Dataplane;
};

/** Kube-OVN's NatGwStatefulSetNameMaxLength (pkg/util/vpc_nat_gateway.go) */
const MAX_STATEFULSET_NAME = 52;

/** The workload form ovn-vpc-nat-config asks for: Kube-OVN's StatefulSet with its name prefix. */
function statefulSetForm(
  natConfig: Located<NatConfigMap> | undefined,
): Pick<GatewaySpec['workload'], 'kind' | 'namePrefix'> | undefined {
  if (!natConfig) return undefined;
  return { kind: 'StatefulSet', namePrefix: natConfig.value.data.natGwNamePrefix || DEFAULT_NAT_GW_NAME_PREFIX };
}

/** `options`: the loader's limits (DEFAULT_LOAD_LIMITS when left out) and the workload policy (DEFAULT_WORKLOAD_POLICY). */
export function validateManifests(files: readonly ManifestFile[], options: ValidateOptions = {}): ValidationResult {
  const loaded = loadManifests(files, options);
  const issues = [...loaded.issues];
  const ignored: IgnoredDoc[] = [];
  const report = (doc: LoadedDoc, id: string, path: FieldPath, message: string) =>
    issues.push({ pos: doc.locate(path), resource: id, field: formatFieldPath(path), message });

  const configs: Located<NatGwConfigMap>[] = [];
  const natConfigs: Located<NatConfigMap>[] = [];
  const vpcs: Located<Vpc>[] = [];
  const subnets: Located<Subnet>[] = [];
  const gateways: Located<VpcNatGateway>[] = [];

  // Resources that exist but failed their schema: references to them are not "undefined".
  const broken: Broken = brokenSets();
  const current = new CurrentForm(options.allocations); // IptablesEIP, the rule kinds and the external network's NAD
  for (const doc of loaded.docs) {
    const verdict = classify(doc);
    if (verdict.action === 'ignore') {
      ignored.push({ pos: doc.locate([]), resource: verdict.resource, reason: verdict.reason });
      continue;
    }
    if (verdict.action === 'refuse') {
      const pos = verdict.key === undefined ? doc.locate(verdict.path) : doc.locateKey(verdict.path, verdict.key);
      const field = formatFieldPath(verdict.key === undefined ? verdict.path : [...verdict.path, verdict.key]);
      issues.push({ pos, resource: verdict.resource, field, message: verdict.message, unattributed: true });
      // What refers to it is not checked against its absence (the commit is refused anyway).
      if (verdict.meant) {
        if (verdict.name !== undefined) broken[verdict.meant].add(verdict.name);
        else broken.unreadable.add(verdict.meant);
      }
      continue;
    }
    current.seen(verdict.kind, verdict.name, doc.value);
    let parsed: Parsed | undefined;
    if (options.cache) {
      const checked = options.cache.check(doc, (found) => parseDocument(doc, verdict, found));
      issues.push(...checked.issues);
      parsed = checked.value;
    } else parsed = parseDocument(doc, verdict, issues);
    if (!parsed) {
      broken[verdict.kind].add(verdict.name);
      continue;
    }
    if (parsed.kind === 'ConfigMap' && verdict.name === NAT_CONFIG_CONFIGMAP)
      natConfigs.push(parsed.located as Located<NatConfigMap>);
    else if (parsed.kind === 'ConfigMap') configs.push(parsed.located as Located<NatGwConfigMap>);
    else if (parsed.kind === 'Vpc') vpcs.push(parsed.located as Located<Vpc>);
    else if (parsed.kind === 'Subnet') subnets.push(parsed.located as Located<Subnet>);
    else if (parsed.kind === 'VpcNatGateway') gateways.push(parsed.located as Located<VpcNatGateway>);
    else current.add(parsed.kind, parsed.located);
  }

  const firstOf = <T extends { metadata: { name: string } }>(list: Located<T>[]) => firstOfEach(list, report);

  const config = firstOf(configs)[0];
  // Kube-OVN's current ConfigMap: the gateways' image, and their workload is its StatefulSet
  const natConfig = firstOf(natConfigs)[0];
  const uniqueVpcs = firstOf(vpcs);
  const vpcByName = new Map(uniqueVpcs.map((v) => [v.value.metadata.name, v]));
  const subnetInfo = new Map<string, SubnetInfo>();
  // per VPC, in manifest order: each subnet and gateway is checked against its own VPC's only
  // (a scan of every subnet for each would be quadratic in a repository of thousands of VPCs)
  const subnetsOf = new Map<string, SubnetInfo[]>();

  for (const s of firstOf(subnets)) {
    const name = s.value.metadata.name;
    const before = issues.length;
    const cidr = parseCidr(s.value.spec.cidrBlock)!;
    const vpc = s.value.spec.vpc ?? DEFAULT_VPC;
    if (
      s.value.spec.vpc !== undefined &&
      s.value.spec.vpc !== DEFAULT_VPC &&
      !vpcByName.has(vpc) &&
      !broken.Vpc.has(vpc) &&
      !broken.unreadable.has('Vpc')
    ) {
      report(s.doc, s.id, ['spec', 'vpc'], `VPC "${vpc}" is not defined in the manifests`);
    }
    const gateway = s.value.spec.gateway ?? nthAddress(cidr, 1);
    if (!isHostIn(cidr, gateway))
      report(s.doc, s.id, ['spec', 'gateway'], `${gateway} is not a host address of ${s.value.spec.cidrBlock}`);
    for (const other of subnetsOf.get(vpc) ?? []) {
      if (cidrsOverlap(cidr, parseCidr(other.cidr)!)) {
        report(
          s.doc,
          s.id,
          ['spec', 'cidrBlock'],
          `${s.value.spec.cidrBlock} overlaps subnet ${other.name} (${other.cidr}) of VPC ${vpc}`,
        );
      }
    }
    // A subnet with problems is not used: gateways on it say so instead of proceeding.
    const { cidrBlock: cidrText, provider, excludeIps } = s.value.spec;
    if (issues.length === before) {
      const info = { name, vpc, cidr: cidrText, gateway, provider, excludeIps };
      subnetInfo.set(name, info);
      const inVpc = subnetsOf.get(vpc);
      if (inVpc) inVpc.push(info);
      else subnetsOf.set(vpc, [info]);
    } else broken.Subnet.add(name);
  }

  const eipOwner = new Map<string, string>();
  const lanIpOwner = new Map<string, string>();
  const gatewaySpecs = new Map<string, GatewaySpec>();
  const policy = options.policy ?? DEFAULT_WORKLOAD_POLICY;
  const image = natConfig?.value.data.image ?? config?.value.data.image;
  const imageAt = natConfig ?? config;
  const imageIssue = imageAt && image !== undefined ? checkImage(imageAt.doc, imageAt.id, image, policy) : undefined;
  if (imageIssue) issues.push(imageIssue);
  if (config && image === undefined && !broken.ConfigMap.has(NAT_CONFIG_CONFIGMAP))
    report(
      config.doc,
      config.id,
      ['data', 'image'],
      `is required: the gateways' image is this ConfigMap's (Kube-OVN 1.7) or ${NAT_CONFIG_CONFIGMAP}'s (Kube-OVN since v1.11), and neither has one`,
    );
  const form = statefulSetForm(natConfig);
  if (gateways.length > 0 && !config && broken.ConfigMap.size === 0 && !broken.unreadable.has('ConfigMap')) {
    const g = gateways[0]!;
    report(
      g.doc,
      g.id,
      ['kind'],
      'no ConfigMap kube-system/ovn-vpc-nat-gw-config in the manifests: gateways need its image and nic',
    );
  }
  const maxGateways = options.maxGateways ?? DEFAULT_LOAD_LIMITS.maxGateways;
  const within = withinGatewayLimit(firstOf(gateways), maxGateways, issues);
  // without a readable ConfigMap its absence is the gateways' problem (above), not their nic
  const configNic = config ? config.value.data.nic : DEFAULT_NIC;
  const inputs = current.resolve(within, { subnets: subnetInfo, broken, configNic }, report);
  claimAllocated(current.allocation.eips, eipOwner);
  const sources = new Map<string, (path: FieldPath) => SourcePos>();
  for (const { gateway: g, report: reportAt, locate, nic } of inputs.values()) {
    const before = issues.length;
    const known = { vpcs: vpcByName, subnets: subnetInfo, subnetsOf, broken, image, nic: nic ?? DEFAULT_NIC };
    const spec = checkGateway(g, known, eipOwner, lanIpOwner, reportAt);
    checkPlacement(g.doc, g.id, g.value, policy, reportAt);
    if (form && `${form.namePrefix}-${g.value.metadata.name}`.length > MAX_STATEFULSET_NAME)
      reportAt(
        g.doc,
        g.id,
        ['metadata', 'name'],
        `is too long for Kube-OVN's StatefulSet ${form.namePrefix}-${g.value.metadata.name}: at most ${MAX_STATEFULSET_NAME} characters with the prefix (the StatefulSet controller appends an 11-character revision hash to a 63-character label value)`,
      );
    if (spec && issues.length === before && !imageIssue) {
      const plane = g.value.metadata.annotations?.[DATAPLANE_ANNOTATION] ?? options.dataplane;
      gatewaySpecs.set(spec.name, {
        ...spec,
        ...(form && { workload: { ...spec.workload, ...form } }),
        ...(plane === 'nftables' && { dataplane: plane }),
      });
      sources.set(spec.name, locate);
    }
  }
  current.attribute(issues, gatewaySpecs);
  // the external networks are the underlay (the EIPs' next hops), not subnets natops builds
  for (const name of current.externalSubnets) subnetInfo.delete(name);

  return {
    desired: {
      config: config?.value,
      enabled: config ? config.value.data['enable-vpc-nat-gw'] === 'true' : true,
      vpcs: new Map(
        uniqueVpcs.map((v) => [
          v.value.metadata.name,
          { name: v.value.metadata.name, staticRoutes: v.value.spec.staticRoutes },
        ]),
      ),
      subnets: subnetInfo,
      gateways: gatewaySpecs,
    },
    issues,
    ignored,
    notApplied: current.notApplied,
    allocation: current.allocation,
    sources,
  };
}

interface Known {
  /** the ConfigMap's gateway image */
  image: string | undefined;
  nic: string;
  vpcs: Map<string, Located<Vpc>>;
  subnets: Map<string, SubnetInfo>;
  /** the usable subnets of each VPC */
  subnetsOf: Map<string, SubnetInfo[]>;
  broken: Broken;
}

function checkGateway(
  g: Located<GatewayManifest>,
  { vpcs, subnets, subnetsOf, broken, image, nic }: Known,
  eipOwner: Map<string, string>,
  lanIpOwner: Map<string, string>,
  report: Report,
): GatewaySpec | undefined {
  const { spec, metadata } = g.value;
  const fail = (path: FieldPath, message: string) => report(g.doc, g.id, path, message);

  if (!vpcs.has(spec.vpc) && !broken.Vpc.has(spec.vpc) && !broken.unreadable.has('Vpc')) {
    fail(['spec', 'vpc'], `VPC "${spec.vpc}" is not defined in the manifests`);
    return undefined; // every check below is relative to the VPC
  }
  const subnet = subnets.get(spec.subnet);
  if (!subnet) {
    fail(
      ['spec', 'subnet'],
      broken.Subnet.has(spec.subnet)
        ? `subnet "${spec.subnet}" has errors (reported at its manifest), so this gateway cannot be applied`
        : broken.unreadable.has('Subnet')
          ? `subnet "${spec.subnet}" is not defined, or is the Subnet natops could not read (reported at its manifest)`
          : `subnet "${spec.subnet}" is not defined in the manifests`,
    );
    return undefined;
  }
  if (subnet.vpc !== spec.vpc) {
    fail(['spec', 'subnet'], `subnet ${subnet.name} belongs to VPC ${subnet.vpc}, not ${spec.vpc}`);
    return undefined;
  }
  const subnetCidr = parseCidr(subnet.cidr)!;
  if (!isHostIn(subnetCidr, spec.lanIp))
    fail(['spec', 'lanIp'], `${spec.lanIp} is not a host address of subnet ${subnet.name} (${subnet.cidr})`);
  else if (spec.lanIp === subnet.gateway)
    fail(['spec', 'lanIp'], `${spec.lanIp} is the gateway address of subnet ${subnet.name}`);
  const lanKey = `${subnet.name} ${spec.lanIp}`;
  const lanPrior = lanIpOwner.get(lanKey);
  if (lanPrior) fail(['spec', 'lanIp'], `${spec.lanIp} is already the lanIp of ${lanPrior}`);
  else lanIpOwner.set(lanKey, g.id);

  const vpcSubnets = subnetsOf.get(spec.vpc) ?? [];
  const vpcCidrs = vpcSubnets.map((s) => parseCidr(s.cidr)!);
  const insideVpc = (ip: string) => vpcCidrs.some((cidr) => isHostIn(cidr, ip));
  const vpcSubnetList = vpcSubnets.map((s) => `${s.name} ${s.cidr}`).join(', ') || 'none';

  // EIPs: distinct, a host of their own network, one shared next hop (table 100 has one default route).
  const eipAddrs = new Map<string, number>();
  spec.eips.forEach((eip, i) => {
    const cidr = parseCidr(eip.eipCIDR)!;
    if (!isHostIn(cidr, cidr.address))
      fail(
        ['spec', 'eips', i, 'eipCIDR'],
        `${cidr.address} is not a host address of its network ${networkAddress(cidr.address, cidr.prefix)}/${cidr.prefix}`,
      );
    if (!cidrContains(cidr, eip.gateway) || eip.gateway === cidr.address) {
      fail(['spec', 'eips', i, 'gateway'], `${eip.gateway} is not another host of ${eip.eipCIDR}'s network`);
    } else if (i > 0 && eip.gateway !== spec.eips[0]!.gateway) {
      fail(
        ['spec', 'eips', i, 'gateway'],
        `all EIPs of a gateway share one next hop (its table ${100} default route); eips[0] uses ${spec.eips[0]!.gateway}`,
      );
    }
    if (eipAddrs.has(cidr.address))
      fail(['spec', 'eips', i, 'eipCIDR'], `EIP ${cidr.address} is listed twice (eips[${eipAddrs.get(cidr.address)}])`);
    else eipAddrs.set(cidr.address, i);
    const owner = eipOwner.get(cidr.address);
    if (owner && owner !== g.id)
      fail(['spec', 'eips', i, 'eipCIDR'], `EIP ${cidr.address} already belongs to ${owner}`);
    else eipOwner.set(cidr.address, g.id);
  });

  const ownsEip = (path: FieldPath, eip: string) => {
    if (eipAddrs.has(eip)) return true;
    fail(path, `${eip} is not one of this gateway's EIPs (${[...eipAddrs.keys()].join(', ') || 'it has none'})`);
    return false;
  };
  const checkInternal = (path: FieldPath, ip: string) => {
    if (!insideVpc(ip)) fail(path, `${ip} is not a host address of any subnet of VPC ${spec.vpc} (${vpcSubnetList})`);
  };

  // Floating IPs take their EIP for themselves: first pass records them.
  const fipEip = new Map<string, number>();
  const fipInternal = new Map<string, number>();
  spec.floatingIpRules.forEach((rule, i) => {
    const path = ['spec', 'floatingIpRules', i] as const;
    ownsEip([...path, 'eip'], rule.eip);
    checkInternal([...path, 'internalIp'], rule.internalIp);
    if (fipEip.has(rule.eip))
      fail([...path, 'eip'], `EIP ${rule.eip} is already the floating IP of floatingIpRules[${fipEip.get(rule.eip)}]`);
    else fipEip.set(rule.eip, i);
    if (fipInternal.has(rule.internalIp))
      fail(
        [...path, 'internalIp'],
        `${rule.internalIp} already has a floating IP (floatingIpRules[${fipInternal.get(rule.internalIp)}])`,
      );
    else fipInternal.set(rule.internalIp, i);
  });
  const notFloating = (path: FieldPath, eip: string, what: string) => {
    const fip = fipEip.get(eip);
    if (fip !== undefined)
      fail(path, `EIP ${eip} is the floating IP of floatingIpRules[${fip}] and cannot also carry ${what}`);
  };

  const dnats = checkDnatRules(spec.dnatRules, { fail, ownsEip, notFloating, checkInternal });

  const snatCidrs = new Map<string, number>();
  spec.snatRules.forEach((rule, i) => {
    const path = ['spec', 'snatRules', i] as const;
    if (ownsEip([...path, 'eip'], rule.eip)) notFloating([...path, 'eip'], rule.eip, 'SNAT');
    const prior = snatCidrs.get(rule.internalCIDR);
    if (prior !== undefined)
      fail([...path, 'internalCIDR'], `${rule.internalCIDR} is already translated by snatRules[${prior}]`);
    else snatCidrs.set(rule.internalCIDR, i);
  });

  return {
    name: metadata.name,
    vpc: spec.vpc,
    subnet: { name: subnet.name, cidr: subnet.cidr, gateway: subnet.gateway },
    lanIp: spec.lanIp,
    vpcSubnets: vpcSubnets.map((s) => ({ name: s.name, cidr: s.cidr })),
    eips: spec.eips.map((e) => ({ cidr: e.eipCIDR, gateway: e.gateway })),
    floatingIps: spec.floatingIpRules.map((r) => ({ eip: r.eip, internalIp: r.internalIp })),
    dnats,
    snats: spec.snatRules.map((r) => ({ eip: r.eip, internalCidr: r.internalCIDR })),
    workload: gatewayWorkload(g.value, image, nic),
  };
}

type Parsed = { kind: NatopsKind; located: Located<unknown> };

/** A document natops reads (classify said so) against its schema; problems go to `issues`. */
function parseDocument(
  doc: LoadedDoc,
  verdict: Extract<ReturnType<typeof classify>, { action: 'read' }>,
  issues: ManifestIssue[],
): Parsed | undefined {
  const { kind, id } = verdict;
  const report = (path: FieldPath, message: string) =>
    issues.push({ pos: doc.locate(path), resource: id, field: formatFieldPath(path), message });
  const schema: z.ZodType = RESOURCE_SCHEMAS[verdict.key];
  // jitless: zod would otherwise generate and compile a parser per object schema on first use,
  // which a one-shot command pays for and never earns back (no loss measured at 2,000 forwards)
  const result = schema.safeParse(doc.value, { reportInput: true, jitless: true });
  if (!result.success) {
    for (const iss of result.error.issues) {
      const path = iss.path.filter((p): p is string | number => typeof p !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        for (const key of iss.keys) {
          const written = doc.keySource(path, key);
          const asRead =
            written !== undefined && written !== key
              ? ` (YAML 1.1 reads the key \`${written}\` as ${key}; quote it)`
              : '';
          issues.push({
            pos: doc.locateKey(path, key),
            resource: id,
            field: formatFieldPath([...path, key]),
            message: `unknown field (not part of ${kind.startsWith('Iptables') || kind === 'NetworkAttachmentDefinition' ? '' : "Kube-OVN 1.7's "}${kind}${path.length ? ` ${formatFieldPath(path)}` : ''})${asRead}`,
          });
        }
        continue;
      }
      if (iss.code === 'invalid_type' && iss.input === undefined) {
        report(path, 'is required');
        continue;
      }
      report(path, yaml11Message(doc, kind, path, iss) ?? iss.message);
    }
    return undefined;
  }
  const surprises = octalPorts(doc, result.data as VpcNatGateway, kind);
  if (surprises.length) {
    for (const [path, message] of surprises) report(path, message);
    return undefined;
  }
  return { kind, located: { value: result.data, doc, id } };
}

/**
 * A schema problem caused by YAML 1.1 reading an unquoted scalar as a boolean or number (kubectl
 * reads `yes`, `on`, `y` as true and `0755` as 493): say so, and how to write it.
 */
function yaml11Message(doc: LoadedDoc, kind: NatopsKind, path: FieldPath, iss: z.core.$ZodIssue): string | undefined {
  const input = (iss as { input?: unknown }).input;
  if (typeof input !== 'boolean' && typeof input !== 'number') return undefined;
  const expectsString = iss.code === 'invalid_type' && iss.expected === 'string';
  if (typeof input === 'number' && !expectsString) return undefined;
  const configData = kind === 'ConfigMap' && path[0] === 'data';
  // enable-vpc-nat-gw takes 'true' or 'false': `yes` meant true.
  const quoteAs = (value: unknown, source: string) =>
    configData && path[1] === 'enable-vpc-nat-gw' && typeof value === 'boolean' ? String(value) : source;
  const hint = yaml11Hint(doc, path, quoteAs);
  if (!hint) return undefined;
  if (configData) return hint.replace(/; quote it /, '; ConfigMap data values must be strings: quote it ');
  // "quote it" fixes a name; an address needs more than quotes, so its own message follows
  const generic = iss.message === 'must be a string' || iss.message.startsWith('Invalid input');
  return expectsString && generic ? hint : `${hint.replace(/; quote it .*$/, '')}; ${iss.message}`;
}

/**
 * Ports written with a leading 0: YAML 1.1 reads `0755` as octal (493), which is surely not what
 * was meant; kubectl would send 493. Refused, so nobody forwards a port they did not write.
 */
function octalPorts(doc: LoadedDoc, value: VpcNatGateway, kind: NatopsKind): [FieldPath, string][] {
  if (kind !== 'VpcNatGateway') return [];
  const out: [FieldPath, string][] = [];
  value.spec.dnatRules.forEach((rule, i) => {
    for (const field of ['externalPort', 'internalPort'] as const) {
      const path = ['spec', 'dnatRules', i, field];
      // only a number can have been read as octal (and asking a string's source costs positions)
      if (typeof valueAt(doc.value, path) !== 'number') continue;
      const sc = doc.scalarAt(path);
      if (sc?.plain && typeof sc.value === 'number' && /^[-+]?0[0-7_]+$/.test(sc.source)) {
        out.push([
          path,
          `\`${field}: ${sc.source}\` is the octal number ${rule[field]} to Kubernetes (YAML 1.1 reads a leading 0 as octal); write the port without the leading 0`,
        ]);
      }
    }
  });
  return out;
}
