// Property-based: generated and mutated manifests never make the loader or the validator throw,
// every issue is inside its file, and whatever validates compiles and plans without throwing.
// And the loader's two readers agree: js-yaml first (fast, no positions) gives the same values
// and the same issues, at the same lines, as the `yaml` library alone.
//
//   NATOPS_FUZZ_RUNS=100000 node --import tsx --test test/unit/manifests-fuzz.test.ts   # more cases
//   NATOPS_FUZZ_SEED=<seed> NATOPS_FUZZ_PATH=<path> node --import tsx --test test/unit/manifests-fuzz.test.ts
//                                                     # replays a failure (the failure prints both)
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { compileGateway, emptyGatewayState } from '../../dataplane/compile.ts';
import { changeSetCommands, restorePayload } from '../../dataplane/commands.ts';
import { diffStates } from '../../dataplane/diff.ts';
import { changedParts, partTarget, GATEWAY_PARTS } from '../../dataplane/parts.ts';
import { planGateways } from '../../dataplane/gateway-plan.ts';
import { renderGatewayPlan } from '../../dataplane/plan-text.ts';
import { formatIssue, type ManifestIssue } from '../../gitops/manifests/issues.ts';
import { loadManifests, type LoadOptions, type ManifestFile } from '../../gitops/manifests/load.ts';
import { validateManifests } from '../../gitops/manifests/validate.ts';
import { networkModel } from '../../gitops/manifests/network.ts';
import { SEED_DIR, SEED_VERBATIM } from '../helpers/manifests.ts';

const RUNS = Number(process.env.NATOPS_FUZZ_RUNS ?? 1500);
const SEED = process.env.NATOPS_FUZZ_SEED === undefined ? undefined : Number(process.env.NATOPS_FUZZ_SEED);
const PATH = process.env.NATOPS_FUZZ_PATH;

const SEED_NAMES = ['00-config.yaml', '10-vpc.yaml', '20-subnet.yaml', '30-nat-gateway.yaml'];
const SEED_TEXTS = await Promise.all(SEED_NAMES.map((n) => readFile(join(SEED_DIR, n), 'utf8')));
const VERBATIM = await readFile(SEED_VERBATIM, 'utf8');

// ---- generated gateways: mostly valid, so compiling and planning get exercised -----------------

const host = (prefix: string, from: number, to: number) =>
  fc.integer({ min: from, max: to }).map((n) => `${prefix}.${n}`);
const eipAddr = host('192.168.0', 100, 120);
const internal = host('10.0.1', 2, 30);
const portArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 1, max: 65535 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 65535 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom(0, 70000, '08', 'http') },
);

/** A gateway of the seed's VPC; the odd values and rule conflicts are rare enough that most validate. */
const gatewayArb = fc
  .record({
    name: fc.constantFrom('ngw', 'gw2', 'edge'),
    lanIp: fc.oneof(
      { weight: 9, arbitrary: host('10.0.1', 200, 254) },
      { weight: 1, arbitrary: fc.constant('10.0.1.1') },
    ),
    eips: fc.uniqueArray(eipAddr, { minLength: 1, maxLength: 4 }),
    fips: fc.uniqueArray(internal, { maxLength: 3 }),
    dnats: fc.array(
      fc.record({
        e: fc.nat(),
        externalPort: portArb,
        protocol: fc.constantFrom('tcp', 'udp', 'TCP'),
        internalIp: internal,
        internalPort: portArb,
      }),
      { maxLength: 6 },
    ),
    snats: fc.uniqueArray(
      fc.record({
        e: fc.nat(),
        internalCIDR: fc.constantFrom(
          '10.0.1.0/24',
          '10.0.1.0/25',
          '10.0.1.128/26',
          '10.0.0.0/16',
          '0.0.0.0/0',
          '10.0.2.0/24',
        ),
      }),
      { maxLength: 3, selector: (s) => s.internalCIDR },
    ),
  })
  .map((g) => {
    // floating IPs take the last EIPs for themselves; port forwards and SNAT share the others
    const fips = g.fips
      .slice(0, g.eips.length - 1)
      .map((internalIp, i) => ({ eip: g.eips[g.eips.length - 1 - i]!, internalIp }));
    const shared = g.eips.slice(0, g.eips.length - fips.length);
    const pick = (i: number) => shared[i % shared.length]!;
    const seen = new Set<string>();
    const dnats = g.dnats
      .map((d) => ({
        eip: pick(d.e),
        externalPort: d.externalPort,
        protocol: d.protocol,
        internalIp: d.internalIp,
        internalPort: d.internalPort,
      }))
      .filter((d) => {
        const key = `${d.eip} ${d.protocol.toLowerCase()} ${Number(d.externalPort)}`;
        return !seen.has(key) && seen.add(key);
      });
    return stringify({
      apiVersion: 'kubeovn.io/v1',
      kind: 'VpcNatGateway',
      metadata: { name: g.name },
      spec: {
        vpc: 'test-vpc-1',
        subnet: 'sn',
        lanIp: g.lanIp,
        eips: g.eips.map((e) => ({ eipCIDR: `${e}/24`, gateway: '192.168.0.254' })),
        floatingIpRules: fips,
        dnatRules: dnats,
        snatRules: g.snats.map((s) => ({ eip: pick(s.e), internalCIDR: s.internalCIDR })),
      },
    });
  });

// ---- mutations of a text ------------------------------------------------------------------------

const ODD_SCALARS = [
  '',
  '~',
  'null',
  'true',
  'false',
  'yes',
  'no',
  'on',
  'off',
  'y',
  'n',
  'True',
  '0755',
  '1.5',
  '-1',
  '+1',
  '0',
  '0.0',
  '08',
  '0x1F90',
  '0b101',
  '1_000',
  '1:20',
  '2024-01-31',
  '.inf',
  '-.nan',
  '1e400',
  '-0',
  '99999999999999999999',
  '"quoted"',
  "'single'",
  '"unterminated',
  '[a, b]',
  '{a: 1}',
  '[',
  '*a',
  '&a x',
  '*web',
  '!!binary aGk=',
  '!!str 5',
  '!!int x',
  '!custom y',
  '|',
  '>-',
  '|\n  block',
  '<<: *a',
  'a: b: c',
  '10.0.1.300',
  '10.0.1.0/33',
  '192.168.0.112',
  '10.0.1.5; rm -rf /',
  '$(reboot)',
  'x'.repeat(300),
  'ünïcödé',
  '# comment',
  '\u0000',
  '\u0007',
  '\uFFFD',
  '\uFEFF',
  '\u0085',
  '\u2028',
  '\uD800',
  '\t',
  'VpcNatGatway',
  'kubeovn.io/v2',
  'List',
  '{:}',
  '[:]',
  '[a, :]',
  '{a: 1, :}',
  '{? a}',
];

const oddScalar = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ODD_SCALARS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
);

const INSERTS = [
  '---',
  '...',
  '- x',
  '? a',
  '<<: *a',
  '%YAML 1.2',
  '#',
  'kind: VpcNatGateway',
  'metadata: {}',
  'apiVersion: v1',
  'a: &a {x: 1}',
  '  <<: [*a, *a]',
  '[[[[',
  '}',
  '"',
  "'",
  '\t- tab',
];

type LineOp =
  | { op: 'delete' | 'duplicate'; at: number }
  | { op: 'indent'; at: number; by: number }
  | { op: 'scalar'; at: number; value: string }
  | { op: 'anchor'; at: number; to: number; name: string; merge: boolean }
  | { op: 'insert'; at: number; text: string }
  | { op: 'swap'; at: number; to: number }
  | { op: 'chars'; at: number; col: number; text: string }
  | { op: 'deep'; at: number; depth: number; how: '[' | '{a: ' | '- ' | 'k: ' };

const lineOp: fc.Arbitrary<LineOp> = fc.oneof(
  fc.record({ op: fc.constantFrom('delete' as const, 'duplicate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ op: fc.constant('scalar' as const), at: fc.nat(), value: oddScalar }),
  fc.record({
    op: fc.constant('anchor' as const),
    at: fc.nat(),
    to: fc.nat(),
    name: fc.constantFrom('a', 'web', 'b1'),
    merge: fc.boolean(),
  }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...INSERTS), fc.string({ maxLength: 20 })),
  }),
  fc.record({ op: fc.constant('swap' as const), at: fc.nat(), to: fc.nat() }),
  fc.record({
    op: fc.constant('deep' as const),
    at: fc.nat(),
    depth: fc.integer({ min: 1, max: 400 }),
    how: fc.constantFrom('[' as const, '{a: ' as const, '- ' as const, 'k: ' as const),
  }),
  fc.record({
    op: fc.constant('chars' as const),
    at: fc.nat(),
    col: fc.nat(),
    text: fc.oneof(
      fc.string({ unit: 'binary', maxLength: 4 }),
      fc.constantFrom('\u0000', '\r', '\uFEFF', '\uFFFD', ':', ' ', '&', '*', '-'),
    ),
  }),
);

function applyLineOp(lines: string[], o: LineOp): string[] {
  const out = [...lines];
  if (out.length === 0) out.push('');
  const at = o.at % out.length;
  const line = out[at]!;
  switch (o.op) {
    case 'delete':
      out.splice(at, 1);
      break;
    case 'duplicate':
      out.splice(at, 0, line);
      break;
    case 'indent':
      out[at] = o.by >= 0 ? ' '.repeat(o.by) + line : line.replace(new RegExp(`^ {0,${-o.by}}`), '');
      break;
    case 'scalar': {
      const m = /^(\s*(?:- )?[^:#]*:\s)(.*)$/.exec(line);
      out[at] = m ? `${m[1]}${o.value}` : `${line.replace(/\S.*$/, '')}${o.value}`;
      break;
    }
    case 'anchor': {
      // put &name on one value and *name (or <<: *name) at another line's value
      const m = /^(\s*(?:- )?[^:#]*:\s?)(.*)$/.exec(line);
      if (m) out[at] = `${m[1]}&${o.name} ${m[2]}`;
      const to = o.to % out.length;
      const t = /^(\s*(?:- )?)([^:#]*):/.exec(out[to]!);
      if (t) out[to] = o.merge ? `${t[1]}<<: *${o.name}` : `${t[1]}${t[2]}: *${o.name}`;
      break;
    }
    case 'insert':
      out.splice(at, 0, o.text);
      break;
    case 'swap': {
      const to = o.to % out.length;
      out[at] = out[to]!;
      out[to] = line;
      break;
    }
    case 'deep':
      out.splice(at, 0, `${o.how === '[' || o.how === '{a: ' ? 'deep: ' : ''}${o.how.repeat(o.depth)}x`);
      break;
    case 'chars': {
      const col = o.col % (line.length + 1);
      out[at] = line.slice(0, col) + o.text + line.slice(col);
      break;
    }
  }
  return out;
}

type Eol = 'lf' | 'crlf' | 'cr' | 'mixed';
interface TextMutation {
  ops: LineOp[];
  bom: boolean;
  eol: Eol;
  bytes: { at: number; value: number }[] | undefined;
}

const textMutation: fc.Arbitrary<TextMutation> = fc.record({
  ops: fc.array(lineOp, { maxLength: 4 }),
  bom: fc.boolean(),
  eol: fc.constantFrom<Eol>('lf', 'lf', 'lf', 'crlf', 'cr', 'mixed'),
  bytes: fc
    .option(fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 3 }), {
      freq: 4,
    })
    .map((b) => b ?? undefined),
});

function mutate(path: string, text: string, m: TextMutation): ManifestFile {
  let lines = text.split('\n');
  for (const o of m.ops) lines = applyLineOp(lines, o);
  let out =
    m.eol === 'lf'
      ? lines.join('\n')
      : m.eol === 'crlf'
        ? lines.join('\r\n')
        : m.eol === 'cr'
          ? lines.join('\r')
          : lines.map((l, i) => l + (i % 2 ? '\r\n' : '\n')).join('');
  if (m.bom) out = `\uFEFF${out}`;
  if (!m.bytes) return { path, text: out };
  // as a caller reads a file: bytes, and the text a lenient UTF-8 decoder makes of them
  const bytes = Buffer.from(out, 'utf8');
  for (const b of m.bytes) if (bytes.length) bytes[b.at % bytes.length] = b.value;
  return { path, text: bytes.toString('utf8'), bytes };
}

/** Lines as an editor shows them (ended by LF, CR LF or a lone CR; no byte-order mark), of the text natops read. */
function editorLines(file: ManifestFile): string[] {
  let text = file.text;
  if (
    file.bytes &&
    file.bytes.length >= 2 &&
    ((file.bytes[0] === 0xff && file.bytes[1] === 0xfe) || (file.bytes[0] === 0xfe && file.bytes[1] === 0xff))
  ) {
    text = new TextDecoder(file.bytes[0] === 0xff ? 'utf-16le' : 'utf-16be').decode(file.bytes);
  }
  return text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
}

const lineCount = (file: ManifestFile) => editorLines(file).length;

// ---- the properties ------------------------------------------------------------------------------

function checkPositions(files: ManifestFile[], issues: ManifestIssue[]): void {
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const issue of issues) {
    const file = byPath.get(issue.pos.file);
    assert.ok(file, `issue names a file that was not given: ${formatIssue(issue)}`);
    const { line, column } = issue.pos;
    assert.ok(
      Number.isInteger(line) && line >= 1 && line <= lineCount(file),
      `line outside the file (${lineCount(file)} lines): ${formatIssue(issue)}`,
    );
    assert.ok(Number.isInteger(column) && column >= 1, `column < 1: ${formatIssue(issue)}`);
    const lineText = editorLines(file)[line - 1] ?? '';
    assert.ok(
      column <= lineText.length + 1,
      `column after the end of line ${line} (${lineText.length} characters): ${formatIssue(issue)}`,
    );
    assert.ok(
      issue.message.length > 0 && issue.resource.length > 0 && issue.field.length > 0,
      `empty part: ${JSON.stringify(issue)}`,
    );
  }
}

/** Whatever validated is compiled, diffed from empty and rendered, as the planner and handlers would. */
function compileAndPlan(result: ReturnType<typeof validateManifests>): void {
  const { desired } = result;
  for (const spec of desired.gateways.values()) {
    const state = compileGateway(spec);
    const changes = diffStates(emptyGatewayState(), state);
    changeSetCommands(changes);
    restorePayload(changes.chains);
    renderGatewayPlan(spec.name, 'create', changes);
    changedParts(undefined, spec);
    for (const part of GATEWAY_PARTS) partTarget(part, emptyGatewayState(), state);
  }
  planGateways(new Map(), desired.gateways);
  if (result.issues.length === 0) networkModel(desired);
}

function property(files: ManifestFile[]): void {
  const result = validateManifests(files);
  checkPositions(files, result.issues);
  compileAndPlan(result);
  sameAsPositionsFirst(files, result);
}

/** What the fast reader made of `files` is what the `yaml` library alone makes of them. */
function sameAsPositionsFirst(files: ManifestFile[], result: ReturnType<typeof validateManifests>): void {
  const slow = validateManifests(files, { positionsFirst: true });
  assert.deepEqual(result.issues.map(formatIssue), slow.issues.map(formatIssue));
  assert.deepEqual(result.ignored, slow.ignored, 'ignored documents at the same places');
  assert.deepEqual(result.desired, slow.desired);
  const values = (o: LoadOptions) => loadManifests(files, o).docs.map((d) => d.value);
  assert.deepEqual(values({}), values({ positionsFirst: true }));
}

/** fc.assert, with the error and how to replay the failure (this test only) in the message. */
function check<T>(test: string, prop: fc.IProperty<T>): void {
  const details = fc.check(prop, {
    numRuns: RUNS,
    includeErrorInReport: true,
    ...(SEED === undefined ? {} : { seed: SEED }),
    ...(PATH === undefined ? {} : { path: PATH, endOnFailure: true }),
  });
  if (!details.failed) return;
  const replay =
    `NATOPS_FUZZ_SEED=${details.seed} NATOPS_FUZZ_PATH=${JSON.stringify(details.counterexamplePath ?? '')} ` +
    `node --import tsx --test --test-name-pattern=${JSON.stringify(test)} test/unit/manifests-fuzz.test.ts`;
  throw new Error(`${fc.defaultReportMessage(details)}\n\nReplay this failure with:\n  ${replay}`);
}

describe('manifests under fuzzing', () => {
  const MUTATED = 'mutated seed manifests: no throw, issues inside their files, what validates compiles and plans';
  it(MUTATED, () => {
    check(
      MUTATED,
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: SEED_NAMES.length - 1 }), textMutation), {
          minLength: 1,
          maxLength: 3,
        }),
        (mutations) => {
          const texts = [...SEED_TEXTS];
          const files: ManifestFile[] = SEED_NAMES.map((path, i) => ({ path, text: texts[i]! }));
          for (const [i, m] of mutations) files[i] = mutate(SEED_NAMES[i]!, files[i]!.text, m);
          property(files);
        },
      ),
    );
  });

  const GENERATED = 'generated gateways, mutated or not: the same, and most validate';
  it(GENERATED, () => {
    let validated = 0;
    let runs = 0;
    check(
      GENERATED,
      fc.property(gatewayArb, fc.option(textMutation, { freq: 2 }), fc.boolean(), (gateway, m, verbatim) => {
        runs++;
        const files: ManifestFile[] = SEED_NAMES.slice(0, 3).map((path, i) => ({ path, text: SEED_TEXTS[i]! }));
        files.push(m ? mutate('gw.yaml', gateway, m) : { path: 'gw.yaml', text: gateway });
        if (verbatim) files.push({ path: 'verbatim.yaml', text: VERBATIM });
        const result = validateManifests(files);
        checkPositions(files, result.issues);
        compileAndPlan(result);
        sameAsPositionsFirst(files, result);
        if (result.desired.gateways.size > 0) validated++;
      }),
    );
    // the generator must reach the compiler often enough to mean something
    if (SEED === undefined) assert.ok(validated > runs / 4, `only ${validated} of ${runs} generated cases validated`);
  });
});
