// Runs inside a lab host: connects to IP:PORT over and over until SIGTERM, then prints
// {"ok":N,"failed":N}. A connection counts as ok when the server's greeting line arrives.
import { connect } from 'node:net';

const [ip, portText] = process.argv.slice(2);
const port = Number(portText);
let ok = 0;
let failed = 0;
let stopping = false;
process.on('SIGTERM', () => (stopping = true));

function once(): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip!, port });
    const timer = setTimeout(() => done(false), 1000);
    function done(result: boolean) {
      clearTimeout(timer);
      sock.destroy();
      resolve(result);
    }
    sock.on('data', () => done(true));
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

while (!stopping) {
  if (await once()) ok++;
  else failed++;
}
process.stdout.write(`${JSON.stringify({ ok, failed })}\n`);
