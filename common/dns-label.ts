// A DNS label (RFC 1123), the rule of Kubernetes object names, without zod: the lab's names are
// checked with it in a module every command loads, --help's included.
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_LABEL_MAX = 63;

export const isDnsLabel = (name: string): boolean => name.length <= DNS_LABEL_MAX && DNS_LABEL.test(name);
