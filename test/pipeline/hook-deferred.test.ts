// The post-receive hook never holds a push: with natops down, a real `git push` to a real bare
// repository returns, says the delivery was deferred, and the spool holds it signed and in
// GitHub's format; the next push with the webhook back sends the backlog first, in order. A
// small HTTP server in the test stands in for natops's webhook (it verifies each signature).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import examples from '@octokit/webhooks-examples';
import { verify } from '@octokit/webhooks-methods';
import { sendDeferred, type PreparedDelivery, type SendVerdict } from '../../gitops/hook/delivery.ts';
import { initRepo } from '../../gitops/hook/init.ts';
import {
  deferDelivery,
  deferredDir,
  drainDeferred,
  listDeferred,
  readDeferred,
  type DeferredDelivery,
} from '../../gitops/hook/spool.ts';
import { PushPayload } from '../../gitops/git/push-event.ts';
import { run } from '../../common/exec.ts';
import { freePort } from '../../server/redis-server.ts';

const SECRET = 'hook-deferred-secret';
const DEFERRED =
  /natops: (webhook [^\n]*?); delivery ([0-9a-f-]{36}) for ([0-9a-f]{7}) deferred \(natops sends it when it starts, or catches up with the branch by itself\)/g;
const githubBranchPush = () =>
  (examples as unknown as { name: string; examples: Record<string, unknown>[] }[])
    .find((e) => e.name === 'push')!
    .examples.find((e) => e.ref === 'refs/heads/master')!;

interface Received {
  id: string;
  event: string;
  body: string;
  signature: string;
  userAgent: string;
}

/** Stands in for natops's webhook: checks the signature over the raw body like natops does, then answers as told. */
class FakeWebhook {
  readonly received: Received[] = [];
  /** what to answer a delivery with a good signature */
  status = 202;
  /** accept the request and never answer */
  hang = false;
  private server: Server | undefined;

  async listen(port: number): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', () => resolve());
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (this.hang) return;
    const body = Buffer.concat(chunks).toString('utf8');
    const signature = String(req.headers['x-hub-signature-256'] ?? '');
    const id = String(req.headers['x-github-delivery'] ?? '');
    const json = (status: number, o: object): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(o));
    };
    if (!signature || !(await verify(SECRET, body, signature).catch(() => false)))
      return json(401, { error: 'missing or wrong X-Hub-Signature-256' });
    this.received.push({
      id,
      event: String(req.headers['x-github-event']),
      body,
      signature,
      userAgent: String(req.headers['user-agent']),
    });
    json(
      this.status,
      this.status < 300
        ? { delivery: id, outcome: 'queued' }
        : { delivery: id, outcome: 'queue unavailable; deliver again later' },
    );
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = undefined;
  }
}

describe('the post-receive hook with natops down', () => {
  let dir: string;
  let bare: string;
  let work: string;
  let port: number;
  const webhook = new FakeWebhook();
  /** what the spool held after the first two pushes, to compare with what was sent */
  const kept: DeferredDelivery[] = [];
  const shas: string[] = [];

  /** A real `git push` of a new commit; returns the commit and what git printed (the hook's lines are "remote: ..."). */
  async function push(message: string): Promise<{ sha: string; said: string }> {
    await run(['git', '-C', work, 'commit', '--quiet', '--allow-empty', '-m', message]);
    const sha = (await run(['git', '-C', work, 'rev-parse', 'HEAD'])).stdout.trim();
    const r = await run(['git', '-C', work, 'push', 'origin', 'HEAD:main']);
    return { sha, said: r.stdout + r.stderr };
  }

  const deferredLines = (said: string) =>
    [...said.matchAll(DEFERRED)].map((m) => ({ lead: m[1]!, id: m[2]!, short: m[3]! }));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natops-hook-deferred-'));
    bare = join(dir, 'gitops.git');
    work = join(dir, 'work');
    port = await freePort(); // nothing listens there until the test starts the stand-in
    await writeFile(join(dir, 'secret'), `${SECRET}\n`);
    await initRepo(bare, {
      webhookUrl: `http://127.0.0.1:${port}/webhook`,
      secretFile: join(dir, 'secret'),
      name: 'test/gitops',
    });
    await run(['git', 'clone', '--quiet', bare, work]);
    for (const [k, v] of [
      ['user.name', 'natops test'],
      ['user.email', 'test@example.com'],
      ['commit.gpgsign', 'false'],
    ] as const) {
      await run(['git', '-C', work, 'config', k, v]);
    }
  });
  after(async () => {
    await webhook.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('with nothing listening, git push succeeds, says the delivery was deferred, and the spool holds it signed, in GitHub push format', async () => {
    const { sha, said } = await push('one');
    shas.push(sha);
    const lines = deferredLines(said);
    assert.equal(lines.length, 1, said);
    assert.equal(lines[0]!.lead, 'webhook unreachable', said);
    assert.equal(lines[0]!.short, sha.slice(0, 7));

    const files = await listDeferred(bare);
    assert.equal(files.length, 1);
    assert.deepEqual(
      await readdir(deferredDir(bare)),
      files.map((f) => basename(f)),
      'no temp file left beside it',
    );
    assert.match(basename(files[0]!), new RegExp(`^\\d{8}T\\d{6}\\.\\d{3}Z-\\d{4}-${lines[0]!.id}\\.json$`));
    const d = await readDeferred(files[0]!);
    kept.push(d);
    assert.deepEqual(
      { id: d.id, event: d.event, ref: d.ref, after: d.after },
      { id: lines[0]!.id, event: 'push', ref: 'refs/heads/main', after: sha },
    );
    assert.equal(await verify(SECRET, d.body, d.signature256), true, 'the body verifies against the secret');
    assert.equal(await verify('another secret', d.body, d.signature256), false);
    assert.match(d.reason, /ECONNREFUSED/);
    assert.ok(!Number.isNaN(Date.parse(d.deferredAt)));

    // The body is the push delivery natops would have had: GitHub's format (as in git.test.ts).
    const payload = JSON.parse(d.body) as Record<string, unknown>;
    assert.ok(PushPayload.safeParse(payload).success);
    const optional = new Set(['installation', 'organization', 'enterprise']);
    assert.deepEqual(
      Object.keys(payload).sort(),
      Object.keys(githubBranchPush())
        .filter((k) => !optional.has(k))
        .sort(),
    );
    const p = PushPayload.parse(payload);
    assert.deepEqual(
      [p.ref, p.before, p.after, p.repository.full_name],
      ['refs/heads/main', '0'.repeat(40), sha, 'test/gitops'],
    );
    assert.equal((payload.commits as { id: string }[])[0]!.id, sha);
  });

  it('a second push while natops is still down adds a second file, after the first', async () => {
    const { sha, said } = await push('two');
    shas.push(sha);
    const lines = deferredLines(said);
    assert.equal(lines.length, 1, said);
    assert.equal(lines[0]!.short, sha.slice(0, 7));
    const files = await listDeferred(bare);
    assert.equal(files.length, 2);
    const second = await readDeferred(files[1]!);
    assert.deepEqual([(await readDeferred(files[0]!)).id, second.id], [kept[0]!.id, lines[0]!.id], 'oldest first');
    assert.equal(second.after, sha);
    assert.match(
      second.reason,
      /^not tried: webhook unreachable/,
      'the backlog was tried first; its failure spared the new one a try',
    );
    assert.equal(JSON.parse(second.body).before, shas[0]);
    kept.push(second);
  });

  it('with the webhook back, the next push sends the two deferred deliveries first, in order and byte for byte, then its own; the spool is empty', async () => {
    await webhook.listen(port);
    const { sha, said } = await push('three');
    shas.push(sha);
    assert.deepEqual(deferredLines(said), [], said);
    assert.match(said, /natops: sent 2 deferred deliveries of earlier pushes first/);
    assert.match(
      said,
      new RegExp(`natops: refs/heads/main ${sha.slice(0, 7)}: 202 queued \\(delivery [0-9a-f-]{36}\\)`),
    );

    const got = webhook.received;
    assert.equal(got.length, 3);
    assert.deepEqual(
      got.map((r) => JSON.parse(r.body).after),
      shas,
      'oldest first, the new push last',
    );
    for (const [i, d] of kept.entries()) {
      assert.deepEqual(
        { id: got[i]!.id, event: got[i]!.event, body: got[i]!.body, signature: got[i]!.signature },
        { id: d.id, event: 'push', body: d.body, signature: d.signature256 },
      );
    }
    assert.deepEqual(await listDeferred(bare), []);
  });

  it('a 5xx answer is deferred too; drainDeferred with sendDeferred (what natops serve runs at start) sends it and removes it', async () => {
    webhook.status = 503;
    const before = webhook.received.length;
    const { sha, said } = await push('four');
    const lines = deferredLines(said);
    assert.equal(lines.length, 1, said);
    assert.match(lines[0]!.lead, /^webhook answered 503 /);
    const tries = webhook.received.length - before;
    assert.ok(tries >= 1 && tries <= 2, `tried once, and at most once more quickly (${tries})`);
    const [file] = await listDeferred(bare);
    assert.ok(file);
    const d = await readDeferred(file);

    webhook.status = 202;
    const logged: string[] = [];
    const result = await drainDeferred(
      bare,
      (x) => sendDeferred(`http://127.0.0.1:${port}/webhook`, x),
      (l) => logged.push(l),
    );
    assert.deepEqual(result, { sent: 1, kept: 0, setAside: 0 });
    assert.deepEqual(await listDeferred(bare), []);
    const last = webhook.received.at(-1)!;
    assert.deepEqual(
      [last.id, last.body, last.signature, JSON.parse(last.body).after],
      [d.id, d.body, d.signature256, sha],
    );
    assert.match(
      logged.join('\n'),
      new RegExp(`deferred delivery ${d.id} \\(refs/heads/main ${sha.slice(0, 7)}, kept .*\\) sent: 202 queued`),
    );
  });

  it('a webhook that accepts and never answers: the push finishes, and the delivery is deferred', async () => {
    webhook.hang = true;
    const { sha, said } = await push('five');
    const lines = deferredLines(said);
    assert.equal(lines.length, 1, said);
    assert.equal(lines[0]!.short, sha.slice(0, 7));
    assert.match(lines[0]!.lead, /^webhook unreachable \(no answer within \d+ ms\)$/);
    webhook.hang = false;
    assert.deepEqual(
      await drainDeferred(
        bare,
        (x) => sendDeferred(`http://127.0.0.1:${port}/webhook`, x),
        () => undefined,
      ),
      { sent: 1, kept: 0, setAside: 0 },
    );
  });

  it('a 4xx answer is not deferred: git shows it, nothing is kept', async () => {
    // Signed with a secret the webhook does not know: refused with 401, which no retry can fix.
    await writeFile(join(dir, 'secret'), 'not the webhook secret\n');
    try {
      const { sha, said } = await push('six');
      assert.deepEqual(deferredLines(said), [], said);
      assert.match(
        said,
        new RegExp(
          `natops: refs/heads/main ${sha.slice(0, 7)}: 401 missing or wrong X-Hub-Signature-256 \\(delivery [0-9a-f-]{36}\\)`,
        ),
      );
      assert.deepEqual(await listDeferred(bare), []);
    } finally {
      await writeFile(join(dir, 'secret'), `${SECRET}\n`);
    }
  });
});

describe('drainDeferred', () => {
  let gitDir: string;
  const delivery = (n: number): PreparedDelivery => ({
    id: `00000000-0000-4000-8000-00000000000${n}`,
    event: 'push',
    ref: 'refs/heads/main',
    after: String(n).repeat(40),
    body: JSON.stringify({ n }),
    signature256: `sha256=${'a'.repeat(64)}`,
  });

  before(async () => {
    gitDir = await mkdtemp(join(tmpdir(), 'natops-drain-'));
  });
  after(() => rm(gitDir, { recursive: true, force: true }));

  it('moves a corrupt file aside, keeps everything from the first "keep" on, then sends the rest oldest first and deletes them', async () => {
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    // Written out of order: the names sort by time of deferral.
    await deferDelivery(gitDir, delivery(3), 'test', t(3));
    await deferDelivery(gitDir, delivery(1), 'test', t(1));
    await deferDelivery(gitDir, delivery(2), 'test', t(2));
    const corrupt = join(deferredDir(gitDir), '20260101T000000.000Z-0000-00000000-0000-4000-8000-000000000009.json');
    await writeFile(corrupt, '{"version":1,"id":"00000000-0000-4000-8000-0000000'); // cut short

    const logs: string[] = [];
    const tried: string[] = [];
    const keepAll = async (d: DeferredDelivery): Promise<SendVerdict> => {
      tried.push(d.id);
      return 'keep';
    };
    assert.deepEqual(await drainDeferred(gitDir, keepAll, (l) => logs.push(l)), { sent: 0, kept: 3, setAside: 1 });
    assert.deepEqual(tried, [delivery(1).id], 'a "keep" stops the drain: the later ones wait behind it');
    assert.match(logs.join('\n'), /deferred delivery .*-000000000009\.json: not JSON .*; moved aside to .*\.json\.bad/);
    assert.equal((await listDeferred(gitDir)).length, 3);
    assert.equal(
      await readFile(`${corrupt}.bad`, 'utf8'),
      '{"version":1,"id":"00000000-0000-4000-8000-0000000',
      'kept aside as it was',
    );

    const sent: DeferredDelivery[] = [];
    const result = await drainDeferred(
      gitDir,
      async (d) => {
        sent.push(d);
        return 'sent';
      },
      (l) => logs.push(l),
    );
    assert.deepEqual(result, { sent: 3, kept: 0, setAside: 0 });
    assert.deepEqual(
      sent.map((d) => d.id),
      [1, 2, 3].map((n) => delivery(n).id),
    );
    assert.deepEqual(sent[0], { version: 1, ...delivery(1), deferredAt: t(1).toISOString(), reason: 'test' });
    assert.deepEqual(await listDeferred(gitDir), []);
    assert.deepEqual(await readdir(deferredDir(gitDir)), [`${basename(corrupt)}.bad`]);
  });

  it('a delivery the webhook refuses for good is moved aside and the next goes on; a send that throws keeps it', async () => {
    await deferDelivery(gitDir, delivery(4), 'test');
    await deferDelivery(gitDir, delivery(5), 'test');
    const logs: string[] = [];
    const refuseFirst = async (d: DeferredDelivery) =>
      d.id === delivery(4).id
        ? { status: 401, body: '{"error":"missing or wrong X-Hub-Signature-256"}', verdict: 'rejected' as const }
        : ('sent' as const);
    assert.deepEqual(await drainDeferred(gitDir, refuseFirst, (l) => logs.push(l)), { sent: 1, kept: 0, setAside: 1 });
    assert.match(
      logs.join('\n'),
      new RegExp(
        `deferred delivery ${delivery(4).id} .* refused for good: 401 missing or wrong X-Hub-Signature-256; moved aside to .*\\.rejected`,
      ),
    );
    assert.deepEqual(await listDeferred(gitDir), []);

    await deferDelivery(gitDir, delivery(6), 'test');
    const boom = async (): Promise<SendVerdict> => {
      throw new Error('boom');
    };
    assert.deepEqual(await drainDeferred(gitDir, boom, (l) => logs.push(l)), { sent: 0, kept: 1, setAside: 0 });
    assert.equal((await listDeferred(gitDir)).length, 1);
  });

  it('a file with a wrong field is named with what is wrong; an empty or missing spool is nothing to do', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'natops-drain-empty-'));
    try {
      assert.deepEqual(
        await drainDeferred(
          empty,
          async () => 'sent',
          () => undefined,
        ),
        { sent: 0, kept: 0, setAside: 0 },
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    const file = await deferDelivery(gitDir, delivery(7), 'test');
    const text = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...text, signature256: 'sha1=abc', version: 2 }));
    await assert.rejects(readDeferred(file), /version: not 1; .*signature256: not sha256=<64 hex digits>/);
  });
});
