// A file's bytes to text (UTF-8, or UTF-16 with a byte-order mark, as kubectl reads them), and
// the first character YAML does not allow; each problem with its line and column.
import type { ManifestFile } from '../load.ts';

type Decoded = { text: string } | { line: number; column: number; message: string };

export function decode(file: ManifestFile): Decoded {
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

export function firstUnreadable(text: string, textOnly: boolean): { offset: number; message: string } | undefined {
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

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const upTo = text.slice(0, Math.min(offset, text.length));
  const lastNl = upTo.lastIndexOf('\n');
  let line = 1;
  for (let i = upTo.indexOf('\n'); i >= 0; i = upTo.indexOf('\n', i + 1)) line++;
  return { line, column: upTo.length - lastNl };
}
