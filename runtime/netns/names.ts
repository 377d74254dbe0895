// Names of everything the lab creates. Namespaces carry the resource names; interface names
// are limited to 15 characters, so they carry a short hash of what they belong to.
import { hexDigest } from '../../common/digest.ts';
import { isDnsLabel } from '../../common/dns-label.ts';
import { LabError } from './errors.ts';

export const DEFAULT_LAB = 'natops';
const LAB_PREFIX = /^[a-z][a-z0-9]{0,11}$/;

const short = (text: string) => hexDigest('sha1', text).slice(0, 8);

/**
 * `name` if it is a DNS label, as every manifest name is: namespace names are also file names
 * in the lab's state dir and /run/netns, so a name with "/" or ".." must never become one.
 */
function dnsLabel(what: string, name: string): string {
  if (!isDnsLabel(name))
    throw new LabError(`${what} name ${JSON.stringify(name)} is not a DNS label (a Kubernetes name)`, {
      retryable: false,
    });
  return name;
}

/**
 * `name` if it can be joined below the lab's state dir as one file: `join` would follow a "/" or
 * ".." anywhere on the host, and the names recorded there come from job data and the command line.
 */
export function fileName(what: string, name: string): string {
  if (name === '' || name.includes('/') || name.includes('..') || name.includes('\0'))
    throw new LabError(`refusing ${what} ${JSON.stringify(name)}: not a plain file name`, { retryable: false });
  return name;
}

export class LabNames {
  constructor(readonly prefix: string = DEFAULT_LAB) {
    if (!LAB_PREFIX.test(prefix))
      throw new LabError(
        `lab name ${JSON.stringify(prefix)} must be 1-12 lowercase letters or digits, starting with a letter`,
      );
  }
  /** the namespace holding the bridges: one per subnet, one for the underlay */
  get fabric() {
    return `${this.prefix}-lab`;
  }
  /** the upstream router on the underlay, answering at every EIP gateway address */
  get upstream() {
    return `${this.prefix}-upstream`;
  }
  /** a VPC's router, standing for its OVN logical router */
  vpc(name: string) {
    return `${this.prefix}-vpc-${dnsLabel('VPC', name)}`;
  }
  gateway(name: string) {
    return `${this.prefix}-gw-${dnsLabel('gateway', name)}`;
  }
  host(name: string) {
    return `${this.prefix}-host-${dnsLabel('host', name)}`;
  }

  subnetBridge(subnet: string) {
    return `s${short(`subnet/${subnet}`)}`;
  }
  routerPort(vpc: string, subnet: string) {
    return `r${short(`router/${vpc}/${subnet}`)}`;
  }
  gatewayPort(gateway: string, inner: 'eth0' | 'net1') {
    return `g${short(`gw/${gateway}`)}${inner === 'eth0' ? 'e' : 'n'}`;
  }
  hostPort(host: string) {
    return `h${short(`host/${host}`)}`;
  }
  get upstreamPort() {
    return `u${short('upstream')}`;
  }
  /** a veth joining a host attachment point to the lab (a subnet's, or the external network's): its end in the host or in the fabric */
  attachPort(network: { subnet: string } | 'external', end: 'host' | 'lab') {
    const key = network === 'external' ? 'external' : `subnet/${network.subnet}`;
    return `a${short(`attach/${this.prefix}/${key}`)}${end === 'host' ? 'h' : 'l'}`;
  }

  /** the gateway name behind a gateway namespace, or undefined for any other namespace */
  gatewayOf(namespace: string): string | undefined {
    const p = `${this.prefix}-gw-`;
    return namespace.startsWith(p) ? namespace.slice(p.length) : undefined;
  }
}
