// Calls to the Kubernetes API as typed errors: what failed, the status, and whether a retry can
// help. A server-side apply that conflicts with another field manager is permanent and names it.
import { NatopsError, PermanentError } from '../../common/errors.ts';
import { describeApiError } from './pod-exec.ts';

/** An API call failed; 5xx, 409 and network errors may pass on a retry, other 4xx will not. */
export class KubernetesApiError extends NatopsError {
  constructor(
    readonly what: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`${what}: ${detail}`, {
      retryable: status === undefined || status >= 500 || status === 409 || status === 429,
    });
  }
}

/**
 * A server-side apply would change fields another field manager owns (an admin's `kubectl scale`,
 * another controller). natops applies without force, so it never takes them over silently; a
 * retry meets the same owner, so this is permanent until someone releases the fields.
 */
export class ApplyConflictError extends PermanentError {
  constructor(
    readonly what: string,
    /** the other field managers, as the API server names them */
    readonly managers: readonly string[],
    /** the fields they own, as paths (".spec.replicas") */
    readonly fields: readonly string[],
  ) {
    super(
      `${what}: fields owned by another field manager (${managers.map((m) => `"${m}"`).join(', ')}): ${fields.join(', ')}; natops does not take them over (release them, e.g. by applying without them as that manager, or remove that manager's entry)`,
    );
  }
}

export const statusOf = (e: unknown): number | undefined => {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
};

interface ConflictStatus {
  reason?: string;
  details?: { causes?: { reason?: string; message?: string; field?: string }[] };
}

/** The managers and fields of a 409 from a server-side apply, if that is what it is. */
export function applyConflict(e: unknown): { managers: string[]; fields: string[] } | undefined {
  if (statusOf(e) !== 409) return undefined;
  const body = (e as { body?: unknown }).body;
  let status: ConflictStatus;
  try {
    status = (typeof body === 'string' ? JSON.parse(body) : body) as ConflictStatus;
  } catch {
    return undefined;
  }
  const causes = (status?.details?.causes ?? []).filter((c) => c.reason === 'FieldManagerConflict');
  if (!causes.length) return undefined;
  const managers = new Set<string>();
  for (const c of causes) {
    // "conflict with \"kubectl\"" (an apply) or "conflict with \"kubectl-edit\" using apps/v1" (an update)
    const m = /conflict with "([^"]*)"/.exec(c.message ?? '');
    managers.add(m?.[1] ?? c.message ?? '?');
  }
  return { managers: [...managers], fields: causes.map((c) => c.field ?? '?') };
}

export async function api<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw new KubernetesApiError(what, statusOf(e), describeApiError(e));
  }
}

/** undefined for a 404, else the object (or the API error) */
export async function maybe<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw new KubernetesApiError(what, statusOf(e), describeApiError(e));
  }
}
