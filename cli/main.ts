// natops command line. Each command validates its input before it changes anything.
//
// Start-up: only commander and a few small modules load here; each command imports what it uses
// when it runs (`--help` and `validate` must not wait for BullMQ, express, the Kubernetes client
// or the lab). bench/cli-start.ts measures it; test/unit/cli-start.test.ts keeps it so.
import { NatopsError } from '../common/errors.ts';
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import type { GatewayState } from '../dataplane/model.ts';
import { DEFAULT_LAB } from '../runtime/netns/names.ts';
import type { RuntimeKind } from '../runtime/runtime.ts';
import { addExportCommand } from './export.ts';
import { addGitopsCommands } from './gitops-commands.ts';
import { addPreviewCommand } from './preview.ts';
import { addRemoveGatewaysCommand } from './remove-gateways.ts';

const out = (text: string) => process.stdout.write(`${text}\n`);
const warn = (text: string) => process.stderr.write(`natops: warning: ${text}\n`);

class UsageError extends NatopsError {}

function requireRoot(
  what: string,
  why = '(it creates network namespaces); use --runtime dry-run to see the commands instead',
): void {
  if (process.getuid?.() !== 0) throw new UsageError(`${what} needs root ${why}`);
}

/** The manifests at `path`, validated with the limits of the environment (NATOPS_MANIFEST_*). */
async function desiredAt(path: string) {
  const [{ readDesired }, { manifestRulesFromEnv }] = await Promise.all([
    import('../gitops/manifests/read-dir.ts'),
    import('../server/config.ts'),
  ]);
  return readDesired(path, { limits: manifestRulesFromEnv() });
}

async function labNamed(name: string) {
  const { Lab } = await import('../runtime/netns/lab.ts');
  return new Lab(name);
}

const labOption = () =>
  new Option('--lab <name>', 'lab name: prefix of every namespace natops creates').default(
    process.env.NATOPS_LAB ?? DEFAULT_LAB,
  );
/** --runtime, defaulting to NATOPS_RUNTIME when that is one of `kinds` (commander checks no default). */
const runtimeOption = (kinds: RuntimeKind[]) => {
  const env = kinds.find((k) => k === process.env.NATOPS_RUNTIME);
  return new Option('--runtime <kind>', 'where gateways run').choices(kinds).default(env ?? 'netns');
};

interface RuntimeOptions {
  runtime: RuntimeKind;
  lab: string;
  namespace?: string;
  networkMode?: string;
}

/** The runtime the options name, picked where serve and worker pick theirs (runtime/select.ts). */
async function runtimesFor(what: string, opts: RuntimeOptions, cmd: Command) {
  const { makeRuntimes } = await import('../runtime/select.ts');
  if (opts.runtime === 'dry-run') return makeRuntimes({ runtime: 'dry-run' }, warn);
  if (opts.runtime === 'netns')
    requireRoot(`${what} --runtime netns`, what === 'apply' ? undefined : "(it reads the lab's network namespaces)");
  const { loadConfig } = await import('../server/config.ts');
  // With kubernetes, a lab is used (for its networks and attachment points) only when named.
  const lab = opts.runtime === 'netns' || cmd.getOptionValueSource('lab') !== 'default' ? opts.lab : undefined;
  return makeRuntimes(
    loadConfig({ runtime: opts.runtime, lab, namespace: opts.namespace, networkMode: opts.networkMode }),
    warn,
  );
}

// package.json is one level above cli/main.ts, and two above the compiled dist/cli/main.js.
const packageJson = new URL(
  import.meta.url.endsWith('.ts') ? '../package.json' : '../../package.json',
  import.meta.url,
);

const program = new Command('natops')
  .description('Kube-OVN-style VPC NAT gateways driven by Git')
  .version(JSON.parse(await readFile(packageJson, 'utf8')).version as string)
  .showHelpAfterError();

program
  .command('validate')
  .description('check manifests; print every problem as file:line:column  kind/name  field: message')
  .argument('<path>', 'a directory of *.yaml/*.yml manifests, or one file')
  .action(async (path: string) => {
    const [{ readManifestDir }, { validateManifests }, { ManifestValidationError }, { manifestRulesFromEnv }] =
      await Promise.all([
        import('../gitops/manifests/read-dir.ts'),
        import('../gitops/manifests/validate.ts'),
        import('../gitops/manifests/issues.ts'),
        import('../server/config.ts'),
      ]);
    const { desired, issues, notApplied } = validateManifests(await readManifestDir(path), manifestRulesFromEnv());
    if (issues.length) throw new ManifestValidationError(issues);
    out(`ok: ${desired.vpcs.size} VPC(s), ${desired.subnets.size} subnet(s), ${desired.gateways.size} gateway(s)`);
    for (const n of notApplied) out(`${n.pos.file}:${n.pos.line}:${n.pos.column}  ${n.resource}  ${n.reason}`);
  });

program
  .command('plan')
  .description('show, per gateway, what applying the manifests would add and remove')
  .argument('<path>', 'manifests to apply')
  .addOption(
    new Option(
      '--against <live|DIR>',
      'compare with the live gateways (of --runtime), or with another manifest tree',
    ).default('live'),
  )
  .addOption(runtimeOption(['netns', 'kubernetes']))
  .addOption(labOption())
  .option(
    '--namespace <ns>',
    'kubernetes: namespace of the gateway Deployments (NATOPS_NAMESPACE, default natops-gateways)',
  )
  .option('--network-mode <mode>', 'kubernetes: kube-ovn or multus (NATOPS_NETWORK_MODE, default kube-ovn)')
  .option('--redis <url>', "the EIP allocations' Redis (NATOPS_REDIS_URL; default: the one `natops serve` records)")
  .action(async (path: string, opts: RuntimeOptions & { against: string; redis?: string }, cmd: Command) => {
    const [{ planGateways }, { renderGatewayPlan }, alloc] = await Promise.all([
      import('../dataplane/gateway-plan.ts'),
      import('../dataplane/plan-text.ts'),
      import('./allocations.ts'),
    ]);
    // EIPs without v4ip: the addresses natops allocated (or would), read from its table
    const allocations = await alloc.planAllocations(opts.redis);
    const { desired, eips } = await alloc.desiredAllocated(path, allocations);
    const current = new Map<string, GatewayState>();
    if (opts.against === 'live') {
      const { runtime } = await runtimesFor('plan --against live', opts, cmd);
      for (const name of await runtime.listGateways())
        current.set(name, await (await runtime.gateway(name))!.readState());
    } else {
      const { compileGateway } = await import('../dataplane/compile.ts');
      const against = (await alloc.desiredAllocated(opts.against, allocations)).desired;
      for (const [name, spec] of against.gateways) current.set(name, compileGateway(spec));
    }
    const plans = planGateways(current, desired.enabled ? desired.gateways : new Map());
    out(plans.map((p) => renderGatewayPlan(p.name, p.action, p.changes)).join('\n\n') || 'no gateways');
    for (const line of alloc.allocationLines(eips, allocations)) out(line);
  });

program
  .command('apply')
  .description('make the gateways match the manifests (gateways missing from them are removed)')
  .argument('<path>', 'manifests to apply')
  .addOption(runtimeOption(['netns', 'kubernetes', 'dry-run']))
  .addOption(labOption())
  .option(
    '--namespace <ns>',
    'kubernetes: namespace of the gateway Deployments (NATOPS_NAMESPACE, default natops-gateways)',
  )
  .option('--network-mode <mode>', 'kubernetes: kube-ovn or multus (NATOPS_NETWORK_MODE, default kube-ovn)')
  .action(async (path: string, opts: RuntimeOptions, cmd: Command) => {
    const desired = await desiredAt(path);
    if (!desired.enabled) {
      out("enable-vpc-nat-gw is 'false' in ovn-vpc-nat-gw-config: gateways are left as they are");
      return;
    }
    const [{ reconcileAll }, { networkModel }, { renderGatewayPlan }] = await Promise.all([
      import('../runtime/reconcile.ts'),
      import('../gitops/manifests/network.ts'),
      import('../dataplane/plan-text.ts'),
    ]);
    const { runtime, network } = await runtimesFor('apply', opts, cmd);
    for (const line of await network.apply(networkModel(desired))) out(`network: ${line}`);
    const results = await reconcileAll(runtime, desired.gateways.values());
    if (runtime.kind === 'dry-run') {
      const { DryRunRuntime, formatCommands } = await import('../runtime/dry-run.ts');
      if (!(runtime instanceof DryRunRuntime)) throw new TypeError('a dry-run runtime that records nothing');
      for (const r of runtime.recorded)
        out(
          `# gateway ${r.gateway}: commands run inside it, starting from an empty gateway\n${formatCommands(r.commands)}\n`,
        );
      return;
    }
    for (const r of results)
      out(
        `${renderGatewayPlan(r.name, r.action, r.changes)}\n  (${r.commands.length} command${r.commands.length === 1 ? '' : 's'} run)`,
      );
  });

const lab = program
  .command('lab')
  .description('a local network lab in network namespaces, to try NAT changes with real packets');

lab
  .command('up')
  .description('build the subnets, VPC routers and underlay the manifests describe')
  .argument('<path>', 'manifests')
  .addOption(labOption())
  .action(async (path: string, opts: { lab: string }) => {
    requireRoot('lab up');
    const { networkModel } = await import('../gitops/manifests/network.ts');
    const log = await (await labNamed(opts.lab)).up(networkModel(await desiredAt(path)));
    out(log.length ? log.join('\n') : 'lab is up to date');
  });

lab
  .command('down')
  .description('remove everything natops created in this lab, and only that')
  .addOption(labOption())
  .action(async (opts: { lab: string }) => {
    requireRoot('lab down');
    const removed = await (await labNamed(opts.lab)).down();
    out(removed.length ? `removed ${removed.join(', ')}` : 'nothing to remove');
  });

const host = lab.command('host').description('workload hosts on a subnet or on the underlay');
host
  .command('add')
  .argument('<name>')
  .requiredOption('--net <subnet|external>', 'a Subnet name, or "external" for the underlay')
  .requiredOption('--ip <ip/prefix>', 'the host address, e.g. 10.0.1.10/24')
  .option('--gateway <ip>', 'default route (defaults to the subnet gateway or the upstream router)')
  .addOption(labOption())
  .action(async (name: string, opts: { net: string; ip: string; gateway?: string; lab: string }) => {
    requireRoot('lab host add');
    const h = await (await labNamed(opts.lab)).addHost({ name, net: opts.net, ip: opts.ip, gateway: opts.gateway });
    out(`host ${h.name}: ${h.ip} on ${h.net}${h.gateway ? `, default via ${h.gateway}` : ''}`);
  });
host
  .command('rm')
  .argument('<name>')
  .addOption(labOption())
  .action(async (name: string, opts: { lab: string }) => {
    requireRoot('lab host rm');
    out((await (await labNamed(opts.lab)).removeHost(name)) ? `removed host ${name}` : `no host ${name}`);
  });
host
  .command('list')
  .addOption(labOption())
  .action(async (opts: { lab: string }) => {
    for (const h of await (await labNamed(opts.lab)).hosts()) out(`${h.name}\t${h.ip}\t${h.net}\t${h.gateway ?? ''}`);
  });

lab
  .command('exec')
  .description('run a command in a lab host: natops lab exec NAME -- CMD ARGS...')
  .argument('<name>')
  .argument('<command...>')
  .addOption(labOption())
  .action(async (name: string, command: string[], opts: { lab: string }) => {
    requireRoot('lab exec');
    const ns = await (await labNamed(opts.lab)).hostNamespace(name);
    const { spawn } = await import('node:child_process');
    const child = spawn('ip', ['netns', 'exec', ns, ...command], { stdio: 'inherit' });
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
    process.exitCode = code;
  });

program
  .command('probe')
  .description(
    'serve "<name> <peer address>" answers on TCP and UDP ports (run it in a lab host); with --send, send probes instead',
  )
  .option('--name <name>', 'what to answer with')
  .option('--tcp <ports>', 'comma-separated TCP ports', '')
  .option('--udp <ports>', 'comma-separated UDP ports', '')
  .option('--send', 'send the probes given on stdin as JSON ([{protocol, to, port}]) and print the answers as JSON')
  .option('--timeout <ms>', '--send: how long to wait for each answer', '2000')
  .option('--while-stdin', 'serve until stdin closes (the end of whoever started it)')
  .action(
    async (opts: {
      name?: string;
      tcp: string;
      udp: string;
      send?: boolean;
      timeout: string;
      whileStdin?: boolean;
    }) => {
      const { serveProbe, sendProbes, ProbeTargets } = await import('./probe.ts');
      if (opts.send) {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        const targets = ProbeTargets.parse(JSON.parse(Buffer.concat(chunks).toString()));
        out(JSON.stringify(await sendProbes(targets, Number(opts.timeout))));
        return;
      }
      if (!opts.name) throw new NatopsError('natops probe needs --name (or --send)');
      const ports = (list: string) => list.split(',').filter(Boolean).map(Number);
      await serveProbe({ name: opts.name, tcp: ports(opts.tcp), udp: ports(opts.udp) });
      if (opts.whileStdin) {
        process.stdin.on('end', () => process.exit(0)).on('close', () => process.exit(0));
        process.stdin.resume();
      }
    },
  );

addGitopsCommands(program);
addPreviewCommand(program);
addRemoveGatewaysCommand(program);
addExportCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (!(e instanceof NatopsError)) throw e;
  // Costs nothing when the error is a ManifestValidationError: its module is loaded by then.
  const { ManifestValidationError, formatIssue, sortIssues } = await import('../gitops/manifests/issues.ts');
  if (e instanceof ManifestValidationError) {
    for (const issue of sortIssues(e.issues)) process.stderr.write(`${formatIssue(issue)}\n`);
    process.stderr.write(
      `natops: ${e.issues.length} problem${e.issues.length === 1 ? '' : 's'}; nothing was changed\n`,
    );
    process.exitCode = 1;
  } else {
    process.stderr.write(`natops: ${e.message}\n`);
    process.exitCode = 2;
  }
}
