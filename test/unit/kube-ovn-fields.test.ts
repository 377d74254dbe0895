// docs/kube-ovn-fields.md against Kube-OVN's CRDs (test/fixtures/kube-ovn/crds.yaml): every spec
// field of every kind natops reads is in the table, and the fields the table calls Kube-OVN's
// (left to it) are accepted as an exported Vpc or Subnet carries them, while a field outside the
// CRD is still refused as a misspelling.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { formatIssue } from '../../gitops/manifests/issues.ts';
import { KUBE_OVN_OWN_FIELDS } from '../../gitops/manifests/schema.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { seedObjects, set, toFiles } from '../helpers/manifests.ts';

const ROOT = join(import.meta.dirname, '../..');
const KINDS = [
  'Vpc',
  'Subnet',
  'VpcNatGateway',
  'IptablesEIP',
  'IptablesFIPRule',
  'IptablesDnatRule',
  'IptablesSnatRule',
];

interface Crd {
  spec: {
    names: { kind: string };
    versions: {
      schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, { type?: string }> } } } };
    }[];
  };
}

/** kind -> its spec fields and their types, from the CRDs */
async function crdFields(): Promise<Map<string, Map<string, string | undefined>>> {
  const text = await readFile(join(ROOT, 'test/fixtures/kube-ovn/crds.yaml'), 'utf8');
  const crds = parseAllDocuments(text)
    .map((d) => d.toJS() as Crd | null)
    .filter((d): d is Crd => d !== null);
  return new Map(
    crds.map((c) => [
      c.spec.names.kind,
      new Map(
        Object.entries(c.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties).map(([f, s]) => [
          f,
          s.type,
        ]),
      ),
    ]),
  );
}

/** kind -> the fields its rows of the table name */
async function documented(): Promise<Map<string, Set<string>>> {
  const text = await readFile(join(ROOT, 'docs/kube-ovn-fields.md'), 'utf8');
  const rows = new Map<string, Set<string>>();
  for (const line of text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| kind'))) {
    const [kind, fields] = line
      .split('|')
      .slice(1, 3)
      .map((c) => c.trim());
    const set = rows.get(kind!) ?? new Set<string>();
    for (const m of fields!.matchAll(/`([^`]+)`/g)) set.add(m[1]!);
    rows.set(kind!, set);
  }
  return rows;
}

/** a value of the CRD's type, as an exported object would carry */
const sample = (type: string | undefined): unknown =>
  type === 'boolean' ? true : type === 'integer' ? 1 : type === 'array' ? [] : type === 'object' ? {} : 'x';

describe("Kube-OVN's fields (docs/kube-ovn-fields.md)", () => {
  it('the table names every spec field of the CRDs of each kind natops reads', async () => {
    const crds = await crdFields();
    const docs = await documented();
    for (const kind of KINDS) {
      const fields = crds.get(kind);
      assert.ok(fields, `the fixture has ${kind}`);
      const missing = [...fields.keys()].filter((f) => !docs.get(kind)?.has(f));
      assert.deepEqual(missing, [], `${kind}: in Kube-OVN's CRD, not in docs/kube-ovn-fields.md`);
    }
  });

  it("the fields left to Kube-OVN are its CRD's, and an exported Vpc or Subnet carrying them is valid", async () => {
    const crds = await crdFields();
    const seed = await seedObjects();
    for (const kind of ['Vpc', 'Subnet'] as const) {
      const fields = crds.get(kind)!;
      const obj = kind === 'Vpc' ? seed.vpc : seed.subnet;
      for (const f of KUBE_OVN_OWN_FIELDS[kind]) {
        assert.ok(fields.has(f), `${kind}.${f} is not in Kube-OVN's CRD`);
        set(obj, `spec.${f}`, sample(fields.get(f)));
      }
    }
    assert.deepEqual(validateManifests(toFiles(seed)).issues.map(formatIssue), []);
    set(seed.subnet, 'spec.natOutgoingg', true);
    const issues = validateManifests(toFiles(seed)).issues.map(formatIssue);
    assert.ok(
      issues.some((i) => /Subnet\/sn {2}spec\.natOutgoingg: unknown field/.test(i)),
      issues.join('\n'),
    );
  });
});
