// natops export on the test cluster: Kube-OVN's CRDs (test/fixtures/kube-ovn/crds.yaml, from its
// chart), the seed in Kube-OVN's current form made with kubectl, then the real CLI: the files it
// writes, `natops validate` accepting them, and `natops plan OUT --against examples/seed` (the
// seed in the 1.7 form) unchanged for every gateway. Then a field natops refuses: still written,
// the problem at its file and line, exit 1. It touches its own namespace and, in kube-system,
// only the ConfigMap ovn-vpc-nat-gw-config, made here and removed here (a test finding one there
// fails rather than use or change it). The CRDs it made, and so every object of theirs, go
// afterwards, even on failure; CRDs already installed stay, and only this test's objects go.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1PolicyRule } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { natops } from '../helpers/cli.ts';
import { EXTERNAL_NETWORK, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { adminConfig, KUBECONFIG } from '../helpers/k8s.ts';
import { filesUnder, installKubeOvnCrds, kubeOvnConfigMaps, kubectl } from '../helpers/kube-ovn.ts';
import { SEED_DIR, seedObjects, type Obj } from '../helpers/manifests.ts';

const EXPORT_RBAC = fileURLToPath(new URL('../../deploy/kubernetes/export-rbac.yaml', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('natops export of a cluster holding the seed in Kube-OVN’s current form', () => {
  const admin = adminConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const namespace = `natops-x${randomBytes(4).toString('hex')}`;
  let crds: Awaited<ReturnType<typeof installKubeOvnCrds>> | undefined;
  let configs: Awaited<ReturnType<typeof kubeOvnConfigMaps>> | undefined;
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  /** this test's ClusterRole and ClusterRoleBinding (cluster-scoped: removed after) */
  const roleName = `${namespace}-export`;
  let roleMade = false;
  let namespaceMade = false;
  let dir = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-export-'));
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    namespaceMade = true;

    crds = await installKubeOvnCrds(admin);

    // the seed as Kube-OVN writes it now; the external network's attachment in this test's namespace
    const objects = toCurrentForm(seedList(await seedObjects())) as (Obj & { metadata: Obj; spec: Obj })[];
    const external = objects.find((o) => o.kind === 'Subnet' && o.metadata.name === EXTERNAL_NETWORK)!;
    external.spec.provider = `${EXTERNAL_NETWORK}.${namespace}`;
    const nad = objects.find((o) => o.kind === 'NetworkAttachmentDefinition')!;
    nad.metadata.namespace = namespace;
    // what Kube-OVN's controller writes on an EIP, and an operator's own label
    const eip = objects.find((o) => o.kind === 'IptablesEIP')!;
    eip.metadata.labels = {
      'ovn.kubernetes.io/vpc-nat-gw-name': 'ngw',
      'ovn.kubernetes.io/eip_v4_ip': '192.168.0.111',
    };
    const gw = objects.find((o) => o.kind === 'VpcNatGateway')!;
    gw.metadata.labels = { team: 'nat' };
    const config = objects.find((o) => o.kind === 'ConfigMap')!;
    // the ConfigMap first and on its own: once made it is this test's to remove
    configs = await kubeOvnConfigMaps(admin, [config]);
    await crds.apply(objects);
  });

  after(async () => {
    if (roleMade) {
      await rbac.deleteClusterRoleBinding({ name: roleName }).catch(() => undefined);
      await rbac.deleteClusterRole({ name: roleName }).catch(() => undefined);
    }
    await crds?.remove();
    await configs?.remove();
    if (namespaceMade) await core.deleteNamespace({ name: namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes one file per object without what the cluster added; validate accepts it; plan against the 1.7 seed is unchanged', async () => {
    const out = join(dir, 'out');
    const r = await natops(['export', '--out', out, '--kubeconfig', KUBECONFIG]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /wrote 11 file\(s\)/);
    assert.match(r.stdout, /valid: 1 VPC\(s\), 1 subnet\(s\), 1 gateway\(s\)/);
    assert.match(r.stderr, /ConfigMap kube-system\/ovn-vpc-nat-config is not in the cluster/);
    assert.deepEqual(await filesUnder(out), [
      '00-config/kube-system.ovn-vpc-nat-gw-config.yaml',
      '10-vpc/test-vpc-1.yaml',
      `20-subnet/${EXTERNAL_NETWORK}.yaml`,
      '20-subnet/sn.yaml',
      `25-network-attachment-definition/${namespace}.${EXTERNAL_NETWORK}.yaml`,
      '30-vpc-nat-gateway/ngw.yaml',
      '40-iptables-eip/ngw-eip-0.yaml',
      '40-iptables-eip/ngw-eip-1.yaml',
      '50-iptables-fip-rule/ngw-fip-0.yaml',
      '60-iptables-dnat-rule/ngw-dnat-0.yaml',
      '70-iptables-snat-rule/ngw-snat-0.yaml',
    ]);
    // the API server's default replicas: 1 and every piece of metadata it added are gone
    assert.equal(
      await readFile(join(out, '30-vpc-nat-gateway/ngw.yaml'), 'utf8'),
      'apiVersion: kubeovn.io/v1\nkind: VpcNatGateway\nmetadata:\n  name: ngw\n  labels:\n    team: nat\nspec:\n  lanIp: 10.0.1.254\n  subnet: sn\n  vpc: test-vpc-1\n',
    );
    assert.equal(
      await readFile(join(out, '60-iptables-dnat-rule/ngw-dnat-0.yaml'), 'utf8'),
      'apiVersion: kubeovn.io/v1\nkind: IptablesDnatRule\nmetadata:\n  name: ngw-dnat-0\nspec:\n  eip: ngw-eip-1\n  externalPort: "8888"\n  internalIp: 10.0.1.10\n  internalPort: "80"\n  protocol: tcp\n',
    );
    assert.equal(
      await readFile(join(out, '40-iptables-eip/ngw-eip-0.yaml'), 'utf8'),
      'apiVersion: kubeovn.io/v1\nkind: IptablesEIP\nmetadata:\n  name: ngw-eip-0\nspec:\n  natGwDp: ngw\n  v4ip: 192.168.0.111\n',
    );
    for (const f of await filesUnder(out)) {
      const text = await readFile(join(out, f), 'utf8');
      assert.doesNotMatch(
        text,
        /uid:|resourceVersion|creationTimestamp|managedFields|generation:|status:|last-applied|ovn\.kubernetes\.io/,
        f,
      );
    }

    const v = await natops(['validate', out]);
    assert.equal(v.code, 0, v.stderr);
    const plan = await natops(['plan', out, '--against', SEED_DIR]);
    assert.equal(plan.code, 0, plan.stderr);
    const verdicts = [...plan.stdout.matchAll(/^gateway (\S+): (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(verdicts, ['ngw unchanged'], plan.stdout);

    // the same cluster, the same bytes; a directory with files is refused without --force
    const again = join(dir, 'again');
    assert.equal((await natops(['export', '--out', again, '--kubeconfig', KUBECONFIG])).code, 0);
    for (const f of await filesUnder(out))
      assert.equal(await readFile(join(again, f), 'utf8'), await readFile(join(out, f), 'utf8'), f);
    const refused = await natops(['export', '--out', out, '--kubeconfig', KUBECONFIG]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /is not empty/);
    // Kube-OVN 1.7's form: every rule inline, the nic in the ConfigMap, one gateway to natops
    const old = join(dir, 'old');
    const inline = await natops(['export', '--out', old, '--form', '1.7', '--kubeconfig', KUBECONFIG]);
    assert.equal(inline.code, 0, inline.stderr);
    assert.deepEqual(await filesUnder(old), [
      '00-config/kube-system.ovn-vpc-nat-gw-config.yaml',
      '10-vpc/test-vpc-1.yaml',
      '20-subnet/sn.yaml',
      '30-vpc-nat-gateway/ngw.yaml',
    ]);
    assert.match(
      await readFile(join(old, '30-vpc-nat-gateway/ngw.yaml'), 'utf8'),
      /dnatRules:\n {4}- eip: 192\.168\.0\.112/,
    );
    const same = await natops(['plan', old, '--against', SEED_DIR]);
    assert.deepEqual(
      [...same.stdout.matchAll(/^gateway (\S+): (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`),
      ['ngw unchanged'],
    );
  });

  it('needs exactly the rules of deploy/kubernetes/export-rbac.yaml', async () => {
    // The Role's rules go into this test's ClusterRole too: it may make nothing in kube-system.
    const docs = parseAllDocuments(await readFile(EXPORT_RBAC, 'utf8')).map(
      (d) => d.toJS() as { rules: V1PolicyRule[] },
    );
    const rules = docs.flatMap((d) => d.rules);
    const setRules = async (r: V1PolicyRule[]) => {
      const body = { metadata: { name: roleName }, rules: r };
      if (!roleMade) {
        await rbac.createClusterRole({ body });
        roleMade = true;
        await rbac.createClusterRoleBinding({
          body: {
            metadata: { name: roleName },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
            subjects: [{ kind: 'ServiceAccount', name: 'exporter', namespace }],
          },
        });
      } else await rbac.replaceClusterRole({ name: roleName, body });
    };
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'exporter' } } });
    let token: string | undefined;
    for (let i = 0; i < 100 && !token; i++) {
      const secret = (await core.listNamespacedSecret({ namespace })).items.find(
        (x) => x.metadata?.annotations?.['kubernetes.io/service-account.name'] === 'exporter' && x.data?.token,
      );
      token = secret ? Buffer.from(secret.data!.token!, 'base64').toString() : undefined;
      if (!token) await sleep(100);
    }
    assert.ok(token, 'no token for the exporter ServiceAccount');
    const cluster = admin.getCurrentCluster()!;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'exporter', token }],
      contexts: [{ name: 'exporter', cluster: cluster.name, user: 'exporter' }],
      currentContext: 'exporter',
    });
    const kubeconfig = join(dir, 'exporter-kubeconfig');
    await writeFile(kubeconfig, kc.exportConfig(), { mode: 0o600 });
    const exportAs = (out: string) => natops(['export', '--out', join(dir, out), '--kubeconfig', kubeconfig]);

    await setRules(rules);
    let whole = await exportAs('rbac-whole');
    // RBAC reaches the authorizer's cache within moments
    for (let i = 0; i < 20 && whole.code === 2 && /forbidden/i.test(whole.stderr); i++) {
      await sleep(250);
      whole = await exportAs(`rbac-whole-${i}`);
    }
    assert.equal(whole.code, 0, whole.stderr);

    // each (group, resource, verb) taken away in turn: the export fails, naming what it asked
    const each = rules.flatMap((r) =>
      r.resources!.map((resource) => ({ group: r.apiGroups![0]!, resource, verb: r.verbs[0]! })),
    );
    for (const [i, p] of each.entries()) {
      await setRules(
        rules.flatMap((r) => {
          if (r.apiGroups![0] !== p.group) return [r];
          const rest = r.resources!.filter((x) => x !== p.resource);
          return rest.length ? [{ ...r, resources: rest }] : [];
        }),
      );
      let r = await exportAs(`rbac-${i}`);
      for (let j = 0; j < 20 && r.code === 0; j++) {
        await sleep(250);
        r = await exportAs(`rbac-${i}-${j}`);
      }
      assert.equal(r.code, 2, `without ${p.verb} ${p.resource}.${p.group}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${p.verb} ${p.resource}.*(forbidden|Forbidden)`), r.stderr);
    }
  });

  it('still writes what natops refuses, and prints each problem at its file and line (exit 1)', async () => {
    await kubectl(['patch', 'vpc-nat-gateways.kubeovn.io', 'ngw', '--type', 'merge', '-p', '{"spec":{"replicas":2}}']);
    const out = join(dir, 'refused');
    const r = await natops(['export', '--out', out, '--kubeconfig', KUBECONFIG]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(await readFile(join(out, '30-vpc-nat-gateway/ngw.yaml'), 'utf8'), /replicas: 2/);
    assert.match(r.stderr, /30-vpc-nat-gateway\/ngw\.yaml:\d+:\d+ +VpcNatGateway\/ngw +spec.*replicas/);
    assert.match(r.stderr, /natops validate refuses these files/);
    // --force writes over an earlier export, removing the files of objects gone since
    await kubectl(['delete', 'iptables-snat-rules.kubeovn.io', 'ngw-snat-0']);
    const f = await natops(['export', '--out', out, '--force', '--kubeconfig', KUBECONFIG]);
    assert.equal(f.code, 1, f.stderr);
    assert.equal((await filesUnder(out)).includes('70-iptables-snat-rule/ngw-snat-0.yaml'), false);
  });
});
