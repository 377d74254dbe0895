// natops export: a cluster's Kube-OVN objects as manifests natops reads (docs/export.md). It
// reads only (list, get), writes the files, then validates them as `natops validate` does, so an
// object natops refuses is still written and its problems are printed at their file and line.
// The modules that do the work load when it runs.
import { Option, type Command } from 'commander';
import { NatopsError, errorMessage } from '../common/errors.ts';
import { instanceOf } from '../common/instance.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import type { ClusterObject } from '../gitops/export/clean.ts';
import type { ServerConfig } from '../server/config.ts';

class ExportUsageError extends NatopsError {}

interface ExportFlags {
  out: string;
  form: 'current' | '1.7';
  force?: boolean;
  kubeconfig?: string;
  adopt?: boolean;
  namespace?: string;
}

export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      "write a cluster's Kube-OVN NAT objects as manifests, one file per object, and validate them (exit 1 when natops refuses some)",
    )
    .requiredOption('--out <dir>', 'where to write them: an empty or new directory')
    .addOption(
      new Option(
        '--form <form>',
        "current: the objects as the cluster holds them; 1.7: every gateway's rules inline in its VpcNatGateway",
      )
        .choices(['current', '1.7'])
        .default('current'),
    )
    .option('--force', 'write into a directory that is not empty (an earlier export: its stale files go)')
    .option('--kubeconfig <file>', 'the cluster (default NATOPS_KUBECONFIG, KUBECONFIG, ~/.kube/config, in-cluster)')
    .option(
      '--adopt',
      "then hand the gateways Kube-OVN runs to natops: relabel their workloads and pods (no restart) and rewrite their rules in natops's forms (docs/export.md); only when the files validate",
    )
    .option(
      '--namespace <ns>',
      "--adopt: where Kube-OVN runs the gateways (kube-system, unless a VpcNatGateway's namespace says otherwise), and natops will",
    )
    .action(async (opts: ExportFlags) => {
      // natops's own namespace is not where Kube-OVN's gateways are: it must be said
      if (opts.adopt && !opts.namespace)
        throw new ExportUsageError(
          "--adopt needs --namespace: where Kube-OVN runs the gateways (kube-system unless a VpcNatGateway's namespace says otherwise), which natops will then run them in",
        );
      const [{ KubeConfig }, { readCluster }, { exportFiles, writeExport }] = await Promise.all([
        import('@kubernetes/client-node'),
        import('../gitops/export/read-cluster.ts'),
        import('../gitops/export/write.ts'),
      ]);
      const kc = new KubeConfig();
      const file = opts.kubeconfig ?? process.env.NATOPS_KUBECONFIG;
      if (file) kc.loadFromFile(file);
      else kc.loadFromDefault();
      const { objects, notes } = await readCluster(kc);
      for (const n of notes) process.stderr.write(`natops: note: ${n}\n`);
      const files = exportFiles(opts.form === '1.7' ? await inForm17(objects) : objects);
      await writeExport(opts.out, files, opts.force === true);
      const counts = new Map<string, number>();
      for (const f of files) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
      const summary = [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
      process.stdout.write(`wrote ${files.length} file(s) to ${opts.out}${summary ? `: ${summary}` : ''}\n`);
      if (!files.length) return;

      const [{ readManifestDir }, { validateManifests }, { formatIssue, sortIssues }, { manifestRulesFromEnv }] =
        await Promise.all([
          import('../gitops/manifests/read-dir.ts'),
          import('../gitops/manifests/validate.ts'),
          import('../gitops/manifests/issues.ts'),
          import('../server/config.ts'),
        ]);
      const { desired, issues, notApplied } = validateManifests(
        await readManifestDir(opts.out),
        manifestRulesFromEnv(),
      );
      for (const n of notApplied)
        process.stdout.write(`${n.pos.file}:${n.pos.line}:${n.pos.column}  ${n.resource}  ${n.reason}\n`);
      if (issues.length) {
        if (opts.adopt) process.stderr.write('natops: --adopt: nothing adopted, the files do not validate\n');
        for (const issue of sortIssues(issues)) process.stderr.write(`${formatIssue(issue)}\n`);
        process.stderr.write(
          `natops: exported; ${issues.length} problem${issues.length === 1 ? '' : 's'}: natops validate refuses these files until they are fixed\n`,
        );
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `valid: ${desired.vpcs.size} VPC(s), ${desired.subnets.size} subnet(s), ${desired.gateways.size} gateway(s)\n`,
      );
      if (!opts.adopt) return;
      const [
        { AppsV1Api, AuthorizationV1Api, CoreV1Api, KubernetesObjectApi },
        { adoptGateways },
        { loadConfig },
        k8sObjects,
        model,
      ] = await Promise.all([
        import('@kubernetes/client-node'),
        import('../runtime/kubernetes/adoption.ts'),
        import('../server/config.ts'),
        import('../runtime/kubernetes/objects.ts'),
        import('../dataplane/model.ts'),
      ]);
      // the namespace and instance `natops serve` will use, so that it finds what is adopted here
      const c = loadConfig({ runtime: 'kubernetes', namespace: opts.namespace, kubeconfig: file });
      const where = { namespace: c.namespace, instance: instanceOf(c) };
      const targets = [...desired.gateways.values()].map((g) => ({
        gateway: g.name,
        kind: model.workloadKind(g.workload),
        workload: k8sObjects.workloadName(g),
      }));
      const record = { at: new Date().toISOString(), from: 'kube-ovn' as const, by: 'natops export --adopt' };
      const clients = {
        apps: kc.makeApiClient(AppsV1Api),
        core: kc.makeApiClient(CoreV1Api),
        objects: KubernetesObjectApi.makeApiClient(kc),
        authz: kc.makeApiClient(AuthorizationV1Api),
      };
      const { lines, refused } = await adoptGateways(clients, where, targets, record);
      for (const line of lines) process.stdout.write(`${line}\n`);
      if (refused.length) {
        for (const line of refused) process.stderr.write(`natops: --adopt: ${line}\n`);
        process.stderr.write('natops: --adopt: nothing adopted\n');
        process.exitCode = 1;
        return;
      }
      process.stdout.write(
        `natops instance ${where.instance} has the gateways in namespace ${where.namespace}: run it with NATOPS_NAMESPACE=${where.namespace}\n`,
      );
      await takeOverRules(c, desired.gateways.values());
    });
}

/**
 * Kube-OVN's script writes some rules otherwise than natops's data plane (docs/export.md): the
 * adoption brings each gateway to natops's rules now, in its pod, with natops's own reconcile of
 * rules, addresses and routes (never of the workload: no pod restarts), so that the adoption is
 * the one step that changes them and the first push changes nothing it did not ask for.
 * Connections keep going: the mappings stay, only their rule forms change.
 */
async function takeOverRules(c: ServerConfig, gateways: Iterable<GatewaySpec>): Promise<void> {
  const [{ makeRuntimes }, { reconcileRules }, { renderGatewayPlan }] = await Promise.all([
    import('../runtime/select.ts'),
    import('../runtime/reconcile.ts'),
    import('../dataplane/plan-text.ts'),
  ]);
  const { runtime } = await makeRuntimes(c, (m) => process.stderr.write(`natops: warning: ${m}\n`));
  for (const spec of gateways) {
    try {
      const r = await reconcileRules(runtime, spec);
      process.stdout.write(`${renderGatewayPlan(r.name, r.action, r.changes)}\n`);
      process.stdout.write(
        r.commands.length
          ? `gateway ${r.name}: natops's rules now, in the same pod (${r.commands.length} command${r.commands.length === 1 ? '' : 's'} run)\n`
          : `gateway ${r.name}: its rules are natops's already\n`,
      );
    } catch (e) {
      process.stderr.write(
        `natops: --adopt: gateway ${spec.name} is adopted, but its rules were not brought over (natops's first push will): ${errorMessage(e)}\n`,
      );
      process.exitCode = 1;
    }
  }
}

/**
 * The cluster's objects in Kube-OVN 1.7's form, from the gateways natops resolves from them
 * (gitops/export/form17.ts): they must validate first, and say nothing the 1.7 form cannot.
 */
async function inForm17(objects: readonly ClusterObject[]): Promise<ClusterObject[]> {
  const [{ exportFiles }, { validateManifests }, { formatIssue, sortIssues }, { manifestRulesFromEnv }, { toForm17 }] =
    await Promise.all([
      import('../gitops/export/write.ts'),
      import('../gitops/manifests/validate.ts'),
      import('../gitops/manifests/issues.ts'),
      import('../server/config.ts'),
      import('../gitops/export/form17.ts'),
    ]);
  const { desired, issues } = validateManifests(exportFiles(objects), manifestRulesFromEnv());
  if (issues.length)
    throw new ExportUsageError(
      `--form 1.7: the cluster's objects do not validate, so natops cannot resolve their gateways (export --form current to write and fix them):\n${sortIssues(issues).map(formatIssue).join('\n')}`,
    );
  const { objects: inline, problems } = toForm17(objects, desired.gateways);
  if (problems.length)
    throw new ExportUsageError(
      `--form 1.7 cannot say what the cluster holds; export --form current:\n${problems.join('\n')}`,
    );
  return inline;
}
