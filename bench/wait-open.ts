// Runs inside a lab host: prints "ready", then starts a connection to IP:PORT every 2 ms (each
// waiting up to 500 ms, so they overlap) until a server's greeting arrives, and prints
// {"at": <epoch ms>} of that moment. Times a change going live. Overlapping matters where the
// address has no owner yet: a connection started then waits for ARP and its SYN's retransmit,
// and a poller waiting for it would see the owner late.
import { connect } from 'node:net';

const [ip, portText, timeoutText = '120000'] = process.argv.slice(2);
const port = Number(portText);
const deadline = Date.now() + Number(timeoutText);
const now = () => performance.timeOrigin + performance.now();
let answeredAt: number | undefined;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip!, port });
    const timer = setTimeout(done, 500);
    function done() {
      clearTimeout(timer);
      sock.destroy();
      resolve();
    }
    sock.on('data', () => {
      answeredAt ??= now();
      done();
    });
    sock.on('error', done);
    sock.on('close', done);
  });
}

process.stdout.write('ready\n');
const attempts = new Set<Promise<void>>();
while (answeredAt === undefined && Date.now() <= deadline) {
  const a = once().finally(() => attempts.delete(a));
  attempts.add(a);
  await new Promise((r) => setTimeout(r, 2));
}
process.stdout.write(`${JSON.stringify({ at: answeredAt ?? null })}\n`);
await Promise.all(attempts);
