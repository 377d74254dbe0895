// Limits on what one file may make natops do: checked on the text before the YAML parser sees it,
// then on the parsed document (depth with aliases expanded, alias expansion, merge keys).
import { isAlias, isMap, isNode, isPair, isSeq, type Alias, type Document, type Node } from 'yaml';
import type { LoadLimits } from '../load.ts';
import { isMergePair, nodeStart } from './positions.ts';

// ---- limits checked on the text, before the YAML parser sees it -----------------------------------

/**
 * The YAML parser's time and memory grow faster than linearly with nesting, and its composer
 * recurses, so a file nested absurdly deep (or holding a million `---`) is refused from its text.
 * The depth here is an upper bound of the real one (every indentation level counts as a mapping
 * and a sequence, every indicator on a line as a level); only a text whose bound exceeds
 * 2 * maxDepth + 16 is refused here. The exact depth is checked on the parsed documents.
 */
export function prescan(text: string, limits: LoadLimits): { offset: number; message: string } | undefined {
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

export interface Shape {
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

/**
 * Walks a document once, without recursion: resolves every alias (to the last node anchored with
 * its name before it, as YAML says), and checks nesting depth (aliases expanded), what aliases
 * add once expanded, aliases inside their own anchor, aliases without an anchor and merge keys
 * (`<<`) whose value is not a mapping or a list of mappings.
 */
export function inspect(doc: Document, limits: LoadLimits): Shape {
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
