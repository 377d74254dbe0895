// ManifestCache: a planner validating commit after commit reads only the files that changed
// (by blob id), and its results are exactly those of validating everything afresh, problems
// and their marks included.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ManifestCache } from '../../gitops/manifests/cache.ts';
import { manifestFile, type ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests, type ValidationResult } from '../../gitops/manifests/validate.ts';
import { asOneFile, seedList, toCurrentForm } from '../helpers/current-form.ts';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import { gatewayInOwnVpc, seedObjects, toFiles } from '../helpers/manifests.ts';

/** As a Git source gives them: with the blob id of their bytes. */
function fromGit(files: readonly { path: string; text: string }[]): ManifestFile[] {
  return files.map((f) => {
    const bytes = Buffer.from(f.text);
    const blob = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
    return manifestFile(f.path, blob, bytes);
  });
}

/** What validation says, without its position functions. */
const said = (r: ValidationResult) => ({ desired: r.desired, issues: r.issues, notApplied: r.notApplied });

async function commits(): Promise<{ path: string; text: string }[][]> {
  const seed = await seedObjects();
  const others = [1, 2, 3].map((n) =>
    gatewayInOwnVpc({ gateway: `gw${n}`, vpc: `vpc${n}`, subnet: `sn${n}`, n: 10 + n, eip: `192.168.0.${130 + n}` }),
  );
  const base = [
    ...toFiles(seed),
    ...others.map((o, i) => ({ path: `50-gw${i}.yaml`, text: o.map((x) => stringify(x)).join('---\n') })),
  ];
  const withFile = (path: string, text: string) => [...base.filter((f) => f.path !== path), { path, text }];
  const gw1 = base.find((f) => f.path === '50-gw0.yaml')!;
  const docs = asOneFile(toCurrentForm(seedList(seed))).text.split(/^---$/m);
  const isGateway = (d: string) => /^kind: VpcNatGateway$/m.test(d);
  const gateway = { path: 'gateway.yaml', text: docs.filter(isGateway).join('---') };
  const rules = {
    path: 'rules.yaml',
    text: docs
      .filter((d) => !isGateway(d))
      .join('---')
      .replace('internalPort: "80"', 'internalPort: "x"'),
  };
  return [
    base,
    // one port forward changed
    withFile('50-gw0.yaml', gw1.text.replace('internalPort: 80', 'internalPort: 81')),
    // a problem in one file, and one between files (an EIP claimed twice)
    withFile('50-gw0.yaml', gw1.text.replace('internalPort: 80', 'internalPort: 0')),
    withFile('50-gw1.yaml', base.find((f) => f.path === '50-gw1.yaml')!.text.replace('192.168.0.132', '192.168.0.131')),
    // YAML that does not parse
    withFile('50-gw2.yaml', 'kind: [unclosed\n'),
    base,
    // the current form, whose problems are marked with the gateway they stop (or none): the
    // rules' file unchanged, the gateway's renamed in the next commit
    [rules, gateway],
    [rules, { ...gateway, text: gateway.text.replace('name: ngw', 'name: ngw2') }],
    [rules, gateway],
    base,
  ];
}

describe('ManifestCache', () => {
  it('every commit validates exactly as without it', async () => {
    const cache = new ManifestCache();
    const marks: string[] = [];
    for (const [i, files] of (await commits()).entries()) {
      const fresh = said(validateManifests(fromGit(files)));
      const cached = said(validateManifests(fromGit(files), { cache }));
      assert.deepEqual(cached, fresh, `commit ${i}`);
      if (i >= 6 && i <= 8) marks.push(...fresh.issues.map((x) => `${formatIssue(x)} [${x.gateway ?? '-'}]`));
    }
    assert.ok(cache.counts.filesReused > 0 && cache.counts.docsReused > 0);
    assert.match(marks.join('\n'), /IptablesDnatRule.*internalPort.* \[ngw\]/, 'the rule stops its gateway');
  });

  it('reads again only the file that changed, and checks only its documents', async () => {
    const [base, changed] = await commits();
    const cache = new ManifestCache();
    validateManifests(fromGit(base!), { cache });
    assert.equal(cache.counts.filesRead, base!.length);
    const before = { ...cache.counts };
    validateManifests(fromGit(changed!), { cache });
    assert.equal(cache.counts.filesRead - before.filesRead, 1, 'one file changed');
    assert.equal(cache.counts.filesReused - before.filesReused, base!.length - 1);
    assert.equal(cache.counts.docsChecked - before.docsChecked, 3, 'its Vpc, Subnet and VpcNatGateway');
  });

  it('keeps the files of the last two validations only', async () => {
    const [base] = await commits();
    const cache = new ManifestCache();
    const edited = (note: string) => base!.map((f) => ({ ...f, text: `${f.text}\n# ${note}\n` }));
    const n = base!.length;
    for (const files of [base!, edited('a'), base!]) validateManifests(fromGit(files), { cache });
    assert.equal(cache.counts.filesRead, 2 * n, 'base was one validation back: kept');
    for (const files of [edited('b'), edited('c'), base!]) validateManifests(fromGit(files), { cache });
    assert.equal(cache.counts.filesRead, 5 * n, 'base was two validations back: read again');
  });
});
