// The EIP allocation table: which address natops gave each IptablesEIP written without v4ip, so
// that it stays the same across commits and restarts (kept in Redis with everything else natops
// knows; its persistence is Redis's). One hash, `<prefix>:sys:eip-allocations`, field
// `<externalSubnet>/<eipName>` (gitops/manifests/eip-allocation.ts's allocationKey), value the
// address. The choice of address is pure (eip-address.ts); this module only reads and writes.
import type { Redis } from 'ioredis';
import { ipv4Address } from '../common/ipv4-schema.ts';
import { PermanentError } from '../common/errors.ts';
import type { AllocationChanges } from '../gitops/manifests/eip-allocation.ts';

// KEYS: the hash. ARGV: the number of entries to set, then per entry its field, the value it
// replaces ('' for none) and its address; then per entry to free its field and address.
// All or nothing: an entry set meanwhile, or an address another field holds, fails the whole
// write (0), so two planners never give one address to two EIPs; the caller reads again.
const COMMIT = `
local all = redis.call('HGETALL', KEYS[1])
local value, owner = {}, {}
for i = 1, #all, 2 do value[all[i]] = all[i + 1]; owner[all[i + 1]] = all[i] end
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local field, replaces, address = ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i]
  if (value[field] or '') ~= replaces then return 0 end
  if owner[address] and owner[address] ~= field then return 0 end
  if value[field] then owner[value[field]] = nil end
  value[field] = address
  owner[address] = field
end
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[2 + 3 * i], ARGV[4 + 3 * i]) end
for i = 2 + 3 * n, #ARGV, 2 do
  if value[ARGV[i]] == ARGV[i + 1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
`;

/** An entry that is not an address: the table was written by something else than natops. */
export class AllocationTableError extends PermanentError {
  constructor(
    readonly key: string,
    readonly field: string,
  ) {
    super(
      `${key} holds ${JSON.stringify(field)}, which is not an EIP allocation (an IPv4 address); natops will not guess`,
    );
  }
}

export class EipAllocations {
  readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:sys:eip-allocations`;
  }

  /** The whole table: allocationKey -> address. */
  async table(): Promise<Map<string, string>> {
    const table = new Map<string, string>();
    for (const [field, address] of Object.entries(await this.redis.hgetall(this.key))) {
      if (!ipv4Address.safeParse(address).success) throw new AllocationTableError(this.key, field);
      table.set(field, address);
    }
    return table;
  }

  /** Applies a commit's changes at once; false (nothing written) when the table moved under them. */
  async commit(changes: AllocationChanges): Promise<boolean> {
    if (!changes.set.length && !changes.free.length) return true;
    const args = [
      String(changes.set.length),
      ...changes.set.flatMap((s) => [s.key, s.replaces ?? '', s.address]),
      ...changes.free.flatMap((f) => [f.key, f.address]),
    ];
    return (await this.redis.eval(COMMIT, 1, this.key, ...args)) === 1;
  }
}
