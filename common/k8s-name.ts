// A Kubernetes object name, the one check of it: manifests' names and the lab's host names.
import { z } from 'zod';
import { DNS_LABEL, DNS_LABEL_MAX } from './dns-label.ts';

/** A Kubernetes object name (RFC 1123 label), also safe in namespace and Deployment names. */
export const k8sName = z
  .string({ error: 'must be a string' })
  .max(DNS_LABEL_MAX, `must be at most ${DNS_LABEL_MAX} characters (a Kubernetes name)`)
  .regex(
    DNS_LABEL,
    'must be a valid Kubernetes name: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
