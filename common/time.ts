// Waiting with a limit: the one way natops bounds a wait on something that may never answer
// (Redis gone, a job that hangs). The work itself is not cancelled, only no longer waited for.

/** `p`'s outcome, or `late()`'s if it has not settled within `ms`. */
export function within<T, L = T>(ms: number, p: Promise<T>, late: () => L): Promise<T | L> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<L>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (e) {
        reject(e);
      }
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
