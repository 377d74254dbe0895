// bench/kubernetes: gateways as pods on the test cluster (shared/k8s), in the same run as the
// netns path and Kube-OVN's way (one pods/exec per rule). Needs root and the cluster
// (KUBECONFIG, default /var/lib/natops-k8s/kubeconfig) with the gateway image loaded. Prints
// markdown tables and writes its figures to --out (bench/results/kubernetes.json).
//
//   node --import tsx bench/kubernetes.ts [--sizes 1000,10000] [--reps 5] [--naive 1000] [--naive-reps 3]
//                                         [--replacements 5] [--out FILE]
//
// apply: a gateway holding the seed gets N more port forwards: natops reads, diffs, applies one
// iptables-restore and reads back, through pods/exec or in a namespace; the baseline runs one
// `iptables -t nat -A` per rule, each its own pods/exec, as Kube-OVN's controller execs its
// commands into the gateway pod. replacement: the gateway's pod is deleted by hand; natops serve
// (pod watch -> resync -> repair) brings its rules back; an underlay host polls the port forward
// every 20 ms, and the time runs from the deletion to the first answer after the outage.
import { parseArgs } from 'node:util';
import { Exec } from '@kubernetes/client-node';
import { median, ms, timed } from './stats.ts';
import { outOption, Report } from './report.ts';
import type { GatewaySpec } from '../dataplane/model.ts';
import { readDesired } from '../gitops/manifests/read-dir.ts';
import { NetnsRuntime } from '../runtime/netns/runtime.ts';
import { CONTAINER, deploymentName } from '../runtime/kubernetes/objects.ts';
import { gatewayTarget } from '../state/records.ts';
import { podExec } from '../runtime/kubernetes/pod-exec.ts';
import { gatewayIptables } from '../runtime/gateway-io.ts';
import { reconcileGateway } from '../runtime/reconcile.ts';
import { CLUSTER_READ, forCluster, KubeHarness } from '../test/helpers/k8s.ts';
import { seedObjects, set, writeManifestDir } from '../test/helpers/manifests.ts';
import { PipelineHarness } from '../test/helpers/pipeline.ts';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,10000' },
    reps: { type: 'string', default: '5' },
    naive: { type: 'string', default: '1000' },
    'naive-reps': { type: 'string', default: '3' },
    replacements: { type: 'string', default: '5' },
    ...outOption('kubernetes'),
  },
});
const sizes = args.sizes.split(',').map(Number);
const reps = Number(args.reps);
const naiveSize = Number(args.naive);
const naiveReps = Number(args['naive-reps']);
const replacements = Number(args.replacements);
const report = new Report('kubernetes', args);
const say = (line: string) => process.stderr.write(`${line}\n`);

/** `base` plus `n` port forwards on its second EIP, ports 20000 and up. */
function withForwards(base: GatewaySpec, n: number): GatewaySpec {
  const eip = base.eips[1]!.cidr.split('/')[0]!;
  const dnats = [...base.dnats];
  for (let i = 0; i < n; i++)
    dnats.push({ eip, externalPort: 20000 + i, protocol: 'tcp', internalIp: '10.0.1.10', internalPort: 80 });
  return { ...base, dnats };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/kubernetes needs root (the lab)');
  const k = await KubeHarness.create();
  const p = await PipelineHarness.create({
    runtime: 'kubernetes',
    kubeconfig: k.kubeconfigPath,
    namespace: k.namespace,
    networkMode: 'multus',
    resyncMs: 0,
  });
  const stop = async () => {
    await p.cleanup();
    await k.close();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => void stop().finally(() => process.exit(130)));
  try {
    const seed = forCluster(await seedObjects());
    const sha = await p.push(seed, 'seed');
    const settled = await p.settled(sha, 180_000);
    if (settled.get('natops')?.state !== 'success')
      throw new Error(`the seed did not apply: ${JSON.stringify([...settled.values()])}`);
    await p.lab.host('web', 'sn', '10.0.1.10/24');
    await p.lab.host('ext', 'external', '192.168.0.50/24');
    await p.lab.serve('web', { tcp: [80] });
    const answers = async () => (await p.lab.tcp('ext', '192.168.0.112', 8888)) === 'web 192.168.0.50';
    if (!(await answers())) throw new Error('the seed port forward does not answer');

    const out: string[] = [];
    // ---- replacement ---------------------------------------------------------------------------
    const toAnswer: number[] = [];
    const outage: number[] = [];
    const toReady: number[] = [];
    const toRepair: number[] = [];
    for (let r = 0; r < replacements; r++) {
      const pods = await k.core.listNamespacedPod({
        namespace: k.namespace,
        labelSelector: `app=${deploymentName('ngw')}`,
      });
      const old = pods.items.find((x) => !x.metadata?.deletionTimestamp)!.metadata!.name!;
      const t0 = performance.now();
      await k.core.deleteNamespacedPod({ name: old, namespace: k.namespace });
      // the phases, seen from outside: the new pod Ready, the repair recorded
      let ready = 0;
      let repairing = 0;
      const phases = (async () => {
        await until(
          'the new pod to be ready',
          async () => {
            const now = await k.core.listNamespacedPod({
              namespace: k.namespace,
              labelSelector: `app=${deploymentName('ngw')}`,
            });
            return now.items.some(
              (x) =>
                x.metadata?.name !== old &&
                x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
            );
          },
          180_000,
          50,
        );
        ready = performance.now();
        await until(
          'the repair to be recorded',
          async () => (await p.running!.records.get(gatewayTarget('ngw')))?.condition.reason === 'Repairing',
          180_000,
          20,
        );
        repairing = performance.now();
      })();
      await until('the old pod to stop answering', async () => !(await answers()), 30_000);
      const down = performance.now();
      await until('the new pod to answer', answers, 180_000);
      const t1 = performance.now();
      await phases;
      toAnswer.push(t1 - t0);
      outage.push(t1 - down);
      toReady.push(ready - t0);
      toRepair.push(t1 - repairing);
      say(
        `replacement ${r + 1}: answering again ${ms(t1 - t0)} after the deletion (outage ${ms(t1 - down)}; new pod ready at ${ms(ready - t0)}, repair recorded at ${ms(repairing - t0)})`,
      );
    }
    out.push(`## a gateway pod deleted by hand: its rules answer again without a push (median of ${replacements})`, '');
    out.push(
      '| from the deletion to the first answer | the port forward did not answer | the new pod Ready | from the repair recorded to the first answer |',
      '|---:|---:|---:|---:|',
    );
    out.push(
      `| ${ms(median(toAnswer))} | ${ms(median(outage))} | ${ms(median(toReady))} | ${ms(median(toRepair))} |`,
      '',
    );
    const replaced = 'a gateway pod deleted by hand: its rules answer again without a push';
    const ready = { name: 'from the deletion to the new pod Ready (Kubernetes alone)', values: toReady };
    report.add(replaced, 'ms', { name: 'from the deletion to the first answer', values: toAnswer }, ready);
    report.add(replaced, 'ms', { name: 'the port forward did not answer (the outage)', values: outage }, ready);
    report.add(
      replaced,
      'ms',
      { name: 'from the repair recorded to the first answer (natops repairing)', values: toRepair },
      ready,
    );

    // ---- apply N forwards --------------------------------------------------------------------------
    const base = (await readDesired(await writeManifestDir(seed), CLUSTER_READ)).gateways.get('ngw')!;
    const pod = k.runtime();
    // The netns gateway stands beside the pod on the same lab: another lanIp and other EIPs, so
    // neither answers for the other.
    const other = structuredClone(seed);
    set(other.gateway, 'metadata.name', 'nsgw');
    set(other.gateway, 'spec.lanIp', '10.0.1.253');
    set(other.gateway, 'spec.eips', [
      { eipCIDR: '192.168.0.211/24', gateway: '192.168.0.254' },
      { eipCIDR: '192.168.0.212/24', gateway: '192.168.0.254' },
    ]);
    set(other.gateway, 'spec.floatingIpRules', [{ eip: '192.168.0.211', internalIp: '10.0.1.5' }]);
    set(other.gateway, 'spec.dnatRules', [
      { eip: '192.168.0.212', externalPort: 8888, protocol: 'tcp', internalIp: '10.0.1.10', internalPort: 80 },
    ]);
    set(other.gateway, 'spec.snatRules', []);
    const netnsBase = (await readDesired(await writeManifestDir(other), CLUSTER_READ)).gateways.get('nsgw')!;
    const netns = new NetnsRuntime(p.lab.lab);
    await reconcileGateway(netns, netnsBase);

    out.push(`## add N port forwards to a live gateway (median of ${reps})`, '');
    out.push(
      '| N | pod: natops through pods/exec | namespace: natops | ratio pod / namespace |',
      '|---:|---:|---:|---:|',
    );
    for (const n of sizes) {
      const inPod: number[] = [];
      const inNs: number[] = [];
      for (let r = 0; r < reps; r++) {
        await reconcileGateway(pod, base);
        inPod.push(await timed(() => reconcileGateway(pod, withForwards(base, n))));
        await reconcileGateway(netns, netnsBase);
        inNs.push(await timed(() => reconcileGateway(netns, withForwards(netnsBase, n))));
      }
      out.push(
        `| ${n.toLocaleString('en')} | ${ms(median(inPod))} | ${ms(median(inNs))} | ${(median(inPod) / median(inNs)).toFixed(1)}x |`,
      );
      say(`apply ${n}: pod ${ms(median(inPod))}, namespace ${ms(median(inNs))}`);
      report.add(
        'add N port forwards to a live gateway',
        'ms',
        { name: `N = ${n.toLocaleString('en')}, pod: natops through pods/exec`, values: inPod },
        { name: `N = ${n.toLocaleString('en')}, namespace: natops`, values: inNs },
      );
    }
    await reconcileGateway(pod, base);

    // ---- Kube-OVN's way: one exec per rule ---------------------------------------------------------
    const pods = await k.core.listNamespacedPod({
      namespace: k.namespace,
      labelSelector: `app=${deploymentName('ngw')}`,
    });
    const exec = podExec(new Exec(k.runtimeConfig), {
      namespace: k.namespace,
      name: pods.items.find((x) => !x.metadata?.deletionTimestamp)!.metadata!.name!,
      container: CONTAINER,
    });
    const eip = base.eips[1]!.cidr.split('/')[0]!;
    const { iptables } = await gatewayIptables(exec); // the pod's, as Kube-OVN's nat-gateway.sh picks it
    const perRule: number[] = [];
    const natopsSame: number[] = [];
    for (let r = 0; r < naiveReps; r++) {
      await reconcileGateway(pod, base);
      perRule.push(
        await timed(async () => {
          for (let i = 0; i < naiveSize; i++) {
            await exec({
              argv: [
                iptables,
                '-w',
                '-t',
                'nat',
                '-A',
                'SHARED_DNAT',
                '-p',
                'tcp',
                '-d',
                `${eip}/32`,
                '--dport',
                String(20000 + i),
                '-j',
                'DNAT',
                '--to-destination',
                '10.0.1.10:80',
              ],
            });
          }
        }),
      );
      await reconcileGateway(pod, base);
      natopsSame.push(await timed(() => reconcileGateway(pod, withForwards(base, naiveSize))));
    }
    await reconcileGateway(pod, base);
    out.push(
      '',
      `## add ${naiveSize.toLocaleString('en')} port forwards to a gateway pod: natops against one pods/exec per rule (median of ${naiveReps})`,
      '',
    );
    out.push(
      '| natops: one transaction through pods/exec | one `iptables` per rule, each its own pods/exec | ratio |',
      '|---:|---:|---:|',
    );
    out.push(
      `| ${ms(median(natopsSame))} | ${ms(median(perRule))} | ${(median(perRule) / median(natopsSame)).toFixed(1)}x |`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    report.add(
      `add ${naiveSize.toLocaleString('en')} port forwards to a gateway pod`,
      'ms',
      { name: 'natops: one transaction through pods/exec', values: natopsSame },
      { name: 'one `iptables` per rule, each its own pods/exec', values: perRule },
    );
    await report.write(args.out);
  } catch (e) {
    say(`natops's log, last lines:\n${p.logs.slice(-60).join('\n')}`);
    throw e;
  } finally {
    await stop();
  }
}

await main();
