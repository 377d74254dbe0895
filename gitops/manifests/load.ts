// YAML manifests -> plain values that remember where every field came from.
// Pure: the caller supplies file names and texts (from a directory or a Git commit).
//
// Two readers: the `yaml` library, which keeps every node's position, and, first, js-yaml,
// about fifteen times faster and position-blind (readPlain below). A file js-yaml reads is
// given positions only when something asks for one (an issue to report): the `yaml` library
// then reads that file. js-yaml is only trusted where the two agree: its scalars are resolved
// by the `yaml` library's own YAML 1.1 tags, and a file with anything where they could differ
// (anchors, tags, merge keys, tabs, complex or empty keys, a value that goes on over lines, a
// scalar YAML 1.1 reads as other than it is written) goes to the `yaml` library alone; if they
// ever disagree all the same, the file fails loudly (ReadersDisagreeError) rather than quietly.
// test/unit/manifests-fuzz.test.ts holds them to the same values, issues and positions.
//
// Every input problem becomes a positioned issue, never an exception: a file too large, not
// UTF-8, binary, nested too deep, holding too many documents or an alias bomb; YAML syntax.
// Values are read the way kubectl reads them (sigs.k8s.io/yaml, that is go-yaml v2 and YAML 1.1
// rules): `yes`/`on`/`y` are booleans, `0755` is octal, `<<: *anchor` merges a mapping.
import { isDeepStrictEqual } from 'node:util';
import { FAILSAFE_SCHEMA, Type as PlainType, loadAll as loadPlain } from 'js-yaml';
import {
  Composer,
  LineCounter,
  Parser,
  Schema,
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
  type ScalarTag,
  type Tags,
} from 'yaml';
import { PermanentError } from '../../common/errors.ts';
import type { ManifestIssue, SourcePos } from './issues.ts';

export type FieldPath = readonly (string | number)[];

export interface ManifestFile {
  /** the name errors show: a path as the user gave it, or a repository path */
  path: string;
  /** the file's text; when `bytes` is given it is decoded from them instead */
  text: string;
  /**
   * The file's bytes, as read. Callers that have them should pass them: then a file that is not
   * UTF-8 is reported at its first bad byte (and UTF-16 with a byte-order mark is read, as
   * kubectl does). Without them, U+FFFD in `text` (what a lenient UTF-8 decoder puts in place of
   * a bad byte) is reported as "probably not UTF-8".
   */
  bytes?: Uint8Array;
  /** the file's size, when a source did not read a file over the limit (its text is then empty) */
  size?: number;
}

/** Limits on what one file may make natops do; each default fits any real repository. */
export interface LoadLimits {
  /** bytes per file (a Kubernetes object is at most 1.5 MiB in etcd; a file may hold several) */
  maxFileBytes: number;
  /** YAML documents per file */
  maxDocuments: number;
  /** nesting of mappings and sequences in a document, aliases expanded (manifests nest about 10 deep, CRD schemas 40) */
  maxDepth: number;
  /** nodes that aliases add to a document once expanded (go-yaml, so kubectl, stops alias bombs at about this size) */
  maxAliasExpansion: number;
}

export const DEFAULT_LOAD_LIMITS: Readonly<LoadLimits> = Object.freeze({
  maxFileBytes: 8 * 1024 * 1024,
  maxDocuments: 10_000,
  maxDepth: 100,
  maxAliasExpansion: 400_000,
});

export type LoadOptions = Partial<LoadLimits> & {
  /** read every file with the `yaml` library at once, never js-yaml first (to compare the two) */
  positionsFirst?: boolean;
};

/** What a scalar was written as, for messages about how YAML 1.1 read it. */
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

// go-yaml v2's YAML 1.1: booleans y/yes/on..., octal 0755, merge keys. It has no sexagesimal
// numbers (1:20 stays a string) and keeps timestamps as strings; yaml's 1.1 schema would not.
const DROPPED_TAGS = new Set([
  'tag:yaml.org,2002:timestamp',
  'tag:yaml.org,2002:omap',
  'tag:yaml.org,2002:pairs',
  'tag:yaml.org,2002:set',
]);
const kubectlTags = (tags: Tags): Tags =>
  tags.filter((t) => !(typeof t === 'object' && (DROPPED_TAGS.has(t.tag) || ('format' in t && t.format === 'TIME'))));

const YAML_OPTIONS = {
  version: '1.1',
  schema: 'yaml-1.1',
  customTags: kubectlTags,
  merge: true,
  uniqueKeys: true,
  prettyErrors: false,
  logLevel: 'error', // the YAML library's warnings (process.emitWarning) become issues or nothing
} as const;

export function loadManifests(files: readonly ManifestFile[], options: LoadOptions = {}): LoadResult {
  const { positionsFirst = false, ...given } = options;
  const limits: LoadLimits = { ...DEFAULT_LOAD_LIMITS, ...definedOnly(given) };
  const docs: LoadedDoc[] = [];
  const issues: ManifestIssue[] = [];
  for (const file of files) {
    try {
      loadFile(file, limits, positionsFirst, docs, issues);
    } catch (e) {
      // A bug of natops's or of the YAML library must still not look like a deleted gateway.
      issues.push(fileIssue(file.path, 1, 1, `could not be read: ${e instanceof Error ? e.message : String(e)}`));
    }
  }
  return { docs, issues };
}

function definedOnly(options: Partial<LoadLimits>): Partial<LoadLimits> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}

function fileIssue(file: string, line: number, column: number, message: string): ManifestIssue {
  return { pos: { file, line, column }, resource: '-', field: '(yaml)', message, unattributed: true };
}

function loadFile(
  file: ManifestFile,
  limits: LoadLimits,
  positionsFirst: boolean,
  docs: LoadedDoc[],
  issues: ManifestIssue[],
): void {
  const size = file.size ?? (file.bytes ? file.bytes.length : Buffer.byteLength(file.text, 'utf8'));
  if (size > limits.maxFileBytes) {
    issues.push(
      fileIssue(
        file.path,
        1,
        1,
        `is ${size} bytes, more than the ${limits.maxFileBytes} natops reads in one file (maxFileBytes)`,
      ),
    );
    return;
  }
  const decoded = decode(file);
  if ('line' in decoded) {
    issues.push(fileIssue(file.path, decoded.line, decoded.column, decoded.message));
    return;
  }
  // A byte-order mark is not part of the text (editors do not count it in columns), and a
  // line ends at CR LF or a lone CR as well as at LF, as in go-yaml. Neither change moves a column.
  const text = decoded.text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  // Lines counted from the text itself: the parser's own newline events miss some inside an
  // unterminated flow collection, which would put later issues on the wrong line.
  const lineCounter = new LineCounter();
  lineCounter.addNewLine(0);
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
  const pos = (offset: number): SourcePos => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: file.path, line, column: col };
  };
  const bad = firstUnreadable(text, !file.bytes);
  if (bad) {
    const at = lineColumn(text, bad.offset);
    issues.push(fileIssue(file.path, at.line, at.column, bad.message));
    return;
  }
  const tooDeep = prescan(text, limits);
  if (tooDeep) {
    const at = lineColumn(text, tooDeep.offset);
    issues.push(fileIssue(file.path, at.line, at.column, tooDeep.message));
    return;
  }

  const plain = positionsFirst ? undefined : readPlain(text, limits);
  if (!plain) {
    readWithPositions(file.path, text, limits, pos, docs, issues);
    return;
  }
  // Positions from the `yaml` library, read when first asked for (to report an issue); where a
  // document starts (what an ignored document is reported at) from the line scan.
  let positioned: LoadedDoc[] | undefined;
  const at = (i: number): LoadedDoc => {
    positioned ??= readPositioned(file.path, text, limits, pos, plain.values);
    return positioned[i]!;
  };
  plain.values.forEach((value, i) => {
    const start = plain.starts?.[i];
    docs.push({
      file: file.path,
      value,
      locate: (path) => (path.length === 0 && start !== undefined ? pos(start) : at(i).locate(path)),
      locateKey: (path, key) => at(i).locateKey(path, key),
      // a number or boolean here was written plain, as String(value) (readPlain refuses any other)
      scalarAt: (path) => {
        const v = valueAt(value, path);
        return typeof v === 'number' || typeof v === 'boolean'
          ? { source: String(v), value: v, plain: true }
          : at(i).scalarAt(path);
      },
      keySource: (path, key) => at(i).keySource(path, key),
    });
  });
}

/** A natops bug: js-yaml took a file the `yaml` library reads otherwise. Said, never papered over; no retry helps. */
export class ReadersDisagreeError extends PermanentError {
  constructor(readonly file: string) {
    super(
      `${file}: natops's two YAML readers (js-yaml, the yaml library) read this file differently; please report it with the file`,
    );
  }
}

/** The `yaml` library's documents of a file js-yaml read as `values`, which they must equal. */
function readPositioned(
  file: string,
  text: string,
  limits: LoadLimits,
  pos: (offset: number) => SourcePos,
  values: unknown[],
): LoadedDoc[] {
  const docs: LoadedDoc[] = [];
  const issues: ManifestIssue[] = [];
  readWithPositions(file, text, limits, pos, docs, issues);
  if (
    issues.length ||
    !isDeepStrictEqual(
      docs.map((d) => d.value),
      values,
    )
  )
    throw new ReadersDisagreeError(file);
  return docs;
}

/** The `yaml` library's reading of a file: every document with its nodes' positions, or its issues. */
function readWithPositions(
  file: string,
  text: string,
  limits: LoadLimits,
  pos: (offset: number) => SourcePos,
  docs: LoadedDoc[],
  issues: ManifestIssue[],
): void {
  const parser = new Parser();
  const composer = new Composer(YAML_OPTIONS);
  const lines = text.split('\n');
  for (const doc of composer.compose(parser.parse(text), true, text.length)) {
    if (doc.errors.length > 0) {
      issues.push(...syntaxIssues(doc, file, lines, pos));
      continue;
    }
    // an empty document: only comments, or a trailing ---
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    const shape = inspect(doc, limits);
    if (shape.problem) {
      const at = pos(shape.problem.offset);
      issues.push(fileIssue(file, at.line, at.column, shape.problem.message));
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: -1 }); // inspect() has bounded what aliases expand to
    } catch (e) {
      const at = pos(nodeStart(doc.contents) ?? 0);
      issues.push(
        fileIssue(file, at.line, at.column, `could not be read: ${e instanceof Error ? e.message : String(e)}`),
      );
      continue;
    }
    const targets = shape.targets;
    docs.push({
      file,
      value,
      locate: (path) => pos(findNode(doc, path, targets).offset),
      locateKey: (path, key) => pos(findKeyOffset(doc, path, key, targets)),
      scalarAt: (path) => scalarAt(doc, path, targets),
      keySource: (path, key) => keySource(doc, path, key, targets),
    });
  }
}

// ---- the fast reader ---------------------------------------------------------------------------

/**
 * What js-yaml and the `yaml` library could read differently, or what only the latter checks:
 * anchors and aliases (alias bombs), tags, merge keys, directives, tabs, YAML 1.1's other line
 * breaks, complex (`? `) and empty (`: `) keys.
 */
const NOT_PLAIN = /[&*!\t\x85\u2028\u2029]|<<|^%|(?:^|[\s{[,])[?:](?=[\s,\]}]|$)/m;
/** the `yaml` library refuses an implicit key longer than 1024 characters; js-yaml may not */
const LONG_LINE = 1000;

// The lines js-yaml reads: block mappings and sequences whose every value fits on its line (a
// plain scalar, a closed quoted one, a one-level flow collection). A quoted or plain scalar that
// goes on over lines, a block scalar (| >) or a document that is one scalar goes to the `yaml`
// library: js-yaml is more lenient with their indentation than it is (the fuzz test found one).
const KEY = /(?:[A-Za-z0-9_][A-Za-z0-9_./-]*|'[^']*'|"[^"\\]*")/.source;
const PLAIN = /(?:[A-Za-z0-9_./~+=$(^]|-(?=\S))(?:[^\s#:]|:(?=\S)|(?<=\S)#|\s+(?=[^\s#]))*/.source;
const VALUE = `(?:${PLAIN}|${/'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|\[[^[\]{}'"#]*\]|\{[^[\]{}'"#]*\}/.source})`;
const COMMENT = /(?: +#.*)?/.source;
const DOCUMENT_MARKER = /^(?:---|\.\.\.) *$/;
const BLANK_OR_COMMENT = /^ *(?:#.*)?$/;
const SIMPLE_LINE = new RegExp(
  `^(?: *(?:#.*)?|(?:---|\\.\\.\\.) *| *(?:- +)*${KEY}:(?: +${VALUE})?${COMMENT} *| *(?:- +)+${VALUE}${COMMENT} *)$`,
);

/** The `yaml` library's YAML 1.1 scalars (as kubectl reads them) for js-yaml: its plain scalars resolve alike. */
const PLAIN_SCALARS = (
  new Schema({ schema: 'yaml-1.1', customTags: kubectlTags, merge: true }).tags as (ScalarTag | { default?: unknown })[]
).filter((t): t is ScalarTag & { test: RegExp } => t.default === true && 'test' in t && t.test instanceof RegExp);

/** Set while js-yaml reads: a plain scalar was read as something other than it is written (`yes`, `0755`, `1.0`). */
let misread = false;
// One js-yaml type for all of them (js-yaml keeps one type per tag, and YAML 1.1 has four ints),
// trying them in the `yaml` library's order.
/** Whether any of them reads a plain scalar: one test for the many strings none of them reads. */
const ANY_PLAIN_SCALAR = new RegExp(PLAIN_SCALARS.map((tag) => `(?:${tag.test.source})`).join('|'));
const PLAIN_SCHEMA = FAILSAFE_SCHEMA.extend({
  implicit: [
    new PlainType('tag:natops,2026:yaml-1.1-plain-scalar', {
      kind: 'scalar',
      resolve: (source: string) => ANY_PLAIN_SCALAR.test(source),
      construct: (source: string) => {
        const tag = PLAIN_SCALARS.find((t) => t.test.test(source))!;
        const resolved: unknown = tag.resolve(source, () => (misread = true), { intAsBigInt: false });
        // (YAML 1.1's booleans come as Scalar nodes, to remember how they were written)
        const value = isScalar(resolved) ? resolved.value : resolved;
        // null from `null` or `~` would be the key '' to the `yaml` library and 'null' to js-yaml
        if (value === null ? source !== '' : typeof value !== 'string' && String(value) !== source) misread = true;
        return value;
      },
    }),
  ],
});

/**
 * The documents of a file read by js-yaml, or undefined when the `yaml` library must read it (it
 * reports what js-yaml refuses, and gives the positions of whatever the checks above exclude).
 */
function readPlain(text: string, limits: LoadLimits): { values: unknown[]; starts: number[] | undefined } | undefined {
  if (NOT_PLAIN.test(text)) return undefined;
  // Each line must be simple; on the way, where each document's first content line starts.
  const starts: number[] = [];
  let inDocument = false;
  for (let i = 0, nl = text.indexOf('\n'); i <= text.length; i = nl + 1, nl = text.indexOf('\n', i)) {
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(i, end);
    if (end - i > LONG_LINE || !SIMPLE_LINE.test(line)) return undefined;
    if (DOCUMENT_MARKER.test(line)) inDocument = false;
    else if (!inDocument && !BLANK_OR_COMMENT.test(line)) {
      inDocument = true;
      starts.push(i + line.search(/\S/));
    }
    if (nl < 0) break;
  }
  misread = false;
  let values: unknown[];
  try {
    values = loadPlain(text, null, { schema: PLAIN_SCHEMA });
  } catch {
    return undefined;
  }
  if (misread) return undefined;
  const docs = values.filter((v) => v !== null && v !== undefined);
  if (!docs.every((v) => depthBelow(v, limits.maxDepth))) return undefined;
  // Every document with content became one value, unless one of them was null (`~`): then the
  // starts cannot be paired with the values, and positions come from the `yaml` library.
  return { values: docs, starts: starts.length === docs.length ? starts : undefined };
}

/** Whether the collections in `value` nest fewer than `max` levels. */
function depthBelow(value: unknown, max: number): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (max <= 1) return false;
  const children = Array.isArray(value) ? value : Object.values(value);
  return children.every((c) => depthBelow(c, max - 1));
}

/** The value at `path` in a document's value (undefined when there is none). */
export function valueAt(value: unknown, path: FieldPath): unknown {
  let v = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

// ---- bytes and characters --------------------------------------------------------------------------

type Decoded = { text: string } | { line: number; column: number; message: string };

function decode(file: ManifestFile): Decoded {
  const bytes = file.bytes;
  if (!bytes) return { text: file.text };
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    const encoding = bytes[0] === 0xff ? 'utf-16le' : 'utf-16be';
    try {
      return { text: new TextDecoder(encoding, { fatal: true, ignoreBOM: true }).decode(bytes) };
    } catch {
      return {
        line: 1,
        column: 1,
        message: `starts with a ${encoding.toUpperCase()} byte-order mark but is not ${encoding.toUpperCase()} text; save it as UTF-8`,
      };
    }
  }
  const badAt = firstInvalidUtf8(bytes);
  if (badAt === undefined) return { text: new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes) };
  const before = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes.subarray(0, badAt)).replace(/^\uFEFF/, '');
  const { line, column } = lineColumn(before.replace(/\r\n?/g, '\n'), Infinity);
  const hex = bytes[badAt]!.toString(16).toUpperCase().padStart(2, '0');
  return {
    line,
    column,
    message: `is not UTF-8 text: byte 0x${hex} here is not part of a UTF-8 character; natops reads YAML as UTF-8`,
  };
}

/** The offset of the first byte that is not part of a well-formed UTF-8 sequence. */
function firstInvalidUtf8(b: Uint8Array): number | undefined {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      min = 0x10000;
    } else return i;
    if (i + n >= b.length) return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return undefined;
}

// YAML's printable characters (c-printable): tab, line breaks, and everything visible.
const NOT_PRINTABLE = /[^\t\n\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

function firstUnreadable(text: string, textOnly: boolean): { offset: number; message: string } | undefined {
  const m = NOT_PRINTABLE.exec(text);
  const replacement = textOnly ? text.indexOf('\uFFFD') : -1;
  if (replacement >= 0 && (!m || replacement < m.index)) {
    return {
      offset: replacement,
      message:
        'holds U+FFFD, the character a UTF-8 decoder puts in place of a bad byte: the file is probably not UTF-8; natops reads YAML as UTF-8',
    };
  }
  if (!m) return undefined;
  const code = m[0].codePointAt(0)!;
  const name = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  if (code === 0) return { offset: m.index, message: 'holds a NUL byte: a binary file, not YAML' };
  if (code >= 0xd800 && code <= 0xdfff)
    return { offset: m.index, message: `holds a lone surrogate ${name}: not valid Unicode text` };
  return {
    offset: m.index,
    message: `holds the control character ${name}, which YAML does not allow (kubectl rejects it too)`,
  };
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const upTo = text.slice(0, Math.min(offset, text.length));
  const lastNl = upTo.lastIndexOf('\n');
  let line = 1;
  for (let i = upTo.indexOf('\n'); i >= 0; i = upTo.indexOf('\n', i + 1)) line++;
  return { line, column: upTo.length - lastNl };
}

// ---- limits checked on the text, before the YAML parser sees it -----------------------------------

/**
 * The YAML parser's time and memory grow faster than linearly with nesting, and its composer
 * recurses, so a file nested absurdly deep (or holding a million `---`) is refused from its text.
 * The depth here is an upper bound of the real one (every indentation level counts as a mapping
 * and a sequence, every indicator on a line as a level); only a text whose bound exceeds
 * 2 * maxDepth + 16 is refused here. The exact depth is checked on the parsed documents.
 */
function prescan(text: string, limits: LoadLimits): { offset: number; message: string } | undefined {
  const guard = 2 * limits.maxDepth + 16;
  const tooDeep = (offset: number) => ({
    offset,
    message: `nests collections deeper than ${limits.maxDepth} levels (maxDepth)`,
  });
  let documents = 0; // `---` lines, and the document before the first one if it has content
  let flow = 0;
  let quote: '' | "'" | '"' = '';
  const indents: number[] = [];
  let blockScalarParent = -1; // indentation of the line that opened a block scalar, or -1
  let lineStart = 0;
  while (lineStart <= text.length) {
    let end = text.indexOf('\n', lineStart);
    if (end < 0) end = text.length;
    let indent = 0;
    while (lineStart + indent < end && text.charCodeAt(lineStart + indent) === 0x20) indent++;
    const blank = lineStart + indent >= end || text[lineStart + indent] === '#';
    const marker = text.startsWith('---', lineStart) && (end === lineStart + 3 || /[ \t]/.test(text[lineStart + 3]!));
    if (
      marker ||
      (text.startsWith('...', lineStart) && (end === lineStart + 3 || /[ \t]/.test(text[lineStart + 3]!)))
    ) {
      if (marker && ++documents > limits.maxDocuments) {
        return { offset: lineStart, message: `holds more than ${limits.maxDocuments} YAML documents (maxDocuments)` };
      }
      flow = 0;
      quote = '';
      indents.length = 0;
      blockScalarParent = -1;
    }
    if (documents === 0 && !blank && !marker && text[lineStart] !== '%') documents = 1;
    if (blockScalarParent >= 0) {
      if (blank || indent > blockScalarParent) {
        lineStart = end + 1;
        continue;
      }
      blockScalarParent = -1;
    }
    if (!blank && flow === 0 && quote === '') {
      while (indents.length && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
    }
    let indicators = 0;
    let lastSignificant = -1;
    let tokenStart = true;
    for (let i = lineStart + indent; i < end; i++) {
      const ch = text[i]!;
      if (quote) {
        if (quote === '"' && ch === '\\') i++;
        else if (ch === quote) {
          if (quote === "'" && text[i + 1] === "'") i++;
          else {
            quote = '';
            lastSignificant = i;
          }
        }
        tokenStart = false;
        continue;
      }
      const next = i + 1 < end ? text[i + 1]! : ' ';
      if (ch === '#' && tokenStart) break;
      if (ch === ' ' || ch === '\t') {
        tokenStart = true;
        continue;
      }
      lastSignificant = i;
      if ((ch === "'" || ch === '"') && tokenStart) {
        quote = ch;
        tokenStart = false;
        continue;
      }
      if ((ch === '[' || ch === '{') && (tokenStart || flow > 0)) {
        flow++;
        if (2 * indents.length + indicators + flow > guard) return tooDeep(i);
        tokenStart = true;
        continue;
      }
      if ((ch === ']' || ch === '}') && flow > 0) {
        flow--;
        tokenStart = false;
        continue;
      }
      if (flow > 0 && ch === ',') {
        tokenStart = true;
        continue;
      }
      if (flow === 0 && (((ch === '-' || ch === '?') && tokenStart) || ch === ':') && (next === ' ' || next === '\t')) {
        indicators++;
        if (2 * indents.length + indicators > guard) return tooDeep(i);
        tokenStart = true;
        continue;
      }
      tokenStart = false;
    }
    if (flow === 0 && quote === '' && lastSignificant >= 0) {
      const tail = text.slice(Math.max(lineStart, lastSignificant - 3), lastSignificant + 1);
      if (
        /(?:^|[\s:-])[|>][1-9+-]{0,2}$/.test(tail) ||
        (lastSignificant === lineStart + indent && /[|>]/.test(text[lastSignificant]!))
      )
        blockScalarParent = indent;
    }
    if (2 * indents.length + indicators + flow > guard) return tooDeep(lineStart + indent);
    lineStart = end + 1;
  }
  return undefined;
}

// ---- the parsed document: depth, aliases, merge keys --------------------------------------------

interface Shape {
  /** each alias node's anchored node */
  targets: Map<Alias, Node>;
  problem?: { offset: number; message: string };
}

function childrenOf(node: Node): Node[] {
  if (!isMap(node) && !isSeq(node)) return [];
  const out: Node[] = [];
  for (const item of node.items as unknown[]) {
    if (isPair(item)) {
      if (isNode(item.key)) out.push(item.key);
      if (isNode(item.value)) out.push(item.value);
    } else if (isNode(item)) out.push(item);
  }
  return out;
}

const isMergePair = (pair: unknown): boolean =>
  isPair(pair) && isScalar(pair.key) && typeof pair.key.value === 'symbol';

/**
 * Walks a document once, without recursion: resolves every alias (to the last node anchored with
 * its name before it, as YAML says), and checks nesting depth (aliases expanded), what aliases
 * add once expanded, aliases inside their own anchor, aliases without an anchor and merge keys
 * (`<<`) whose value is not a mapping or a list of mappings.
 */
function inspect(doc: Document, limits: LoadLimits): Shape {
  const targets = new Map<Alias, Node>();
  const root = doc.contents;
  if (!isNode(root)) return { targets };
  const anchors = new Map<string, Node>();
  const size = new Map<Node, number>();
  const height = new Map<Node, number>();
  const onPath = new Set<Node>();
  let added = 0;
  const fail = (node: Node, message: string): Shape => ({
    targets,
    problem: { offset: nodeStart(node) ?? 0, message },
  });

  type Frame = { node: Node; children: Node[]; next: number; depth: number };
  const stack: Frame[] = [];
  /** Visits a node; returns a problem, or undefined (collections are finished later). */
  const enter = (node: Node, depth: number): Shape | undefined => {
    if (node.anchor) anchors.set(node.anchor, node);
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (!target) return fail(node, `alias *${node.source} has no anchor &${node.source} before it`);
      if (onPath.has(target))
        return fail(node, `alias *${node.source} is inside the node anchored &${node.source}: it would contain itself`);
      targets.set(node, target);
      const s = size.get(target) ?? 1;
      const h = height.get(target) ?? 0;
      size.set(node, s);
      height.set(node, h);
      added += s - 1;
      if (added > limits.maxAliasExpansion) {
        return fail(
          node,
          `aliases in this document expand to more than ${limits.maxAliasExpansion} nodes (maxAliasExpansion): an alias bomb?`,
        );
      }
      if (depth - 1 + h > limits.maxDepth)
        return fail(node, `alias *${node.source} nests collections deeper than ${limits.maxDepth} levels (maxDepth)`);
      return undefined;
    }
    if (isMap(node) || isSeq(node)) {
      if (depth > limits.maxDepth)
        return fail(node, `nests collections deeper than ${limits.maxDepth} levels (maxDepth)`);
      onPath.add(node);
      stack.push({ node, children: childrenOf(node), next: 0, depth });
      return undefined;
    }
    size.set(node, 1);
    height.set(node, 0);
    return undefined;
  };

  const first = enter(root, 1);
  if (first) return first;
  while (stack.length) {
    const frame = stack[stack.length - 1]!;
    if (frame.next < frame.children.length) {
      const child = frame.children[frame.next++]!;
      const problem = enter(child, frame.depth + 1);
      if (problem) return problem;
      continue;
    }
    stack.pop();
    onPath.delete(frame.node);
    let s = 1;
    let h = 0;
    for (const c of frame.children) {
      s += size.get(c) ?? 1;
      h = Math.max(h, height.get(c) ?? 0);
    }
    size.set(frame.node, s);
    height.set(frame.node, h + 1);
    if (isMap(frame.node)) {
      // go-yaml (so kubectl) merges a mapping, an alias of one, or a list of those; nothing else
      const resolve = (n: unknown) => (isAlias(n) ? targets.get(n) : n);
      for (const pair of frame.node.items) {
        const key = resolve(pair.key);
        // sigs.k8s.io/yaml turns keys into JSON strings and refuses a mapping or list as a key
        if (isMap(key) || isSeq(key))
          return fail(pair.key as Node, 'a mapping key must be a scalar, not a mapping or a list');
        if (!isMergePair(pair)) continue;
        const value = pair.value;
        const ok = isMap(resolve(value)) || (isSeq(value) && value.items.every((item) => isMap(resolve(item))));
        if (!ok)
          return fail(
            isNode(value) ? value : (pair.key as Node),
            'a merge key (<<) takes a mapping, an alias of one, or a list of them',
          );
      }
    }
  }
  return { targets };
}

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

function nodeStart(node: unknown): number | undefined {
  if (node && typeof node === 'object' && 'range' in node) {
    const range = (node as Node).range;
    if (range) return range[0];
  }
  return undefined;
}

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

function findNode(doc: Document, path: FieldPath, targets: Map<Alias, Node>): { offset: number; node: unknown } {
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

/** The mapping at `path`, following aliases (for keys, which live where the mapping is written). */
function mappingAt(doc: Document, path: FieldPath, targets: Map<Alias, Node>): Node | undefined {
  let node: unknown = doc.contents;
  for (const seg of path) {
    if (isAlias(node)) node = targets.get(node);
    if (isMap(node)) node = pairIn(node, seg, targets)?.value;
    else if (isSeq(node) && typeof seg === 'number') node = node.items[seg];
    else return undefined;
  }
  if (isAlias(node)) node = targets.get(node);
  return isMap(node) ? node : undefined;
}

function findKeyOffset(doc: Document, path: FieldPath, key: string, targets: Map<Alias, Node>): number {
  const here = findNode(doc, path, targets);
  if (isMap(here.node)) {
    const pair = pairIn(here.node, key, targets);
    const offset = pair?.via ? nodeStart(pair.via) : nodeStart(pair?.key);
    if (offset !== undefined) return offset;
  }
  return here.offset;
}

function scalarAt(doc: Document, path: FieldPath, targets: Map<Alias, Node>): ScalarSource | undefined {
  if (path.length === 0) return undefined;
  const parent = path.slice(0, -1);
  const last = path[path.length - 1]!;
  let node: unknown;
  if (typeof last === 'number') {
    let seq: unknown = doc.contents;
    for (const seg of parent) {
      if (isAlias(seq)) seq = targets.get(seq);
      if (isMap(seq)) seq = pairIn(seq, seg, targets)?.value;
      else if (isSeq(seq) && typeof seg === 'number') seq = seq.items[seg];
      else return undefined;
    }
    if (isAlias(seq)) seq = targets.get(seq);
    node = isSeq(seq) ? seq.items[last] : undefined;
  } else {
    const map = mappingAt(doc, parent, targets);
    node = map ? pairIn(map, last, targets)?.value : undefined;
  }
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

function keySource(doc: Document, path: FieldPath, key: string, targets: Map<Alias, Node>): string | undefined {
  const map = mappingAt(doc, path, targets);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => !isMergePair(p) && keyMatches(p.key, key));
  const k = pair?.key;
  if (!isScalar(k)) return undefined;
  return typeof k.source === 'string' ? k.source : String(k.value);
}
