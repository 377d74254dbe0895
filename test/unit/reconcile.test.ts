// The reconciler's read-back: a side effect left after the change set is mended by one more
// pass, and a gateway that still differs is an error, not a success.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileGateway, emptyGatewayState } from '../../dataplane/compile.ts';
import type { GatewayState } from '../../dataplane/model.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { CommandError } from '../../common/exec.ts';
import { ConvergenceError, GatewaysFailedError, reconcileAll, reconcileGateway } from '../../runtime/reconcile.ts';
import type { GatewayHandle, GatewayRuntime } from '../../runtime/runtime.ts';
import { seedObjects, seedSpec, toFiles } from '../helpers/manifests.ts';
import { oneGatewayRuntime } from '../helpers/fixtures.ts';
import type { GatewaySpec } from '../../dataplane/model.ts';
import { runCommands, splitReads } from '../../runtime/gateway-io.ts';
import { changeSetCommands, type Command } from '../../dataplane/commands.ts';
import { diffStates } from '../../dataplane/diff.ts';
import type { ExecRequest } from '../../common/exec.ts';
import { ParseError } from '../../dataplane/parse.ts';

/** A gateway whose reads return the given states in turn (the last one repeats). */
function scriptedRuntime(states: GatewayState[]): { runtime: GatewayRuntime; batches: Command[][] } {
  const batches: Command[][] = [];
  let reads = 0;
  const handle: GatewayHandle = {
    name: 'ngw',
    location: 'script',
    readState: async () => states[Math.min(reads++, states.length - 1)]!,
    runCommands: async (commands) => void batches.push(commands),
  };
  const runtime = oneGatewayRuntime(handle);
  return { runtime, batches };
}

describe('reconcile', async () => {
  const spec = validateManifests(toFiles(await seedObjects())).desired.gateways.get('ngw')!;
  const desired = compileGateway(spec);

  it('runs nothing and reports unchanged when the gateway already matches', async () => {
    const { runtime, batches } = scriptedRuntime([desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(result.action, 'unchanged');
    assert.equal(batches.length, 0);
  });

  it('mends a side effect found on read-back with a second pass of only what is missing', async () => {
    const lostRoute = { ...desired, routes: desired.routes.filter((r) => r.dst !== 'default') };
    const { runtime, batches } = scriptedRuntime([emptyGatewayState(), lostRoute, desired]);
    const result = await reconcileGateway(runtime, spec);
    assert.equal(batches.length, 2);
    assert.deepEqual(
      batches[1]!.map((c) => c.argv.join(' ')),
      ['ip route replace default via 192.168.0.254 dev net1 table 100'],
    );
    assert.equal(result.action, 'update');
  });

  it('fails with what is still different when the gateway does not converge', async () => {
    const stuck = { ...desired, nat: { ...desired.nat, SHARED_DNAT: [] } };
    const { runtime } = scriptedRuntime([emptyGatewayState(), stuck]);
    await assert.rejects(
      reconcileGateway(runtime, spec),
      (e: unknown) => e instanceof ConvergenceError && e.remaining.some((l) => l.includes('--dport 8888')),
    );
  });
});

/**
 * Gateways that live in memory: reading one returns what its last commands built; `failing`
 * names the gateways whose commands fail, with the error they fail with.
 */
function memoryRuntime(
  live: string[],
  failing: Map<string, Error>,
): { runtime: GatewayRuntime; attempted: string[]; removed: string[] } {
  const attempted: string[] = [];
  const removed: string[] = [];
  const handle = (spec: GatewaySpec): GatewayHandle => {
    let state = emptyGatewayState();
    return {
      name: spec.name,
      location: 'memory',
      readState: async () => state,
      runCommands: async () => {
        attempted.push(spec.name);
        const error = failing.get(spec.name);
        if (error) throw error;
        state = compileGateway(spec);
      },
    };
  };
  const runtime: GatewayRuntime = {
    kind: 'dry-run',
    ensureGateway: async (spec) => ({ handle: handle(spec), created: true }),
    gateway: async () => undefined,
    listGateways: async () => live,
    removeGateway: async (name) => {
      const error = failing.get(name);
      if (error) throw error;
      removed.push(name);
      return true;
    },
  };
  return { runtime, attempted, removed };
}

describe('reconcile all gateways', async () => {
  const seed = validateManifests(toFiles(await seedObjects())).desired.gateways.get('ngw')!;
  const specs = ['a', 'b', 'c', 'd'].map((name) => ({ ...seed, name }));

  it('attempts every gateway, still prunes, then throws one error naming every failed gateway', async () => {
    const b = new CommandError(
      'natops-gw-b',
      ['iptables-restore', '-w', '--noflush'],
      4,
      'Another app is currently holding the xtables lock',
    );
    const d = new Error('d went away');
    const { runtime, attempted, removed } = memoryRuntime(
      ['a', 'b', 'old'],
      new Map([
        ['b', b],
        ['d', d],
      ]),
    );
    const error = await reconcileAll(runtime, specs).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof GatewaysFailedError, `a GatewaysFailedError, got ${String(error)}`);
    assert.deepEqual([...attempted].sort(), ['a', 'b', 'c', 'd'], 'every gateway was attempted');
    assert.deepEqual(removed, ['old'], 'the prune ran although gateways failed');
    assert.deepEqual(
      error.failures.map((f) => [f.gateway, f.error]),
      [
        ['b', b],
        ['d', d],
      ],
    );
    assert.match(error.message, /^gateways b, d failed:\n/);
    assert.match(error.message, /\bb: natops-gw-b: `iptables-restore -w --noflush` exited 4/);
    assert.match(error.message, /\bd: d went away/);
    assert.deepEqual(
      error.results.map((r) => `${r.name}:${r.action}`),
      ['a:create', 'c:create', 'old:delete'],
      'what did happen is kept',
    );
  });

  it('attempts every removal of the prune and names the ones that failed with the others', async () => {
    const b = new Error('b broke');
    const stuck = new Error('namespace busy');
    const { runtime, removed } = memoryRuntime(
      ['stuck', 'old'],
      new Map([
        ['b', b],
        ['stuck', stuck],
      ]),
    );
    const error = await reconcileAll(runtime, specs).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof GatewaysFailedError);
    assert.deepEqual(removed, ['old']);
    assert.deepEqual(
      error.failures.map((f) => f.gateway),
      ['b', 'stuck'],
    );
    assert.match(error.message, /^gateways b, stuck failed:\n {2}b: b broke\n {2}stuck: namespace busy$/);
  });

  it('returns every result when no gateway fails', async () => {
    const { runtime, removed } = memoryRuntime(['old'], new Map());
    const results = await reconcileAll(runtime, specs);
    assert.deepEqual(
      results.map((r) => `${r.name}:${r.action}`),
      ['a:create', 'b:create', 'c:create', 'd:create', 'old:delete'],
    );
    assert.deepEqual(removed, ['old']);
  });
});

describe('reading a gateway in one process', () => {
  it("splits the read script's streams per read, with each exit status", () => {
    const out =
      '\n#natops-read nat-legacy\n*nat\nCOMMIT\n\n#natops-read-exit nat-legacy 0\n\n#natops-read nat-nft\n#natops-read-exit nat-nft 1\n' +
      '\n#natops-read net1\n[]\n#natops-read-exit net1 0\n' +
      '\n#natops-read rules\n[]\n\n#natops-read-exit rules 0\n\n#natops-read routes\n\n#natops-read-exit routes 2\n\n#natops-read sysctls\n1\n1\n\n#natops-read-exit sysctls 0\n';
    const err =
      '\n#natops-read nat-legacy\n\n#natops-read nat-nft\nbroken\n\n#natops-read net1\n\n#natops-read rules\n\n#natops-read routes\nError: ipv4: FIB table does not exist.\n\n#natops-read sysctls\n';
    const r = splitReads(out, err, ['nat-legacy', 'nat-nft', 'net1', 'rules', 'routes', 'sysctls']);
    assert.equal(r['nat-legacy'].stdout, '*nat\nCOMMIT\n\n');
    assert.deepEqual(r['nat-nft'], { stdout: '', stderr: 'broken\n\n', code: 1 });
    assert.equal(r.routes.code, 2);
    assert.match(r.routes.stderr, /FIB table does not exist/);
    assert.equal(r.sysctls.stdout.split('\n').slice(0, 2).join(','), '1,1');
  });

  it('output cut short (a read that never reported its exit) is a ParseError naming the read', () => {
    const out = '\n#natops-read nat-legacy\n*nat\nCOMMIT\n\n#natops-read-exit nat-legacy 0\n\n#natops-read net1\n[';
    assert.throws(
      () => splitReads(out, '', ['nat-legacy', 'net1']),
      (e: unknown) => e instanceof ParseError && /ip -j addr show dev net1.*cut short/.test(e.message),
    );
  });
});

describe('the gratuitous ARP', () => {
  it('a change returns while its ARP still runs; the ARP failing is only reported', async () => {
    // arping waits out its deadline (-w 1) even when all went well: waited for, it held every new
    // EIP's change (and the parts after it) up for a second
    const commands = changeSetCommands(diffStates(emptyGatewayState(), compileGateway(await seedSpec())));
    assert.ok(commands.some((c) => c.argv[0] === 'arping'));
    let failArping: (e: Error) => void = () => undefined;
    const ran: string[] = [];
    const exec = async (req: ExecRequest) => {
      ran.push(req.argv[0]!);
      if (req.argv[0] === 'arping')
        return new Promise<never>((_, reject) => {
          failArping = reject;
        });
      return { stdout: '', stderr: '', code: 0 };
    };
    const warnings: string[] = [];
    await runCommands(exec, commands, (m) => warnings.push(m));
    assert.ok(ran.includes('arping'), 'the ARP was started');
    assert.deepEqual(warnings, []);
    failArping(new Error('arping: net1: no such device'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, ['arping: net1: no such device (ignored)']);
  });
});

describe('ip commands in one process', () => {
  const seedChange = async () => changeSetCommands(diffStates(emptyGatewayState(), compileGateway(await seedSpec())));

  it("a runner that can batches a change's ip commands in a row into one `ip -batch`, in order", async () => {
    const commands = await seedChange();
    const ran: { argv: string[]; stdin?: string }[] = [];
    await runCommands(
      async (req) => {
        ran.push({ argv: req.argv, stdin: req.stdin });
        return { stdout: '', stderr: '', code: 0 };
      },
      commands,
      () => undefined,
      undefined,
      { ipBatch: true },
    );
    const ipRun = commands.filter((c) => c.argv[0] === 'ip').map((c) => c.argv.slice(1).join(' '));
    const batches = ran.filter((r) => r.argv.join(' ') === 'ip -batch -');
    assert.ok(batches.length >= 1);
    // every ip command ran once, in the order given, batched or alone
    const ipSeen = ran.flatMap((r) =>
      r.argv[0] !== 'ip' ? [] : r.argv[1] === '-batch' ? r.stdin!.trim().split('\n') : [r.argv.slice(1).join(' ')],
    );
    assert.deepEqual(ipSeen, ipRun);
    assert.ok(ran.length < commands.length, 'fewer processes than commands');
    // the others in between keep their place: sysctl before the addresses, iptables-restore after
    const order = ran.map((r) => r.argv[0]);
    assert.ok(order.indexOf('sysctl') < order.lastIndexOf('ip'));
  });

  it('a failed line is reported as the command it was', async () => {
    const commands = await seedChange();
    await assert.rejects(
      runCommands(
        async (req) => {
          if (req.argv[1] !== '-batch') return { stdout: '', stderr: '', code: 0 };
          throw new CommandError('gw', req.argv, 1, 'RTNETLINK answers: File exists\nCommand failed -:2\n');
        },
        commands,
        () => undefined,
        undefined,
        { ipBatch: true },
      ),
      (e: unknown) => {
        assert.ok(e instanceof CommandError);
        // the first ip commands in a row are the first batch; its second line failed
        const first = commands.findIndex((c) => c.argv[0] === 'ip');
        assert.equal(commands[first + 1]!.argv[0], 'ip');
        assert.deepEqual(e.argv, commands[first + 1]!.argv);
        assert.match(e.message, /File exists/);
        return true;
      },
    );
  });

  it('without it, each command is its own process', async () => {
    const commands = await seedChange();
    const ran: string[][] = [];
    await runCommands(async (req) => {
      ran.push(req.argv);
      return { stdout: '', stderr: '', code: 0 };
    }, commands);
    assert.equal(ran.filter((a) => a[1] === '-batch').length, 0);
  });
});
