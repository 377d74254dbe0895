// The calls Kube-OVN's controller makes to its gateway script (test/fixtures/kube-ovn/nat-gateway.sh)
// to build a gateway, as natops's GatewaySpec describes it: what a live Kube-OVN gateway ran.
//
// From Kube-OVN at commit 1533681d7a6b3dbdd7e8870fa70f0dc6aa49a82a (the fixture's). Every call is
// `bash /kube-ovn/nat-gateway.sh OPERATION RULE...` through pods/exec, one RULE per argument
// (pkg/controller/vpc_nat_gateway.go, execNatGwRules). Kube-OVN runs each resource's handler on its
// own queue, so the real order between resources of one kind is the informers'; the order here is
// the one the script's own checks need (init first: every other operation runs check_inited) and,
// within a kind, the spec's.
import { cidrContains, parseCidr } from '../../common/ipv4.ts';
import type { DnatSpec, GatewaySpec } from '../../dataplane/model.ts';

export interface KubeOvnScriptCalls {
  /** the gateway container's environment the script reads (the StatefulSet's env) */
  env: Record<string, string>;
  /** each call's argv after `bash nat-gateway.sh` */
  calls: string[][];
}

/**
 * The iptables version the controller assumes the gateway has: createSnatInPod asks the script
 * (`get-iptables-version`) and adds --random-fully to the SNAT above 1.6.2. Debian 12's and Kube-OVN's
 * Alpine image's iptables are 1.8: the test checks what the gateway answers.
 */
export const RANDOM_FULLY_ABOVE = '1.6.2';

export function kubeOvnScriptCalls(spec: GatewaySpec): KubeOvnScriptCalls {
  const gateway = spec.eips[0]?.gateway;
  // Kube-OVN has one next hop per gateway (its external subnet's gateway, in GATEWAY_V4); natops's
  // manifests may give each EIP one, but route only through the first EIP's (dataplane/compile.ts).
  if (spec.eips.some((e) => e.gateway !== gateway))
    throw new Error(`gateway ${spec.name}: EIPs with different next hops have no Kube-OVN equivalent`);

  // pkg/controller/vpc_nat_gateway.go, genNatGwStatefulSet (and genNatGwDeployment): the container's
  // env is GATEWAY_V4 and GATEWAY_V6, `net1V4Gateway, net1V6Gateway := util.SplitStringIP(net1Subnet.Spec.Gateway)`.
  // An IPv4 external subnet has no v6 gateway: GATEWAY_V6 is set, empty.
  const env: Record<string, string> = { GATEWAY_V4: gateway ?? '', GATEWAY_V6: '' };
  const calls: string[][] = [];

  // vpc_nat_gateway.go, handleInitVpcNatGw: `c.execNatGwRules(pod, natGwInit, interfaces)`, where
  // interfaces stays empty unless the controller runs with EnableNonPrimaryCNI (then one argument
  // "vpcNadIfName,externalNadIfName" from the pod's network-status). Kube-OVN as primary CNI: no
  // argument, and the script keeps its defaults eth0 and net1 (nat-gateway.sh lines 42-43). Init
  // takes no routes: the pod's routes come from its annotations (generateNatGwRoutes, given to the
  // CNI) and from subnet-route-add below.
  calls.push(['init']);

  // vpc_nat_gw_eip.go, handleAddIptablesEip -> createEipInPod: `execNatGwRules(gwPod, natGwEipAdd,
  // []string{addrV4})`, addrV4 = util.GetIPAddrWithMask(v4ip, eipV4Cidr): "ip/prefix" and nothing
  // else (the next hop is the env's GATEWAY_V4, nat-gateway.sh lines 282-284). One call per EIP.
  for (const e of spec.eips) calls.push(['eip-add', e.cidr]);

  // vpc_nat_gateway.go, handleUpdateNatGwSubnetRoute: one call with a rule "cidr,v4InternalGw" per
  // subnet of the VPC (vpc.Status.Subnets), except a subnet that holds the gateway subnet's own
  // gateway address (`!util.CIDRContainIP(cidr, v4InternalGw)`): eth0's subnet is connected. No
  // rule, no call.
  const routeRules = spec.vpcSubnets
    .filter((s) => !contains(s.cidr, spec.subnet.gateway))
    .map((s) => `${s.cidr},${spec.subnet.gateway}`);
  if (routeRules.length) calls.push(['subnet-route-add', ...routeRules]);

  // vpc_nat_gw_nat.go, handleAddIptablesFip -> createFipInPod: `fmt.Sprintf("%s,%s", v4ip, internalIP)`,
  // v4ip the EIP's status IP (no prefix).
  for (const f of spec.floatingIps) calls.push(['floating-ip-add', `${f.eip},${f.internalIp}`]);

  // vpc_nat_gw_nat.go, handleAddIptablesDnatRule: type share -> nft_dnat.go createNftDnatMapInPod with
  // the port's backends (getShareBackends, the siblings' specs, plus its own), deduplicated and
  // sorted (dedupSortedBackends), "eip,externalPort,protocol,ip:port@ip:port..."; any other type ->
  // createDnatInPod, "v4ip,externalPort,protocol,internalIP,internalPort". One call per
  // IptablesDnatRule: each rule of a shared port sends the whole (same) backend list.
  for (const d of spec.dnats) {
    if (d.shared) calls.push(['nft-dnat-map-add', `${d.eip},${d.externalPort},${d.protocol},${backends(spec, d)}`]);
    else calls.push(['dnat-add', `${d.eip},${d.externalPort},${d.protocol},${d.internalIp},${d.internalPort}`]);
  }

  // vpc_nat_gw_nat.go, handleAddIptablesSnatRule -> createSnatInPod: the CIDR normalized to carry a
  // prefix (normalizeSnatInternalCIDR), then getIptablesVersion (vpc_nat_gateway.go: the script's
  // `get-iptables-version`) and, above 1.6.2 (util.CompareVersion(version, "1.6.2") >= 1),
  // "v4ip,internalCIDR,--random-fully".
  for (const s of spec.snats) {
    const cidr = s.internalCidr.includes('/') ? s.internalCidr : `${s.internalCidr}/32`;
    calls.push(['get-iptables-version']);
    calls.push(['snat-add', `${s.eip},${cidr},--random-fully`]);
  }
  return { env, calls };
}

/** A shared port's backends as createNftDnatMapInPod sends them: "ip:port" each once, sorted, joined by "@". */
function backends(spec: GatewaySpec, port: DnatSpec): string {
  const all = spec.dnats
    .filter(
      (d) => d.shared && d.eip === port.eip && d.protocol === port.protocol && d.externalPort === port.externalPort,
    )
    .map((d) => `${d.internalIp}:${d.internalPort}`);
  // Go's sort.Strings: byte order, as JavaScript's default sort for these ASCII strings
  return [...new Set(all)].sort().join('@');
}

function contains(cidr: string, ip: string): boolean {
  return cidrContains(parseCidr(cidr)!, ip);
}
