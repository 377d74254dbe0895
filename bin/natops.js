#!/usr/bin/env node
// natops's command line: runs the compiled CLI in dist/ (`npm run build`), or the sources when
// dist/ is missing or older than them (bin/dist.js says which).
import { fileURLToPath } from 'node:url';
import { entryModule } from './dist.js';

await import(await entryModule(fileURLToPath(new URL('../', import.meta.url)), 'dist/cli/main.js', 'cli/main.ts'));
