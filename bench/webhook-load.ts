// A second process that loads the webhook: RATE deliveries per second for SECONDS, each with its
// own delivery id, sent on schedule whether or not earlier ones were answered (open loop), after
// 50 unmeasured ones. MIX `push` (default): signed push deliveries, ok = answered 202. MIX
// `malformed`: in turn a body that is not JSON, a form-encoded payload, a ref git would never
// send and an unsigned delivery, ok = answered with the 4xx each deserves.
// Prints {"sent","ok","errors","rate","min","p50","p90","p99","max"}, times in milliseconds; bench/pipeline
// runs it and records them.
//   node --import tsx bench/webhook-load.ts URL SECRET_FILE RATE SECONDS [push|malformed]
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { sign } from '@octokit/webhooks-methods';
import { localPushPayload } from '../gitops/git/local-push.ts';
import { ZERO_SHA } from '../common/sha.ts';

const [url, secretFile, rateText, secondsText, mix = 'push'] = process.argv.slice(2);
if (mix !== 'push' && mix !== 'malformed') throw new Error(`MIX is push or malformed, not ${mix}`);
const rate = Number(rateText);
const total = Math.round(rate * Number(secondsText));
const secret = (await readFile(secretFile!, 'utf8')).trim();
const sha = 'a'.repeat(40);
const body = JSON.stringify(
  localPushPayload({
    repository: 'bench/gitops',
    url: 'file:///bench.git',
    ref: 'refs/heads/main',
    before: ZERO_SHA,
    after: sha,
    forced: false,
    commits: [
      {
        id: sha,
        message: 'bench',
        timestamp: new Date().toISOString(),
        author: { name: 'bench', email: 'bench@example.com' },
      },
    ],
    pusher: { name: 'bench', email: 'bench@example.com' },
  }),
);
const signature = await sign(secret, body);

interface Variant {
  body: string;
  headers: Record<string, string>;
  expect: number;
}
const signed = async (b: string, contentType = 'application/json'): Promise<Variant['headers']> => ({
  'content-type': contentType,
  'x-github-event': 'push',
  'x-hub-signature-256': await sign(secret, b),
});
const badRef = JSON.stringify({ ...JSON.parse(body), ref: 'refs/heads/../main' });
const form = `payload=${encodeURIComponent(body)}`;
const variants: Variant[] =
  mix === 'push'
    ? [
        {
          body,
          headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signature },
          expect: 202,
        },
      ]
    : [
        { body: '{"ref": "refs/heads/main",', headers: await signed('{"ref": "refs/heads/main",'), expect: 400 },
        { body: form, headers: await signed(form, 'application/x-www-form-urlencoded'), expect: 415 },
        { body: badRef, headers: await signed(badRef), expect: 400 },
        { body, headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, expect: 401 },
      ];

// node:http with a keep-alive agent rather than fetch: undici's per-request cost in this process
// would be counted as the webhook's answer time once both processes compete for the 2 cores.
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const target = new URL(url!);
let turn = 0;
const send = () => {
  const v = variants[turn++ % variants.length]!;
  return new Promise<{ status: number; expect: number }>((resolve, reject) => {
    const req = request(
      target,
      {
        method: 'POST',
        agent,
        headers: { ...v.headers, 'content-length': Buffer.byteLength(v.body), 'x-github-delivery': randomUUID() },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, expect: v.expect }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(v.body);
  });
};
// Warm-up, not measured: connections and both processes' JIT.
for (let i = 0; i < 50; i++) await send();

const latencies: number[] = [];
let errors = 0;
const started = performance.now();
const inflight: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const due = started + (i * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const t0 = performance.now();
  inflight.push(
    send().then(
      ({ status, expect }) => {
        if (status === expect) latencies.push(performance.now() - t0);
        else errors++;
      },
      () => {
        errors++;
      },
    ),
  );
}
await Promise.all(inflight);
const sorted = latencies.sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const seconds = (performance.now() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ sent: total, ok: sorted.length, errors, rate: total / seconds, min: sorted[0] ?? NaN, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: sorted.at(-1) ?? NaN })}\n`,
);
