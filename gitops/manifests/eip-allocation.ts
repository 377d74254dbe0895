// Addresses for the IptablesEIPs written without v4ip, during validation: the allocation table
// (an input: state/eip-allocations.ts reads it from Redis; without Redis it is empty) says which
// address each already has, and an EIP not in it gets the lowest free one (eip-address.ts). So
// compile and every check below see an ordinary address, and validation stays pure: what to add
// to the table and what to take out of it is part of its result, for the planner to commit.
import type { GatewaySpec } from '../../dataplane/model.ts';
import { parseCidr } from '../../common/ipv4.ts';
import { allocatableCount, chooseAddress, isAllocatable, type AddressPool } from './eip-address.ts';
import type { SourcePos } from './issues.ts';
import type { FieldPath, LoadedDoc } from './load.ts';

/** The table's key of an EIP: `<externalSubnet>/<name>`, so a move to another subnet is a new allocation. */
export const allocationKey = (subnet: string, eip: string) => `${subnet}/${eip}`;

/** What validation is given to allocate with (ValidateOptions' `allocations`; none: every EIP without v4ip is new). */
export interface AllocationInput {
  /** the allocation table: allocationKey -> address */
  table: ReadonlyMap<string, string>;
  /** addresses a gateway holds or is being given (its records): never handed to another EIP */
  held?: ReadonlySet<string>;
}

/** The address of one EIP without v4ip. */
export interface EipAllocation {
  key: string;
  /** "IptablesEIP/<name>" */
  id: string;
  gateway: string;
  subnet: string;
  address: string;
  /** absent from the table (or its entry there is no longer usable): natops allocates it when it applies the commit */
  fresh: boolean;
  /** the entry `fresh` replaces, if any */
  replaces?: string;
  pos: SourcePos;
}

/** What validation says about allocation: the addresses, and every key an EIP in Git still needs. */
export interface AllocationResult {
  eips: EipAllocation[];
  /** allocationKey of every IptablesEIP without v4ip in the manifests, whether valid or not */
  wanted: string[];
}

type Report = (doc: LoadedDoc, id: string, path: FieldPath, message: string) => void;

/** Hands out the addresses of one validation, in document order. */
export class EipAllocator {
  readonly eips: EipAllocation[] = [];
  private readonly taken: Set<string>;
  /** table addresses of EIPs still in Git without v4ip: an explicit v4ip may not take them */
  private readonly allocatedTo = new Map<string, string>();

  constructor(
    private readonly input: AllocationInput | undefined,
    /** every address written in the manifests: v4ips and the 1.7 form's eipCIDRs */
    written: Iterable<string>,
    wanted: ReadonlySet<string>,
  ) {
    const table = input?.table ?? new Map<string, string>();
    this.taken = new Set([...written, ...table.values(), ...(input?.held ?? [])]);
    for (const [key, address] of table) if (wanted.has(key)) this.allocatedTo.set(address, key);
  }

  /** The EIP's address: its entry in the table, else the lowest free one; undefined (reported) when the subnet has none left. */
  addressFor(
    e: { doc: LoadedDoc; id: string; name: string; gateway: string },
    subnet: AddressPool & { name: string },
    report: Report,
  ): string | undefined {
    const key = allocationKey(subnet.name, e.name);
    const entry = this.input?.table.get(key);
    const pos = e.doc.locate(['spec', 'v4ip']);
    const base = { key, id: e.id, gateway: e.gateway, subnet: subnet.name, pos };
    // kept while the EIP exists, even if excludeIps grows (as Kube-OVN keeps an EIP's address);
    // only an address the subnet can no longer have (its cidrBlock or gateway changed) is replaced
    if (entry !== undefined && isAllocatable({ ...subnet, excludeIps: [] }, entry)) {
      this.eips.push({ ...base, address: entry, fresh: false });
      return entry;
    }
    const address = chooseAddress(subnet, this.taken);
    if (address === undefined) {
      const size = allocatableCount(subnet);
      report(
        e.doc,
        e.id,
        ['spec', 'externalSubnet'],
        `no v4ip, and Subnet ${subnet.name} (${subnet.cidr}) has no free address left to allocate: all ${size} it can give (not its network, broadcast or gateway ${subnet.gateway}, nor its excludeIps) are other EIPs' or held by a gateway; write a v4ip, or widen the subnet`,
      );
      return undefined;
    }
    this.taken.add(address);
    this.eips.push({ ...base, address, fresh: true, ...(entry !== undefined && { replaces: entry }) });
    return address;
  }

  /** The EIP in Git whose allocated address `v4ip` is, if it is another's than `subnet/name`'s. */
  allocatedToOther(v4ip: string, subnet: string, name: string): string | undefined {
    const key = this.allocatedTo.get(v4ip);
    return key !== undefined && key !== allocationKey(subnet, name) ? key.slice(key.indexOf('/') + 1) : undefined;
  }
}

/**
 * An address already allocated stays its EIP's gateway's: a 1.7 eipCIDR written equal to it is
 * the one refused (validate.ts's check of EIP owners, `owners` keyed by address).
 */
export function claimAllocated(eips: readonly EipAllocation[], owners: Map<string, string>): void {
  for (const a of eips) if (!a.fresh) owners.set(a.address, `VpcNatGateway/${a.gateway}`);
}

/** Marks each valid gateway's EIPs whose address natops allocated (statuses and previews say so). */
export function markAllocated(gateways: Map<string, GatewaySpec>, eips: readonly EipAllocation[]): void {
  for (const a of eips) {
    const spec = gateways.get(a.gateway);
    const eip = spec?.eips.find((x) => parseCidr(x.cidr)?.address === a.address);
    if (eip) eip.allocatedFor = a.id.slice(a.id.indexOf('/') + 1);
  }
}

/** The table's changes a valid commit makes: its fresh allocations in, and out the entries no EIP in Git wants and no gateway holds. */
export interface AllocationChanges {
  set: { key: string; address: string; replaces?: string }[];
  free: { key: string; address: string }[];
}

export function allocationChanges(
  result: AllocationResult,
  table: ReadonlyMap<string, string>,
  held: ReadonlySet<string>,
): AllocationChanges {
  const wanted = new Set(result.wanted);
  return {
    set: result.eips
      .filter((a) => a.fresh)
      .map((a) => ({ key: a.key, address: a.address, ...(a.replaces !== undefined && { replaces: a.replaces }) })),
    free: [...table]
      .filter(([key, address]) => !wanted.has(key) && !held.has(address))
      .map(([key, address]) => ({ key, address })),
  };
}

/** "; EIP eip-a: 192.168.0.2 (allocated)" for each EIP of the spec natops allocated, for its statuses; "" for none. */
export function allocatedNote(spec: Pick<GatewaySpec, 'eips'>): string {
  return spec.eips
    .filter((e) => e.allocatedFor !== undefined)
    .map((e) => `; EIP ${e.allocatedFor}: ${e.cidr.split('/')[0]} (allocated)`)
    .join('');
}
