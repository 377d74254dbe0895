// Runs inside a lab host: prints "ready", then connects to IP:PORT every 2 ms until the server's
// greeting arrives, and prints {"at": <epoch ms>} of that moment. Times a change going live.
import { connect } from 'node:net';

const [ip, portText, timeoutText = '120000'] = process.argv.slice(2);
const port = Number(portText);
const deadline = Date.now() + Number(timeoutText);
const now = () => performance.timeOrigin + performance.now();

function once(): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip!, port });
    const timer = setTimeout(() => done(false), 500);
    function done(ok: boolean) {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    }
    sock.on('data', () => done(true));
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

process.stdout.write('ready\n');
for (;;) {
  if (await once()) {
    process.stdout.write(`${JSON.stringify({ at: now() })}\n`);
    break;
  }
  if (Date.now() > deadline) {
    process.stdout.write(`${JSON.stringify({ at: null })}\n`);
    break;
  }
  await new Promise((r) => setTimeout(r, 2));
}
