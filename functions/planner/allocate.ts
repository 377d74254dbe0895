// The planner's part in allocating EIP addresses: a commit's manifests are validated with the
// allocation table (so every EIP without v4ip has an address before compile sees it), and the
// commit's changes to the table are written at once, all or nothing; if another planner wrote
// meanwhile, the table is read and the commit validated again. An address leaves the table only
// when its EIP has left Git and no gateway holds it (the records say what they hold).
import { NatopsError } from '../../common/errors.ts';
import { parseCidr } from '../../common/ipv4.ts';
import type { Validate } from '../../gitops/git/validated.ts';
import { allocationChanges } from '../../gitops/manifests/eip-allocation.ts';
import { refusesCommit } from '../../gitops/manifests/issues.ts';
import type { ValidationResult } from '../../gitops/manifests/validate.ts';
import type { EipAllocations } from '../../state/eip-allocations.ts';
import type { RecordSnapshot } from '../../state/records.ts';

/** Tries before giving up: each lost race means another planner wrote; it ends after a few. */
const ATTEMPTS = 20;

/** The table kept changing: retried as the plan job (a NatopsError is retryable by default). */
export class AllocationRaceError extends NatopsError {
  constructor(readonly key: string) {
    super(`the EIP allocation table ${key} changed ${ATTEMPTS} times while planning; trying the plan again`);
  }
}

/** Every EIP address a gateway has or is being given (its applied and desired specs). */
export function heldAddresses(snap: Pick<RecordSnapshot, 'gateways'>): Set<string> {
  const held = new Set<string>();
  for (const rec of snap.gateways.values())
    for (const spec of [rec.lastApplied?.state, rec.desired?.state])
      for (const eip of spec?.eips ?? []) held.add(parseCidr(eip.cidr)!.address);
  return held;
}

/** The commit validated with its EIPs' addresses allocated; a refused commit changes nothing in the table. */
export async function validatedAllocating(
  validate: Validate,
  allocations: EipAllocations,
  held: ReadonlySet<string>,
): Promise<ValidationResult> {
  for (let attempt = 1; ; attempt++) {
    const table = await allocations.table();
    const v = validate({ table, held });
    if (!v.allocation || v.issues.some(refusesCommit)) return v;
    if (await allocations.commit(allocationChanges(v.allocation, table, held))) return v;
    if (attempt >= ATTEMPTS) throw new AllocationRaceError(allocations.key);
  }
}
