// Kube-OVN's current form (IptablesEIP and the rule kinds beside a VpcNatGateway) read into the
// 1.7 form's inline lists, so one check (validate.ts's checkGateway) and one model (GatewaySpec)
// serve both forms, and a problem checkGateway finds in an entry that came from a resource is
// reported at that resource's file and line. What Kube-OVN's sources do, and natops with them:
//   - an EIP belongs to the gateway its natGwDp names; its address is v4ip (or, without one, the
//     address allocated from its externalSubnet: eip-allocation.ts), its prefix length the
//     cidrBlock's of its externalSubnet (default ovn-vpc-external-network; util.GetExternalNetwork);
//   - a gateway's default route goes to the gateway of its external network, externalSubnets[0]
//     or the same default (util.GetNatGwExternalNetwork, genNatGwStatefulSet): the 1.7 form's
//     per-EIP gateway;
//   - a rule names its EIP, and so its gateway; the nic is the master of the external network's
//     NetworkAttachmentDefinition, named by the Subnet's provider "<name>.<namespace>[.ovn]", else
//     the Subnet's own name in kube-system (getExternalSubnetNad, util.GetNadBySubnetProvider).
import { cidrContains, parseCidr } from '../../common/ipv4.ts';
import { NIC_NAME, NIC_NAME_MESSAGE } from '../../common/ipv4-schema.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import type { NatopsKind } from './attribution.ts';
import {
  allocationKey,
  EipAllocator,
  markAllocated,
  type AllocationInput,
  type AllocationResult,
} from './eip-allocation.ts';
import type { ManifestIssue, SourcePos } from './issues.ts';
import { valueAt, type FieldPath, type LoadedDoc } from './load.ts';
import {
  nadMaster,
  type IptablesDnatRule,
  type IptablesEip,
  type IptablesFipRule,
  type IptablesSnatRule,
  type NetworkAttachmentDefinition,
} from './iptables-resources.ts';
import type { Report } from './policy.ts';
import { NAT_GW_CONFIGMAP, type GatewayManifest, type VpcNatGateway } from './schema.ts';
import type { IgnoredDoc, SubnetInfo } from './validate.ts';

export interface Located<T> {
  value: T;
  doc: LoadedDoc;
  /** "Kind/name" */
  id: string;
}

/** Resources that exist but failed their schema or could not be attributed: references to them are not "undefined". */
export type Broken = Record<NatopsKind, Set<string>> & {
  /** kinds of which some document had no readable name: any reference may mean it */
  unreadable: Set<NatopsKind>;
};

export function brokenSets(): Broken {
  const sets = { unreadable: new Set<NatopsKind>() } as Broken;
  for (const kind of KINDS) sets[kind] = new Set();
  return sets;
}
const KINDS: readonly NatopsKind[] = [
  'ConfigMap',
  'Vpc',
  'Subnet',
  'VpcNatGateway',
  'IptablesEIP',
  'IptablesFIPRule',
  'IptablesDnatRule',
  'IptablesSnatRule',
  'NetworkAttachmentDefinition',
];

/** Kube-OVN's external network when an EIP or a gateway names none (pkg/util/net.go). */
export const DEFAULT_EXTERNAL_NETWORK = 'ovn-vpc-external-network';
/** Where Kube-OVN looks for the NetworkAttachmentDefinition when the Subnet's provider names none: its own namespace. */
const KUBE_OVN_NAMESPACE = 'kube-system';
/** The kinds whose problems concern the gateway their EIP names. */
const RULE_KINDS = new Set(['IptablesEIP', 'IptablesFIPRule', 'IptablesDnatRule', 'IptablesSnatRule']);

/** A usable host address of the network: not its network or broadcast address (except /31, /32). */

export function where(doc: LoadedDoc): string {
  const p = doc.locate([]);
  return `${p.file}:${p.line}`;
}

type Spec = GatewayManifest['spec'];
type List = 'eips' | 'floatingIpRules' | 'dnatRules' | 'snatRules';
const LISTS: readonly List[] = ['eips', 'floatingIpRules', 'dnatRules', 'snatRules'];

/** The resource an entry of a gateway's lists came from, and where each of its fields is written there. */
interface Origin {
  doc: LoadedDoc;
  id: string;
  path: (field: string) => FieldPath;
  /** said after a problem with that field */
  note?: Partial<Record<string, string>>;
}

interface Extras {
  lists: { [L in List]: Spec[L] };
  origins: Record<List, Origin[]>;
}

/** A gateway as checkGateway takes it: its lists with the current form's entries after its own. */
export interface GatewayInput {
  gateway: Located<GatewayManifest>;
  /** the validation's report, with an entry that came from a resource reported at that resource */
  report: Report;
  /** where a field of the gateway is written: an entry's at the resource it came from */
  locate: (path: FieldPath) => SourcePos;
  /** undefined when it cannot be told (reported) */
  nic: string | undefined;
}

export interface CurrentFormContext {
  subnets: Map<string, SubnetInfo>;
  broken: Broken;
  /** the ConfigMap's nic (Kube-OVN 1.7's), which every gateway then uses */
  configNic: string | undefined;
}

/** The current form's documents of one set of manifests, read into its gateways. */
export class CurrentForm {
  private readonly eips: Located<IptablesEip>[] = [];
  private readonly fips: Located<IptablesFipRule>[] = [];
  private readonly dnats: Located<IptablesDnatRule>[] = [];
  private readonly snats: Located<IptablesSnatRule>[] = [];
  private readonly nads: Located<NetworkAttachmentDefinition>[] = [];
  /** each document natops reads, by id, whether its schema passed or not: whose problem is whose */
  private readonly raw = new Map<string, unknown>();
  private readonly gatewayNames = new Set<string>();
  /** fields accepted and not applied, said by `natops validate` */
  readonly notApplied: IgnoredDoc[] = [];
  /** the gateways' external networks: the underlay, which natops does not build as a subnet */
  readonly externalSubnets = new Set<string>();
  /** the addresses of EIPs without v4ip, set by resolve() */
  allocation: AllocationResult = { eips: [], wanted: [] };

  /** `allocations`: the allocation table EIPs without v4ip take their addresses from (none: each is new) */
  constructor(private readonly allocations?: AllocationInput) {}

  /** Every document classify() reads, before its schema. */
  seen(kind: NatopsKind, name: string, value: unknown): void {
    if (!this.raw.has(`${kind}/${name}`)) this.raw.set(`${kind}/${name}`, value);
    if (kind === 'VpcNatGateway') this.gatewayNames.add(name);
  }

  /** A document of one of the current form's kinds that passed its schema. */
  add(kind: NatopsKind, located: Located<unknown>): void {
    if (kind === 'IptablesEIP') this.eips.push(located as Located<IptablesEip>);
    else if (kind === 'IptablesFIPRule') this.fips.push(located as Located<IptablesFipRule>);
    else if (kind === 'IptablesDnatRule') this.dnats.push(located as Located<IptablesDnatRule>);
    else if (kind === 'IptablesSnatRule') this.snats.push(located as Located<IptablesSnatRule>);
    else if (kind === 'NetworkAttachmentDefinition') this.nads.push(located as Located<NetworkAttachmentDefinition>);
  }

  /** Each gateway with the current form's EIPs and rules added, in document order; problems go to `report`. */
  resolve(gateways: Located<VpcNatGateway>[], known: CurrentFormContext, report: Report): Map<string, GatewayInput> {
    const at = (l: Located<unknown>, path: FieldPath, message: string) => report(l.doc, l.id, path, message);
    const byName = new Map(gateways.map((g) => [g.value.metadata.name, g]));
    const extras = new Map<string, Extras>();
    const extrasOf = (gateway: string): Extras => {
      let x = extras.get(gateway);
      if (!x) {
        x = {
          lists: { eips: [], floatingIpRules: [], dnatRules: [], snatRules: [] },
          origins: { eips: [], floatingIpRules: [], dnatRules: [], snatRules: [] },
        };
        extras.set(gateway, x);
      }
      return x;
    };
    const externalSubnet = (l: Located<unknown>, path: FieldPath, name: string, why: string) => {
      const subnet = known.subnets.get(name);
      if (subnet) this.externalSubnets.add(name);
      else if (known.broken.Subnet.has(name))
        at(l, path, `Subnet ${name} has errors (reported at its manifest), so this cannot be applied`);
      else at(l, path, `Subnet ${name} is not in the manifests: ${why}; add it (Kube-OVN's external network)`);
      return subnet;
    };

    const eipByName = new Map<string, { v4ip: string; gateway: string }>();
    const addressOwner = new Map<string, Located<IptablesEip>>();
    const eips = firstOfEach(this.eips, report);
    // every address written, so an EIP without v4ip is given none of them, wherever it comes later
    const written = [
      ...eips.flatMap((e) => e.value.spec.v4ip ?? []),
      ...gateways.flatMap((g) => g.value.spec.eips.map((x) => x.eipCIDR.split('/')[0]!)),
    ];
    const wanted = this.wantedKeys();
    const allocator = new EipAllocator(this.allocations, written, new Set(wanted));
    this.allocation = { eips: allocator.eips, wanted };
    for (const e of eips) {
      const { spec } = e.value;
      this.note(e, 'spec.qosPolicy', spec.qosPolicy, 'QoS is accepted and not applied: natops sets no rate limits');
      this.note(e, 'spec.macAddress', spec.macAddress, "not applied: the EIP sits on net1 with net1's MAC address");
      this.note(e, 'spec.namespace', spec.namespace, 'not applied: natops runs gateways in its own namespace');
      const gw = byName.get(spec.natGwDp);
      if (!gw) {
        if (!this.gatewayNames.has(spec.natGwDp) && !known.broken.unreadable.has('VpcNatGateway'))
          at(e, ['spec', 'natGwDp'], `VpcNatGateway ${spec.natGwDp} is not in the manifests`);
        continue; // a gateway that failed its schema is reported at its manifest
      }
      const subnetName = spec.externalSubnet ?? DEFAULT_EXTERNAL_NETWORK;
      const subnet = externalSubnet(
        e,
        ['spec', 'externalSubnet'],
        subnetName,
        spec.v4ip === undefined
          ? 'natops allocates the address of an EIP without v4ip from it'
          : "natops takes the EIP's prefix length from its cidrBlock",
      );
      if (!subnet) continue;
      const cidr = parseCidr(subnet.cidr)!;
      const name = e.value.metadata.name;
      const v4ip = spec.v4ip ?? allocator.addressFor({ ...e, name, gateway: gw.value.metadata.name }, subnet, report);
      if (v4ip === undefined) continue;
      if (!cidrContains(cidr, v4ip)) {
        at(e, ['spec', 'v4ip'], `${v4ip} is not in the range of subnet ${subnet.name} (${subnet.cidr})`);
        continue;
      }
      const allocatedTo = spec.v4ip === undefined ? undefined : allocator.allocatedToOther(v4ip, subnetName, name);
      if (allocatedTo !== undefined) {
        at(
          e,
          ['spec', 'v4ip'],
          `${v4ip} is the address natops allocated to IptablesEIP ${allocatedTo} (it has no v4ip), which keeps it while it exists; write another address`,
        );
        continue;
      }
      const prior = addressOwner.get(v4ip);
      if (prior) {
        at(e, ['spec', 'v4ip'], `${v4ip} is already the address of ${prior.id} (${where(prior.doc)})`);
        continue;
      }
      addressOwner.set(v4ip, e);
      const networkName = gw.value.spec.externalSubnets?.[0] ?? DEFAULT_EXTERNAL_NETWORK;
      const network =
        networkName === subnetName
          ? subnet
          : externalSubnet(
              e,
              ['spec', 'natGwDp'],
              networkName,
              `it is ${gw.id}'s external network (its spec.externalSubnets[0], by default ${DEFAULT_EXTERNAL_NETWORK}), whose gateway is the next hop of its EIPs`,
            );
      if (!network) continue;
      eipByName.set(name, { v4ip, gateway: gw.value.metadata.name });
      const x = extrasOf(gw.value.metadata.name);
      x.lists.eips.push({ eipCIDR: `${v4ip}/${cidr.prefix}`, gateway: network.gateway });
      x.origins.eips.push({
        doc: e.doc,
        id: e.id,
        path: (f) => ['spec', f === 'eipCIDR' ? 'v4ip' : 'natGwDp'],
        note: { gateway: ` (the next hop: the gateway of Subnet ${network.name}, ${gw.id}'s external network)` },
      });
    }

    /** The EIP a rule names, or undefined when it has problems (reported at it) or is missing (reported here). */
    const eipOf = (r: Located<{ spec: { eip: string } }>) => {
      const eip = eipByName.get(r.value.spec.eip);
      if (!eip && !this.raw.has(`IptablesEIP/${r.value.spec.eip}`) && !known.broken.unreadable.has('IptablesEIP'))
        at(r, ['spec', 'eip'], `IptablesEIP ${r.value.spec.eip} is not in the manifests`);
      return eip;
    };
    const rule = <L extends List>(r: Located<unknown>, gateway: string, list: L, entry: Spec[L][number]) => {
      const x = extrasOf(gateway);
      (x.lists[list] as Spec[L][number][]).push(entry);
      x.origins[list].push({ doc: r.doc, id: r.id, path: (f) => ['spec', f] });
    };
    for (const r of firstOfEach(this.fips, report)) {
      const eip = eipOf(r);
      if (eip) rule(r, eip.gateway, 'floatingIpRules', { eip: eip.v4ip, internalIp: r.value.spec.internalIp });
    }
    for (const r of firstOfEach(this.dnats, report)) {
      // a share rule is one backend of its port; dnat-rules.ts checks the port's rules together
      const { type, eip: _name, ...forward } = r.value.spec;
      const eip = eipOf(r);
      if (eip) rule(r, eip.gateway, 'dnatRules', { ...forward, eip: eip.v4ip, ...(type && { type }) });
    }
    for (const r of firstOfEach(this.snats, report)) {
      const eip = eipOf(r);
      if (eip) rule(r, eip.gateway, 'snatRules', { eip: eip.v4ip, internalCIDR: r.value.spec.internalCIDR });
    }

    const nads = new Map<string, Located<NetworkAttachmentDefinition>>();
    for (const n of this.nads) {
      const key = `${n.value.metadata.namespace}/${n.value.metadata.name}`;
      const prior = nads.get(key);
      if (prior) at(n, ['metadata', 'name'], `${key} is already defined at ${where(prior.doc)}`);
      else nads.set(key, n);
    }
    const inputs = new Map<string, GatewayInput>();
    for (const g of gateways) {
      const { spec, metadata } = g.value;
      this.note(g, 'spec.routes', spec.routes, "not applied yet: natops's gateway routes its VPC's subnets only");
      this.note(g, 'spec.annotations', spec.annotations, 'pod annotations are not applied yet');
      this.note(g, 'spec.namespace', spec.namespace, 'not applied: natops runs gateways in its own namespace');
      this.note(
        g,
        'spec.noDefaultEIP',
        spec.noDefaultEIP === false || undefined,
        'natops gives net1 no address of its own (as noDefaultEIP: true)',
      );
      const x = extras.get(metadata.name);
      const nic = known.configNic ?? this.nadNic(g, known, nads, at);
      if (!x) {
        inputs.set(metadata.name, { gateway: g, report, locate: (path) => g.doc.locate(path), nic });
        continue;
      }
      const merged = { ...spec };
      for (const l of LISTS) (merged[l] as unknown[]) = [...spec[l], ...x.lists[l]];
      inputs.set(metadata.name, {
        gateway: { ...g, value: { ...g.value, spec: merged } },
        report: remapped(g, x, report),
        locate: (path) => {
          const o = originOf(g, x)(path[1], path[2]);
          const field = path[3];
          return o ? o.doc.locate(typeof field === 'string' ? o.path(field) : []) : g.doc.locate(path);
        },
        nic,
      });
    }
    return inputs;
  }

  /**
   * Ties each problem of an EIP or rule to the gateway its EIP names, so that gateway is
   * invalid as a whole (and keeps what it had) and is left out of `valid`. A problem no gateway
   * can be told for refuses the commit: the rule might be one a gateway has, and would look deleted.
   * First marks the EIPs of `valid` whose addresses natops allocated (statuses and previews name them).
   */
  attribute(issues: ManifestIssue[], valid: Map<string, GatewaySpec>): void {
    markAllocated(valid, this.allocation.eips);
    for (const issue of issues) {
      if (issue.unattributed || issue.gateway !== undefined) continue;
      const slash = issue.resource.indexOf('/');
      const kind = issue.resource.slice(0, slash);
      if (!RULE_KINDS.has(kind)) continue;
      const eip =
        kind === 'IptablesEIP' ? issue.resource.slice(slash + 1) : this.rawAt(issue.resource, ['spec', 'eip']);
      const gateway = eip === undefined ? undefined : this.rawAt(`IptablesEIP/${eip}`, ['spec', 'natGwDp']);
      if (gateway !== undefined && this.gatewayNames.has(gateway)) {
        issue.gateway = gateway;
        valid.delete(gateway);
      } else issue.unattributed = true;
    }
  }

  /** allocationKey of every IptablesEIP without v4ip, read before its schema: one with a problem still keeps its address. */
  private wantedKeys(): string[] {
    const keys: string[] = [];
    for (const [id, value] of this.raw) {
      if (!id.startsWith('IptablesEIP/')) continue;
      const v4ip = valueAt(value, ['spec', 'v4ip']);
      if (v4ip !== undefined && v4ip !== null && v4ip !== '') continue;
      const subnet = valueAt(value, ['spec', 'externalSubnet']);
      const name = id.slice('IptablesEIP/'.length);
      keys.push(allocationKey(typeof subnet === 'string' && subnet !== '' ? subnet : DEFAULT_EXTERNAL_NETWORK, name));
    }
    return keys;
  }

  private rawAt(id: string, path: FieldPath): string | undefined {
    const v = valueAt(this.raw.get(id), path);
    return typeof v === 'string' ? v : undefined;
  }

  private note(l: Located<unknown>, field: string, value: unknown, reason: string): void {
    if (value === undefined) return;
    const path = field.split('.');
    this.notApplied.push({ pos: l.doc.locate(path), resource: l.id, reason: `${field}: ${reason}` });
  }

  /** The master of the gateway's external network's NetworkAttachmentDefinition, as Kube-OVN finds it. */
  private nadNic(
    g: Located<VpcNatGateway>,
    known: CurrentFormContext,
    nads: Map<string, Located<NetworkAttachmentDefinition>>,
    at: (l: Located<unknown>, path: FieldPath, message: string) => void,
  ): string | undefined {
    const networkName = g.value.spec.externalSubnets?.[0] ?? DEFAULT_EXTERNAL_NETWORK;
    const path = g.value.spec.externalSubnets?.length ? ['spec', 'externalSubnets', 0] : ['metadata', 'name'];
    const cannot = `natops cannot tell this gateway's nic: ConfigMap ${NAT_GW_CONFIGMAP} has no nic (Kube-OVN 1.7's), and`;
    const orNic = `or give the ConfigMap a nic`;
    const subnet = known.subnets.get(networkName);
    if (!subnet) {
      at(
        g,
        path,
        `${cannot} its external network's Subnet ${networkName} is not in the manifests${known.broken.Subnet.has(networkName) ? ' without errors' : ''}; add it and its NetworkAttachmentDefinition, ${orNic}`,
      );
      return undefined;
    }
    this.externalSubnets.add(networkName);
    const [name, namespace] = nadOfProvider(subnet.provider) ?? [networkName, KUBE_OVN_NAMESPACE];
    const nad = nads.get(`${namespace}/${name}`);
    const what = `NetworkAttachmentDefinition ${namespace}/${name} (Subnet ${networkName}'s${subnet.provider ? ` provider ${subnet.provider}` : ''})`;
    if (!nad) {
      const broken = known.broken.NetworkAttachmentDefinition.has(name) ? ' without errors' : '';
      at(
        g,
        path,
        `${cannot} there is no ${what} in the manifests${broken}; add it, its spec.config naming the macvlan master, ${orNic}`,
      );
      return undefined;
    }
    const found = nadMaster(nad.value.spec.config);
    if ('problem' in found) at(g, path, `${cannot} ${what} at ${where(nad.doc)}: ${found.problem}`);
    else if (!NIC_NAME.test(found.master))
      at(g, path, `the master ${JSON.stringify(found.master)} of ${what} at ${where(nad.doc)}: ${NIC_NAME_MESSAGE}`);
    else return found.master;
    return undefined;
  }
}

/** Kube-OVN's provider "<nad>.<namespace>" or "<nad>.<namespace>.ovn" as the NAD's name and namespace. */
function nadOfProvider(provider: string | undefined): [string, string] | undefined {
  const fields = provider?.split('.') ?? [];
  if (fields.length === 2 || (fields.length === 3 && fields[2] === 'ovn')) return [fields[0]!, fields[1]!];
  return undefined;
}

/** The resource an entry of the merged lists came from; undefined for an inline entry. */
function originOf(g: Located<VpcNatGateway>, x: Extras): (list: unknown, i: unknown) => Origin | undefined {
  const inline = Object.fromEntries(LISTS.map((l) => [l, g.value.spec[l].length])) as Record<List, number>;
  return (list, i) =>
    LISTS.includes(list as List) && typeof i === 'number' && i >= inline[list as List]
      ? x.origins[list as List][i - inline[list as List]]
      : undefined;
}

/** `report` for a gateway whose lists hold the current form's entries after `inline` ones. */
function remapped(g: Located<VpcNatGateway>, x: Extras, report: Report): Report {
  const origin = originOf(g, x);
  return (doc, id, path, message) => {
    if (doc !== g.doc) return report(doc, id, path, message);
    const o = origin(path[1], path[2]);
    if (!o)
      return report(
        doc,
        id,
        path,
        message.replace(
          /\b(eips|floatingIpRules|dnatRules|snatRules)\[(\d+)\]/g,
          (all, l: string, n: string) => origin(l, Number(n))?.id ?? all,
        ),
      );
    // other entries a message names: a resource by its id, an inline entry by its gateway and path
    const text = message.replace(
      /\b(eips|floatingIpRules|dnatRules|snatRules)\[(\d+)\]/g,
      (all, l: string, n: string) => origin(l, Number(n))?.id ?? `${g.id} spec.${all}`,
    );
    const field = path[3];
    report(
      o.doc,
      o.id,
      typeof field === 'string' ? o.path(field) : ['spec'],
      text + (typeof field === 'string' ? (o.note?.[field] ?? '') : ''),
    );
  };
}

/** The first resource of each name; later ones are reported as duplicates and set aside. */
export function firstOfEach<T extends { metadata: { name: string } }>(
  list: Located<T>[],
  report: Report,
): Located<T>[] {
  const first = new Map<string, Located<T>>();
  for (const item of list) {
    const prior = first.get(item.value.metadata.name);
    if (prior) report(item.doc, item.id, ['metadata', 'name'], `${item.id} is already defined at ${where(prior.doc)}`);
    else first.set(item.value.metadata.name, item);
  }
  return [...first.values()];
}
