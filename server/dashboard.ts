// The dashboard: bull-board for every natops queue, plus a page of the gateways' records, the
// commits with their statuses, the pull requests' previews, the resync's repairs and the webhook's deliveries, all behind basic auth. No password
// configured: nobody gets in. Bad logins are throttled per client address, the pages refuse to be
// framed, and bull-board may only read, retry and promote: adding or editing a job is a gateway
// change outside Git (root on the gateways), and cleaning or emptying a queue destroys evidence.
import type { IncomingMessage } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import basicAuth from 'express-basic-auth';
import express, { type Express, type RequestHandler, type Router } from 'express';
import type { PreviewBook } from '../state/previews.ts';
import type { Queues } from '../queue/queues.ts';
import type { StatusBook } from '../state/statuses.ts';
import type { GatewayRecord, NetworkRecord, RecordSnapshot, Records } from '../state/records.ts';
import type { Store } from '../state/store.ts';

export const DASHBOARD_PATH = '/admin/queues';
export const COMMITS_PATH = '/admin/commits';

/** Failed logins one client address may make in LOGIN_WINDOW_MS; then it gets 429 until the window ends. */
export const LOGIN_FAILURES = 10;
const LOGIN_WINDOW_MS = 5 * 60_000;
/** Addresses remembered at most; past it the oldest are forgotten, so a flood of addresses costs no memory. */
const LOGIN_ADDRESSES = 10_000;

/** Failed logins per client address, in memory: each window starts at an address's first failure. */
class LoginThrottle {
  private readonly failures = new Map<string, { count: number; until: number }>();

  constructor(private readonly now: () => number) {}

  /** Seconds until `address` may try again; 0: it may now. */
  wait(address: string): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    const left = f.until - this.now();
    if (left <= 0) this.failures.delete(address);
    return left > 0 && f.count >= LOGIN_FAILURES ? Math.ceil(left / 1000) : 0;
  }

  failed(address: string): void {
    const f = this.failures.get(address);
    if (f && f.until > this.now()) {
      f.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= LOGIN_ADDRESSES) this.failures.delete(this.failures.keys().next().value ?? '');
    this.failures.set(address, { count: 1, until: this.now() + LOGIN_WINDOW_MS });
  }
}

// The socket's peer: natops trusts no X-Forwarded-For (behind a proxy, every client is the proxy).
const clientAddress = (req: IncomingMessage) => req.socket.remoteAddress ?? '';

export function dashboardAuth(
  user: string,
  password: string | undefined,
  now: () => number = Date.now,
): RequestHandler {
  if (!password)
    return (_req, res) =>
      void res
        .status(401)
        .set('WWW-Authenticate', 'Basic realm="natops"')
        .send('dashboard password not configured (NATOPS_DASHBOARD_PASSWORD or NATOPS_DASHBOARD_PASSWORD_FILE)');
  const throttle = new LoginThrottle(now);
  // Both comparisons always run (and in constant time), so the answer time does not tell which failed.
  const check = basicAuth({
    authorizer: (u: string, p: string) =>
      Number(basicAuth.safeCompare(u, user)) + Number(basicAuth.safeCompare(p, password)) === 2,
    challenge: true,
    realm: 'natops',
    // Only credentials that were given and wrong count: a browser's first request carries none.
    unauthorizedResponse: (req: basicAuth.IBasicAuthedRequest) => {
      if (req.auth) throttle.failed(clientAddress(req));
      return '';
    },
  });
  return (req, res, next) => {
    const wait = throttle.wait(clientAddress(req));
    if (wait > 0) {
      res.status(429).set('Retry-After', String(wait)).type('text').send('too many failed logins; try again later');
      return;
    }
    check(req, res, next);
  };
}

/** The dashboard's pages may not be framed by another site (clickjacking "Retry all" and the like). */
export const noFraming: RequestHandler = (_req, res, next) => {
  res.set({ 'Content-Security-Policy': "frame-ancestors 'none'", 'X-Frame-Options': 'DENY' });
  next();
};

/**
 * What may change anything through bull-board's API (paths below its base path), besides reading:
 * retrying a job or every job of a state, and promoting a delayed job or every one. Everything
 * else that is not GET or HEAD answers 403, a route a later bull-board adds included.
 */
const BULL_BOARD_WRITES: readonly RegExp[] = [
  /^\/api\/queues\/[^/]+\/[^/]+\/retry$/,
  /^\/api\/queues\/[^/]+\/retry\/[^/]+$/,
  /^\/api\/queues\/[^/]+\/[^/]+\/promote$/,
  /^\/api\/queues\/[^/]+\/promote$/,
];

export const bullBoardWrites: RequestHandler = (req, res, next) => {
  if (req.method === 'GET' || req.method === 'HEAD') return next();
  // Browsers keep basic-auth credentials: a page of another site must not make them retry jobs.
  if (fromAnotherSite(req.get('sec-fetch-site'), req.get('origin'), req.get('host'))) {
    res.status(403).json({ error: 'a change from another site' });
    return;
  }
  if (req.method === 'PUT' && BULL_BOARD_WRITES.some((w) => w.test(req.path))) return next();
  res.status(403).json({ error: 'the dashboard reads, retries and promotes jobs; it changes nothing else' });
};

/**
 * Whether a request came from a page of another site. A browser that says (Sec-Fetch-Site) is
 * believed alone: behind a proxy that rewrites Host, Origin never matches it. An older browser's
 * Origin must name this host. A request with neither header (curl, a script) is not a browser's.
 */
function fromAnotherSite(site: string | undefined, origin: string | undefined, host: string | undefined): boolean {
  if (site !== undefined) return site !== 'same-origin' && site !== 'none';
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== host;
  } catch {
    return true; // "null" (a sandboxed frame, a file) or garbage
  }
}

/** bull-board itself (an express app of its own); mount it behind `bullBoardWrites`. */
export function dashboardRouter(queues: Queues): Express {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({ queues: Object.values(queues.byName).map((q) => new BullMQAdapter(q)), serverAdapter: adapter });
  return adapter.getRouter() as Express;
}

/** The dashboard's address of a job. */
export function jobUrl(publicUrl: string, queue: string, jobId: string): string {
  return `${publicUrl.replace(/\/$/, '')}${DASHBOARD_PATH}/queue/${encodeURIComponent(queue)}/${encodeURIComponent(jobId)}`;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** `text` linked to `url` when it is an http(s) URL; else the text alone (a javascript: URL from Redis runs nothing). */
function link(url: string | undefined, text: string): string {
  return url !== undefined && /^https?:\/\//i.test(url) ? `<a href="${esc(url)}">${esc(text)}</a>` : esc(text);
}

const short = (r: { sha: string; gen: number } | undefined) => (r ? `${r.sha.slice(0, 7)} (gen ${r.gen})` : '-');

/** One row per gateway record (and the networks'): what the operator reads first. */
function recordRows(snap: RecordSnapshot): string[] {
  const rows = [...snap.gateways.values()].map((r) => ({
    name: r.name,
    rec: r as GatewayRecord | NetworkRecord,
    removing: r.desired?.state === null,
  }));
  if (snap.networks) rows.unshift({ name: '(networks)', rec: snap.networks, removing: false });
  return rows.map(({ name, rec, removing }) => {
    const c = rec.condition;
    const cls = c.ready === 'True' ? 'success' : c.ready === 'False' ? 'failure' : 'pending';
    const message = link(c.url, c.message);
    return (
      `<tr class="${cls}"><td>${esc(name)}</td><td><b>${esc(c.ready)}</b></td><td>${esc(c.reason)}${c.cause === 'push' ? '' : ` (${esc(c.cause)})`}</td><td>${message}</td>` +
      `<td><code>${esc(short(rec.desired))}</code>${removing ? ' (remove)' : ''}</td><td><code>${esc(short(rec.lastApplied))}</code></td>` +
      `<td>${esc(rec.pending.join(', ') || '-')}</td><td>${esc(new Date(c.at).toISOString())}</td></tr>`
    );
  });
}

export function commitsRouter(statuses: StatusBook, store: Store, records: Records, previews: PreviewBook): Router {
  const router = express.Router();
  router.get('/', async (_req, res) => {
    const gateways = recordRows(await records.snapshot());
    const rows: string[] = [];
    for (const { sha, at } of await statuses.commits(30)) {
      const list = await statuses.get(sha);
      rows.push(
        `<tr id="c-${esc(sha)}"><td><code>${esc(sha.slice(0, 12))}</code><br><small>${esc(new Date(at).toISOString())}</small></td><td><table>${list
          .map(
            (s) =>
              `<tr class="${esc(s.state)}"><td>${esc(s.context)}</td><td><b>${esc(s.state)}</b></td><td>${link(s.targetUrl, s.description)}</td></tr>`,
          )
          .join('')}</table></td></tr>`,
      );
    }
    const deliveries = (await store.deliveries())
      .slice(0, 30)
      .map(
        (d) =>
          `<tr><td>${esc(new Date(d.at).toISOString())}</td><td><code>${esc(d.id)}</code></td><td>${esc(d.event)}</td><td>${esc(d.ref ?? '')}</td><td>${esc(d.outcome)}</td></tr>`,
      );
    const STATE_CLASS = { computing: 'pending', ready: 'success', invalid: 'failure', closed: 'closed' } as const;
    const prs = (await previews.recent(30)).map(
      (p) =>
        `<tr class="${STATE_CLASS[p.state]}"><td>${link(p.url, `#${p.number}`)}</td><td>${esc(p.title)}<br><small>${esc(p.headLabel)} → ${esc(p.baseRef)}</small></td>` +
        `<td><code>${esc(p.base.slice(0, 7))}..${esc(p.head.slice(0, 7))}</code></td><td><b>${esc(p.state)}${p.merged ? ' (merged)' : ''}</b></td>` +
        `<td>${p.commentId ? link(`${p.url}#issuecomment-${p.commentId}`, p.summary) : esc(p.summary)}` +
        `${p.overlaps.length ? `<br><small>also changed by ${p.overlaps.map((n) => `#${n}`).join(', ')}</small>` : ''}</td><td>${esc(new Date(p.at).toISOString())}</td></tr>`,
    );
    const repairs = (await store.repairs())
      .slice(0, 30)
      .map(
        (r) =>
          `<tr><td>${esc(new Date(r.at).toISOString())}</td><td>${esc(r.target)}</td><td><code>${esc(r.sha.slice(0, 12))}</code></td><td>${r.what.map(esc).join('<br>')}</td></tr>`,
      );
    res.type('html').send(`<!doctype html><html><head><meta charset="utf-8"><title>natops: commits</title>
<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:2px 8px}.failure b,.error b{color:#b00}.success b{color:#070}.pending b{color:#a60}</style></head>
<body><h1>natops</h1><p><a href="${DASHBOARD_PATH}">queues</a></p>
<h2>Gateways</h2><table id="gateways"><tr><th>gateway</th><th>ready</th><th>reason</th><th>message</th><th>wanted (newest plan)</th><th>last applied</th><th>pending</th><th>since</th></tr>${gateways.join('') || '<tr><td>none yet</td></tr>'}</table>
<h2>Commits</h2><table id="commits">${rows.join('') || '<tr><td>no commits yet</td></tr>'}</table>
<h2>Pull request previews</h2><table id="previews"><tr><th>pull request</th><th>title</th><th>base..head</th><th>preview</th><th>what it changes</th><th>at</th></tr>${prs.join('') || '<tr><td>none yet</td></tr>'}</table>
<h2>Repairs by the resync</h2><table id="repairs">${repairs.join('') || '<tr><td>none</td></tr>'}</table>
<h2>Webhook deliveries</h2><table id="deliveries">${deliveries.join('') || '<tr><td>none yet</td></tr>'}</table></body></html>`);
  });
  return router;
}
