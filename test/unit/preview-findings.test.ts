// Findings a reviewer would want pointed out (preview/findings.ts), each at its line of the head,
// in both forms of the manifests: an SNAT that a longer prefix of another EIP carves out, and a
// gateway left without an EIP.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { renderMarkdown } from '../../preview/markdown.ts';
import { previewChanges } from '../../preview/preview.ts';
import { renderText } from '../../preview/text.ts';
import { seedList, toCurrentForm } from '../helpers/current-form.ts';
import { push, seedObjects, set, toFiles, unset, type SeedObjects } from '../helpers/manifests.ts';

const LINK = (path: string, line: number) => `https://github.com/o/r/blob/${'b'.repeat(40)}/${path}#L${line}`;

async function previewOf(change: (s: SeedObjects) => void) {
  const base = await seedObjects();
  const head = await seedObjects();
  change(head);
  return previewChanges(validateManifests(toFiles(base)), validateManifests(toFiles(head)), {
    base: 'main',
    head: 'pr',
  });
}

/** The line of `files`' `path` where `text` is, 1-based. */
function lineOf(files: { path: string; text: string }[], path: string, text: string): number {
  const lines = files.find((f) => f.path === path)!.text.split('\n');
  const i = lines.findIndex((l) => l.includes(text));
  assert.ok(i >= 0, `${text} in ${path}`);
  return i + 1;
}

describe('preview findings', () => {
  it('a wider SNAT added beside a longer prefix of another EIP: said at its line, in both renderings', async () => {
    let files: { path: string; text: string }[] = [];
    const p = await previewOf((s) => {
      push(s.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
      push(s.gateway, 'spec.snatRules', { eip: '192.168.0.113', internalCIDR: '10.0.0.0/16' });
      files = toFiles(s);
    });
    assert.equal(p.findings.length, 1, JSON.stringify(p.findings));
    const [f] = p.findings;
    assert.equal(f!.gateway, 'ngw');
    assert.equal(
      f!.message,
      'SNAT 10.0.0.0/16 -> 192.168.0.113 does not take 10.0.1.0/24: the longer prefix goes first, and its sources leave from 192.168.0.112',
    );
    assert.equal(f!.pos.file, '30-nat-gateway.yaml');
    assert.equal(f!.pos.line, lineOf(files, '30-nat-gateway.yaml', '10.0.0.0/16'));
    const md = renderMarkdown(p, { linkTo: LINK });
    assert.ok(
      md.includes(
        `#### Findings (1)\n\n- [\`30-nat-gateway.yaml:${f!.pos.line}:${f!.pos.column}\`](<${LINK('30-nat-gateway.yaml', f!.pos.line)}>) gateway \`ngw\`: SNAT 10.0.0.0/16 -&gt; 192.168.0.113 does not take 10.0.1.0/24`,
      ),
      md,
    );
    assert.match(
      renderText(p),
      /^findings \(1\):\n {2}30-nat-gateway\.yaml:\d+:\d+ {2}gateway ngw: SNAT 10\.0\.0\.0\/16/m,
    );
  });

  it('nothing to point out when the carve-out was there before, or both use one EIP', async () => {
    const same = await previewOf((s) =>
      push(s.gateway, 'spec.snatRules', { eip: '192.168.0.112', internalCIDR: '10.0.0.0/16' }),
    );
    assert.deepEqual(same.findings, []);
    const base = await seedObjects();
    push(base.gateway, 'spec.eips', { eipCIDR: '192.168.0.113/24', gateway: '192.168.0.254' });
    push(base.gateway, 'spec.snatRules', { eip: '192.168.0.113', internalCIDR: '10.0.0.0/16' });
    const head = structuredClone(base);
    set(head.gateway, 'spec.dnatRules.0.externalPort', 8080);
    const p = previewChanges(validateManifests(toFiles(base)), validateManifests(toFiles(head)));
    assert.deepEqual(p.findings, [], 'an unrelated change does not repeat what the base already had');
  });

  it("in the current form, the finding is at the IptablesSnatRule's own line", async () => {
    const base = toCurrentForm(seedList(await seedObjects()));
    const head = structuredClone(base);
    head.push(
      {
        apiVersion: 'kubeovn.io/v1',
        kind: 'IptablesEIP',
        metadata: { name: 'ngw-eip-wide' },
        spec: { v4ip: '192.168.0.113', natGwDp: 'ngw' },
      },
      {
        apiVersion: 'kubeovn.io/v1',
        kind: 'IptablesSnatRule',
        metadata: { name: 'ngw-snat-wide' },
        spec: { eip: 'ngw-eip-wide', internalCIDR: '10.0.0.0/16' },
      },
    );
    const asFiles = (objects: typeof base) =>
      objects.map((o, i) => ({ path: `${String(i).padStart(2, '0')}.yaml`, text: JSON.stringify(o, null, 2) }));
    const headFiles = asFiles(head);
    const p = previewChanges(validateManifests(asFiles(base)), validateManifests(headFiles));
    assert.equal(p.findings.length, 1, JSON.stringify(p.findings));
    const file = headFiles.at(-1)!.path;
    assert.equal(p.findings[0]!.pos.file, file);
    assert.equal(p.findings[0]!.pos.line, lineOf(headFiles, file, '10.0.0.0/16'));
  });

  it('a gateway left without an EIP', async () => {
    const p = await previewOf((s) => {
      unset(s.gateway, 'spec.floatingIpRules');
      unset(s.gateway, 'spec.dnatRules');
      unset(s.gateway, 'spec.snatRules');
      set(s.gateway, 'spec.eips', []);
    });
    assert.deepEqual(p.head.issues, []);
    assert.deepEqual(
      p.findings.map((f) => f.message),
      ["the gateway's last EIP goes: with no default route left, nothing of VPC test-vpc-1 leaves through it"],
    );
  });
});
