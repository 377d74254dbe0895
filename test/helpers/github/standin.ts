// A local GitHub REST stand-in for tests: an express app on 127.0.0.1 that checks every request
// against GitHub's published OpenAPI description (and the limits the description leaves out),
// checks its own answers the same way, authenticates like GitHub (App JWTs, installation tokens,
// plain tokens, permissions), serves Git data from real bare repositories, keeps commit statuses,
// check runs, comments, pull requests and webhook deliveries in memory, and fails on demand.
// Tests call assertClean() at the end: any request GitHub would not accept fails the test.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express, { type Request, type Response } from 'express';
import { makeTestApp, verifyAppJwt, type TestApp } from './app-keys.ts';
import { findOperation, validateRequest, validateResponse, type Operation } from './openapi.ts';

export type PermissionLevel = 'read' | 'write' | 'admin';
export type Permissions = Record<string, PermissionLevel>;

export const DEFAULT_INSTALLATION_PERMISSIONS: Readonly<Permissions> = Object.freeze({
  contents: 'read',
  statuses: 'write',
  checks: 'write',
  pull_requests: 'write',
  metadata: 'read',
});

export interface InstallationOptions {
  id: number;
  /** the account it is installed on; default the owner of the first configured repository */
  account?: string;
  /** full names it may reach; default all configured repositories */
  repositories?: string[];
  /** default DEFAULT_INSTALLATION_PERMISSIONS */
  permissions?: Permissions;
}

export interface StandInOptions {
  /** 'owner/name' -> path of a bare Git repository serving its Git data */
  repos?: Record<string, string>;
  /** the App whose JWTs are accepted; default a fresh makeTestApp() */
  app?: TestApp;
  /** default one installation, id 1, on every repository */
  installations?: InstallationOptions[];
  /** lifetime of installation tokens; default one hour, as GitHub */
  installationTokenTtlMs?: number;
  /** accepted personal access tokens */
  plainTokens?: string[];
  /** who a plain token belongs to; default login "natops-tester" */
  user?: { login: string; id?: number; name?: string };
  /** a plain token's rights on every repository (GET /repos answers them); default all true */
  repoPermissions?: { admin: boolean; push: boolean; pull: boolean };
  /** a recursive tree listing with more entries than this answers the first N and truncated: true */
  truncateTreesOver?: number;
  /** requests per hour per principal (x-ratelimit-limit); past it, GitHub's primary rate-limit 403. Default 5000 */
  rateLimit?: number;
  /** status code a redelivery (POST /app/hook/deliveries/{id}/attempts) records; default 200 */
  redeliveryStatusCode?: number;
}

export interface RecordedRequest {
  method: string;
  /** the path as sent, still percent-encoded, without the query */
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
  /** request headers, names lower-cased */
  headers: Record<string, string>;
  /** epoch ms of arrival */
  at: number;
  operationId: string | undefined;
}

export interface FaultOptions {
  /** how many matching requests fail; default 1 */
  times?: number;
  status: 403 | 429 | 500 | 502 | 503;
  /** adds retry-after; on 403/429 it makes the fault a secondary rate limit unless `kind` says otherwise */
  retryAfterSeconds?: number;
  /** x-ratelimit-reset this far ahead (primary rate limit); default 60 */
  rateLimitResetSeconds?: number;
  kind?: 'primary' | 'secondary';
  /** which requests; default every request */
  match?: (method: string, path: string) => boolean;
}

export interface PostedStatus {
  id: number;
  sha: string;
  state: 'error' | 'failure' | 'pending' | 'success';
  description: string | null;
  target_url: string | null;
  context: string;
  created_at: string;
  /** login of who posted it */
  creator: string;
}

export interface StatusInput {
  state: PostedStatus['state'];
  /** default "default", as GitHub */
  context?: string;
  description?: string;
  target_url?: string;
  /** login; default the configured user */
  creator?: string;
}

export interface Annotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  message: string;
  [k: string]: unknown;
}

export interface StoredCheckRun {
  id: number;
  name: string;
  head_sha: string;
  status: string;
  conclusion: string | null;
  started_at: string | null;
  completed_at: string | null;
  details_url: string | null;
  external_id: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  /** every annotation sent, across create and updates (GitHub appends them) */
  annotations: Annotation[];
  /** how many PATCHes it received */
  updates: number;
}

export interface StoredComment {
  id: number;
  issue: number;
  body: string;
  login: string;
  type: 'User' | 'Bot';
  author_association: string;
  created_at: string;
  updated_at: string;
}

export interface PullRequestConfig {
  head: { sha: string; ref: string };
  base: { sha: string; ref: string };
  state?: 'open' | 'closed';
  title?: string;
  /** author login; default the configured user */
  user?: string;
  merged?: boolean;
  draft?: boolean;
}

export interface HookDelivery {
  id: number;
  guid: string;
  delivered_at: string;
  redelivery: boolean;
  duration: number;
  status: string;
  status_code: number;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
  throttled_at: string | null;
  request: { headers: Record<string, string> | null; payload: Record<string, unknown> | null };
  response: { headers: Record<string, string> | null; payload: string | null };
}

export type HookDeliveryInput = Partial<HookDelivery> & { event: string };

interface InstallationState {
  id: number;
  account: string;
  /** lower-case full names, or undefined for all */
  repositories: Set<string> | undefined;
  permissions: Permissions;
  createdAt: string;
}

interface InstallationToken {
  token: string;
  installationId: number;
  expiresAt: number;
  permissions: Permissions;
  repositories: Set<string> | undefined;
}

type Principal =
  | { kind: 'installation'; token: InstallationToken }
  | { kind: 'plain'; token: string }
  | { kind: 'app' }
  | { kind: 'anonymous' };

interface IssueState {
  number: number;
  comments: StoredComment[];
  pull: PullRequestConfig | undefined;
  createdAt: string;
}

interface RepoState {
  fullName: string;
  owner: string;
  name: string;
  gitDir: string;
  id: number;
  statuses: Map<string, PostedStatus[]>;
  checkRuns: Map<number, StoredCheckRun>;
  issues: Map<number, IssueState>;
}

interface Ctx {
  op: Operation;
  params: Record<string, string>;
  query: Map<string, string[]>;
  body: unknown;
  headers: Record<string, string>;
  principal: Principal;
  rawPath: string;
  rawQuery: string;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, unknown>[],
  ) {
    super(message);
  }
}

const WEB = 'https://github.com';
const SHA = /^[0-9a-f]{40}$/;
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const MAX_STATUSES_PER_CONTEXT = 1000;
const RANK: Record<PermissionLevel, number> = { read: 1, write: 2, admin: 3 };

/** GitHub's timestamps: ISO 8601, seconds, UTC. */
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const nodeId = (kind: string, id: number | string): string =>
  Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64').replace(/=+$/, '');
const numericId = (s: string): number => (createHash('sha256').update(s).digest().readUInt32BE(0) % 100_000_000) + 1000;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const codePoints = (s: string): number => [...s].length;

/** git with an argv array (no shell); answers stdout bytes and the exit code. */
function git(gitDir: string, args: string[], okCodes: number[] = [0]): Promise<{ stdout: Buffer; code: number }> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'git',
      ['--git-dir', gitDir, ...args],
      { encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (okCodes.includes(code)) resolvePromise({ stdout, code });
        else reject(new Error(`git ${args.join(' ')} (in ${gitDir}) exited ${code}: ${stderr.toString().trim()}`));
      },
    );
  });
}

interface RawCommit {
  sha: string;
  tree: string;
  parents: string[];
  author: { name: string; email: string; date: string };
  committer: { name: string; email: string; date: string };
  message: string;
}

function parsePerson(line: string): { name: string; email: string; date: string } {
  const m = /^(.*) <(.*)> (\d+) ([+-]\d{4})$/.exec(line);
  if (!m) return { name: line, email: '', date: iso(0) };
  return { name: m[1] ?? '', email: m[2] ?? '', date: iso(Number(m[3]) * 1000) };
}

export class GitHubStandIn {
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  /** blob sha -> how many times GET git/blobs fetched it */
  readonly blobFetches = new Map<string, number>();
  /** delivery ids redelivered, in order */
  readonly redeliveries: number[] = [];
  readonly app: TestApp;
  private baseUrl = '';

  private server: Server | undefined;
  private readonly repos = new Map<string, RepoState>();
  private readonly installations = new Map<number, InstallationState>();
  private readonly tokens = new Map<string, InstallationToken>();
  private readonly faults: (FaultOptions & { remaining: number })[] = [];
  private readonly holds: { match: (method: string, path: string) => boolean; released: Promise<void> }[] = [];
  private readonly deliveries: HookDelivery[] = [];
  private readonly rate = new Map<string, { used: number; reset: number }>();
  private readonly objectCache = new Map<string, unknown>();
  private tokensMinted = 0;
  private nextId = 1;
  private readonly startedAt = Date.now();
  private readonly user: { login: string; id: number; name: string };

  private constructor(private readonly options: StandInOptions) {
    this.app = options.app ?? makeTestApp();
    this.user = {
      login: options.user?.login ?? 'natops-tester',
      id: options.user?.id ?? 583231,
      name: options.user?.name ?? 'natops tester',
    };
    let i = 0;
    for (const [fullName, gitDir] of Object.entries(options.repos ?? {})) {
      const [owner, name, ...rest] = fullName.split('/');
      if (!owner || !name || rest.length > 0) throw new TypeError(`repository "${fullName}" is not owner/name`);
      this.repos.set(fullName.toLowerCase(), {
        fullName,
        owner,
        name,
        gitDir,
        id: 700_000 + i++,
        statuses: new Map(),
        checkRuns: new Map(),
        issues: new Map(),
      });
    }
    const firstOwner = [...this.repos.values()][0]?.owner ?? 'natops';
    for (const inst of options.installations ?? [{ id: 1 }]) {
      this.installations.set(inst.id, {
        id: inst.id,
        account: inst.account ?? firstOwner,
        repositories: inst.repositories ? new Set(inst.repositories.map((r) => r.toLowerCase())) : undefined,
        permissions: { ...(inst.permissions ?? DEFAULT_INSTALLATION_PERMISSIONS) },
        createdAt: iso(this.startedAt - 86_400_000),
      });
    }
  }

  static async start(options: StandInOptions = {}): Promise<GitHubStandIn> {
    const s = new GitHubStandIn(options);
    const app = express();
    // Express would answer If-None-Match itself from its own ETags; GitHub's conditional requests are ours.
    app.set('etag', false);
    app.disable('x-powered-by');
    app.use(express.raw({ type: () => true, limit: '100mb' }));
    app.use((req: Request, res: Response) => {
      s.handle(req, res).catch((e: unknown) => {
        s.violations.push(
          `stand-in crashed on ${req.method} ${req.originalUrl}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
        if (!res.headersSent) res.status(500).json({ message: 'Server Error' });
      });
    });
    await new Promise<void>((resolveListen, reject) => {
      const server = app.listen(0, '127.0.0.1', (err?: Error) => (err ? reject(err) : resolveListen()));
      s.server = server;
    });
    const addr = s.server!.address() as AddressInfo;
    s.baseUrl = `http://127.0.0.1:${addr.port}`;
    return s;
  }

  /** The base URL for octokit's baseUrl (no trailing slash). */
  get url(): string {
    return this.baseUrl;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  // ---- what tests read and set ----------------------------------------------------------------

  /** Throws, listing every violation, if any request broke the description or a GitHub limit. */
  assertClean(): void {
    if (this.violations.length === 0) return;
    throw new Error(
      `GitHub stand-in saw ${this.violations.length} violation(s):\n${this.violations.map((v) => `  - ${v}`).join('\n')}`,
    );
  }

  /** The violations so far, clearing them (for tests that provoke them on purpose). */
  takeViolations(): string[] {
    return this.violations.splice(0);
  }

  /** Requests by method ('*' for any) and path: a RegExp, or a prefix of the raw path. */
  count(method: string, pathRegexOrPrefix: RegExp | string): number {
    return this.requests.filter(
      (r) =>
        (method === '*' || r.method === method.toUpperCase()) &&
        (typeof pathRegexOrPrefix === 'string' ? r.path.startsWith(pathRegexOrPrefix) : pathRegexOrPrefix.test(r.path)),
    ).length;
  }

  /** Installation access tokens issued so far. */
  get tokensIssued(): number {
    return this.tokensMinted;
  }

  /** The next `times` matching requests fail with `status`, as GitHub fails them. */
  /**
   * Holds every matching request until `release()` is called (then answers it as usual), so a
   * test can act while natops waits on GitHub.
   */
  hold(match: (method: string, path: string) => boolean): { release(): void } {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    const hold = { match, released };
    this.holds.push(hold);
    return {
      release: () => {
        this.holds.splice(this.holds.indexOf(hold), 1);
        release();
      },
    };
  }

  fail(f: FaultOptions): void {
    this.faults.push({ ...f, remaining: f.times ?? 1 });
  }

  /** Every status posted on a commit, oldest first. */
  statuses(fullName: string, sha: string): PostedStatus[] {
    return [...(this.repo(fullName).statuses.get(sha) ?? [])];
  }

  /** A status as if someone posted it (GitHub's 1,000 per sha and context still applies). */
  addStatus(fullName: string, sha: string, s: StatusInput): PostedStatus {
    try {
      return this.pushStatus(this.repo(fullName), sha, s);
    } catch (e) {
      throw e instanceof HttpError ? new Error(`addStatus: ${JSON.stringify(e.errors)}`) : e;
    }
  }

  /** The latest status per context, as GitHub shows them on a commit. */
  latestStatuses(fullName: string, sha: string): Map<string, PostedStatus> {
    const out = new Map<string, PostedStatus>();
    for (const s of this.repo(fullName).statuses.get(sha) ?? []) out.set(s.context, s);
    return out;
  }

  checkRuns(fullName: string): StoredCheckRun[] {
    return [...this.repo(fullName).checkRuns.values()];
  }

  comments(fullName: string, issue: number): StoredComment[] {
    return [...(this.repo(fullName).issues.get(issue)?.comments ?? [])];
  }

  /** A comment by someone else (or anyone), as if posted on GitHub; the issue comes into being. */
  addComment(
    fullName: string,
    issue: number,
    c: { login: string; body: string; type?: 'User' | 'Bot'; authorAssociation?: string },
  ): StoredComment {
    const now = iso(Date.now());
    const comment: StoredComment = {
      id: this.nextId++,
      issue,
      body: c.body,
      login: c.login,
      type: c.type ?? (c.login.endsWith('[bot]') ? 'Bot' : 'User'),
      author_association: c.authorAssociation ?? 'NONE',
      created_at: now,
      updated_at: now,
    };
    this.issue(this.repo(fullName), issue).comments.push(comment);
    return comment;
  }

  setPullRequest(fullName: string, number: number, pr: PullRequestConfig): void {
    this.issue(this.repo(fullName), number).pull = pr;
  }

  addHookDelivery(d: HookDeliveryInput): HookDelivery {
    const id = d.id ?? 10_000_000 + this.nextId++;
    const status_code = d.status_code ?? 200;
    const delivery: HookDelivery = {
      id,
      guid:
        d.guid ??
        randomBytes(16)
          .toString('hex')
          .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'),
      delivered_at: d.delivered_at ?? iso(Date.now()),
      redelivery: d.redelivery ?? false,
      duration: d.duration ?? 0.27,
      status: d.status ?? (status_code >= 200 && status_code < 400 ? 'OK' : `Invalid HTTP Response: ${status_code}`),
      status_code,
      event: d.event,
      action: d.action ?? null,
      installation_id:
        d.installation_id === undefined ? ([...this.installations.keys()][0] ?? null) : d.installation_id,
      repository_id: d.repository_id ?? null,
      throttled_at: d.throttled_at ?? null,
      request: d.request ?? { headers: { 'X-GitHub-Event': d.event }, payload: {} },
      response: d.response ?? { headers: {}, payload: '' },
    };
    this.deliveries.push(delivery);
    return delivery;
  }

  hookDeliveries(): HookDelivery[] {
    return [...this.deliveries];
  }

  /** Changes what tokens issued from now on may do (tokens already issued keep theirs, as on GitHub). */
  setInstallationPermissions(installationId: number, permissions: Permissions): void {
    const inst = this.installations.get(installationId);
    if (!inst) throw new Error(`no installation ${installationId}`);
    inst.permissions = { ...permissions };
  }

  /** Makes every installation token issued so far expired. */
  expireInstallationTokens(): void {
    for (const t of this.tokens.values()) t.expiresAt = Date.now() - 1;
  }

  /** Mints an installation token directly (as POST .../access_tokens would), for tests without an App client. */
  createInstallationToken(installationId = [...this.installations.keys()][0] ?? 1): string {
    return this.mintToken(installationId, undefined, undefined).token;
  }

  // ---- the request pipeline -----------------------------------------------------------------

  private async handle(req: Request, res: Response): Promise<void> {
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
    this.requests.push(record);
    const where = `${method} ${rawPath}${url.search}`;
    // A test holding some requests back (to act while natops is in the middle of something).
    for (const hold of this.holds) if (hold.match(method, rawPath)) await hold.released;

    let body: unknown;
    const raw: unknown = req.body;
    if (Buffer.isBuffer(raw) && raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        this.violations.push(`${where}: body is not JSON`);
        return this.send(res, record, undefined, undefined, {
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
      this.violations.push(`${where}: no GitHub operation (${why})`);
      return this.send(res, record, undefined, undefined, {
        status: 404,
        body: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' },
      });
    }
    const op = match.operation;
    record.operationId = op.operationId;
    const problems = validateRequest(op, { params: match.params, query, body });
    problems.push(...extraLimits(op.operationId, body));
    if (problems.length > 0) this.violations.push(`${where} (${op.operationId}): ${problems.join('; ')}`);

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
      const fault = this.takeFault(method, rawPath);
      if (fault) return this.sendFault(res, record, ctx, fault);
      ctx.principal = this.authenticate(op, headers);
      const bucket = this.bucket(this.principalKey(ctx.principal));
      if (bucket.used >= (this.options.rateLimit ?? 5000)) {
        return this.sendFault(res, record, ctx, {
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
      const handler = this.handlers[op.operationId];
      if (!handler) {
        this.violations.push(`${where}: ${op.operationId} is valid but the stand-in does not implement it`);
        throw new HttpError(404, 'Not Found');
      }
      reply = await handler(ctx);
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
    this.send(res, record, op, ctx, reply);
  }

  private send(
    res: Response,
    record: RecordedRequest,
    op: Operation | undefined,
    ctx: Ctx | undefined,
    reply: Reply,
    counted = true,
  ): void {
    const principalKey = ctx ? this.principalKey(ctx.principal) : 'anonymous';
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
    const bucket = this.bucket(principalKey);
    if (counted) bucket.used++;
    const limit = this.options.rateLimit ?? 5000;
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
        this.violations.push(
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

  private bucket(key: string): { used: number; reset: number } {
    const now = Math.floor(Date.now() / 1000);
    let b = this.rate.get(key);
    if (!b || b.reset <= now) {
      b = { used: 0, reset: now + 3600 };
      this.rate.set(key, b);
    }
    return b;
  }

  private principalKey(p: Principal): string {
    switch (p.kind) {
      case 'installation':
        return `installation:${p.token.installationId}`;
      case 'plain':
        return `user:${this.user.id}`;
      case 'app':
        return `app:${this.app.appId}`;
      default:
        return 'anonymous';
    }
  }

  private takeFault(method: string, path: string): (FaultOptions & { remaining: number }) | undefined {
    const f = this.faults.find((x) => x.remaining > 0 && (x.match ? x.match(method, path) : true));
    if (!f) return undefined;
    f.remaining--;
    if (f.remaining === 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  private sendFault(res: Response, record: RecordedRequest, ctx: Ctx, f: FaultOptions): void {
    const limit = this.options.rateLimit ?? 5000;
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
      const key = this.principalKey(this.peekPrincipal(ctx.headers));
      if (secondary) {
        const b = this.bucket(key);
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
            ? `user ID ${this.user.id}`
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
      const b = this.bucket(this.principalKey(this.peekPrincipal(ctx.headers)));
      Object.assign(headers, {
        'x-ratelimit-remaining': String(Math.max(0, limit - b.used)),
        'x-ratelimit-used': String(b.used),
        'x-ratelimit-reset': String(b.reset),
      });
    }
    record.status = f.status;
    res.status(f.status).set(headers).send(JSON.stringify(body));
  }

  // ---- authentication -----------------------------------------------------------------------

  /** Who the credentials are, without failing (for rate-limit messages of faults). */
  private peekPrincipal(headers: Record<string, string>): Principal {
    const m = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
    if (!m) return { kind: 'anonymous' };
    const t = this.tokens.get(m[1]!);
    if (t) return { kind: 'installation', token: t };
    if ((this.options.plainTokens ?? []).includes(m[1]!)) return { kind: 'plain', token: m[1]! };
    return m[1]!.split('.').length === 3 ? { kind: 'app' } : { kind: 'anonymous' };
  }

  private authenticate(op: Operation, headers: Record<string, string>): Principal {
    const m = /^(token|bearer)\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
    if (JWT_OPERATIONS.has(op.operationId)) {
      if (!m) throw new HttpError(401, 'A JSON web token could not be decoded');
      const verdict = verifyAppJwt(this.app, m[2]!);
      if (!verdict.ok) throw new HttpError(401, verdict.message);
      return { kind: 'app' };
    }
    if (!m) throw new HttpError(401, 'Requires authentication');
    const credential = m[2]!;
    const t = this.tokens.get(credential);
    if (t) {
      if (t.expiresAt <= Date.now()) throw new HttpError(401, 'Bad credentials');
      return { kind: 'installation', token: t };
    }
    if ((this.options.plainTokens ?? []).includes(credential)) return { kind: 'plain', token: credential };
    throw new HttpError(401, 'Bad credentials');
  }

  /** The repository of the request, reachable by the caller, or GitHub's 404. */
  private repoFor(ctx: Ctx): RepoState {
    const full = `${ctx.params.owner ?? ''}/${ctx.params.repo ?? ''}`.toLowerCase();
    const repo = this.repos.get(full);
    const notFound = new HttpError(404, 'Not Found');
    if (!repo) throw notFound;
    const p = ctx.principal;
    if (p.kind === 'installation') {
      const inst = this.installations.get(p.token.installationId);
      if (
        !inst ||
        (inst.repositories && !inst.repositories.has(full)) ||
        (p.token.repositories && !p.token.repositories.has(full))
      )
        throw notFound;
    } else if (p.kind === 'plain') {
      if (!this.repoPermissions().pull) throw notFound;
    }
    return repo;
  }

  private repoPermissions(): { admin: boolean; push: boolean; pull: boolean } {
    return this.options.repoPermissions ?? { admin: true, push: true, pull: true };
  }

  /**
   * The caller must hold one of `perms` at `level`: an installation token by its permissions (403
   * "Resource not accessible by integration"), a plain token by its repository rights.
   */
  private need(ctx: Ctx, perms: string[], level: 'read' | 'write'): void {
    const p = ctx.principal;
    if (p.kind === 'installation') {
      const granted = perms.some((name) => {
        const have = name === 'metadata' ? 'read' : p.token.permissions[name];
        return have !== undefined && RANK[have] >= RANK[level];
      });
      if (!granted) throw new HttpError(403, 'Resource not accessible by integration');
    } else if (p.kind === 'plain') {
      const rights = this.repoPermissions();
      if (level === 'write' ? !rights.push : !rights.pull) throw new HttpError(404, 'Not Found');
    }
  }

  private appOnly(ctx: Ctx): void {
    if (ctx.principal.kind !== 'installation') throw new HttpError(403, 'You must authenticate via a GitHub App.');
  }

  private mintToken(
    installationId: number,
    repositories: string[] | undefined,
    requested: Permissions | undefined,
  ): InstallationToken {
    const inst = this.installations.get(installationId);
    if (!inst) throw new HttpError(404, 'Not Found');
    let permissions = { ...inst.permissions };
    if (requested) {
      for (const [k, v] of Object.entries(requested)) {
        const have = inst.permissions[k];
        if (have === undefined || RANK[have] < RANK[v])
          throw new HttpError(422, 'The permissions requested are not granted to this installation.');
      }
      permissions = { ...requested };
    }
    let repoSet: Set<string> | undefined;
    if (repositories) {
      repoSet = new Set();
      for (const name of repositories) {
        const repo = [...this.repos.values()].find(
          (r) => r.owner.toLowerCase() === inst.account.toLowerCase() && r.name.toLowerCase() === name.toLowerCase(),
        );
        if (!repo || (inst.repositories && !inst.repositories.has(repo.fullName.toLowerCase()))) {
          throw new HttpError(
            422,
            'There is at least one repository that does not exist or is not accessible to the parent installation.',
          );
        }
        repoSet.add(repo.fullName.toLowerCase());
      }
    }
    const token: InstallationToken = {
      token: `ghs_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`,
      installationId,
      expiresAt: Date.now() + (this.options.installationTokenTtlMs ?? 3_600_000),
      permissions,
      repositories: repoSet,
    };
    this.tokens.set(token.token, token);
    this.tokensMinted++;
    return token;
  }

  // ---- object builders (every field the description requires) --------------------------------

  private user_(login: string, type: 'User' | 'Bot' | 'Organization', id = numericId(login)): Record<string, unknown> {
    const api = `${this.url}/users/${encodeURIComponent(login)}`;
    return {
      login,
      id,
      node_id: nodeId(type === 'Bot' ? 'Bot' : type === 'Organization' ? 'Organization' : 'User', id),
      avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
      gravatar_id: '',
      url: api,
      html_url:
        type === 'Bot'
          ? `${WEB}/apps/${encodeURIComponent(login.replace(/\[bot\]$/, ''))}`
          : `${WEB}/${encodeURIComponent(login)}`,
      followers_url: `${api}/followers`,
      following_url: `${api}/following{/other_user}`,
      gists_url: `${api}/gists{/gist_id}`,
      starred_url: `${api}/starred{/owner}{/repo}`,
      subscriptions_url: `${api}/subscriptions`,
      organizations_url: `${api}/orgs`,
      repos_url: `${api}/repos`,
      events_url: `${api}/events{/privacy}`,
      received_events_url: `${api}/received_events`,
      type,
      user_view_type: 'public',
      site_admin: false,
    };
  }

  private botLogin(): string {
    return `${this.app.slug}[bot]`;
  }

  private botId(): number {
    return 9_000_000 + this.app.appId;
  }

  /** The caller as a user object: the App's bot for an installation token, else the configured user. */
  private caller(ctx: Ctx): { login: string; type: 'User' | 'Bot'; object: Record<string, unknown> } {
    if (ctx.principal.kind === 'installation')
      return { login: this.botLogin(), type: 'Bot', object: this.user_(this.botLogin(), 'Bot', this.botId()) };
    return { login: this.user.login, type: 'User', object: this.user_(this.user.login, 'User', this.user.id) };
  }

  private userByLogin(login: string, type?: 'User' | 'Bot'): Record<string, unknown> {
    if (login === this.botLogin()) return this.user_(login, 'Bot', this.botId());
    if (login === this.user.login) return this.user_(login, 'User', this.user.id);
    return this.user_(login, type ?? (login.endsWith('[bot]') ? 'Bot' : 'User'));
  }

  private integration(): Record<string, unknown> {
    const inst = [...this.installations.values()][0];
    const created = iso(this.startedAt - 30 * 86_400_000);
    return {
      id: this.app.appId,
      slug: this.app.slug,
      client_id: `Iv1.${createHash('sha256').update(String(this.app.appId)).digest('hex').slice(0, 16)}`,
      node_id: nodeId('App', this.app.appId),
      owner: this.user_(inst?.account ?? 'natops', 'Organization'),
      name: this.app.slug,
      description: 'natops test App',
      external_url: 'https://natops.example.com',
      html_url: `${WEB}/apps/${this.app.slug}`,
      created_at: created,
      updated_at: created,
      permissions: { ...(inst?.permissions ?? DEFAULT_INSTALLATION_PERMISSIONS) },
      events: ['check_run', 'pull_request', 'push'],
      installations_count: this.installations.size,
    };
  }

  private installation(inst: InstallationState): Record<string, unknown> {
    const accountId = numericId(inst.account);
    return {
      id: inst.id,
      account: this.user_(inst.account, 'Organization', accountId),
      repository_selection: inst.repositories ? 'selected' : 'all',
      access_tokens_url: `${this.url}/app/installations/${inst.id}/access_tokens`,
      repositories_url: `${this.url}/installation/repositories`,
      html_url: `${WEB}/organizations/${inst.account}/settings/installations/${inst.id}`,
      app_id: this.app.appId,
      app_slug: this.app.slug,
      client_id: `Iv1.${createHash('sha256').update(String(this.app.appId)).digest('hex').slice(0, 16)}`,
      target_id: accountId,
      target_type: 'Organization',
      permissions: { ...inst.permissions },
      events: ['check_run', 'pull_request', 'push'],
      created_at: inst.createdAt,
      updated_at: inst.createdAt,
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [],
      suspended_by: null,
      suspended_at: null,
    };
  }

  private async repository(repo: RepoState, withPermissions: boolean): Promise<Record<string, unknown>> {
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    const html = `${WEB}/${repo.owner}/${repo.name}`;
    const refs = await this.refs(repo);
    const defaultBranch = refs.head?.replace(/^refs\/heads\//, '') ?? 'main';
    const pushedSeconds = refs.newestCommitSeconds;
    const created = iso(this.startedAt - 365 * 86_400_000);
    const openIssues = [...repo.issues.values()].filter((i) => (i.pull?.state ?? 'open') === 'open').length;
    const out: Record<string, unknown> = {
      id: repo.id,
      node_id: nodeId('Repository', repo.id),
      name: repo.name,
      full_name: `${repo.owner}/${repo.name}`,
      private: true,
      owner: this.user_(repo.owner, 'Organization'),
      html_url: html,
      description: null,
      fork: false,
      url: api,
      archive_url: `${api}/{archive_format}{/ref}`,
      assignees_url: `${api}/assignees{/user}`,
      blobs_url: `${api}/git/blobs{/sha}`,
      branches_url: `${api}/branches{/branch}`,
      collaborators_url: `${api}/collaborators{/collaborator}`,
      comments_url: `${api}/comments{/number}`,
      commits_url: `${api}/commits{/sha}`,
      compare_url: `${api}/compare/{base}...{head}`,
      contents_url: `${api}/contents/{+path}`,
      contributors_url: `${api}/contributors`,
      deployments_url: `${api}/deployments`,
      downloads_url: `${api}/downloads`,
      events_url: `${api}/events`,
      forks_url: `${api}/forks`,
      git_commits_url: `${api}/git/commits{/sha}`,
      git_refs_url: `${api}/git/refs{/sha}`,
      git_tags_url: `${api}/git/tags{/sha}`,
      git_url: `git://github.com/${repo.owner}/${repo.name}.git`,
      hooks_url: `${api}/hooks`,
      issue_comment_url: `${api}/issues/comments{/number}`,
      issue_events_url: `${api}/issues/events{/number}`,
      issues_url: `${api}/issues{/number}`,
      keys_url: `${api}/keys{/key_id}`,
      labels_url: `${api}/labels{/name}`,
      languages_url: `${api}/languages`,
      merges_url: `${api}/merges`,
      milestones_url: `${api}/milestones{/number}`,
      notifications_url: `${api}/notifications{?since,all,participating}`,
      pulls_url: `${api}/pulls{/number}`,
      releases_url: `${api}/releases{/id}`,
      ssh_url: `git@github.com:${repo.owner}/${repo.name}.git`,
      stargazers_url: `${api}/stargazers`,
      statuses_url: `${api}/statuses/{sha}`,
      subscribers_url: `${api}/subscribers`,
      subscription_url: `${api}/subscription`,
      tags_url: `${api}/tags`,
      teams_url: `${api}/teams`,
      trees_url: `${api}/git/trees{/sha}`,
      clone_url: `${html}.git`,
      mirror_url: null,
      svn_url: html,
      homepage: null,
      language: 'YAML',
      forks: 0,
      forks_count: 0,
      stargazers_count: 0,
      watchers: 0,
      watchers_count: 0,
      size: 1,
      default_branch: defaultBranch,
      open_issues: openIssues,
      open_issues_count: openIssues,
      is_template: false,
      topics: [],
      has_issues: true,
      has_projects: false,
      has_wiki: false,
      has_pages: false,
      has_downloads: true,
      has_discussions: false,
      archived: false,
      disabled: false,
      visibility: 'private',
      license: null,
      allow_forking: false,
      web_commit_signoff_required: false,
      pushed_at: Number.isFinite(pushedSeconds) && pushedSeconds > 0 ? iso(pushedSeconds * 1000) : created,
      created_at: created,
      updated_at: created,
      network_count: 0,
      subscribers_count: 1,
    };
    if (withPermissions) {
      const r = this.repoPermissions();
      out.permissions = { admin: r.admin, maintain: r.admin, push: r.push, triage: r.push, pull: r.pull };
    }
    return out;
  }

  /**
   * Git objects never change, so what git said about one is kept: spawning git costs tens of
   * milliseconds here, and a client under test may fetch the same objects many times.
   */
  private async cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    const hit = this.objectCache.get(key);
    if (hit !== undefined) return hit as T;
    const value = await make();
    this.objectCache.set(key, value);
    return value;
  }

  /** Every ref with the commit it points at (tags peeled), HEAD's target, and the newest commit time. */
  private async refs(
    repo: RepoState,
  ): Promise<{ refs: Map<string, string>; head: string | undefined; newestCommitSeconds: number }> {
    const out = (
      await git(repo.gitDir, [
        'for-each-ref',
        '--format=%(refname)%00%(objectname)%00%(*objectname)%00%(committerdate:unix)%00%(*committerdate:unix)',
      ])
    ).stdout.toString('utf8');
    const refs = new Map<string, string>();
    let newest = 0;
    for (const line of out.split('\n')) {
      const [name, obj, peeled, date, peeledDate] = line.split('\0');
      if (!name || !obj) continue;
      const sha = peeled && SHA.test(peeled) ? peeled : obj;
      if (SHA.test(sha)) refs.set(name, sha);
      newest = Math.max(newest, Number(peeledDate || date) || 0);
    }
    // A bare repository's HEAD file names the default branch ("ref: refs/heads/main").
    const head = /^ref: (\S+)/.exec(await readFile(join(repo.gitDir, 'HEAD'), 'utf8').catch(() => ''))?.[1];
    return { refs, head, newestCommitSeconds: newest };
  }

  private rawCommit(repo: RepoState, sha: string): Promise<RawCommit> {
    return this.cached(`commit\0${repo.gitDir}\0${sha}`, () => this.readCommit(repo, sha));
  }

  private async readCommit(repo: RepoState, sha: string): Promise<RawCommit> {
    if (!SHA.test(sha)) throw new Error(`not a sha: ${sha}`);
    const text = (await git(repo.gitDir, ['cat-file', 'commit', sha])).stdout.toString('utf8');
    const split = text.indexOf('\n\n');
    const head = split >= 0 ? text.slice(0, split) : text;
    const message = split >= 0 ? text.slice(split + 2) : '';
    const out: RawCommit = {
      sha,
      tree: '',
      parents: [],
      author: parsePerson(''),
      committer: parsePerson(''),
      message: message.replace(/\n$/, ''),
    };
    for (const line of head.split('\n')) {
      const sp = line.indexOf(' ');
      const key = line.slice(0, sp);
      const value = line.slice(sp + 1);
      if (key === 'tree') out.tree = value;
      else if (key === 'parent') out.parents.push(value);
      else if (key === 'author') out.author = parsePerson(value);
      else if (key === 'committer') out.committer = parsePerson(value);
    }
    return out;
  }

  private diffFiles(repo: RepoState, from: string | undefined, to: string): Promise<Record<string, unknown>[]> {
    return this.cached(`diff\0${repo.gitDir}\0${from}\0${to}`, () => this.readDiff(repo, from, to));
  }

  private async readDiff(repo: RepoState, from: string | undefined, to: string): Promise<Record<string, unknown>[]> {
    const a = from ?? EMPTY_TREE;
    const rawOut = (await git(repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--raw', a, to])).stdout
      .toString('utf8')
      .split('\0');
    const numOut = (await git(repo.gitDir, ['diff-tree', '-r', '-z', '--no-renames', '--numstat', a, to])).stdout
      .toString('utf8')
      .split('\0');
    const counts = new Map<string, { add: number; del: number }>();
    for (const entry of numOut) {
      const m = /^(\d+|-)\t(\d+|-)\t(.*)$/s.exec(entry);
      if (m) counts.set(m[3]!, { add: m[1] === '-' ? 0 : Number(m[1]), del: m[2] === '-' ? 0 : Number(m[2]) });
    }
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    const files: Record<string, unknown>[] = [];
    for (let i = 0; i + 1 < rawOut.length; i += 2) {
      const meta = /^:(\d+) (\d+) ([0-9a-f]+) ([0-9a-f]+) ([A-Z])/.exec(rawOut[i] ?? '');
      const path = rawOut[i + 1];
      if (!meta || path === undefined) continue;
      const c = counts.get(path) ?? { add: 0, del: 0 };
      const status = meta[5] === 'A' ? 'added' : meta[5] === 'D' ? 'removed' : meta[5] === 'M' ? 'modified' : 'changed';
      const blob = status === 'removed' ? meta[3]! : meta[4]!;
      const ref = status === 'removed' ? (from ?? to) : to;
      files.push({
        sha: blob,
        filename: path,
        status,
        additions: c.add,
        deletions: c.del,
        changes: c.add + c.del,
        blob_url: `${WEB}/${repo.owner}/${repo.name}/blob/${ref}/${encodeURI(path)}`,
        raw_url: `${WEB}/${repo.owner}/${repo.name}/raw/${ref}/${encodeURI(path)}`,
        contents_url: `${api}/contents/${encodeURI(path)}?ref=${ref}`,
      });
      if (files.length >= 300) break; // GitHub lists at most 300 files
    }
    return files;
  }

  private async commitObject(repo: RepoState, sha: string, withFiles: boolean): Promise<Record<string, unknown>> {
    const c = await this.rawCommit(repo, sha);
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    const out: Record<string, unknown> = {
      sha,
      node_id: nodeId('Commit', sha),
      url: `${api}/commits/${sha}`,
      html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${sha}`,
      comments_url: `${api}/commits/${sha}/comments`,
      commit: {
        url: `${api}/git/commits/${sha}`,
        author: c.author,
        committer: c.committer,
        message: c.message,
        tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
        comment_count: 0,
        verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
      },
      // Commits by addresses that are no GitHub account carry no user.
      author: null,
      committer: null,
      parents: c.parents.map((p) => ({
        sha: p,
        url: `${api}/commits/${p}`,
        html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${p}`,
      })),
    };
    if (withFiles) {
      const files = await this.diffFiles(repo, c.parents[0], sha);
      const additions = files.reduce((n, f) => n + (f.additions as number), 0);
      const deletions = files.reduce((n, f) => n + (f.deletions as number), 0);
      out.stats = { total: additions + deletions, additions, deletions };
      out.files = files;
    }
    return out;
  }

  /** The type of an object by full sha; an absent object is asked again next time (it may be pushed). */
  private async objectType(repo: RepoState, sha: string): Promise<string | undefined> {
    if (!SHA.test(sha)) return undefined;
    const key = `type\0${repo.gitDir}\0${sha}`;
    const hit = this.objectCache.get(key);
    if (typeof hit === 'string') return hit;
    const r = await git(repo.gitDir, ['cat-file', '-t', sha], [0, 1, 128]);
    if (r.code !== 0) return undefined;
    const type = r.stdout.toString().trim();
    this.objectCache.set(key, type);
    return type;
  }

  /**
   * A commit sha for a ref as GitHub takes them: a sha (full or abbreviated), branch, tag,
   * heads/x, tags/x, refs/... Names are matched against the ref list, so no client text ever
   * reaches git as revision syntax (~, ^, @{...}).
   */
  private async resolveCommit(repo: RepoState, ref: string): Promise<string | undefined> {
    if (SHA.test(ref)) {
      const type = await this.objectType(repo, ref);
      if (type === 'commit') return ref;
      if (type === 'tag') return this.peel(repo, ref);
      return undefined;
    }
    if (ref.length === 0) return undefined;
    const { refs } = await this.refs(repo);
    const candidates = ref.startsWith('refs/') ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`, `refs/${ref}`];
    for (const cand of candidates) {
      const sha = refs.get(cand);
      if (sha && (await this.objectType(repo, sha)) === 'commit') return sha;
    }
    if (/^[0-9a-f]{7,39}$/.test(ref)) {
      const r = await git(
        repo.gitDir,
        ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`],
        [0, 1, 128],
      );
      const sha = r.stdout.toString().trim();
      if (r.code === 0 && SHA.test(sha)) return sha;
    }
    return undefined;
  }

  private async peel(repo: RepoState, tagSha: string): Promise<string | undefined> {
    const r = await git(
      repo.gitDir,
      ['rev-parse', '--verify', '--quiet', '--end-of-options', `${tagSha}^{commit}`],
      [0, 1, 128],
    );
    const sha = r.stdout.toString().trim();
    return r.code === 0 && SHA.test(sha) ? sha : undefined;
  }

  private async branchHead(repo: RepoState, branch: string): Promise<string | undefined> {
    return (await this.refs(repo)).refs.get(`refs/heads/${branch}`);
  }

  private statusObject(repo: RepoState, s: PostedStatus): Record<string, unknown> {
    const creator = this.userByLogin(s.creator);
    return {
      url: `${this.url}/repos/${repo.owner}/${repo.name}/statuses/${s.sha}`,
      avatar_url: creator.avatar_url,
      id: s.id,
      node_id: nodeId('StatusContext', s.id),
      state: s.state,
      description: s.description,
      target_url: s.target_url,
      context: s.context,
      created_at: s.created_at,
      updated_at: s.created_at,
      creator,
    };
  }

  private checkRunObject(repo: RepoState, run: StoredCheckRun): Record<string, unknown> {
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    return {
      id: run.id,
      head_sha: run.head_sha,
      node_id: nodeId('CheckRun', run.id),
      external_id: run.external_id ?? '',
      url: `${api}/check-runs/${run.id}`,
      html_url: `${WEB}/${repo.owner}/${repo.name}/runs/${run.id}`,
      details_url: run.details_url ?? `${WEB}/apps/${this.app.slug}`,
      status: run.status,
      conclusion: run.conclusion,
      started_at: run.started_at,
      completed_at: run.completed_at,
      output: {
        title: run.output.title,
        summary: run.output.summary,
        text: run.output.text,
        annotations_count: run.annotations.length,
        annotations_url: `${api}/check-runs/${run.id}/annotations`,
      },
      name: run.name,
      check_suite: { id: 5_000_000 + run.id },
      app: this.integration(),
      pull_requests: [],
    };
  }

  private commentObject(repo: RepoState, issue: IssueState, c: StoredComment): Record<string, unknown> {
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    const bot = c.login === this.botLogin();
    return {
      id: c.id,
      node_id: nodeId('IssueComment', c.id),
      url: `${api}/issues/comments/${c.id}`,
      html_url: `${WEB}/${repo.owner}/${repo.name}/${issue.pull ? 'pull' : 'issues'}/${issue.number}#issuecomment-${c.id}`,
      body: c.body,
      user: this.userByLogin(c.login, c.type),
      created_at: c.created_at,
      updated_at: c.updated_at,
      issue_url: `${api}/issues/${issue.number}`,
      author_association: c.author_association,
      performed_via_github_app: bot ? this.integration() : null,
      reactions: {
        url: `${api}/issues/comments/${c.id}/reactions`,
        total_count: 0,
        '+1': 0,
        '-1': 0,
        laugh: 0,
        confused: 0,
        heart: 0,
        hooray: 0,
        eyes: 0,
        rocket: 0,
      },
    };
  }

  private async pullObject(
    repo: RepoState,
    issue: IssueState,
    pr: PullRequestConfig,
  ): Promise<Record<string, unknown>> {
    const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
    const html = `${WEB}/${repo.owner}/${repo.name}/pull/${issue.number}`;
    const id = 80_000_000 + repo.id + issue.number;
    const repoObj = await this.repository(repo, false);
    const author = this.userByLogin(pr.user ?? this.user.login);
    const owner = this.user_(repo.owner, 'Organization');
    const state = pr.state ?? 'open';
    const merged = pr.merged ?? false;
    const link = (href: string) => ({ href });
    return {
      url: `${api}/pulls/${issue.number}`,
      id,
      node_id: nodeId('PullRequest', id),
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: `${api}/issues/${issue.number}`,
      commits_url: `${api}/pulls/${issue.number}/commits`,
      review_comments_url: `${api}/pulls/${issue.number}/comments`,
      review_comment_url: `${api}/pulls/comments{/number}`,
      comments_url: `${api}/issues/${issue.number}/comments`,
      statuses_url: `${api}/statuses/${pr.head.sha}`,
      number: issue.number,
      state,
      locked: false,
      title: pr.title ?? `Pull request #${issue.number}`,
      user: author,
      body: null,
      labels: [],
      milestone: null,
      active_lock_reason: null,
      created_at: issue.createdAt,
      updated_at: issue.createdAt,
      closed_at: state === 'closed' ? issue.createdAt : null,
      merged_at: merged ? issue.createdAt : null,
      merge_commit_sha: null,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      head: { label: `${repo.owner}:${pr.head.ref}`, ref: pr.head.ref, sha: pr.head.sha, user: owner, repo: repoObj },
      base: { label: `${repo.owner}:${pr.base.ref}`, ref: pr.base.ref, sha: pr.base.sha, user: owner, repo: repoObj },
      _links: {
        self: link(`${api}/pulls/${issue.number}`),
        html: link(html),
        issue: link(`${api}/issues/${issue.number}`),
        comments: link(`${api}/issues/${issue.number}/comments`),
        review_comments: link(`${api}/pulls/${issue.number}/comments`),
        review_comment: link(`${api}/pulls/comments{/number}`),
        commits: link(`${api}/pulls/${issue.number}/commits`),
        statuses: link(`${api}/statuses/${pr.head.sha}`),
      },
      author_association: 'MEMBER',
      auto_merge: null,
      draft: pr.draft ?? false,
      merged,
      mergeable: null,
      rebaseable: null,
      mergeable_state: 'unknown',
      merged_by: null,
      comments: issue.comments.length,
      review_comments: 0,
      maintainer_can_modify: false,
      commits: 1,
      additions: 0,
      deletions: 0,
      changed_files: 0,
    };
  }

  private repo(fullName: string): RepoState {
    const r = this.repos.get(fullName.toLowerCase());
    if (!r)
      throw new Error(
        `the stand-in has no repository ${fullName} (configured: ${[...this.repos.values()].map((x) => x.fullName).join(', ')})`,
      );
    return r;
  }

  private issue(repo: RepoState, number: number): IssueState {
    let i = repo.issues.get(number);
    if (!i) {
      i = { number, comments: [], pull: undefined, createdAt: iso(Date.now()) };
      repo.issues.set(number, i);
    }
    return i;
  }

  // ---- handlers, by operationId ------------------------------------------------------------

  private readonly handlers: Record<string, (ctx: Ctx) => Promise<Reply> | Reply> = {
    'apps/get-authenticated': () => ({ status: 200, body: this.integration() }),

    'apps/get-repo-installation': (ctx) => {
      const full = `${ctx.params.owner}/${ctx.params.repo}`.toLowerCase();
      if (!this.repos.has(full)) throw new HttpError(404, 'Not Found');
      const inst = [...this.installations.values()].find((i) => !i.repositories || i.repositories.has(full));
      if (!inst) throw new HttpError(404, 'Not Found');
      return { status: 200, body: this.installation(inst) };
    },

    'apps/create-installation-access-token': (ctx) => {
      const id = Number(ctx.params.installation_id);
      const b = isRecord(ctx.body) ? ctx.body : {};
      const names = Array.isArray(b.repositories)
        ? b.repositories.filter((x): x is string => typeof x === 'string')
        : undefined;
      let ids: string[] | undefined;
      if (Array.isArray(b.repository_ids)) {
        ids = b.repository_ids.map((rid) => {
          const repo = [...this.repos.values()].find((r) => r.id === rid);
          if (!repo)
            throw new HttpError(
              422,
              'There is at least one repository that does not exist or is not accessible to the parent installation.',
            );
          return repo.name;
        });
      }
      const requested = isRecord(b.permissions) ? (b.permissions as Permissions) : undefined;
      const repoNames = names || ids ? [...(names ?? []), ...(ids ?? [])] : undefined;
      const t = this.mintToken(id, repoNames, requested);
      const inst = this.installations.get(id)!;
      const body: Record<string, unknown> = {
        token: t.token,
        expires_at: iso(t.expiresAt),
        permissions: t.permissions,
        repository_selection: t.repositories || inst.repositories ? 'selected' : 'all',
      };
      return (async () => {
        if (t.repositories)
          body.repositories = await Promise.all(
            [...t.repositories].map((r) => this.repository(this.repos.get(r)!, false)),
          );
        return { status: 201, body };
      })();
    },

    'apps/list-webhook-deliveries': (ctx) => {
      const perPage = Math.min(100, Math.max(1, Number(ctx.query.get('per_page')?.at(-1) ?? 30) || 30));
      const statusFilter = ctx.query.get('status')?.at(-1);
      let list = [...this.deliveries].sort((a, b) => b.id - a.id);
      if (statusFilter === 'success') list = list.filter((d) => d.status_code >= 200 && d.status_code < 400);
      if (statusFilter === 'failure') list = list.filter((d) => d.status_code >= 400 && d.status_code < 600);
      const cursor = ctx.query.get('cursor')?.at(-1);
      let start = 0;
      if (cursor !== undefined) {
        const m = /^v1_(\d+)$/.exec(cursor);
        if (!m) throw new HttpError(400, 'Invalid cursor');
        start = list.findIndex((d) => d.id <= Number(m[1]));
        if (start < 0) start = list.length;
      }
      const page = list.slice(start, start + perPage);
      const headers: Record<string, string> = {};
      const next = list[start + perPage];
      if (next) {
        const q = new URLSearchParams(ctx.rawQuery);
        q.set('per_page', String(perPage));
        q.set('cursor', `v1_${next.id}`);
        headers.link = `<${this.url}/app/hook/deliveries?${q.toString()}>; rel="next"`;
      }
      return { status: 200, headers, body: page.map(({ request: _req, response: _res, ...item }) => item) };
    },

    'apps/get-webhook-delivery': (ctx) => {
      const d = this.deliveries.find((x) => x.id === Number(ctx.params.delivery_id));
      if (!d) throw new HttpError(404, 'Not Found');
      return { status: 200, body: { ...d, url: 'https://natops.example.com/webhook' } };
    },

    'apps/redeliver-webhook-delivery': (ctx) => {
      const d = this.deliveries.find((x) => x.id === Number(ctx.params.delivery_id));
      if (!d) throw new HttpError(404, 'Not Found');
      this.redeliveries.push(d.id);
      const code = this.options.redeliveryStatusCode ?? 200;
      this.addHookDelivery({
        ...d,
        id: undefined,
        redelivery: true,
        status_code: code,
        status: undefined,
        delivered_at: undefined,
      });
      return { status: 202, body: {} };
    },

    'users/get-authenticated': (ctx) => {
      if (ctx.principal.kind === 'installation') throw new HttpError(403, 'Resource not accessible by integration');
      const created = iso(this.startedAt - 1000 * 86_400_000);
      return {
        status: 200,
        body: {
          ...this.user_(this.user.login, 'User', this.user.id),
          user_view_type: 'private',
          name: this.user.name,
          company: null,
          blog: '',
          location: null,
          email: null,
          hireable: null,
          bio: null,
          twitter_username: null,
          notification_email: null,
          public_repos: 0,
          public_gists: 0,
          followers: 0,
          following: 0,
          created_at: created,
          updated_at: created,
          private_gists: 0,
          total_private_repos: this.repos.size,
          owned_private_repos: 0,
          disk_usage: 0,
          collaborators: 0,
          two_factor_authentication: true,
          plan: { name: 'free', space: 976562499, private_repos: 10000, collaborators: 0 },
        },
      };
    },

    'repos/get': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['metadata'], 'read');
      return { status: 200, body: await this.repository(repo, ctx.principal.kind === 'plain') };
    },

    'repos/get-branch': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['contents'], 'read');
      const name = ctx.params.branch ?? '';
      const sha = await this.branchHead(repo, name);
      if (!sha) throw new HttpError(404, 'Branch not found');
      const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
      return {
        status: 200,
        body: {
          name,
          commit: await this.commitObject(repo, sha, false),
          _links: {
            self: `${api}/branches/${encodeURIComponent(name)}`,
            html: `${WEB}/${repo.owner}/${repo.name}/tree/${name}`,
          },
          protected: false,
          protection: {
            enabled: false,
            required_status_checks: { enforcement_level: 'off', contexts: [], checks: [] },
          },
          protection_url: `${api}/branches/${encodeURIComponent(name)}/protection`,
        },
      };
    },

    'repos/get-commit': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['contents'], 'read');
      const ref = ctx.params.ref ?? '';
      const sha = await this.resolveCommit(repo, ref);
      if (!sha) throw new HttpError(422, `No commit found for SHA: ${ref}`);
      return { status: 200, body: await this.commitObject(repo, sha, true) };
    },

    // The Git database's commit: no diff, so a cheap "does the repository hold it?".
    'git/get-commit': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['contents'], 'read');
      const sha = ctx.params.commit_sha ?? '';
      if ((await this.objectType(repo, sha)) !== 'commit') throw new HttpError(404, 'Not Found');
      const c = await this.rawCommit(repo, sha);
      const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
      return {
        status: 200,
        body: {
          sha,
          node_id: nodeId('Commit', sha),
          url: `${api}/git/commits/${sha}`,
          html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${sha}`,
          author: c.author,
          committer: c.committer,
          message: c.message,
          tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
          parents: c.parents.map((p) => ({
            sha: p,
            url: `${api}/git/commits/${p}`,
            html_url: `${WEB}/${repo.owner}/${repo.name}/commit/${p}`,
          })),
          verification: { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null },
        },
      };
    },

    'repos/compare-commits': (ctx) => this.compare(ctx, ctx.params.base ?? '', ctx.params.head ?? ''),

    'repos/compare-commits-with-basehead': (ctx) => {
      const bh = ctx.params.basehead ?? '';
      const i = bh.indexOf('...');
      if (i < 0) throw new HttpError(404, 'Not Found');
      return this.compare(ctx, bh.slice(0, i), bh.slice(i + 3));
    },

    'git/get-tree': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['contents'], 'read');
      const wanted = ctx.params.tree_sha ?? '';
      let tree: string | undefined;
      const type = await this.objectType(repo, wanted);
      if (type === 'tree') tree = wanted;
      else if (type === 'commit') tree = (await this.rawCommit(repo, wanted)).tree;
      else if (type === undefined && !SHA.test(wanted)) {
        const c = await this.resolveCommit(repo, wanted);
        if (c) tree = (await this.rawCommit(repo, c)).tree;
      }
      if (!tree) throw new HttpError(404, 'Not Found');
      // Any value of `recursive` (even 0 or false) asks for the whole tree, as GitHub documents.
      const recursive = ctx.query.has('recursive');
      const args = ['ls-tree', '-z', '--long', '--full-tree', ...(recursive ? ['-r', '-t'] : []), tree];
      const api = `${this.url}/repos/${repo.owner}/${repo.name}`;
      const listing = await this.cached(`tree\0${repo.gitDir}\0${tree}\0${recursive}`, async () =>
        (await git(repo.gitDir, args)).stdout.toString('utf8'),
      );
      let entries = listing
        .split('\0')
        .filter((l) => l.length > 0)
        .map((line) => {
          const tab = line.indexOf('\t');
          const [mode, kind, sha, size] = line.slice(0, tab).split(/\s+/) as [string, string, string, string];
          const e: Record<string, unknown> = { path: line.slice(tab + 1), mode, type: kind, sha };
          if (kind === 'blob') {
            e.size = Number(size);
            e.url = `${api}/git/blobs/${sha}`;
          } else if (kind === 'tree') e.url = `${api}/git/trees/${sha}`;
          return e;
        });
      let truncated = false;
      const limit = this.options.truncateTreesOver;
      if (recursive && limit !== undefined && entries.length > limit) {
        entries = entries.slice(0, limit);
        truncated = true;
      }
      return { status: 200, body: { sha: tree, url: `${api}/git/trees/${tree}`, tree: entries, truncated } };
    },

    'git/get-blob': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['contents'], 'read');
      const sha = ctx.params.file_sha ?? '';
      if (!SHA.test(sha))
        throw new HttpError(422, 'The sha parameter must be exactly 40 characters and contain only [0-9a-f].');
      if ((await this.objectType(repo, sha)) !== 'blob') throw new HttpError(404, 'Not Found');
      const bytes = await this.cached(
        `blob\0${repo.gitDir}\0${sha}`,
        async () => (await git(repo.gitDir, ['cat-file', 'blob', sha])).stdout,
      );
      this.blobFetches.set(sha, (this.blobFetches.get(sha) ?? 0) + 1);
      return {
        status: 200,
        body: {
          sha,
          node_id: nodeId('Blob', sha),
          size: bytes.length,
          url: `${this.url}/repos/${repo.owner}/${repo.name}/git/blobs/${sha}`,
          content: githubBase64(bytes),
          encoding: 'base64',
        },
      };
    },

    'repos/create-commit-status': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['statuses'], 'write');
      const sha = ctx.params.sha ?? '';
      if (!SHA.test(sha) || (await this.objectType(repo, sha)) !== 'commit')
        throw new HttpError(422, `No commit found for SHA: ${sha}`);
      const b = isRecord(ctx.body) ? ctx.body : {};
      const s = this.pushStatus(repo, sha, {
        state: b.state as PostedStatus['state'],
        context: typeof b.context === 'string' ? b.context : undefined,
        description: typeof b.description === 'string' ? b.description : undefined,
        target_url: typeof b.target_url === 'string' ? b.target_url : undefined,
        creator: this.caller(ctx).login,
      });
      return {
        status: 201,
        body: this.statusObject(repo, s),
        headers: { location: `${this.url}/repos/${repo.owner}/${repo.name}/statuses/${sha}` },
      };
    },

    'checks/create': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.appOnly(ctx);
      this.need(ctx, ['checks'], 'write');
      const b = isRecord(ctx.body) ? ctx.body : {};
      const sha = typeof b.head_sha === 'string' ? b.head_sha : '';
      if (!SHA.test(sha) || (await this.objectType(repo, sha)) !== 'commit')
        throw new HttpError(422, `No commit found for SHA: ${sha}`);
      const run: StoredCheckRun = {
        id: 4_000_000_000 + this.nextId++,
        name: String(b.name),
        head_sha: sha,
        status: 'queued',
        conclusion: null,
        started_at: iso(Date.now()),
        completed_at: null,
        details_url: null,
        external_id: null,
        output: { title: null, summary: null, text: null },
        annotations: [],
        updates: 0,
      };
      applyCheckRun(run, b);
      repo.checkRuns.set(run.id, run);
      return {
        status: 201,
        body: this.checkRunObject(repo, run),
        headers: { location: `${this.url}/repos/${repo.owner}/${repo.name}/check-runs/${run.id}` },
      };
    },

    'checks/update': (ctx) => {
      const repo = this.repoFor(ctx);
      this.appOnly(ctx);
      this.need(ctx, ['checks'], 'write');
      const run = repo.checkRuns.get(Number(ctx.params.check_run_id));
      if (!run) throw new HttpError(404, 'Not Found');
      run.updates++;
      applyCheckRun(run, isRecord(ctx.body) ? ctx.body : {});
      return { status: 200, body: this.checkRunObject(repo, run) };
    },

    'checks/list-for-ref': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['checks'], 'read');
      const sha = await this.resolveCommit(repo, ctx.params.ref ?? '');
      if (!sha) throw new HttpError(422, `No commit found for SHA: ${ctx.params.ref ?? ''}`);
      const name = ctx.query.get('check_name')?.at(-1);
      const runs = [...repo.checkRuns.values()]
        .filter((r) => r.head_sha === sha && (name === undefined || r.name === name))
        .sort((a, b) => b.id - a.id);
      // filter=latest (the default): the newest run per name
      const latest =
        (ctx.query.get('filter')?.at(-1) ?? 'latest') === 'latest'
          ? runs.filter((r, i) => runs.findIndex((o) => o.name === r.name) === i)
          : runs;
      return {
        status: 200,
        body: { total_count: latest.length, check_runs: latest.map((r) => this.checkRunObject(repo, r)) },
      };
    },

    'checks/get': (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['checks'], 'read');
      const run = repo.checkRuns.get(Number(ctx.params.check_run_id));
      if (!run) throw new HttpError(404, 'Not Found');
      return { status: 200, body: this.checkRunObject(repo, run) };
    },

    'issues/list-comments': (ctx) => {
      const repo = this.repoFor(ctx);
      const issue = repo.issues.get(Number(ctx.params.issue_number));
      if (!issue) throw new HttpError(404, 'Not Found');
      this.need(ctx, issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'read');
      const perPage = Math.min(100, Math.max(1, Number(ctx.query.get('per_page')?.at(-1) ?? 30) || 30));
      const page = Math.max(1, Number(ctx.query.get('page')?.at(-1) ?? 1) || 1);
      const since = ctx.query.get('since')?.at(-1);
      const all = issue.comments.filter((c) => since === undefined || c.updated_at >= iso(Date.parse(since)));
      const last = Math.max(1, Math.ceil(all.length / perPage));
      const items = all.slice((page - 1) * perPage, page * perPage).map((c) => this.commentObject(repo, issue, c));
      const headers: Record<string, string> = {};
      const link = linkHeader(`${this.url}${ctx.rawPath}`, ctx.rawQuery, page, last, all.length > 0);
      if (link) headers.link = link;
      return { status: 200, body: items, headers };
    },

    'issues/create-comment': (ctx) => {
      const repo = this.repoFor(ctx);
      const issue = repo.issues.get(Number(ctx.params.issue_number));
      if (!issue) throw new HttpError(404, 'Not Found');
      this.need(ctx, issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'write');
      const b = isRecord(ctx.body) ? ctx.body : {};
      const now = iso(Date.now());
      const who = this.caller(ctx);
      const c: StoredComment = {
        id: this.nextId++,
        issue: issue.number,
        body: String(b.body),
        login: who.login,
        type: who.type,
        author_association: who.type === 'Bot' ? 'NONE' : 'MEMBER',
        created_at: now,
        updated_at: now,
      };
      issue.comments.push(c);
      return {
        status: 201,
        body: this.commentObject(repo, issue, c),
        headers: { location: `${this.url}/repos/${repo.owner}/${repo.name}/issues/comments/${c.id}` },
      };
    },

    'issues/get-comment': (ctx) => {
      const repo = this.repoFor(ctx);
      const found = this.findComment(repo, Number(ctx.params.comment_id));
      this.need(ctx, found.issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'read');
      return { status: 200, body: this.commentObject(repo, found.issue, found.comment) };
    },

    'issues/update-comment': (ctx) => {
      const repo = this.repoFor(ctx);
      const found = this.findComment(repo, Number(ctx.params.comment_id));
      this.need(ctx, found.issue.pull ? ['issues', 'pull_requests'] : ['issues'], 'write');
      const b = isRecord(ctx.body) ? ctx.body : {};
      found.comment.body = String(b.body);
      found.comment.updated_at = iso(Math.max(Date.now(), Date.parse(found.comment.updated_at) + 1000));
      return { status: 200, body: this.commentObject(repo, found.issue, found.comment) };
    },

    'pulls/get': async (ctx) => {
      const repo = this.repoFor(ctx);
      this.need(ctx, ['pull_requests'], 'read');
      const issue = repo.issues.get(Number(ctx.params.pull_number));
      if (!issue?.pull) throw new HttpError(404, 'Not Found');
      return { status: 200, body: await this.pullObject(repo, issue, issue.pull) };
    },
  };

  private pushStatus(repo: RepoState, sha: string, input: StatusInput): PostedStatus {
    const context = input.context ?? 'default';
    const list = repo.statuses.get(sha) ?? [];
    if (list.filter((x) => x.context === context).length >= MAX_STATUSES_PER_CONTEXT) {
      throw new HttpError(422, 'Validation Failed', [
        {
          resource: 'Status',
          code: 'custom',
          field: 'context',
          message: 'This SHA and context has reached the maximum number of statuses.',
        },
      ]);
    }
    const s: PostedStatus = {
      id: this.nextId++,
      sha,
      state: input.state,
      description: input.description ?? null,
      target_url: input.target_url ?? null,
      context,
      created_at: iso(Date.now()),
      creator: input.creator ?? this.user.login,
    };
    list.push(s);
    repo.statuses.set(sha, list);
    return s;
  }

  private findComment(repo: RepoState, id: number): { issue: IssueState; comment: StoredComment } {
    for (const issue of repo.issues.values()) {
      const comment = issue.comments.find((c) => c.id === id);
      if (comment) return { issue, comment };
    }
    throw new HttpError(404, 'Not Found');
  }

  private async compare(ctx: Ctx, baseRef: string, headRef: string): Promise<Reply> {
    const repo = this.repoFor(ctx);
    this.need(ctx, ['contents'], 'read');
    // USER:branch compares across forks; the stand-in has no forks.
    if (baseRef.includes(':') || headRef.includes(':')) throw new HttpError(404, 'Not Found');
    const base = await this.resolveCommit(repo, baseRef);
    const head = await this.resolveCommit(repo, headRef);
    if (!base || !head) throw new HttpError(404, 'Not Found');
    const mb = await git(repo.gitDir, ['merge-base', base, head], [0, 1]);
    const mergeBase = mb.stdout.toString().trim();
    if (mb.code !== 0 || !SHA.test(mergeBase))
      throw new HttpError(404, `No common ancestor between ${baseRef} and ${headRef}.`);
    const countOf = async (range: string) =>
      Number((await git(repo.gitDir, ['rev-list', '--count', range])).stdout.toString().trim());
    const ahead = await countOf(`${base}..${head}`);
    const behind = await countOf(`${head}..${base}`);
    const status =
      ahead === 0 && behind === 0 ? 'identical' : behind === 0 ? 'ahead' : ahead === 0 ? 'behind' : 'diverged';
    const shas = (await git(repo.gitDir, ['rev-list', '--reverse', `${base}..${head}`])).stdout
      .toString()
      .split('\n')
      .filter((s) => SHA.test(s))
      .slice(0, 250);
    const commits = [];
    for (const s of shas) commits.push(await this.commitObject(repo, s, false));
    const html = `${WEB}/${repo.owner}/${repo.name}/compare/${baseRef}...${headRef}`;
    return {
      status: 200,
      body: {
        url: `${this.url}/repos/${repo.owner}/${repo.name}/compare/${encodeURIComponent(baseRef)}...${encodeURIComponent(headRef)}`,
        html_url: html,
        permalink_url: `${WEB}/${repo.owner}/${repo.name}/compare/${repo.owner}:${base.slice(0, 7)}...${repo.owner}:${head.slice(0, 7)}`,
        diff_url: `${html}.diff`,
        patch_url: `${html}.patch`,
        base_commit: await this.commitObject(repo, base, false),
        merge_base_commit: await this.commitObject(repo, mergeBase, false),
        status,
        ahead_by: ahead,
        behind_by: behind,
        total_commits: ahead,
        commits,
        files: await this.diffFiles(repo, mergeBase, head),
      },
    };
  }
}

/** Operations GitHub authenticates as the App itself (a JWT), not as an installation. */
const JWT_OPERATIONS = new Set([
  'apps/get-authenticated',
  'apps/get-repo-installation',
  'apps/create-installation-access-token',
  'apps/list-webhook-deliveries',
  'apps/get-webhook-delivery',
  'apps/redeliver-webhook-delivery',
]);

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

function applyCheckRun(run: StoredCheckRun, b: Record<string, unknown>): void {
  if (typeof b.name === 'string') run.name = b.name;
  if (typeof b.details_url === 'string') run.details_url = b.details_url;
  if (typeof b.external_id === 'string') run.external_id = b.external_id;
  if (typeof b.started_at === 'string') run.started_at = b.started_at;
  if (typeof b.status === 'string') run.status = b.status;
  if (typeof b.conclusion === 'string') {
    // GitHub: giving a conclusion completes the run.
    run.conclusion = b.conclusion;
    run.status = 'completed';
  }
  if (typeof b.completed_at === 'string') run.completed_at = b.completed_at;
  if (run.status === 'completed' && run.completed_at === null) run.completed_at = iso(Date.now());
  const output = b.output;
  if (isRecord(output)) {
    if (typeof output.title === 'string') run.output.title = output.title;
    if (typeof output.summary === 'string') run.output.summary = output.summary;
    if (typeof output.text === 'string') run.output.text = output.text;
    if (Array.isArray(output.annotations))
      for (const a of output.annotations) if (isRecord(a)) run.annotations.push(a as Annotation);
  }
}

/** Base64 as GitHub's blobs carry it (Ruby's encode64): a newline after every 60 characters. */
export function githubBase64(bytes: Buffer): string {
  const b64 = bytes.toString('base64');
  let out = '';
  for (let i = 0; i < b64.length; i += 60) out += `${b64.slice(i, i + 60)}\n`;
  return out;
}

/**
 * GitHub's Link header: prev, next, last, first, each the request URL with `page` set last.
 * (GitHub itself links through /repositories/{id}/..., a path its description does not list;
 * the stand-in keeps /repos/{owner}/{repo}/... so the followed links stay checkable.)
 */
export function linkHeader(
  base: string,
  rawQuery: string,
  page: number,
  last: number,
  nonEmpty: boolean,
): string | undefined {
  if (!nonEmpty) return undefined;
  const at = (p: number) => {
    const q = new URLSearchParams(rawQuery);
    q.delete('page');
    q.append('page', String(p));
    return `<${base}?${q.toString()}>`;
  };
  const parts: string[] = [];
  if (page > 1) parts.push(`${at(page - 1)}; rel="prev"`);
  if (page < last) parts.push(`${at(page + 1)}; rel="next"`, `${at(last)}; rel="last"`);
  if (page > 1) parts.push(`${at(1)}; rel="first"`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

function requestId(): string {
  const h = (n: number) => randomBytes(n).toString('hex').toUpperCase();
  return `${h(2)}:${h(2)}:${h(3)}:${h(3)}:${h(4)}`;
}
