// The zod checks of the values that reach commands and paths: addresses, networks, ports, the
// protocol, interface names and images. Manifests and job data both use them (imports only go
// down, so they live here), so a value Redis holds is held to the manifests' rules.
import { z } from 'zod';
import { isCanonicalNetwork, isIPv4, networkOf, parseCidr } from './ipv4.ts';

export const ipv4Address = z
  .string({ error: 'must be an IPv4 address written as a string' })
  .refine(isIPv4, 'must be an IPv4 address such as 10.0.1.5');

/** A network in CIDR form, written with its network address (10.0.1.0/24, not 10.0.1.7/24). */
export const ipv4Network = z.string({ error: 'must be a CIDR written as a string' }).superRefine((text, ctx) => {
  const cidr = parseCidr(text);
  if (!cidr) ctx.addIssue({ code: 'custom', message: 'must be an IPv4 CIDR such as 10.0.1.0/24' });
  else if (!isCanonicalNetwork(cidr))
    ctx.addIssue({ code: 'custom', message: `has host bits set; the network is ${networkOf(cidr)}` });
});

/** An address with its prefix length (host bits allowed), as eipCIDR is written. */
export const ipv4Interface = z
  .string({ error: 'must be an address/prefix written as a string' })
  .refine(
    (text) => parseCidr(text) !== undefined,
    'must be an IPv4 address with a prefix length, such as 192.168.0.111/24',
  );

/** Kube-OVN accepts ports as numbers or strings; both become numbers here. */
export const port = z
  .union([z.number(), z.string()], { error: 'must be a port number from 1 to 65535' })
  .transform((value, ctx) => {
    // '0755' would be 755 here but octal 493 to iptables (and to Kube-OVN, which passes the string on)
    if (typeof value === 'string' && /^\s*0\d+\s*$/.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `must be written without a leading 0: iptables reads ${JSON.stringify(value)} as an octal number`,
      });
      return z.NEVER;
    }
    const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      ctx.addIssue({ code: 'custom', message: `must be a port number from 1 to 65535, not ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return n;
  });

export const protocol = z.string({ error: 'must be tcp or udp' }).transform((value, ctx) => {
  const p = value.toLowerCase();
  if (p !== 'tcp' && p !== 'udp') {
    ctx.addIssue({ code: 'custom', message: `must be tcp or udp, not ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return p;
});

/** The nic becomes an interface name (macvlan master, the lab's underlay bridge): 1-15 safe characters. */
export const NIC_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
export const NIC_NAME_MESSAGE = 'must be a network interface name (1-15 letters, digits, ".", "_" or "-")';
export const nicName = z.string().regex(NIC_NAME, NIC_NAME_MESSAGE);

/** A container image reference: never starts with "-", no spaces or control characters. */
export const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;
export const IMAGE_REF_MESSAGE = 'must be a container image reference such as kubeovn/vpc-nat-gateway:v1.7.0';
export const imageRef = z.string().regex(IMAGE_REF, IMAGE_REF_MESSAGE);
