// YAML manifests -> plain values that remember where every field came from.
// Pure: the caller supplies file names and texts (from a directory or a Git commit).
//
// Two readers: the `yaml` library, which keeps every node's position, and, first, js-yaml,
// about fifteen times faster and position-blind (yaml/fast-reader.ts). A file js-yaml reads is
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
import { Composer, LineCounter, Parser, isScalar } from 'yaml';
import { PermanentError } from '../../common/errors.ts';
import type { ManifestIssue, SourcePos } from './issues.ts';
import type { FileLoad, ManifestCache } from './cache.ts';
import { decode, firstUnreadable, lineColumn } from './yaml/decode.ts';
import { readPlain } from './yaml/fast-reader.ts';
import { YAML_OPTIONS } from './yaml/kubectl-schema.ts';
import { inspect, prescan } from './yaml/limits.ts';
import { findKeyOffset, findNode, keySource, nodeStart, scalarAt, syntaxIssues } from './yaml/positions.ts';

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
  /** the Git blob id of its bytes, when read from a repository: what ManifestCache keeps it by */
  blob?: string;
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
  /** manifest files per commit, counted from the tree before any blob is read */
  maxFiles: number;
  /** bytes of all manifest files of a commit together, from the tree's sizes before any blob is read */
  maxTotalBytes: number;
  /** gateways per commit (each is a Deployment, a flow of jobs, a status) */
  maxGateways: number;
}

export const DEFAULT_LOAD_LIMITS: Readonly<LoadLimits> = Object.freeze({
  maxFileBytes: 8 * 1024 * 1024,
  maxDocuments: 10_000,
  maxDepth: 100,
  maxAliasExpansion: 400_000,
  maxFiles: 2_000,
  maxTotalBytes: 64 * 1024 * 1024,
  maxGateways: 2_000,
});

export type LoadOptions = Partial<LoadLimits> & {
  /** read every file with the `yaml` library at once, never js-yaml first (to compare the two) */
  positionsFirst?: boolean;
  /** files read before (by path and blob) are not read again */
  cache?: ManifestCache;
};

/**
 * A file read from a repository, by its blob id; its text is decoded from the bytes when first
 * asked for (a file ManifestCache holds is never decoded again).
 */
export function manifestFile(path: string, blob: string, bytes: Buffer): ManifestFile {
  let text: string | undefined;
  return {
    path,
    blob,
    bytes,
    get text() {
      text ??= bytes.toString('utf8');
      return text;
    },
  };
}

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

export function loadManifests(files: readonly ManifestFile[], options: LoadOptions = {}): LoadResult {
  const { positionsFirst = false, cache, ...given } = options;
  const limits: LoadLimits = { ...DEFAULT_LOAD_LIMITS, ...definedOnly(given) };
  const docs: LoadedDoc[] = [];
  const issues: ManifestIssue[] = [];
  const read = (file: ManifestFile, to: FileLoad) => {
    try {
      loadFile(file, limits, positionsFirst, to.docs, to.issues);
    } catch (e) {
      // A bug of natops's or of the YAML library must still not look like a deleted gateway.
      to.issues.push(fileIssue(file.path, 1, 1, `could not be read: ${e instanceof Error ? e.message : String(e)}`));
    }
  };
  // (what a file's reading depends on besides its bytes: the load limits, not validation's options)
  const readWith = JSON.stringify([
    ...Object.keys(DEFAULT_LOAD_LIMITS).map((k) => limits[k as keyof LoadLimits]),
    positionsFirst,
  ]);
  cache?.begin();
  for (const file of files) {
    if (!cache || file.blob === undefined) {
      read(file, { docs, issues });
      continue;
    }
    const kept = cache.file(JSON.stringify([file.path, file.blob, file.size, readWith]), () => {
      const load: FileLoad = { docs: [], issues: [] };
      read(file, load);
      return load;
    });
    docs.push(...kept.docs);
    issues.push(...kept.issues);
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
  // (closures below name the path only: a cached document must not keep the file's bytes alive)
  const path = file.path;
  const size = file.size ?? (file.bytes ? file.bytes.length : Buffer.byteLength(file.text, 'utf8'));
  if (size > limits.maxFileBytes) {
    issues.push(
      fileIssue(
        path,
        1,
        1,
        `is ${size} bytes, more than the ${limits.maxFileBytes} natops reads in one file (maxFileBytes)`,
      ),
    );
    return;
  }
  const decoded = decode(file);
  if ('line' in decoded) {
    issues.push(fileIssue(path, decoded.line, decoded.column, decoded.message));
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
    return { file: path, line, column: col };
  };
  const bad = firstUnreadable(text, !file.bytes);
  if (bad) {
    const at = lineColumn(text, bad.offset);
    issues.push(fileIssue(path, at.line, at.column, bad.message));
    return;
  }
  const tooDeep = prescan(text, limits);
  if (tooDeep) {
    const at = lineColumn(text, tooDeep.offset);
    issues.push(fileIssue(path, at.line, at.column, tooDeep.message));
    return;
  }

  const plain = positionsFirst ? undefined : readPlain(text, limits);
  if (!plain) {
    readWithPositions(path, text, limits, pos, docs, issues);
    return;
  }
  // Positions from the `yaml` library, read when first asked for (to report an issue); where a
  // document starts (what an ignored document is reported at) from the line scan.
  let positioned: LoadedDoc[] | undefined;
  const at = (i: number): LoadedDoc => {
    positioned ??= readPositioned(path, text, limits, pos, plain.values);
    return positioned[i]!;
  };
  plain.values.forEach((value, i) => {
    const start = plain.starts?.[i];
    docs.push({
      file: path,
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

/** The value at `path` in a document's value (undefined when there is none). */
export function valueAt(value: unknown, path: FieldPath): unknown {
  let v = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}
