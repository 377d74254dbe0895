// What a reviewer would want pointed out in a change that validates, each at its line of the head:
// an SNAT whose CIDR a longer prefix of another EIP carves out, and a gateway left without an
// EIP. (A forward or floating IP to an address outside every subnet of the VPC is a validation
// error, with its line, and two pull requests changing one gateway are said in the banner.) Pure.
import { cidrWithin, parseCidr } from '../common/ipv4.ts';
import type { SourcePos } from '../gitops/manifests/issues.ts';
import type { ValidationResult } from '../gitops/manifests/validate.ts';

export interface Finding {
  gateway: string;
  pos: SourcePos;
  message: string;
}

/** Findings about the gateways the change creates or updates, and only about what it changed. */
export function findingsOf(base: ValidationResult, head: ValidationResult, changed: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const name of changed) {
    const spec = head.desired.gateways.get(name);
    const locate = head.sources?.get(name);
    if (!spec || !locate) continue;
    const before = base.desired.gateways.get(name);
    const had = new Set((before?.snats ?? []).map((s) => `${s.internalCidr} ${s.eip}`));
    const isNew = (i: number) => !had.has(`${spec.snats[i]!.internalCidr} ${spec.snats[i]!.eip}`);
    spec.snats.forEach((wide, i) => {
      const w = parseCidr(wide.internalCidr)!;
      spec.snats.forEach((narrow, j) => {
        const n = parseCidr(narrow.internalCidr)!;
        if (i === j || narrow.eip === wide.eip || n.prefix <= w.prefix || !cidrWithin(n, w)) return;
        if (!isNew(i) && !isNew(j)) return;
        out.push({
          gateway: name,
          pos: locate(['spec', 'snatRules', i, 'internalCIDR']),
          message: `SNAT ${wide.internalCidr} -> ${wide.eip} does not take ${narrow.internalCidr}: the longer prefix goes first, and its sources leave from ${narrow.eip}`,
        });
      });
    });
    if (!spec.eips.length && before?.eips.length)
      out.push({
        gateway: name,
        pos: locate(['spec', 'eips']),
        message: `the gateway's last EIP goes: with no default route left, nothing of VPC ${spec.vpc} leaves through it`,
      });
  }
  return out;
}
