// A Kubernetes object name, the one check of it: manifests' names and the lab's host names.
import { z } from 'zod';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A Kubernetes object name (RFC 1123 label), also safe in namespace and Deployment names. */
export const k8sName = z
  .string({ error: 'must be a string' })
  .max(63, 'must be at most 63 characters (a Kubernetes name)')
  .regex(
    DNS_LABEL,
    'must be a valid Kubernetes name: lowercase letters, digits and "-", starting and ending with a letter or digit',
  );
