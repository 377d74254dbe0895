// Runs the natops command line as a user would, through bin/natops.js.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_GATEWAY_IMAGES } from './manifests.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/natops.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `uid`: run as that user (and its group), e.g. 65534 (nobody) for a command's non-root path.
 * NATOPS_GATEWAY_IMAGES defaults to the tests' images (the test cluster's too); `env` overrides it.
 */
export function natops(args: string[], opts: { env?: Record<string, string>; uid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { NATOPS_GATEWAY_IMAGES: TEST_GATEWAY_IMAGES.join(','), ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
