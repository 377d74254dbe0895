// The base of natops's typed errors: an expected failure with a message meant for a person
// (the CLI prints it without a stack trace). Subclasses carry the context as fields.
//
// Whether a job that failed with an error is tried again is a property of the error: a bad
// manifest or bad job data fails the same way every time (`retryable: false`); a command, Redis
// or git failure may pass on the next attempt. Errors natops does not know are retried.
export class NatopsError extends Error {
  readonly retryable: boolean;

  constructor(message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.retryable = opts.retryable ?? true;
  }
}

/** An input natops can never accept as it is: retrying cannot help. */
export class PermanentError extends NatopsError {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { ...opts, retryable: false });
  }
}

export function isRetryable(e: unknown): boolean {
  return !(e instanceof NatopsError) || e.retryable;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Nothing is wrong, but the same request may only go again at `retryAt` (a rate limit): the job
 * is put back to wait until then, without spending one of its attempts.
 */
export class RetryLaterError extends NatopsError {
  constructor(
    message: string,
    readonly retryAt: number,
  ) {
    super(message, { retryable: true });
  }
}
