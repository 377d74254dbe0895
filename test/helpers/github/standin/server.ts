// The stand-in's HTTP side: an express app on 127.0.0.1 that matches each request to a GitHub
// operation, checks it, holds or fails it on demand, rate-limits it, and checks the answer too.
import { createHash, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { findOperation, type Operation, validateRequest, validateResponse } from '../openapi.ts';
import { authenticate, peekPrincipal, rateKey } from './auth.ts';
import { appsHandlers } from './handlers/apps.ts';
import { checksHandlers } from './handlers/checks.ts';
import { gitHandlers } from './handlers/git.ts';
import { issuesHandlers } from './handlers/issues.ts';
import { statusesHandlers } from './handlers/statuses.ts';
import { codePoints, type Ctx, type Handler, HttpError, isRecord, type Reply, type State } from './state.ts';
import type { FaultOptions, RecordedRequest } from './types.ts';

/** Every implemented operation, by operationId. */
const HANDLERS: Record<string, Handler> = {
  ...appsHandlers,
  ...gitHandlers,
  ...statusesHandlers,
  ...checksHandlers,
  ...issuesHandlers,
};

/** Serves the stand-in on an ephemeral port of 127.0.0.1 and sets its baseUrl. */
export async function listen(st: State): Promise<Server> {
  const app = express();
  // Express would answer If-None-Match itself from its own ETags; GitHub's conditional requests are ours.
  app.set('etag', false);
  app.disable('x-powered-by');
  app.use(express.raw({ type: () => true, limit: '100mb' }));
  app.use((req: Request, res: Response) => {
    handle(st, req, res).catch((e: unknown) => {
      st.violations.push(
        `stand-in crashed on ${req.method} ${req.originalUrl}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
      );
      if (!res.headersSent) res.status(500).json({ message: 'Server Error' });
    });
  });
  const server = await new Promise<Server>((resolveListen, reject) => {
    const listening = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolveListen(listening)));
  });
  const addr = server.address() as AddressInfo;
  st.baseUrl = `http://127.0.0.1:${addr.port}`;
  return server;
}

async function handle(st: State, req: Request, res: Response): Promise<void> {
  const at = Date.now();
  const url = new URL(req.originalUrl, 'http://stand-in');
  const rawPath = url.pathname;
  const method = req.method.toUpperCase();
  const query = new Map<string, string[]>();
  for (const [k, v] of url.searchParams) query.set(k, [...(query.get(k) ?? []), v]);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  const record: RecordedRequest = {
    method,
    path: rawPath,
    query: Object.fromEntries([...query].map(([k, v]) => [k, v[v.length - 1] ?? ''])),
    body: undefined,
    status: 0,
    headers,
    at,
    operationId: undefined,
  };
  st.requests.push(record);
  const where = `${method} ${rawPath}${url.search}`;
  // A test holding some requests back (to act while natops is in the middle of something).
  for (const hold of st.holds) if (hold.match(method, rawPath)) await hold.released;

  let body: unknown;
  const raw: unknown = req.body;
  if (Buffer.isBuffer(raw) && raw.length > 0) {
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      st.violations.push(`${where}: body is not JSON`);
      return send(st, res, record, undefined, undefined, {
        status: 400,
        body: { message: 'Problems parsing JSON', documentation_url: 'https://docs.github.com/rest' },
      });
    }
  }
  record.body = body;

  // GitHub answers HEAD wherever it answers GET.
  const match = findOperation(method === 'HEAD' ? 'GET' : method, rawPath);
  if (!match || !('operation' in match)) {
    const why = match ? `the path takes only ${match.methods.join(', ')}` : 'no such path in the description';
    st.violations.push(`${where}: no GitHub operation (${why})`);
    return send(st, res, record, undefined, undefined, {
      status: 404,
      body: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' },
    });
  }
  const op = match.operation;
  record.operationId = op.operationId;
  const problems = validateRequest(op, { params: match.params, query, body });
  problems.push(...extraLimits(op.operationId, body));
  if (problems.length > 0) st.violations.push(`${where} (${op.operationId}): ${problems.join('; ')}`);

  const ctx: Ctx = {
    op,
    params: match.params,
    query,
    body,
    headers,
    principal: { kind: 'anonymous' },
    rawPath,
    rawQuery: url.search,
  };
  const docs = op.docsUrl;
  let reply: Reply;
  try {
    const fault = takeFault(st, method, rawPath);
    if (fault) return sendFault(st, res, record, ctx, fault);
    ctx.principal = authenticate(st, op, headers);
    const bucket = rateBucket(st, rateKey(st, ctx.principal));
    if (bucket.used >= (st.options.rateLimit ?? 5000)) {
      return sendFault(st, res, record, ctx, {
        status: 403,
        kind: 'primary',
        rateLimitResetSeconds: bucket.reset - Math.floor(Date.now() / 1000),
      });
    }
    if (problems.length > 0) {
      throw new HttpError(
        422,
        'Validation Failed',
        problems.map((p) => ({ resource: op.operationId.split('/')[0] ?? 'Request', code: 'invalid', message: p })),
      );
    }
    const handler = HANDLERS[op.operationId];
    if (!handler) {
      st.violations.push(`${where}: ${op.operationId} is valid but the stand-in does not implement it`);
      throw new HttpError(404, 'Not Found');
    }
    reply = await handler(st, ctx);
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    const errBody: Record<string, unknown> = {
      message: e.message,
      documentation_url: docs,
      status: String(e.status),
    };
    if (e.errors) errBody.errors = e.errors;
    reply = { status: e.status, body: errBody };
  }
  send(st, res, record, op, ctx, reply);
}

function send(
  st: State,
  res: Response,
  record: RecordedRequest,
  op: Operation | undefined,
  ctx: Ctx | undefined,
  reply: Reply,
  counted = true,
): void {
  const principalKey = ctx ? rateKey(st, ctx.principal) : 'anonymous';
  let status = reply.status;
  let body = reply.body;
  const headers: Record<string, string> = { ...reply.headers };
  // Conditional GETs, as GitHub: a weak ETag over the answer; a match is a 304 that costs no quota.
  if (ctx && (record.method === 'GET' || record.method === 'HEAD') && status === 200 && body !== undefined) {
    const etag = `W/"${createHash('sha256').update(JSON.stringify(body)).digest('hex')}"`;
    headers.etag = etag;
    const inm = ctx.headers['if-none-match'];
    if (inm?.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag.replace(/^W\//, ''))) {
      status = 304;
      body = undefined;
      counted = false;
    }
  }
  const bucket = rateBucket(st, principalKey);
  if (counted) bucket.used++;
  const limit = st.options.rateLimit ?? 5000;
  Object.assign(headers, {
    'x-github-request-id': requestId(),
    'x-github-api-version-selected': '2022-11-28',
    'x-github-media-type': 'github.v3; format=json',
    'x-ratelimit-limit': String(limit),
    'x-ratelimit-remaining': String(Math.max(0, limit - bucket.used)),
    'x-ratelimit-reset': String(bucket.reset),
    'x-ratelimit-used': String(bucket.used),
    'x-ratelimit-resource': 'core',
    ...reply.headers,
  });
  if (op && status !== 304) {
    const wrong = validateResponse(op, status, body);
    if (wrong.length > 0)
      st.violations.push(
        `stand-in answer to ${record.method} ${record.path} (${op.operationId}) breaks the description: ${wrong.join('; ')}`,
      );
  }
  record.status = status;
  res.status(status).set(headers);
  if (body === undefined || status === 304 || record.method === 'HEAD') {
    res.end();
    return;
  }
  res.set('content-type', 'application/json; charset=utf-8').send(JSON.stringify(body));
}

function rateBucket(st: State, key: string): { used: number; reset: number } {
  const now = Math.floor(Date.now() / 1000);
  let b = st.rate.get(key);
  if (!b || b.reset <= now) {
    b = { used: 0, reset: now + 3600 };
    st.rate.set(key, b);
  }
  return b;
}

function takeFault(st: State, method: string, path: string): (FaultOptions & { remaining: number }) | undefined {
  const f = st.faults.find((x) => x.remaining > 0 && (x.match ? x.match(method, path) : true));
  if (!f) return undefined;
  f.remaining--;
  if (f.remaining === 0) st.faults.splice(st.faults.indexOf(f), 1);
  return f;
}

function sendFault(st: State, res: Response, record: RecordedRequest, ctx: Ctx, f: FaultOptions): void {
  const limit = st.options.rateLimit ?? 5000;
  const now = Math.floor(Date.now() / 1000);
  const id = requestId();
  const headers: Record<string, string> = {
    'x-github-request-id': id,
    'x-github-media-type': 'github.v3; format=json',
    'x-ratelimit-limit': String(limit),
    'x-ratelimit-resource': 'core',
    'content-type': 'application/json; charset=utf-8',
  };
  if (f.retryAfterSeconds !== undefined) headers['retry-after'] = String(f.retryAfterSeconds);
  let body: Record<string, unknown>;
  if (f.status === 403 || f.status === 429) {
    const secondary = f.kind ? f.kind === 'secondary' : f.retryAfterSeconds !== undefined;
    const key = rateKey(st, peekPrincipal(st, ctx.headers));
    if (secondary) {
      const b = rateBucket(st, key);
      b.used++;
      Object.assign(headers, {
        'x-ratelimit-remaining': String(Math.max(0, limit - b.used)),
        'x-ratelimit-used': String(b.used),
        'x-ratelimit-reset': String(b.reset),
      });
      body = {
        message: `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${id}.`,
        documentation_url:
          'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
        status: String(f.status),
      };
    } else {
      Object.assign(headers, {
        'x-ratelimit-remaining': '0',
        'x-ratelimit-used': String(limit),
        'x-ratelimit-reset': String(now + (f.rateLimitResetSeconds ?? 60)),
      });
      const who = key.startsWith('installation:')
        ? `installation ID ${key.slice('installation:'.length)}`
        : key.startsWith('user:')
          ? `user ID ${st.user.id}`
          : '127.0.0.1';
      body = {
        message: `API rate limit exceeded for ${who}.`,
        documentation_url:
          'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit',
        status: String(f.status),
      };
    }
  } else {
    body = {
      message: f.status === 500 ? 'Server Error' : f.status === 502 ? 'Bad Gateway' : 'Service Unavailable',
      status: String(f.status),
    };
    const b = rateBucket(st, rateKey(st, peekPrincipal(st, ctx.headers)));
    Object.assign(headers, {
      'x-ratelimit-remaining': String(Math.max(0, limit - b.used)),
      'x-ratelimit-used': String(b.used),
      'x-ratelimit-reset': String(b.reset),
    });
  }
  record.status = f.status;
  res.status(f.status).set(headers).send(JSON.stringify(body));
}

/** Limits GitHub enforces that its description does not state. */
export function extraLimits(operationId: string, body: unknown): string[] {
  if (!isRecord(body)) return [];
  const out: string[] = [];
  const max = (field: string, value: unknown, limit: number) => {
    if (typeof value === 'string' && codePoints(value) > limit)
      out.push(`body/${field} is ${codePoints(value)} characters; GitHub allows at most ${limit}`);
  };
  switch (operationId) {
    case 'repos/create-commit-status':
      max('description', body.description, 140);
      max('context', body.context, 255);
      break;
    case 'issues/create-comment':
    case 'issues/update-comment':
      max('body', body.body, 65_536);
      break;
    case 'checks/create':
    case 'checks/update': {
      const output = body.output;
      if (isRecord(output)) {
        max('output/summary', output.summary, 65_535);
        max('output/text', output.text, 65_535);
        if (Array.isArray(output.annotations) && output.annotations.length > 50) {
          out.push(
            `body/output/annotations has ${output.annotations.length} items; GitHub takes at most 50 per request`,
          );
        }
      }
      break;
    }
  }
  return out;
}

function requestId(): string {
  const h = (n: number) => randomBytes(n).toString('hex').toUpperCase();
  return `${h(2)}:${h(2)}:${h(3)}:${h(3)}:${h(4)}`;
}
