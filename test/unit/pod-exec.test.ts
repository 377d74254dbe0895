// podExec's retry when the kubelet hands an exec to an old pod's container of the same name (a
// StatefulSet's replacement): over a stand-in for client-node's Exec that answers as the API server
// did on the test cluster, first with containerd's refusal for the stopped container, then with
// the command's result. The guard's own refusal (exit 97) is run for real in userland.test.ts.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Exec as KubeExec, V1Status } from '@kubernetes/client-node';
import { ExecTransportError, podExec } from '../../runtime/kubernetes/pod-exec.ts';

const STOPPED =
  'Internal error occurred: error executing command in container: failed to exec in container: failed to create exec "3977": task 85b6 not found: not found';

/** Answers each exec with the next status; records the commands it was given. */
function kubeAnswering(statuses: V1Status[]): { kube: KubeExec; commands: string[][] } {
  const commands: string[][] = [];
  const kube = {
    exec(
      _ns: string,
      _pod: string,
      _c: string,
      command: string[],
      _out: unknown,
      _err: unknown,
      _in: unknown,
      _tty: boolean,
      onStatus: (s: V1Status) => void,
    ) {
      commands.push(command);
      const socket = Object.assign(new EventEmitter(), { close: () => undefined });
      const status = statuses.shift()!;
      setImmediate(() => {
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
    assert.deepEqual(commands[0]!.slice(0, 6), ['sh', '-c', commands[0]![2], 'sh', '/tmp/.natops-pod-uid', 'u-new']);
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
