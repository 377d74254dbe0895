// A second process that loads the webhook: RATE signed push deliveries per second for SECONDS,
// each with its own delivery id, sent on schedule whether or not earlier ones were answered
// (open loop), after 50 unmeasured ones. Prints {"sent","ok","errors","p50","p90","p99","max"} in milliseconds.
//   node --import tsx bench/webhook-load.ts URL SECRET_FILE RATE SECONDS
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { sign } from '@octokit/webhooks-methods';
import { localPushPayload } from '../gitops/git/local-push.ts';
import { ZERO_SHA } from '../common/sha.ts';

const [url, secretFile, rateText, secondsText] = process.argv.slice(2);
const rate = Number(rateText);
const total = Math.round(rate * Number(secondsText));
const secret = (await readFile(secretFile!, 'utf8')).trim();
const sha = 'a'.repeat(40);
const body = JSON.stringify(localPushPayload({
  repository: 'bench/gitops', url: 'file:///bench.git', ref: 'refs/heads/main', before: ZERO_SHA, after: sha, forced: false,
  commits: [{ id: sha, message: 'bench', timestamp: new Date().toISOString(), author: { name: 'bench', email: 'bench@example.com' } }],
  pusher: { name: 'bench', email: 'bench@example.com' },
}));
const signature = await sign(secret, body);

const send = () => fetch(url!, {
  method: 'POST',
  body,
  headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': signature },
});
// Warm-up, not measured: connections and both processes' JIT.
for (let i = 0; i < 50; i++) await (await send()).arrayBuffer();

const latencies: number[] = [];
let errors = 0;
const started = performance.now();
const inflight: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const due = started + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t0 = performance.now();
  inflight.push(send().then(async (r) => {
    await r.arrayBuffer();
    if (r.status === 202) latencies.push(performance.now() - t0);
    else errors++;
  }, () => {
    errors++;
  }));
}
await Promise.all(inflight);
const sorted = latencies.sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ sent: total, ok: sorted.length, errors, rate: total / seconds, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted.at(-1) ?? NaN })}\n`);
