// Runs inside a lab host: connects to IP:PORT every INTERVAL ms until SIGTERM, then prints
// {"ok":N,"failed":N,"reasons":{...}}. A connection counts as ok when the server's greeting
// arrives. Paced, so the client never runs out of local ports (TIME_WAIT) and blames the gateway.
import { connect } from 'node:net';

const [ip, portText, intervalText = '5'] = process.argv.slice(2);
const port = Number(portText);
const interval = Number(intervalText);
let ok = 0;
const reasons: Record<string, number> = {};
let stopping = false;
process.on('SIGTERM', () => (stopping = true));

function once(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip!, port });
    const timer = setTimeout(() => done('timeout'), 1000);
    function done(failure: string | undefined) {
      clearTimeout(timer);
      sock.destroy();
      resolve(failure);
    }
    sock.on('data', () => done(undefined));
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    sock.on('close', () => done('closed'));
  });
}

while (!stopping) {
  const started = Date.now();
  const failure = await once();
  if (failure === undefined) ok++;
  else reasons[failure] = (reasons[failure] ?? 0) + 1;
  const wait = interval - (Date.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
const failed = Object.values(reasons).reduce((a, b) => a + b, 0);
process.stdout.write(`${JSON.stringify({ ok, failed, reasons })}\n`);
