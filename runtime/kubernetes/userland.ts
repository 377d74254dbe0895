// What natops needs of a gateway image's userland, checked once per pod before the first
// command: a missing or incompatible tool is named with the image, instead of a command failing
// later with a shell's "not found" in the middle of an apply.
import type { Exec as KubeExec } from '@kubernetes/client-node';
import { PermanentError } from '../../common/errors.ts';
import { IPTABLES_BACKENDS, IPTABLES_PROGRAMS } from '../../dataplane/model.ts';
import { ExecTransportError, podExec, type PodRef } from './pod-exec.ts';

/** Each tool natops runs in a gateway pod (besides `sh`), and where it comes from. */
export const GATEWAY_TOOLS = {
  sed: 'sed (GNU or BusyBox): the stdin sentinel',
  timeout: 'timeout (coreutils or BusyBox 1.30 or later): the in-pod command timeout',
  sleep: "sleep (coreutils or BusyBox): the pod's `sleep infinity`",
  ip: 'ip (iproute2)',
  sysctl: 'sysctl (procps or BusyBox)',
  conntrack: 'conntrack (conntrack-tools)',
  arping: 'arping (iputils or BusyBox)',
} as const;
export type GatewayTool = keyof typeof GATEWAY_TOOLS | 'sh' | 'iptables';

const IPTABLES_TOOLS = IPTABLES_BACKENDS.flatMap((b) => [IPTABLES_PROGRAMS[b].save, IPTABLES_PROGRAMS[b].restore]);

/**
 * A constant script; the tools to look for are its arguments. It prints one line per problem
 * and `ok` at the end, so a shell that stopped early is told from a clean image. The sed and
 * timeout lines run the very forms pod-exec.ts uses; `ip -j` is what BusyBox's ip lacks.
 */
export const USERLAND_PROBE = [
  'for t in "$@"; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done',
  'if command -v timeout >/dev/null 2>&1; then timeout -s KILL 5 true >/dev/null 2>&1 || echo "broken timeout"; fi',
  `if command -v sed >/dev/null 2>&1; then [ "$(printf 'a\\n#natops-probe\\n\\n' | sed -n '/^#natops-probe$/q;p' 2>/dev/null)" = a ] || echo "broken sed"; fi`,
  'if command -v ip >/dev/null 2>&1; then ip -j link show lo >/dev/null 2>&1 || echo "broken ip"; fi',
  'echo ok',
].join('\n');

/** The probe's argv: `sh -c` the script, the tools as its arguments. */
export const USERLAND_PROBE_ARGV = ['sh', '-c', USERLAND_PROBE, 'sh', ...Object.keys(GATEWAY_TOOLS), ...IPTABLES_TOOLS];

const BROKEN: Record<string, [GatewayTool, string]> = {
  timeout: [
    'timeout',
    'timeout does not run `timeout -s KILL SECS PROG` (BusyBox before 1.30 wants `-t SECS`; coreutils or a newer BusyBox)',
  ],
  sed: ['sed', "sed does not pass lines up to a sentinel with `sed -n '/^S$/q;p'`"],
  ip: ['ip', "ip is not iproute2's (no `ip -j`: BusyBox's ip has no JSON output; install iproute2)"],
};

export interface UserlandProblem {
  tool: GatewayTool;
  detail: string;
}

/** The probe's output -> what is missing or unfit; throws on output cut short (the shell stopped). */
export function userlandProblems(stdout: string): UserlandProblem[] {
  const lines = stdout.split('\n').filter(Boolean);
  if (lines.at(-1) !== 'ok')
    return [{ tool: 'sh', detail: `sh stopped before the end of the check: ${stdout.trim()}` }];
  const missing = new Set(lines.flatMap((l) => (l.startsWith('missing ') ? [l.slice(8)] : [])));
  const problems: UserlandProblem[] = [];
  for (const [tool, what] of Object.entries(GATEWAY_TOOLS))
    if (missing.has(tool)) problems.push({ tool: tool as GatewayTool, detail: `no ${what}` });
  // one iptables is enough: natops uses the one that holds its rules, legacy where it works
  const whole = IPTABLES_BACKENDS.filter(
    (b) => !missing.has(IPTABLES_PROGRAMS[b].save) && !missing.has(IPTABLES_PROGRAMS[b].restore),
  );
  if (!whole.length)
    problems.push({
      tool: 'iptables',
      detail: `no ${IPTABLES_BACKENDS.map((b) => `${IPTABLES_PROGRAMS[b].save} and ${IPTABLES_PROGRAMS[b].restore}`).join(', nor ')}`,
    });
  for (const l of lines) {
    const broken = l.startsWith('broken ') ? BROKEN[l.slice(7)] : undefined;
    if (broken) problems.push({ tool: broken[0], detail: broken[1] });
  }
  return problems;
}

/** The gateway image lacks a tool natops runs in it, or has one that does not take natops's arguments. */
export class GatewayImageError extends PermanentError {
  readonly tools: GatewayTool[];
  constructor(
    readonly image: string,
    readonly pod: string,
    readonly problems: UserlandProblem[],
  ) {
    super(
      `gateway image ${image} (pod ${pod}) cannot run natops's commands: ${problems.map((p) => p.detail).join('; ')}. ` +
        "natops needs sh, sed, timeout, sleep, iproute2's ip, iptables (save and restore), conntrack, arping and sysctl, " +
        "GNU's or BusyBox's (docs/kubernetes.md#the-gateway-image)",
    );
    this.tools = problems.map((p) => p.tool);
  }
}

/** A runtime that exec'd into it could not start the program (no such file in the image). */
const NO_PROGRAM = /executable file not found|no such file or directory/i;

/**
 * Checks each pod's userland once (by UID) before natops first runs a command in it. Only a pod
 * that passed is remembered: a failing one is checked again (and fails again) on the next job.
 */
/** Pods remembered as checked; beyond that the memory starts again. */
const PASSED_KEPT = 1024;

export function userlandChecker(kube: KubeExec): (pod: PodRef & { uid: string; image: string }) => Promise<void> {
  const passed = new Set<string>();
  return async (pod) => {
    if (passed.has(pod.uid)) return;
    const where = `${pod.namespace}/${pod.name}`;
    const r = await podExec(kube, pod, { timeoutMs: 20_000, bare: true })({ argv: USERLAND_PROBE_ARGV }).catch(
      (e: unknown) => {
        if (e instanceof ExecTransportError && NO_PROGRAM.test(e.message))
          throw new GatewayImageError(pod.image, where, [{ tool: 'sh', detail: `no sh (${e.message})` }]);
        throw e;
      },
    );
    const problems = userlandProblems(r.stdout);
    if (problems.length) throw new GatewayImageError(pod.image, where, problems);
    // Replaced pods' UIDs would pile up for the life of serve; forgetting costs one check per pod.
    if (passed.size >= PASSED_KEPT) passed.clear();
    passed.add(pod.uid);
  };
}
