// Where things are in a file: syntax errors, and where a field, key or scalar of a document was
// written (following aliases and merge keys).
import {
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  type Alias,
  type Document,
  type Node,
  type Scalar,
} from 'yaml';
import type { ManifestIssue, SourcePos } from '../issues.ts';
import type { FieldPath, ScalarSource } from '../load.ts';

// ---- syntax errors -----------------------------------------------------------------------------

function kindOf(doc: Document): string {
  const contents = doc.contents;
  if (isMap(contents)) {
    const kind = contents.get('kind');
    if (typeof kind === 'string') return kind;
  }
  return '-';
}

/**
 * yaml reports an over-indented line as an error at the *previous* key ("nested mappings are not
 * allowed in compact mappings"). People look for the line they mis-indented, so point at it.
 */
export function syntaxIssues(
  doc: Document,
  file: string,
  lines: string[],
  pos: (o: number) => SourcePos,
): ManifestIssue[] {
  const seen = new Set<number>();
  const out: ManifestIssue[] = [];
  const resource = kindOf(doc) === '-' ? '-' : `${kindOf(doc)}/?`;
  for (const err of doc.errors) {
    const at = pos(err.pos[0]);
    if (err.code === 'BLOCK_AS_IMPLICIT_KEY' || err.code === 'MULTILINE_IMPLICIT_KEY') {
      const bad = nextContentLine(lines, at.line);
      if (bad === undefined || seen.has(bad.line)) continue;
      seen.add(bad.line);
      const keyLine = lines[at.line - 1] ?? '';
      const key = /^\s*-?\s*([^:#]+):/.exec(keyLine)?.[1]?.trim() ?? 'the line above';
      out.push({
        pos: { file, line: bad.line, column: bad.column },
        resource,
        field: '(yaml)',
        message:
          `bad indentation: this line is indented deeper than "${key}" on line ${at.line}, ` +
          `so YAML would read it as part of that value; indent it like its sibling keys (or add the missing parent key)`,
        unattributed: true,
      });
      continue;
    }
    if (seen.has(at.line)) continue;
    seen.add(at.line);
    out.push({
      pos: at,
      resource,
      field: '(yaml)',
      message: err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      unattributed: true,
    });
  }
  return out;
}

function nextContentLine(lines: string[], afterLine: number): { line: number; column: number } | undefined {
  for (let i = afterLine; i < lines.length; i++) {
    const text = lines[i]!;
    const col = text.search(/\S/);
    if (col >= 0 && text[col] !== '#') return { line: i + 1, column: col + 1 };
  }
  return undefined;
}

// ---- positions of fields -------------------------------------------------------------------------

export function nodeStart(node: unknown): number | undefined {
  if (node && typeof node === 'object' && 'range' in node) {
    const range = (node as Node).range;
    if (range) return range[0];
  }
  return undefined;
}

/** A merge key (`<<`): the `yaml` library reads its key as a symbol. */
export const isMergePair = (pair: unknown): boolean =>
  isPair(pair) && isScalar(pair.key) && typeof pair.key.value === 'symbol';

/** A key as the value it became: a JavaScript object's keys are strings (`on:` is "true"). */
const keyMatches = (key: unknown, seg: string | number): boolean =>
  isScalar(key) && typeof key.value !== 'symbol' && (key.value === seg || String(key.value) === String(seg));

/**
 * The pair for `seg` in a mapping: its own, else one a merge key (`<<`) brings in, in YAML's
 * order (the mapping's own keys win, then earlier merge sources). `via` is the alias of the
 * merge source it came through: a merged field is reported at the `<<: *alias` of the mapping
 * the path names, not inside another resource's anchor.
 */
function pairIn(
  map: Node,
  seg: string | number,
  targets: Map<Alias, Node>,
  seen = new Set<Node>(),
): { value: unknown; key: unknown; via?: Node } | undefined {
  if (!isMap(map) || seen.has(map)) return undefined;
  seen.add(map);
  const own = map.items.find((p) => !isMergePair(p) && keyMatches(p.key, seg));
  if (own) return { value: own.value, key: own.key };
  for (const pair of map.items) {
    if (!isMergePair(pair)) continue;
    const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
    for (const src of sources) {
      const resolved = isAlias(src) ? targets.get(src) : src;
      if (!isNode(resolved)) continue;
      const found = pairIn(resolved, seg, targets, seen);
      // the alias written in this mapping: `<<: *a`, or the item of `<<: [*a, *b]`
      if (found) return { ...found, via: isSeq(pair.value) && isNode(src) ? src : (pair.value as Node) };
    }
  }
  return undefined;
}

export function findNode(doc: Document, path: FieldPath, targets: Map<Alias, Node>): { offset: number; node: unknown } {
  let node: unknown = doc.contents;
  let offset = nodeStart(node) ?? 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = pairIn(node, seg, targets);
      if (!pair) break;
      if (pair.via) {
        offset = nodeStart(pair.via) ?? offset;
        node = undefined; // the rest of the path lives in the merge source
        break;
      }
      offset = nodeStart(pair.value) ?? nodeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      offset = nodeStart(item) ?? offset;
      node = item;
    } else {
      break; // a scalar, or an alias: reported where the alias is written
    }
  }
  return { offset, node };
}

/**
 * The node at `path`, following aliases (for keys and scalars, which live where the node is
 * written, unlike findNode's positions, which stop where an alias is written).
 */
function nodeAt(doc: Document, path: FieldPath, targets: Map<Alias, Node>): unknown {
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (isAlias(node)) node = targets.get(node);
    if (isMap(node)) node = pairIn(node, seg, targets)?.value;
    else if (isSeq(node) && typeof seg === 'number') node = node.items[seg];
    else return undefined;
  }
  return isAlias(node) ? targets.get(node) : node;
}

export function findKeyOffset(doc: Document, path: FieldPath, key: string, targets: Map<Alias, Node>): number {
  const here = findNode(doc, path, targets);
  if (isMap(here.node)) {
    const pair = pairIn(here.node, key, targets);
    const offset = pair?.via ? nodeStart(pair.via) : nodeStart(pair?.key);
    if (offset !== undefined) return offset;
  }
  return here.offset;
}

export function scalarAt(doc: Document, path: FieldPath, targets: Map<Alias, Node>): ScalarSource | undefined {
  if (path.length === 0) return undefined;
  const parent = nodeAt(doc, path.slice(0, -1), targets);
  const last = path[path.length - 1]!;
  let node: unknown;
  if (typeof last === 'number') node = isSeq(parent) ? parent.items[last] : undefined;
  else node = isMap(parent) ? pairIn(parent, last, targets)?.value : undefined;
  if (isAlias(node)) node = targets.get(node);
  if (!isScalar(node)) return undefined;
  const scalar = node as Scalar;
  const plain = scalar.type === 'PLAIN';
  return {
    source: plain && typeof scalar.source === 'string' ? scalar.source : String(scalar.value),
    value: scalar.value,
    plain,
  };
}

export function keySource(doc: Document, path: FieldPath, key: string, targets: Map<Alias, Node>): string | undefined {
  const map = nodeAt(doc, path, targets);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => !isMergePair(p) && keyMatches(p.key, key));
  const k = pair?.key;
  if (!isScalar(k)) return undefined;
  return typeof k.source === 'string' ? k.source : String(k.value);
}
