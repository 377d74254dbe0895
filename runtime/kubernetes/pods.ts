// What a pod's status says about a gateway (pure): ready or not, and why not in the cluster's words.
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { NatopsError } from '../../common/errors.ts';

export function podReadiness(pod: V1Pod): { ready: boolean } {
  const ready =
    pod.status?.phase === 'Running' &&
    pod.metadata?.deletionTimestamp === undefined &&
    (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  return { ready };
}

/**
 * Why no pod became ready, from what the cluster says: a container waiting (image not present,
 * crash loop), a scheduling condition (unschedulable), else the newest warning event of the
 * pods (a CNI error creating the sandbox), else the phase.
 */
export function notReadyReason(pods: readonly V1Pod[], events: readonly CoreV1Event[], timeoutMs: number): string {
  const after = `after ${Math.round(timeoutMs / 100) / 10} s`;
  const live = pods.filter((p) => p.metadata?.deletionTimestamp === undefined);
  if (!live.length)
    return `no pod was created ${after} (is the Deployment's ReplicaSet or the StatefulSet blocked? see its events)`;
  const all: string[] = [];
  for (const pod of live) {
    const reasons: string[] = [];
    const name = pod.metadata?.name ?? '?';
    for (const c of pod.status?.containerStatuses ?? []) {
      const w = c.state?.waiting;
      if (w?.reason && w.reason !== 'ContainerCreating')
        reasons.push(`${name}: ${w.reason}${w.message ? `: ${w.message}` : ''}`);
      const t = c.state?.terminated ?? c.lastState?.terminated;
      if (t?.reason)
        reasons.push(`${name}: container ${t.reason} (exit ${t.exitCode})${t.message ? `: ${t.message}` : ''}`);
    }
    for (const c of pod.status?.conditions ?? []) {
      if (c.type === 'PodScheduled' && c.status === 'False')
        reasons.push(`${name}: ${c.reason ?? 'unschedulable'}${c.message ? `: ${c.message}` : ''}`);
    }
    if (!reasons.length) {
      const warning = events
        .filter((e) => e.type === 'Warning' && e.involvedObject?.kind === 'Pod' && e.involvedObject.name === name)
        .sort((a, b) => stamp(b) - stamp(a))[0];
      if (warning) reasons.push(`${name}: ${warning.reason ?? 'Warning'}: ${warning.message ?? ''}`.trim());
    }
    if (!reasons.length) reasons.push(`${name}: ${pod.status?.phase ?? 'Unknown'}, not ready`);
    all.push(...reasons);
  }
  return `${all.join('; ')} (${after})`;
}

const stamp = (e: CoreV1Event) =>
  new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? 0).getTime();

/** The gateway's pod did not become Running and Ready in time; the message is the cluster's reason. */
export class GatewayNotReadyError extends NatopsError {
  constructor(
    readonly gateway: string,
    readonly reason: string,
  ) {
    super(`gateway ${gateway}: pod not ready: ${reason}`);
  }
}
