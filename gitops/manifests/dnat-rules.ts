// A gateway's port forwards, checked as Kube-OVN's webhook and controller check IptablesDnatRules
// (pkg/webhook/vpc_nat_gateway.go ValidateIptablesDnat, pkg/controller/nft_dnat.go
// isDnatDuplicated), and resolved to the dataplane's DnatSpec. A port, Kube-OVN's DNAT identity
// (eip, externalPort, protocol), is either one exclusive rule's or shared by rules of type share,
// each adding its internalIp:internalPort as a backend.
import type { DnatSpec } from '../../dataplane/model.ts';
import type { FieldPath } from './load.ts';
import type { GatewayDnatRule } from './schema.ts';

export interface DnatChecks {
  fail: (path: FieldPath, message: string) => void;
  /** whether the EIP is one of the gateway's (else reported) */
  ownsEip: (path: FieldPath, eip: string) => boolean;
  /** reports an EIP that is a floating IP's */
  notFloating: (path: FieldPath, eip: string, what: string) => void;
  /** reports an internal address outside the gateway's VPC */
  checkInternal: (path: FieldPath, ip: string) => void;
}

export function checkDnatRules(rules: readonly GatewayDnatRule[], checks: DnatChecks): DnatSpec[] {
  const { fail, ownsEip, notFloating, checkInternal } = checks;
  const ports = new Map<string, { index: number; type: 'exclusive' | 'share' }>();
  rules.forEach((rule, i) => {
    const path = ['spec', 'dnatRules', i] as const;
    if (ownsEip([...path, 'eip'], rule.eip)) notFloating([...path, 'eip'], rule.eip, 'a port forward');
    checkInternal([...path, 'internalIp'], rule.internalIp);
    const type = rule.type ?? 'exclusive';
    const key = `${rule.eip} ${rule.protocol} ${rule.externalPort}`;
    const prior = ports.get(key);
    if (prior === undefined) ports.set(key, { index: i, type });
    else if (prior.type === 'exclusive' && type === 'exclusive')
      fail(
        [...path, 'externalPort'],
        `${rule.protocol} ${rule.eip}:${rule.externalPort} is already forwarded by dnatRules[${prior.index}]`,
      );
    else if (prior.type !== type)
      // Kube-OVN's webhook: `dnat "b" (type=share) conflicts with existing dnat "a" (type=exclusive)
      // sharing the same identity (eip=..., port=..., protocol=...): both must be type=share to coexist`
      fail(
        [...path, type === 'share' ? 'type' : 'externalPort'],
        `${rule.protocol} ${rule.eip}:${rule.externalPort} is already forwarded by dnatRules[${prior.index}] (type=${prior.type}), and this rule is type=${type}: both must be type=share to coexist, as Kube-OVN's webhook says`,
      );
  });
  return rules.map((r) => ({
    eip: r.eip,
    externalPort: r.externalPort,
    protocol: r.protocol,
    internalIp: r.internalIp,
    internalPort: r.internalPort,
    ...(r.type === 'share' && { shared: true as const }),
  }));
}
