// Runs inside a lab host: opens COUNT TCP connections to IP:PORT, PARALLEL at a time, each closed
// with a reset once it is established (so neither side keeps TIME_WAIT), and prints
// {"perSecond":N,"p50Ms":N,"failed":N}: the rate at which the gateway sets up new connections.
import { connect } from 'node:net';

const [ip, portText, countText = '2000', parallelText = '8'] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const parallel = Number(parallelText);
const times: number[] = [];
let failed = 0;
let started = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const t = performance.now();
    const sock = connect({ host: ip!, port });
    const timer = setTimeout(() => done(false), 2000);
    function done(ok: boolean) {
      clearTimeout(timer);
      if (ok) times.push(performance.now() - t);
      else failed++;
      sock.resetAndDestroy();
      resolve();
    }
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

async function worker(): Promise<void> {
  while (started < count) {
    started++;
    await once();
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: parallel }, worker));
const seconds = (performance.now() - t0) / 1000;
times.sort((a, b) => a - b);
process.stdout.write(
  `${JSON.stringify({ perSecond: times.length / seconds, p50Ms: times[Math.floor(times.length / 2)] ?? null, failed })}\n`,
);
