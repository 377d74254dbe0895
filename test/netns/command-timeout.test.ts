// A command that hangs inside a gateway is killed at the runtime's timeout, in the namespace too:
// a hung command must not hold the gateway (and its job's lease) for good.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { isRetryable } from '../../common/errors.ts';
import { CommandTimeoutError, run } from '../../common/exec.ts';
import { NetnsRuntime } from '../../runtime/netns/runtime.ts';
import { LabHarness } from '../helpers/lab-harness.ts';
import { seedObjects } from '../helpers/manifests.ts';

const nsPids = async (ns: string) =>
  (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return ''; // (it ended meanwhile)
  }
};
/** What runs in the namespace besides the runtimes' idle sessions (runtime/exec-session.ts, nft-session.ts). */
const busy = async (ns: string) =>
  (await nsPids(ns)).filter((pid) => !/^sh -c D=\$1\n|^nft -i$/.test(cmdline(pid)) && cmdline(pid) !== '');

describe('a command hanging in a gateway namespace', () => {
  let h: LabHarness;
  before(async () => {
    h = await LabHarness.create();
    await h.apply(await seedObjects());
  });
  after(async () => {
    await h?.cleanup();
  });

  it("is killed at the runtime's timeout and fails with CommandTimeoutError", async () => {
    const ns = h.lab.names.gateway('ngw');
    const gw = await new NetnsRuntime(h.lab, undefined, { commandTimeoutMs: 1000 }).gateway('ngw');
    assert.ok(gw, 'the gateway exists');
    // (the gratuitous ARPs of the apply run beside it, and end at their 1 s deadline)
    for (let i = 0; i < 40 && (await busy(ns)).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await busy(ns), [], 'nothing runs in the gateway before');

    const argv = ['sleep', `30.${process.pid}`];
    const started = Date.now();
    const outcome = gw.runCommands([{ argv }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    // (polled until setsid has become the sleep: for a moment the process is `setsid sleep …`)
    let running: number[] = [];
    for (let i = 0; i < 50 && !running.some((pid) => cmdline(pid) === argv.join(' ')); i++) {
      await new Promise((r) => setTimeout(r, 20));
      running = await busy(ns);
    }
    // the sleep runs inside the gateway, a child of the runtime's shell there
    assert.deepEqual(running.map(cmdline), [argv.join(' ')], 'the sleep runs inside the gateway');

    const e = await outcome;
    assert.ok(e instanceof CommandTimeoutError, `expected CommandTimeoutError, got ${String(e)}`);
    assert.equal(e.target, ns);
    assert.equal(e.timeoutMs, 1000);
    assert.deepEqual(e.argv.slice(-2), argv);
    assert.ok(isRetryable(e));
    assert.ok(Date.now() - started < 10_000, 'failed long before the sleep would have ended');
    assert.equal(existsSync(`/proc/${running[0]}`), false, 'the sleep is gone');
    assert.deepEqual(await busy(ns), [], 'nothing is left running in the gateway');
    await gw.runCommands([{ argv: ['true'] }]);
  });
});
