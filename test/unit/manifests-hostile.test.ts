// Hostile and unusual manifests: every input problem is a positioned issue, never an exception;
// what kubectl accepts (merge keys, YAML 1.1 scalars, a BOM, CR LF) is read as kubectl reads it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatIssue, refusesCommit, type ManifestIssue } from '../../gitops/manifests/issues.ts';
import { DEFAULT_LOAD_LIMITS, type LoadOptions, type ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { SEED_DIR } from '../helpers/manifests.ts';

const SEED_NAMES = ['00-config.yaml', '10-vpc.yaml', '20-subnet.yaml', '30-nat-gateway.yaml'];

async function seedFiles(): Promise<ManifestFile[]> {
  return Promise.all(
    SEED_NAMES.map(async (name) => ({ path: name, text: await readFile(join(SEED_DIR, name), 'utf8') })),
  );
}

/** The seed with its gateway file replaced (by a text, or by bytes). */
async function withGateway(gateway: Partial<ManifestFile> & { text: string }, options?: LoadOptions) {
  const files = (await seedFiles()).filter((f) => f.path !== '30-nat-gateway.yaml');
  return validateManifests([...files, { path: 'gw.yaml', ...gateway }], options);
}

/** Exactly one issue, which refuses the commit, at `line` (and `column`). */
function oneRefusal(issues: ManifestIssue[], line: number, column?: number): ManifestIssue {
  assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
  const issue = issues[0]!;
  assert.ok(refusesCommit(issue), `${formatIssue(issue)} must refuse the commit`);
  assert.equal(issue.pos.line, line, formatIssue(issue));
  if (column !== undefined) assert.equal(issue.pos.column, column, formatIssue(issue));
  return issue;
}

const SEED_GATEWAY = await readFile(join(SEED_DIR, '30-nat-gateway.yaml'), 'utf8');

describe('hostile manifests are positioned problems, not exceptions', () => {
  it('an alias bomb (anchors nested a dozen deep)', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n${levels.map((l) => `  ${l}`).join('\n')}\n`;
    const { issues } = validateManifests([{ path: 'bomb.yaml', text }]);
    const issue = oneRefusal(issues, 5 + 5);
    assert.match(issue.message, /aliases in this document expand to more than 400000 nodes \(maxAliasExpansion\)/);
  });

  it('an alias inside its own anchor, and an alias with no anchor', () => {
    const cycle = validateManifests([
      { path: 'c.yaml', text: 'kind: Vpc\napiVersion: kubeovn.io/v1\nmetadata: &m\n  name: v\n  labels: *m\n' },
    ]);
    assert.match(oneRefusal(cycle.issues, 5, 11).message, /alias \*m is inside the node anchored &m/);
    const dangling = validateManifests([
      { path: 'd.yaml', text: 'kind: Vpc\napiVersion: kubeovn.io/v1\nmetadata:\n  name: *nothing\n' },
    ]);
    assert.match(oneRefusal(dangling.issues, 4, 9).message, /alias \*nothing has no anchor &nothing before it/);
  });

  it('nesting too deep: flow, block and compact, and the limit is an option', async () => {
    const flow = validateManifests([{ path: 'f.yaml', text: `kind: Vpc\nx: ${'['.repeat(100_000)}\n` }]);
    assert.match(oneRefusal(flow.issues, 2).message, /deeper than 100 levels \(maxDepth\)/);
    const compact = validateManifests([{ path: 's.yaml', text: `${'- '.repeat(50_000)}x\n` }]);
    assert.match(oneRefusal(compact.issues, 1).message, /maxDepth/);
    // 104 mappings, each inside the one before: the 101st is one too deep
    let block = '';
    for (let i = 0; i < 104; i++) block += `${' '.repeat(i)}k${i}:\n`;
    const blocky = validateManifests([{ path: 'b.yaml', text: block }]);
    assert.match(oneRefusal(blocky.issues, 101, 101).message, /deeper than 100 levels \(maxDepth\)/);
    // far deeper: refused from the text, before the parser sees it
    block = '';
    for (let i = 0; i < 2000; i++) block += `${' '.repeat(i)}k${i}:\n`;
    assert.match(validateManifests([{ path: 'b.yaml', text: block }]).issues[0]!.message, /maxDepth/);
    // the seed's gateway nests 4 deep (spec.dnatRules[0]): with maxDepth 3 its first list item is too deep
    const shallow = validateManifests([{ path: 'gw.yaml', text: SEED_GATEWAY }], { maxDepth: 3 });
    assert.match(oneRefusal(shallow.issues, 10, 7).message, /deeper than 3 levels/);
  });

  it('a file too large, and too many documents, with their limits as options', async () => {
    const big = await withGateway({ text: SEED_GATEWAY }, { maxFileBytes: 500 });
    assert.match(
      oneRefusal(big.issues, 1, 1).message,
      new RegExp(`is ${Buffer.byteLength(SEED_GATEWAY)} bytes, more than the 500 .*\\(maxFileBytes\\)`),
    );
    const many = `${SEED_GATEWAY}---\n# nothing\n---\n---\n---\n`;
    const docs = await withGateway({ text: many }, { maxDocuments: 3 });
    assert.match(oneRefusal(docs.issues, 29, 1).message, /more than 3 YAML documents \(maxDocuments\)/);
    assert.deepEqual(DEFAULT_LOAD_LIMITS, {
      maxFileBytes: 8 * 1024 * 1024,
      maxDocuments: 10_000,
      maxDepth: 100,
      maxAliasExpansion: 400_000,
      maxFiles: 2_000,
      maxTotalBytes: 64 * 1024 * 1024,
      maxGateways: 2_000,
    });
  });

  it('a file that is not UTF-8: at its first bad byte when the bytes are given, by U+FFFD otherwise', async () => {
    const latin1 = Buffer.from(`# caf\xe9 settings\n${SEED_GATEWAY}`, 'latin1');
    const withBytes = await withGateway({ text: latin1.toString('utf8'), bytes: latin1 });
    assert.match(oneRefusal(withBytes.issues, 1, 6).message, /not UTF-8 text: byte 0xE9/);
    const textOnly = await withGateway({ text: latin1.toString('utf8') });
    assert.match(oneRefusal(textOnly.issues, 1, 6).message, /U\+FFFD.*probably not UTF-8/);
  });

  it('a binary file, a control character', async () => {
    const binary = await withGateway({ text: `kind: Vpc\n\u0000\u0001\u0002` });
    assert.match(oneRefusal(binary.issues, 2, 1).message, /NUL byte: a binary file/);
    const bell = await withGateway({ text: SEED_GATEWAY.replace('lanIp: 10.0.1.254', 'lanIp: 10.0.1.254\u0007') });
    assert.match(oneRefusal(bell.issues, 8, 20).message, /control character U\+0007/);
  });

  it('after a flow collection left open across lines, issues keep their lines (found by the fuzz test)', () => {
    const text = "kind: ConfigMap\n}\ndata:\ndeep: [x\n  image: 'a'   # pod image\n\n  nic: eth1   # uplink\n";
    const { issues } = validateManifests([{ path: 'open.yaml', text }]);
    const nic = issues.find((i) => i.message.includes('"nic"'));
    assert.ok(nic, issues.map(formatIssue).join('\n'));
    assert.equal(`${nic.pos.line}:${nic.pos.column}`, '7:3', formatIssue(nic));
  });

  it('a mapping or list as a mapping key, which kubectl refuses', () => {
    const { issues } = validateManifests([
      {
        path: 'k.yaml',
        text: 'kind: Vpc\napiVersion: kubeovn.io/v1\nmetadata:\n  name: v\n  labels:\n    ? [a, b]\n    : c\n',
      },
    ]);
    assert.match(oneRefusal(issues, 6, 7).message, /a mapping key must be a scalar/);
  });

  it('a document that is a scalar or a list', () => {
    const { issues } = validateManifests([
      { path: 'odd.yaml', text: '# header\njust some text\n---\n- a\n- b\n---\n' },
    ]);
    assert.deepEqual(issues.map(formatIssue), [
      'odd.yaml:2:1  -  (document): a manifest must be a mapping with apiVersion, kind and metadata',
      'odd.yaml:4:1  -  (document): a manifest must be a mapping with apiVersion, kind and metadata',
    ]);
    assert.ok(issues.every(refusesCommit));
  });
});

describe('what kubectl accepts is read as kubectl reads it', () => {
  it('a byte-order mark: accepted, columns as an editor shows them', async () => {
    const ok = await withGateway({ text: `\uFEFF${SEED_GATEWAY}` });
    assert.deepEqual(ok.issues, []);
    assert.equal(ok.desired.gateways.get('ngw')?.lanIp, '10.0.1.254');
    const bad = await withGateway({
      text: `\uFEFF${SEED_GATEWAY.replace('kind: VpcNatGateway', 'kind: VpcNatGatway')}`,
    });
    assert.equal(
      formatIssue(oneRefusal(bad.issues, 1, 7)),
      'gw.yaml:1:7  VpcNatGatway/ngw  kind: unknown kind VpcNatGatway (did you mean VpcNatGateway?)',
    );
  });

  it('UTF-16 with a byte-order mark, as go-yaml reads it', async () => {
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(SEED_GATEWAY, 'utf16le')]);
    const { issues, desired } = await withGateway({ text: bytes.toString('utf8'), bytes });
    assert.deepEqual(issues, []);
    assert.ok(desired.gateways.has('ngw'));
  });

  it('CR LF and lone CR line ends: accepted, positions as with LF', async () => {
    const lf = await withGateway({ text: SEED_GATEWAY.replace('internalPort: 80', 'internalPort: 80000') });
    for (const eol of ['\r\n', '\r']) {
      const ok = await withGateway({ text: SEED_GATEWAY.replaceAll('\n', eol) });
      assert.deepEqual(ok.issues, [], JSON.stringify(eol));
      assert.deepEqual(
        ok.desired.gateways.get('ngw'),
        (await withGateway({ text: SEED_GATEWAY })).desired.gateways.get('ngw'),
      );
      const bad = await withGateway({
        text: SEED_GATEWAY.replace('internalPort: 80', 'internalPort: 80000').replaceAll('\n', eol),
      });
      assert.deepEqual(bad.issues.map(formatIssue), lf.issues.map(formatIssue));
      assert.equal(bad.issues[0]!.pos.line, 22);
    }
  });

  it('an empty document is skipped', async () => {
    const { issues, desired } = await withGateway({ text: `---\n# only a comment\n---\n${SEED_GATEWAY}---\n` });
    assert.deepEqual(issues, []);
    assert.ok(desired.gateways.has('ngw'));
  });

  const MERGED = [
    'apiVersion: kubeovn.io/v1',
    'kind: VpcNatGateway',
    'metadata:',
    '  name: ngw',
    'spec:',
    '  vpc: test-vpc-1',
    '  subnet: sn',
    '  lanIp: 10.0.1.254',
    '  eips:',
    '    - eipCIDR: 192.168.0.112/24',
    '      gateway: 192.168.0.254',
    '  dnatRules:',
    '    - &web',
    '      eip: 192.168.0.112',
    '      protocol: tcp',
    '      internalIp: 10.0.1.10',
    '      externalPort: 8080',
    '      internalPort: 80',
    '    - <<: *web',
    '      externalPort: 8443',
    '      internalPort: 443',
    '    - <<: [*web]',
    '      externalPort: 9000',
    '',
  ].join('\n');

  it('merge keys (<<: *anchor), which kubectl accepts', async () => {
    const { issues, desired } = await withGateway({ text: MERGED });
    assert.deepEqual(issues.map(formatIssue), []);
    assert.deepEqual(desired.gateways.get('ngw')!.dnats, [
      { eip: '192.168.0.112', protocol: 'tcp', internalIp: '10.0.1.10', externalPort: 8080, internalPort: 80 },
      { eip: '192.168.0.112', protocol: 'tcp', internalIp: '10.0.1.10', externalPort: 8443, internalPort: 443 },
      { eip: '192.168.0.112', protocol: 'tcp', internalIp: '10.0.1.10', externalPort: 9000, internalPort: 80 },
    ]);
  });

  it('a problem in a merged field is reported in the rule that merged it, at its alias', async () => {
    const { issues } = await withGateway({ text: MERGED.replace('internalIp: 10.0.1.10', 'internalIp: 10.0.7.10') });
    const lines = MERGED.split('\n');
    assert.deepEqual(
      issues.map((i) => `${i.pos.line}:${i.pos.column} ${i.field}`),
      [
        `16:19 spec.dnatRules[0].internalIp`,
        `19:${lines[18]!.indexOf('*web') + 1} spec.dnatRules[1].internalIp`,
        `22:${lines[21]!.indexOf('*web') + 1} spec.dnatRules[2].internalIp`,
      ],
    );
  });

  it('a merge key whose value is not a mapping', async () => {
    const { issues } = await withGateway({ text: MERGED.replace('- <<: *web', '- <<: 5') });
    assert.match(oneRefusal(issues, 19, 11).message, /merge key \(<<\) takes a mapping/);
  });

  it('YAML 1.1 booleans: enable-vpc-nat-gw: yes is a boolean to Kubernetes', async () => {
    for (const [written, read] of [
      ['yes', 'true'],
      ['on', 'true'],
      ['true', 'true'],
      ['off', 'false'],
      ['n', 'false'],
    ]) {
      const files = (await seedFiles()).map((f) =>
        f.path === '00-config.yaml'
          ? { ...f, text: f.text.replace("enable-vpc-nat-gw: 'true'", `enable-vpc-nat-gw: ${written}`) }
          : f,
      );
      const { issues } = validateManifests(files);
      assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
      assert.equal(
        issues[0]!.message,
        `\`enable-vpc-nat-gw: ${written}\` is a boolean${written === read ? '' : ` (${read})`} to Kubernetes; ConfigMap data values must be strings: quote it ('${read}')`,
      );
      assert.equal(formatIssue(issues[0]!).split('  ')[0], '00-config.yaml:9:22');
    }
  });

  it('YAML 1.1 in names and keys: said so, with how to write it', async () => {
    const name = validateManifests(
      (await seedFiles()).map((f) =>
        f.path === '20-subnet.yaml' ? { ...f, text: f.text.replace('name: sn', 'name: 0755') } : f,
      ),
    );
    const issue = name.issues.find(refusesCommit)!;
    assert.equal(issue.message, "`name: 0755` is a number (493) to Kubernetes; quote it ('0755')");
    const vpc = await withGateway({ text: SEED_GATEWAY.replace('vpc: test-vpc-1', 'vpc: no') });
    assert.deepEqual(
      vpc.issues.map((i) => `${i.pos.line}:${i.pos.column} ${i.message}`),
      ["6:8 `vpc: no` is a boolean (false) to Kubernetes; quote it ('no')"],
    );
    const key = await withGateway({
      text: SEED_GATEWAY.replace('  lanIp: 10.0.1.254', '  lanIp: 10.0.1.254\n  on: 1'),
    });
    assert.match(key.issues[0]!.message, /unknown field .*YAML 1\.1 reads the key `on` as true; quote it/);
    assert.equal(key.issues[0]!.pos.line, 9);
  });

  it('YAML 1.1 octal: a port written 0755 is 493 to Kubernetes, refused', async () => {
    const { issues } = await withGateway({ text: SEED_GATEWAY.replace('internalPort: 80', 'internalPort: 0755') });
    assert.deepEqual(
      issues.map((i) => `${i.pos.line}:${i.pos.column} ${i.field}: ${i.message}`),
      [
        '22:21 spec.dnatRules[0].internalPort: `internalPort: 0755` is the octal number 493 to Kubernetes (YAML 1.1 reads a leading 0 as octal); write the port without the leading 0',
      ],
    );
    // quoted, Kube-OVN hands '0755' to iptables, which reads it as octal too
    const quoted = await withGateway({ text: SEED_GATEWAY.replace('internalPort: 80', "internalPort: '0755'") });
    assert.deepEqual(
      quoted.issues.map((i) => i.message),
      ['must be written without a leading 0: iptables reads "0755" as an octal number'],
    );
    // hexadecimal and underscores are unambiguous: 0x1F90 and 8_080 are 8080, as kubectl reads them
    const hex = await withGateway({
      text: SEED_GATEWAY.replace('externalPort: 8888', 'externalPort: 0x1F90').replace(
        'internalPort: 80',
        'internalPort: 8_080',
      ),
    });
    assert.deepEqual(hex.issues, []);
    assert.deepEqual(
      [
        hex.desired.gateways.get('ngw')!.dnats[0]!.externalPort,
        hex.desired.gateways.get('ngw')!.dnats[0]!.internalPort,
      ],
      [8080, 8080],
    );
  });

  it('what go-yaml leaves strings stays a string: times, dates, and booleans kubectl takes as booleans', async () => {
    const files = (await seedFiles()).map((f) => {
      if (f.path === '10-vpc.yaml')
        return {
          ...f,
          text: f.text.replace(
            'name: test-vpc-1',
            "name: test-vpc-1\n  labels:\n    window: 1:20\n    since: 2024-01-31\n    'on': 'yes'",
          ),
        };
      if (f.path === '20-subnet.yaml') return { ...f, text: `${f.text}  natOutgoing: yes\n  private: off\n` };
      return f;
    });
    const { issues } = validateManifests(files);
    assert.deepEqual(issues.map(formatIssue), []);
  });
});
