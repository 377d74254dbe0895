// YAML manifests -> plain values that remember where every field came from.
// Pure: the caller supplies file names and texts (from a directory or a Git commit).
import { LineCounter, parseAllDocuments, isAlias, isMap, isSeq, isScalar, isPair, type Document, type Node, type Scalar } from 'yaml';
import type { ManifestIssue, SourcePos } from './issues.ts';

export type FieldPath = readonly (string | number)[];

export interface ManifestFile {
  /** the name errors show: a path as the user gave it, or a repository path */
  path: string;
  text: string;
}

/** What a scalar was written as, for messages about how YAML read it. */
export interface ScalarSource {
  /** the text as written (for a plain scalar, exactly; else its value) */
  source: string;
  value: unknown;
  /** unquoted: YAML's rules turned the text into `value` */
  plain: boolean;
}

export interface LoadedDoc {
  file: string;
  value: unknown;
  /** where a field's value starts; falls back to the nearest existing parent */
  locate(path: FieldPath): SourcePos;
  /** where a mapping key starts (for unknown fields) */
  locateKey(path: FieldPath, key: string): SourcePos;
  /** the scalar at exactly `path`, if it is one */
  scalarAt(path: FieldPath): ScalarSource | undefined;
  /** how the key that became `key` (a string) in the mapping at `path` was written */
  keySource(path: FieldPath, key: string): string | undefined;
}

export interface LoadResult {
  docs: LoadedDoc[];
  issues: ManifestIssue[];
}

export function isManifestFileName(name: string): boolean {
  return /\.ya?ml$/i.test(name);
}

export function loadManifests(files: readonly ManifestFile[]): LoadResult {
  const docs: LoadedDoc[] = [];
  const issues: ManifestIssue[] = [];
  for (const file of files) {
    const lineCounter = new LineCounter();
    const parsed = parseAllDocuments(file.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
    const list = Array.isArray(parsed) ? parsed : [];
    const lines = file.text.split('\n');
    const pos = (offset: number): SourcePos => {
      const { line, col } = lineCounter.linePos(offset);
      return { file: file.path, line, column: col };
    };
    for (const doc of list) {
      if (doc.errors.length > 0) {
        issues.push(...syntaxIssues(doc, file.path, lines, pos));
        continue;
      }
      // an empty document: only comments, or a trailing ---
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
      docs.push({
        file: file.path,
        value: doc.toJS({ maxAliasCount: 100 }),
        locate: (path) => pos(findNode(doc, path).offset),
        locateKey: (path, key) => pos(findKeyOffset(doc, path, key)),
        scalarAt: (path) => scalarAt(doc, path),
        keySource: (path, key) => keySource(doc, path, key),
      });
    }
  }
  return { docs, issues };
}

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
function syntaxIssues(doc: Document, file: string, lines: string[], pos: (o: number) => SourcePos): ManifestIssue[] {
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
        message: `bad indentation: this line is indented deeper than "${key}" on line ${at.line}, ` +
          `so YAML would read it as part of that value; indent it like its sibling keys (or add the missing parent key)`,
        unattributed: true,
      });
      continue;
    }
    if (seen.has(at.line)) continue;
    seen.add(at.line);
    out.push({ pos: at, resource, field: '(yaml)', message: err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''), unattributed: true });
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

function nodeStart(node: unknown): number | undefined {
  if (node && typeof node === 'object' && 'range' in node) {
    const range = (node as Node).range;
    if (range) return range[0];
  }
  return undefined;
}

function findNode(doc: Document, path: FieldPath): { offset: number } {
  let node: unknown = doc.contents;
  let offset = nodeStart(node) ?? 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (!pair) break;
      offset = nodeStart(pair.value) ?? nodeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      offset = nodeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return { offset };
}

function findKeyOffset(doc: Document, path: FieldPath, key: string): number {
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (isMap(node)) node = node.items.find((p) => isScalar(p.key) && p.key.value === seg)?.value;
    else if (isSeq(node) && typeof seg === 'number') node = node.items[seg];
    else break;
  }
  if (isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
    const offset = nodeStart(pair?.key);
    if (offset !== undefined) return offset;
  }
  return findNode(doc, path).offset;
}

/** The node at `path`, following aliases. */
function nodeAt(doc: Document, path: FieldPath): unknown {
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) node = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg))?.value;
    else if (isSeq(node) && typeof seg === 'number') node = node.items[seg];
    else return undefined;
  }
  return isAlias(node) ? node.resolve(doc) : node;
}

function scalarAt(doc: Document, path: FieldPath): ScalarSource | undefined {
  const node = nodeAt(doc, path);
  if (!isScalar(node)) return undefined;
  const scalar = node as Scalar;
  const plain = scalar.type === 'PLAIN';
  return { source: plain && typeof scalar.source === 'string' ? scalar.source : String(scalar.value), value: scalar.value, plain };
}

function keySource(doc: Document, path: FieldPath, key: string): string | undefined {
  const map = nodeAt(doc, path);
  if (!isMap(map)) return undefined;
  const k = map.items.find((p) => isScalar(p.key) && String(p.key.value) === key)?.key;
  if (!isScalar(k)) return undefined;
  return typeof k.source === 'string' ? k.source : String(k.value);
}
