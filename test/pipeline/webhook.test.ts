// The webhook and dashboard against a real redis-server, with GitHub's own example payloads.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { sign } from '@octokit/webhooks-methods';
import type { Running } from '../../server/serve.ts';
import { APP_SECRET as SECRET, branchPush, examplePayloads, startApp, type TestApp } from '../helpers/app.ts';

describe('webhook function (real redis-server)', () => {
  let t: TestApp;
  let app: Running;

  const logs: string[] = [];

  before(async () => {
    // GitHub's example pushes come from Codertocat/Hello-World: that is the tracked repository.
    t = await startApp({ maxBody: '64kb', repository: 'Codertocat/Hello-World' }, [], logs);
    app = t.app;
  });
  after(() => t?.close());

  const deliver: TestApp['deliver'] = (...a) => t.deliver(...a);
  const planJobs = async () =>
    (await app.queues.byName.plan.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed'])).length;

  it('refuses unsigned and wrongly signed deliveries with 401 and enqueues nothing', async () => {
    const before = await planJobs();
    assert.equal((await deliver('push', branchPush(), { signature: null })).status, 401);
    assert.equal(
      (await deliver('push', branchPush(), { signature: await sign('another-secret', JSON.stringify(branchPush())) }))
        .status,
      401,
    );
    // signed, then altered: the signature no longer matches the body
    const signedOther = await sign(SECRET, JSON.stringify({ ...branchPush(), after: '0'.repeat(40) }));
    assert.equal((await deliver('push', branchPush(), { signature: signedOther })).status, 401);
    assert.equal(await planJobs(), before);
  });

  /**
   * Sends `head` (and `body`, if any) on a raw connection and never more; resolves with what the
   * server sent back and whether it closed the connection, once it does or after `waitMs`.
   */
  const raw = (head: string, body: string, waitMs: number) =>
    new Promise<{ answer: string; closed: boolean }>((resolve, reject) => {
      const { hostname, port } = new URL(app.url);
      const socket = connect(Number(port), hostname, () => socket.write(head + body));
      let answer = '';
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ answer, closed: false });
      }, waitMs);
      socket.on('data', (b) => {
        answer += b.toString();
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ answer, closed: true });
      });
      socket.on('error', reject);
    });

  it('an unsigned delivery is refused before its body is read', async () => {
    // 60 kB announced (under the 64 kB limit), 10 bytes sent: the answer must not wait for the rest
    const head = (signature: string) =>
      `POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: ${randomUUID()}\r\n${signature}Content-Length: 60000\r\n\r\n`;
    for (const signature of ['', 'X-Hub-Signature-256: sha256=nothex\r\n']) {
      const r = await raw(head(signature), '{"ref":"x"', 5000);
      assert.match(r.answer, /^HTTP\/1\.1 401 /, JSON.stringify(signature));
    }
  });

  it('a compressed body is refused, not inflated', async () => {
    // signed over the JSON inside: inflated, it would pass
    const json = JSON.stringify(branchPush());
    const body = gzipSync(json);
    const res = await fetch(`${app.url}/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': await sign(SECRET, json),
      },
      body,
    });
    assert.equal(res.status, 415);
  });

  it('a client that sends its headers slowly is cut off, not waited for a minute', async () => {
    // headers begun, never finished (slowloris)
    const r = await raw('POST /webhook HTTP/1.1\r\nHost: x\r\n', '', 25_000);
    assert.equal(r.closed, true, 'the server still held the connection after 25 s');
  });

  it('answers ping', async () => {
    const r = await deliver('ping', examplePayloads('ping')[0]);
    assert.deepEqual([r.status, r.body.outcome], [200, 'pong']);
  });

  it("enqueues one plan for GitHub's example push, however often it is delivered", async () => {
    const before = await planJobs();
    const id = randomUUID();
    const answers = await Promise.all(Array.from({ length: 10 }, () => deliver('push', branchPush(), { id })));
    for (const a of answers) assert.ok([200, 202].includes(a.status), JSON.stringify(a));
    assert.equal(await planJobs(), before + 1);
    const again = await deliver('push', branchPush(), { id });
    assert.deepEqual([again.status, again.body.outcome], [200, 'duplicate delivery; dropped']);
    assert.equal(await planJobs(), before + 1);
    const [job] = await app.queues.byName.plan.getJobs(['waiting']);
    assert.equal(job?.data.after, branchPush().after);
  });

  it('ignores tags, other branches and branch deletions', async () => {
    const before = await planJobs();
    for (const tag of examplePayloads('push').filter((p) => String(p.ref).startsWith('refs/tags/'))) {
      const r = await deliver('push', tag);
      assert.equal(r.status, 202);
      assert.match(r.body.outcome!, /not a branch/);
    }
    assert.match((await deliver('push', { ...branchPush(), ref: 'refs/heads/feature' })).body.outcome!, /not tracked/);
    assert.match(
      (await deliver('push', { ...branchPush(), deleted: true, after: '0'.repeat(40) })).body.outcome!,
      /deleted/,
    );
    assert.equal(await planJobs(), before);
  });

  it('rejects a body over the limit and a payload that is not a push', async () => {
    const big = { ...branchPush(), padding: 'x'.repeat(70 * 1024) };
    assert.equal((await deliver('push', big)).status, 413);
    const r = await deliver('push', { ref: 'refs/heads/main' });
    assert.equal(r.status, 400);
    assert.match(r.body.outcome!, /before/);
  });

  it('keeps the dashboard behind basic auth and lists every natops queue', async () => {
    assert.equal((await fetch(`${app.url}/admin/queues`)).status, 401);
    const wrong = `Basic ${Buffer.from('admin:nope').toString('base64')}`;
    assert.equal((await fetch(`${app.url}/admin/queues`, { headers: { authorization: wrong } })).status, 401);
    const right = { authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}` };
    assert.equal((await fetch(`${app.url}/admin/queues`, { headers: right })).status, 200);
    const api = (await (await fetch(`${app.url}/admin/queues/api/queues`, { headers: right })).json()) as {
      queues: { name: string }[];
    };
    assert.deepEqual(api.queues.map((q) => q.name).sort(), Object.keys(app.queues.byName).sort());
    assert.equal((await fetch(`${app.url}/admin/commits`)).status, 401);
    assert.equal((await fetch(`${app.url}/admin/commits`, { headers: right })).status, 200);
  });

  it('says so in the log when a delivery cannot be recorded, and still answers', async () => {
    // The deliveries list made the wrong type: Redis refuses to push to it.
    await app.store.redis.set('natops:sys:deliveries', 'not a list');
    const id = randomUUID();
    assert.equal((await deliver('ping', examplePayloads('ping')[0], { id })).status, 200);
    for (let i = 0; i < 50 && !logs.some((l) => l.includes(id)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      logs.some((l) => l.includes(`delivery ${id}: could not record it: WRONGTYPE`)),
      logs.join('\n'),
    );
    await app.store.redis.del('natops:sys:deliveries');
  });

  it('answers malformed deliveries with 4xx and enqueues nothing', async () => {
    const before = await planJobs();
    /** A signed delivery with any body and headers. */
    const raw = async (body: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${app.url}/webhook`, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': randomUUID(),
          'x-hub-signature-256': await sign(SECRET, body),
          ...headers,
        },
      });
      return { status: r.status, text: await r.text() };
    };
    const cases: [string, Promise<{ status: number; text: string }>, number, RegExp][] = [
      ['not JSON', raw('{"ref": "refs/heads/main",'), 400, /not JSON/],
      ['JSON that is not an object', raw('"push"'), 400, /not a push payload/],
      [
        'form-encoded',
        raw(`payload=${encodeURIComponent(JSON.stringify(branchPush()))}`, {
          'content-type': 'application/x-www-form-urlencoded',
        }),
        415,
        /application\/json/,
      ],
      ['a ref with ..', raw(JSON.stringify({ ...branchPush(), ref: 'refs/heads/../main' })), 400, /not a valid ref/],
      [
        'a ref with a control character',
        raw(JSON.stringify({ ...branchPush(), ref: 'refs/heads/ma\u0007in' })),
        400,
        /not a valid ref/,
      ],
      [
        'another repository',
        raw(
          JSON.stringify({
            ...branchPush(),
            repository: { ...(branchPush().repository as object), full_name: 'mallory/gitops' },
          }),
        ),
        400,
        /natops tracks Codertocat\/Hello-World/,
      ],
      ['very large headers', raw(JSON.stringify(branchPush()), { 'x-padding': 'x'.repeat(64 * 1024) }), 431, /.?/],
    ];
    for (const [what, answer, status, text] of cases) {
      const a = await answer;
      assert.equal(a.status, status, `${what}: ${a.text}`);
      assert.match(a.text, text, what);
    }
    assert.equal(await planJobs(), before);
  });
});
