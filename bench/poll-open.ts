// Starts bench/wait-open.ts in a lab host's namespace: polls IP:PORT until a server answers.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WAIT_OPEN = fileURLToPath(new URL('./wait-open.ts', import.meta.url));

/** Resolves once the poller polls; `.live` resolves with the epoch ms of the first answer (rejects if none came in time). */
export async function pollOpen(
  hostNamespace: string,
  ip: string,
  port: number,
  timeoutMs = 120_000,
): Promise<{ live: Promise<number> }> {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      hostNamespace,
      process.execPath,
      '--import',
      'tsx',
      WAIT_OPEN,
      ip,
      String(port),
      String(timeoutMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let text = '';
  let ready!: () => void;
  const polling = new Promise<void>((r) => (ready = r));
  const live = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('ready')) ready();
      const m = /\{"at":(null|[\d.]+)\}/.exec(text);
      if (m) m[1] === 'null' ? reject(new Error(`${ip}:${port} never answered`)) : resolve(Number(m[1]));
    });
  });
  await polling;
  return { live };
}
