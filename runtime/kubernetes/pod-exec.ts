// Runs argv in a pod's container through pods/exec: the Kubernetes runtime's transport, with the
// same ExecRequest/ExecResult as a namespace. No shell sees a value: the only shell is a constant
// script, and the argv follows it as positional parameters.
import { randomBytes } from 'node:crypto';
import { PassThrough, Writable } from 'node:stream';
import type { Exec as KubeExec, V1Status } from '@kubernetes/client-node';
import {
  assertArgv,
  CommandError,
  CommandTimeoutError,
  DEFAULT_COMMAND_TIMEOUT_MS,
  timedCommand,
  type Exec,
  type ExecRequest,
  type ExecResult,
} from '../../common/exec.ts';
import { NatopsError } from '../../common/errors.ts';

/**
 * Before the v5 exec protocol (Kubernetes 1.30) stdin cannot be half-closed over WebSocket: the
 * client closes the whole socket when stdin ends and the exit status is lost. So stdin stays
 * open and ends with a sentinel line, where sed stops passing it on: the command sees end of
 * input and its exit status comes back. `$1` is the sentinel, the rest the argv. POSIX sed only
 * (`-n`, `q`, `p`), so GNU's and BusyBox's both run it: BusyBox's has no `-u` and no `Q`.
 */
const STDIN_UNTIL_SENTINEL =
  'end=$1; shift; command -v sed >/dev/null || { echo "natops: the gateway image has no sed" >&2; exit 127; }; sed -n "/^$end\\$/q;p" | "$@"';

/**
 * What follows the sentinel: BusyBox's sed reads a line ahead before it acts on one, so without
 * a line after the sentinel it would wait for one that never comes (stdin stays open).
 */
const AFTER_SENTINEL = '\n';

/**
 * A StatefulSet's new pod has its predecessor's name, and the API server asks the kubelet for an
 * exec by pod name only: while the old pod's container is still stopping (deleted with a grace
 * period of 0, as Kube-OVN's template has it, its API object goes at once), an exec may land in
 * it, and natops would read or change the old pod. So the command runs only in a container of
 * the pod natops means, by the kubelet's own evidence: the files it mounts into every container
 * (/etc/hosts, /dev/termination-log, volumes) come from its directory `pods/<UID>/`, which
 * /proc/self/mountinfo (`$1`) shows. Mounts of another pod's directory only: the command does not
 * run, exit POD_MISMATCH_EXIT. No pod directory at all (a runtime that shows none): it runs.
 * Shell builtins only, and the UID (`$2`) is a parameter, quoted in the pattern, never code.
 */
export const POD_MISMATCH_EXIT = 97;
const MISMATCH_MESSAGE = 'natops: a container of another pod, not of UID';
const POD_GUARD = `mounts=$1 uid=$2; shift 2; mine= other=; while read -r line; do case $line in *"/pods/$uid/"*) mine=1 ;; *"/pods/"*) other=1 ;; esac; done < "$mounts"; if [ -z "$mine" ] && [ -n "$other" ]; then echo "${MISMATCH_MESSAGE} $uid" >&2; exit ${POD_MISMATCH_EXIT}; fi; exec "$@"`;
/** where a container's mounts show which pod's directory they come from (POD_GUARD) */
export const POD_MOUNTS = '/proc/self/mountinfo';
/** The argv that runs what follows it only in a container of pod `uid` (POD_GUARD). */
const podGuard = (pod: { uid: string; mounts?: string | undefined }) => [
  'sh',
  '-c',
  POD_GUARD,
  'sh',
  pod.mounts ?? POD_MOUNTS,
  pod.uid,
];

/**
 * The argv and stdin that run `req` in the pod: under `timeout -s KILL SECS` (coreutils' and
 * BusyBox's since 1.30 both take that form; whole seconds, which both read), with stdin passed
 * through the sentinel script, and, given the pod's UID, only in that pod's container
 * (POD_GUARD). Pure, so tests run exactly this under both userlands.
 */
export function podCommand(
  req: Pick<ExecRequest, 'argv' | 'stdin'>,
  timeoutMs: number,
  opts: { sentinel?: string; pod?: { uid: string; mounts?: string } } = {},
): { command: string[]; stdin?: string } {
  const guard = opts.pod ? podGuard(opts.pod) : [];
  const command = [...guard, 'timeout', '-s', 'KILL', String(Math.ceil(timeoutMs / 1000)), ...req.argv];
  if (req.stdin === undefined) return { command };
  const sentinel = opts.sentinel ?? `#natops-end-${randomBytes(8).toString('hex')}`;
  const body = req.stdin.endsWith('\n') || req.stdin === '' ? req.stdin : `${req.stdin}\n`;
  return {
    command: [...guard, 'sh', '-c', STDIN_UNTIL_SENTINEL, 'sh', sentinel, ...command.slice(guard.length)],
    stdin: `${body}${sentinel}\n${AFTER_SENTINEL}`,
  };
}

/**
 * The exec stream broke before the command's status came back (pod gone, API server restarted),
 * or the API server refused the exec: a refusal for permissions (401, 403) or a bad request no
 * retry changes.
 */
export class ExecTransportError extends NatopsError {
  constructor(
    readonly target: string,
    readonly argv: readonly string[],
    readonly detail: string,
    readonly status?: number,
  ) {
    super(`${target}: \`${argv.join(' ')}\`: ${detail}`, {
      retryable: status === undefined || status >= 500 || status === 429 || status === 404,
    });
  }
}

/** The HTTP status of a refused WebSocket upgrade ("Unexpected server response: 403"). */
const refusedStatus = (e: unknown): number | undefined => {
  const m = /Unexpected server response: (\d{3})/.exec(describeApiError(e));
  return m ? Number(m[1]) : undefined;
};

/** Commands are killed in the pod at their timeout (closing the stream would leave them running), then given this long to report. */
const KILL_GRACE_MS = 2000;

export interface PodRef {
  namespace: string;
  name: string;
  container: string;
  /** the pod's UID: commands run only in its container (POD_GUARD), never an older pod's of the same name */
  uid?: string;
}

/** The exec kept landing in another pod's container of the same name (an old pod that does not stop). */
export class PodMismatchError extends NatopsError {
  constructor(
    readonly target: string,
    readonly argv: readonly string[],
    detail: string,
  ) {
    super(`${target}: \`${argv.join(' ')}\` not run: ${detail}`, { retryable: true });
  }
}

/**
 * The answers when the kubelet picked an old pod's container of the same name that is stopping
 * or gone (POD_GUARD's case, one step later), all before the command started: containerd cannot
 * create or start the exec, runc cannot enter the container, or the kubelet fails the upgrade.
 */
const STOPPED_CONTAINER =
  /failed to (create|start) exec|cannot exec in a stopped state|OCI runtime exec failed|exec refused: Unexpected server response: 5\d\d/;

/** How long an exec waits for an older pod's container of the same name to stop, and how often it looks. */
const MISMATCH_WAIT_MS = 30_000;
const MISMATCH_RETRY_MS = 250;

/** The command's exit code from the exec status, or undefined when the status is not about one. */
export function exitCodeOf(status: V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  if (status.reason !== 'NonZeroExitCode') return undefined;
  const code = Number(status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message);
  return Number.isInteger(code) ? code : undefined;
}

/**
 * `bare`: the argv runs without the in-pod timeout and without stdin (the userland probe, which
 * must not rely on the tools it checks); the pod guard, shell builtins only, still comes first.
 */
export function podExec(kube: KubeExec, pod: PodRef, defaults: { timeoutMs?: number; bare?: boolean } = {}): Exec {
  const target = `pod ${pod.namespace}/${pod.name}`;
  return (req) => timedCommand(req.argv, execGuarded(req));
  // The guard's refusal means the command did not run, and so does an exec the container runtime
  // could not create in an old pod's stopped container: trying again is always safe.
  async function execGuarded(req: ExecRequest): Promise<ExecResult> {
    const deadline = performance.now() + MISMATCH_WAIT_MS;
    for (;;) {
      const r = await execInPod(req).catch((e: unknown) => {
        if (pod.uid && e instanceof ExecTransportError && STOPPED_CONTAINER.test(e.detail))
          return { mismatch: e.detail };
        throw e;
      });
      if (!('mismatch' in r)) return r;
      if (performance.now() > deadline) throw new PodMismatchError(target, req.argv, r.mismatch);
      await new Promise((done) => setTimeout(done, MISMATCH_RETRY_MS));
    }
  }
  async function execInPod(req: ExecRequest): Promise<ExecResult | { mismatch: string }> {
    assertArgv(req.argv);
    const timeoutMs = req.timeoutMs ?? defaults.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (into: Buffer[]) =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          into.push(chunk);
          done();
        },
      });
    // the in-pod timeout kills the command inside the pod; the client's timer is the backstop
    const { command, stdin: input } = defaults.bare
      ? { command: [...(pod.uid ? podGuard({ uid: pod.uid }) : []), ...req.argv], stdin: undefined }
      : podCommand(req, timeoutMs, pod.uid ? { pod: { uid: pod.uid } } : {});
    let stdin: PassThrough | null = null;
    if (input !== undefined) {
      stdin = new PassThrough();
      stdin.write(input);
    }
    let status: V1Status | undefined;
    const started = performance.now();
    const result = await new Promise<ExecResult>((resolve, reject) => {
      let done = false;
      let socket: { close(): void } | undefined;
      const finish = (f: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        stdin?.destroy();
        try {
          socket?.close();
        } catch {
          // already closed
        }
        f();
      };
      const timer = setTimeout(
        () => finish(() => reject(new CommandTimeoutError(target, req.argv, timeoutMs))),
        timeoutMs + KILL_GRACE_MS,
      );
      kube
        .exec(pod.namespace, pod.name, pod.container, command, sink(out), sink(err), stdin, false, (s) => (status = s))
        .then((ws) => {
          socket = ws;
          if (done) ws.close();
          ws.on('close', () =>
            finish(() => {
              const code = status ? exitCodeOf(status) : undefined;
              if (code === undefined) {
                return reject(
                  new ExecTransportError(
                    target,
                    req.argv,
                    status
                      ? `exec failed: ${status.message ?? status.reason ?? 'unknown'}`
                      : 'the exec stream closed without an exit status',
                  ),
                );
              }
              const bytes = Buffer.concat(out);
              resolve({ stdout: bytes.toString(), stdoutBytes: bytes, stderr: Buffer.concat(err).toString(), code });
            }),
          );
          ws.on('error', (e: Error) => finish(() => reject(new ExecTransportError(target, req.argv, e.message))));
        })
        .catch((e: unknown) =>
          finish(() =>
            reject(new ExecTransportError(target, req.argv, `exec refused: ${describeApiError(e)}`, refusedStatus(e))),
          ),
        );
    });
    if (pod.uid && result.code === POD_MISMATCH_EXIT && result.stderr.startsWith(MISMATCH_MESSAGE))
      return { mismatch: result.stderr.trim() };
    // 137: killed by the in-pod timeout (SIGKILL), reported as the namespace runner reports it
    if (result.code === 137 && performance.now() - started >= timeoutMs && !(req.okExitCodes ?? [0]).includes(137))
      throw new CommandTimeoutError(target, req.argv, timeoutMs);
    if (!(req.okExitCodes ?? [0]).includes(result.code))
      throw new CommandError(target, req.argv, result.code, result.stderr);
    return result;
  }
}

/** An API or WebSocket error in a line: the status text the server gave, when it gave one. */
export function describeApiError(e: unknown): string {
  if (e && typeof e === 'object') {
    const o = e as { code?: unknown; body?: unknown; message?: unknown };
    if (typeof o.body === 'string') {
      try {
        const b = JSON.parse(o.body) as { message?: string; reason?: string };
        if (b.message) return `${o.code ?? ''} ${b.reason ?? ''}: ${b.message}`.trim();
      } catch {
        // not JSON: fall through
      }
    }
    if (typeof o.message === 'string') return o.message;
  }
  return String(e);
}
