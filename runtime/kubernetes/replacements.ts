// The pod watch behind `natops serve`'s repair of a replaced gateway pod: a pod that becomes Ready
// with a UID not seen Ready before (deleted, evicted, node restarted) starts empty and needs its
// rules again. Only pods the caller confirms as a gateway's own count: labels can be copied.
import { type KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';
import { GATEWAY_LABEL } from './objects.ts';
import { describeApiError } from './pod-exec.ts';
import { podReadiness } from './pods.ts';

/**
 * Calls `replaced(gateway)` for each such pod of `where` (a namespace and label selector) for
 * which `isOwn(gateway, pod)` holds; pods are looked at one at a time, in the watch's order.
 * The watch is restarted when the API server ends it. `started` resolves once it first listens
 * (it then sees every current pod first, so a pod replaced after that is noticed).
 */
export function watchReplacements(
  kc: KubeConfig,
  where: { namespace: string; labelSelector: string },
  isOwn: (gateway: string, pod: V1Pod) => Promise<boolean>,
  replaced: (gateway: string) => void,
  log: (m: string) => void = () => undefined,
): { started: Promise<void>; stop(): void } {
  const seen = new Map<string, string>();
  let stopped = false;
  let current: AbortController | undefined;
  let listening: () => void = () => undefined;
  const started = new Promise<void>((r) => (listening = r));
  // the ownership check reads the API: one pod at a time keeps `seen` in the watch's order
  let queue = Promise.resolve();
  const look = (gateway: string, uid: string, pod: V1Pod) => {
    queue = queue
      .then(async () => {
        if (stopped || seen.get(gateway) === uid || !(await isOwn(gateway, pod))) return;
        const before = seen.get(gateway);
        seen.set(gateway, uid);
        if (before !== undefined) replaced(gateway);
      })
      .catch((e: unknown) => log(`pod watch: pod ${pod.metadata?.name}: ${describeApiError(e)}`));
  };
  const start = () => {
    if (stopped) return;
    // client-node reports a refused watch (403) through `done`, then resolves all the same
    let refused = false;
    new Watch(kc)
      .watch(
        `/api/v1/namespaces/${where.namespace}/pods`,
        { labelSelector: where.labelSelector },
        (phase, pod: V1Pod) => {
          const gateway = pod.metadata?.labels?.[GATEWAY_LABEL];
          const uid = pod.metadata?.uid;
          if (!gateway || !uid || phase === 'DELETED' || !podReadiness(pod).ready || seen.get(gateway) === uid) return;
          look(gateway, uid, pod);
        },
        (err: unknown) => {
          if (err) refused = true;
          if (stopped) return;
          if (err) log(`pod watch ended: ${describeApiError(err)}; restarting`);
          // (the API server ends a watch every few minutes; one that ends at once must not spin)
          setTimeout(start, err ? 5000 : 1000).unref();
        },
      )
      .then(
        (c) => {
          current = c;
          if (stopped) c.abort();
          else if (!refused) listening();
        },
        (e: unknown) => {
          log(`pod watch failed: ${describeApiError(e)}; retrying`);
          setTimeout(start, 5000).unref();
        },
      );
  };
  start();
  return {
    started,
    stop: () => {
      stopped = true;
      current?.abort();
    },
  };
}
