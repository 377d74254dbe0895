// The lab's default name, apart from lab/names.ts: the command line shows it in its help, and
// loading names.ts would load node:crypto (its interface-name hashes) into every start.
export const DEFAULT_LAB = 'natops';
