// The fast reader: js-yaml, for the files it reads exactly as the `yaml` library would (see load.ts).
import { FAILSAFE_SCHEMA, Type as PlainType, loadAll as loadPlain } from 'js-yaml';
import { Schema, isScalar, type ScalarTag } from 'yaml';
import type { LoadLimits } from '../load.ts';
import { kubectlTags } from './kubectl-schema.ts';

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
export function readPlain(
  text: string,
  limits: LoadLimits,
): { values: unknown[]; starts: number[] | undefined } | undefined {
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
