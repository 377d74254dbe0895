// Hex digests of names, for names with a length limit (interfaces, bridges) and for annotations
// that change when what they stand for changes. node:crypto is loaded on first use, not at every
// start: the commands that never compute one (--help, validate) do not wait for it.
export function hexDigest(algorithm: 'sha1' | 'sha256', text: string): string {
  return process.getBuiltinModule('node:crypto').createHash(algorithm).update(text).digest('hex');
}
