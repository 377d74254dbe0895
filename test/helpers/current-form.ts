// Kube-OVN 1.7's form -> Kube-OVN's current form (IptablesEIP and the rule kinds beside a stripped
// VpcNatGateway, the external network's Subnet and NetworkAttachmentDefinition, a ConfigMap
// without nic), for tests that hold the two to one gateway state.
import { stringify } from 'yaml';
import { networkAddress, parseCidr } from '../../common/ipv4.ts';
import type { ManifestFile } from '../../gitops/manifests/load.ts';
import type { Obj, SeedObjects } from './manifests.ts';

export const EXTERNAL_NETWORK = 'ovn-vpc-external-network';

interface InlineGateway {
  eips?: { eipCIDR: string; gateway: string }[];
  floatingIpRules?: { eip: string; internalIp: string }[];
  dnatRules?: {
    eip: string;
    externalPort: number | string;
    protocol: string;
    internalIp: string;
    internalPort: number | string;
  }[];
  snatRules?: { eip: string; internalCIDR: string }[];
}

const kubeovn = (kind: string, name: string, spec: Obj): Obj => ({
  apiVersion: 'kubeovn.io/v1',
  kind,
  metadata: { name },
  spec,
});

/**
 * The same manifests in the current form: each gateway's inline lists become resources named
 * `<gateway>-eip-<i>`, `-fip-`, `-dnat-`, `-snat-`, in the lists' order, after the gateway. Every
 * EIP must be on one external network (one next hop), which becomes the Subnet ovn-vpc-external-network.
 */
export function toCurrentForm(objects: readonly Obj[]): Obj[] {
  const out: Obj[] = [];
  let nic: string | undefined;
  let network: { cidr: string; gateway: string } | undefined;
  for (const o of structuredClone(objects) as Obj[]) {
    if (o.kind === 'ConfigMap') {
      const data = o.data as Record<string, string>;
      nic = data.nic;
      delete data.nic;
      out.push(o);
      continue;
    }
    if (o.kind !== 'VpcNatGateway') {
      out.push(o);
      continue;
    }
    const gw = (o.metadata as { name: string }).name;
    const spec = o.spec as Obj & InlineGateway;
    const { eips = [], floatingIpRules = [], dnatRules = [], snatRules = [] } = spec;
    for (const key of ['eips', 'floatingIpRules', 'dnatRules', 'snatRules']) delete spec[key];
    out.push(o);
    const eipName = new Map<string, string>();
    eips.forEach((e, i) => {
      const cidr = parseCidr(e.eipCIDR)!;
      const net = { cidr: `${networkAddress(cidr.address, cidr.prefix)}/${cidr.prefix}`, gateway: e.gateway };
      if (network && (network.cidr !== net.cidr || network.gateway !== net.gateway))
        throw new TypeError(`EIPs on two external networks (${network.cidr}, ${net.cidr}): not one current form`);
      network = net;
      eipName.set(cidr.address, `${gw}-eip-${i}`);
      out.push(kubeovn('IptablesEIP', `${gw}-eip-${i}`, { v4ip: cidr.address, natGwDp: gw }));
    });
    const eip = (address: string) => eipName.get(address) ?? `${address}-is-no-eip`;
    for (const [i, r] of floatingIpRules.entries())
      out.push(kubeovn('IptablesFIPRule', `${gw}-fip-${i}`, { eip: eip(r.eip), internalIp: r.internalIp }));
    for (const [i, r] of dnatRules.entries())
      out.push(
        kubeovn('IptablesDnatRule', `${gw}-dnat-${i}`, {
          eip: eip(r.eip),
          externalPort: String(r.externalPort),
          protocol: r.protocol,
          internalIp: r.internalIp,
          internalPort: String(r.internalPort),
        }),
      );
    for (const [i, r] of snatRules.entries())
      out.push(kubeovn('IptablesSnatRule', `${gw}-snat-${i}`, { eip: eip(r.eip), internalCIDR: r.internalCIDR }));
  }
  if (network) {
    out.push({
      apiVersion: 'kubeovn.io/v1',
      kind: 'Subnet',
      metadata: { name: EXTERNAL_NETWORK },
      spec: {
        protocol: 'IPv4',
        provider: `${EXTERNAL_NETWORK}.kube-system`,
        cidrBlock: network.cidr,
        gateway: network.gateway,
      },
    });
    out.push(externalNad(nic ?? 'eth1'));
  }
  return out;
}

/** The external network's NetworkAttachmentDefinition as Kube-OVN's docs write it: macvlan on `master`. */
export function externalNad(master: string, name = EXTERNAL_NETWORK): Obj {
  const config = {
    cniVersion: '0.3.0',
    type: 'macvlan',
    master,
    mode: 'bridge',
    ipam: { type: 'kube-ovn', server_socket: '/run/openvswitch/kube-ovn-daemon.sock', provider: `${name}.kube-system` },
  };
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: { name, namespace: 'kube-system' },
    spec: { config: JSON.stringify(config) },
  };
}

export function seedList(seed: SeedObjects): Obj[] {
  return [seed.config, seed.vpc, seed.subnet, seed.gateway, ...seed.extra];
}

/** Objects as one file of YAML documents, so their order is the file's. */
export function asOneFile(objects: readonly Obj[], path = 'manifests.yaml'): ManifestFile {
  return { path, text: objects.map((o) => stringify(o)).join('---\n') };
}
