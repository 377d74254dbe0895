// Which natops installation made an object in Kubernetes: one rule for every command that asks.

/** The instance label's value on what natops makes in Kubernetes: NATOPS_INSTANCE, else NATOPS_PREFIX. */
export const instanceOf = (c: { instance?: string | undefined; prefix: string }): string => c.instance ?? c.prefix;
