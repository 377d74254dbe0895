// podExec's retry when the kubelet hands an exec to an old pod's container of the same name (a
// StatefulSet's replacement): over a stand-in for client-node's Exec that answers as the API server
// did on the test cluster, with containerd's refusals for the stopped container or the pod
// guard's exit, then with the command's result. The guard's script runs for real in
// userland.test.ts.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Exec as KubeExec, V1Status } from '@kubernetes/client-node';
import type { Writable } from 'node:stream';
import { CommandError } from '../../common/exec.ts';
import { ExecTransportError, POD_MISMATCH_EXIT, podExec } from '../../runtime/kubernetes/pod-exec.ts';

const STOPPED =
  'Internal error occurred: error executing command in container: failed to exec in container: failed to create exec "3977": task 85b6 not found: not found';

/** a refusal by the pod guard: the command ran in another pod's container, and did not run */
const refused = (uid: string): [V1Status, string] => [
  {
    status: 'Failure',
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(POD_MISMATCH_EXIT) }] },
  },
  `natops: a container of another pod, not of UID ${uid}\n`,
];

/** Answers each exec with the next status (and stderr); records the commands it was given. */
function kubeAnswering(answers: (V1Status | [V1Status, string])[]): { kube: KubeExec; commands: string[][] } {
  const commands: string[][] = [];
  const kube = {
    exec(
      _ns: string,
      _pod: string,
      _c: string,
      command: string[],
      _out: unknown,
      err: Writable,
      _in: unknown,
      _tty: boolean,
      onStatus: (s: V1Status) => void,
    ) {
      commands.push(command);
      const socket = Object.assign(new EventEmitter(), { close: () => undefined });
      const answer = answers.shift()!;
      const [status, stderr] = Array.isArray(answer) ? answer : [answer, ''];
      setImmediate(() => {
        if (stderr) err.write(stderr);
        onStatus(status);
        socket.emit('close');
      });
      return Promise.resolve(socket);
    },
  } as unknown as KubeExec;
  return { kube, commands };
}

describe('pods/exec into a StatefulSet pod whose predecessor of the same name is still stopping', () => {
  it("retries an exec containerd could not create in the old pod's stopped container, until the new pod answers", async () => {
    const { kube, commands } = kubeAnswering([
      { status: 'Failure', message: STOPPED },
      { status: 'Failure', message: STOPPED },
      { status: 'Success' },
    ]);
    const exec = podExec(kube, { namespace: 'ns', name: 'natgw-ngw-0', container: 'vpc-nat-gw', uid: 'u-new' });
    const r = await exec({ argv: ['true'] });
    assert.equal(r.code, 0);
    assert.equal(commands.length, 3);
    // each under the guard: its script, the mounts to tell the pod by, the UID, then the command
    const [sh, c, script, name, mounts, uid] = commands[0]!;
    assert.deepEqual([sh, c, name, mounts, uid], ['sh', '-c', 'sh', '/proc/self/mountinfo', 'u-new']);
    assert.match(script!, /\/pods\/\$uid\//);
  });

  it("retries what the guard refused in another pod's container (stdin sent again), until its own pod answers", async () => {
    const { kube, commands } = kubeAnswering([
      refused('u-new'),
      {
        status: 'Failure',
        message: STOPPED.replace(/task .* not found: not found/, 'cannot exec in a stopped state: unknown'),
      },
      // runc could not enter the dying container (seen on the test cluster)
      {
        status: 'Failure',
        message:
          'Internal error occurred: error executing command in container: failed to exec in container: failed to start exec "4843": OCI runtime exec failed: exec failed: unable to start container process: error executing setns process: exit status 1: unknown',
      },
      { status: 'Success' },
    ]);
    const exec = podExec(kube, { namespace: 'ns', name: 'natgw-ngw-0', container: 'vpc-nat-gw', uid: 'u-new' });
    assert.equal((await exec({ argv: ['iptables-legacy-restore', '--noflush'], stdin: '*nat\nCOMMIT\n' })).code, 0);
    assert.equal(commands.length, 4);
  });

  it('an exit 97 of the command itself is its own failure, not retried', async () => {
    const { kube, commands } = kubeAnswering([[refused('u')[0], 'something else\n']]);
    await assert.rejects(
      podExec(kube, { namespace: 'ns', name: 'p', container: 'c', uid: 'u' })({ argv: ['false'] }),
      (e) => e instanceof CommandError && e.code === POD_MISMATCH_EXIT,
    );
    assert.equal(commands.length, 1);
  });

  it('does not retry without the pod UID, nor any other failure', async () => {
    const anon = kubeAnswering([{ status: 'Failure', message: STOPPED }]);
    await assert.rejects(
      podExec(anon.kube, { namespace: 'ns', name: 'p', container: 'c' })({ argv: ['true'] }),
      ExecTransportError,
    );
    const other = kubeAnswering([{ status: 'Failure', message: 'container not running' }]);
    await assert.rejects(
      podExec(other.kube, { namespace: 'ns', name: 'p', container: 'c', uid: 'u' })({ argv: ['true'] }),
      ExecTransportError,
    );
    assert.equal(anon.commands.length + other.commands.length, 2);
  });
});
