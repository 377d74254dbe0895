// A local GitHub REST stand-in for tests: an express app on 127.0.0.1 that checks every request
// against GitHub's published OpenAPI description (and the limits the description leaves out),
// checks its own answers the same way, authenticates like GitHub (App JWTs, installation tokens,
// plain tokens, permissions), serves Git data from real bare repositories, keeps commit statuses,
// check runs, comments, pull requests and webhook deliveries in memory, and fails on demand.
// Tests call assertClean() at the end: any request GitHub would not accept fails the test.
//
// This module is the one entry point: the class below is what tests hold, and its parts live in
// ./standin/ (server, auth, state, Git data, answer objects, and handlers by API area).
import type { Server } from 'node:http';
import type { TestApp } from './app-keys.ts';
import { mintToken } from './standin/auth.ts';
import { addHookDelivery } from './standin/handlers/apps.ts';
import { addComment } from './standin/handlers/issues.ts';
import { pushStatus } from './standin/handlers/statuses.ts';
import { listen } from './standin/server.ts';
import { createState, HttpError, issueOf, knownRepo, type State } from './standin/state.ts';
import type {
  FaultOptions,
  HookDelivery,
  HookDeliveryInput,
  Permissions,
  PostedStatus,
  PullRequestConfig,
  RecordedRequest,
  StandInOptions,
  StatusInput,
  StoredCheckRun,
  StoredComment,
} from './standin/types.ts';

export { githubBase64 } from './standin/git-data.ts';
export { linkHeader } from './standin/handlers/issues.ts';
export { extraLimits } from './standin/server.ts';
export type {
  Annotation,
  FaultOptions,
  HookDelivery,
  HookDeliveryInput,
  InstallationOptions,
  PermissionLevel,
  Permissions,
  PostedStatus,
  PullRequestConfig,
  RecordedRequest,
  StandInOptions,
  StatusInput,
  StoredCheckRun,
  StoredComment,
} from './standin/types.ts';
export { DEFAULT_INSTALLATION_PERMISSIONS } from './standin/types.ts';

export class GitHubStandIn {
  readonly requests: RecordedRequest[];
  readonly violations: string[];
  /** blob sha -> how many times GET git/blobs fetched it */
  readonly blobFetches: Map<string, number>;
  /** delivery ids redelivered, in order */
  readonly redeliveries: number[];
  readonly app: TestApp;

  private server: Server | undefined;
  private readonly st: State;

  private constructor(options: StandInOptions) {
    this.st = createState(options);
    // The same objects the server records into, so tests read them live.
    this.requests = this.st.requests;
    this.violations = this.st.violations;
    this.blobFetches = this.st.blobFetches;
    this.redeliveries = this.st.redeliveries;
    this.app = this.st.app;
  }

  static async start(options: StandInOptions = {}): Promise<GitHubStandIn> {
    const standIn = new GitHubStandIn(options);
    standIn.server = await listen(standIn.st);
    return standIn;
  }

  /** The base URL for octokit's baseUrl (no trailing slash). */
  get url(): string {
    return this.st.baseUrl;
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
    return this.st.tokensMinted;
  }

  /**
   * Holds every matching request until `release()` is called (then answers it as usual), so a
   * test can act while natops waits on GitHub.
   */
  hold(match: (method: string, path: string) => boolean): { release(): void } {
    let release: () => void = () => {};
    const released = new Promise<void>((r) => (release = r));
    const hold = { match, released };
    this.st.holds.push(hold);
    return {
      release: () => {
        this.st.holds.splice(this.st.holds.indexOf(hold), 1);
        release();
      },
    };
  }

  /** The next `times` matching requests fail with `status`, as GitHub fails them. */
  fail(f: FaultOptions): void {
    this.st.faults.push({ ...f, remaining: f.times ?? 1 });
  }

  /** Every status posted on a commit, oldest first. */
  statuses(fullName: string, sha: string): PostedStatus[] {
    return [...(knownRepo(this.st, fullName).statuses.get(sha) ?? [])];
  }

  /** A status as if someone posted it (GitHub's 1,000 per sha and context still applies). */
  addStatus(fullName: string, sha: string, s: StatusInput): PostedStatus {
    try {
      return pushStatus(this.st, knownRepo(this.st, fullName), sha, s);
    } catch (e) {
      throw e instanceof HttpError ? new Error(`addStatus: ${JSON.stringify(e.errors)}`) : e;
    }
  }

  /** The latest status per context, as GitHub shows them on a commit. */
  latestStatuses(fullName: string, sha: string): Map<string, PostedStatus> {
    const out = new Map<string, PostedStatus>();
    for (const s of knownRepo(this.st, fullName).statuses.get(sha) ?? []) out.set(s.context, s);
    return out;
  }

  checkRuns(fullName: string): StoredCheckRun[] {
    return [...knownRepo(this.st, fullName).checkRuns.values()];
  }

  comments(fullName: string, issue: number): StoredComment[] {
    return [...(knownRepo(this.st, fullName).issues.get(issue)?.comments ?? [])];
  }

  /** A comment by someone else (or anyone), as if posted on GitHub; the issue comes into being. */
  addComment(
    fullName: string,
    issue: number,
    c: { login: string; body: string; type?: 'User' | 'Bot'; authorAssociation?: string },
  ): StoredComment {
    return addComment(this.st, fullName, issue, c);
  }

  setPullRequest(fullName: string, number: number, pr: PullRequestConfig): void {
    issueOf(knownRepo(this.st, fullName), number).pull = pr;
  }

  addHookDelivery(d: HookDeliveryInput): HookDelivery {
    return addHookDelivery(this.st, d);
  }

  hookDeliveries(): HookDelivery[] {
    return [...this.st.deliveries];
  }

  /** Changes what tokens issued from now on may do (tokens already issued keep theirs, as on GitHub). */
  setInstallationPermissions(installationId: number, permissions: Permissions): void {
    const inst = this.st.installations.get(installationId);
    if (!inst) throw new Error(`no installation ${installationId}`);
    inst.permissions = { ...permissions };
  }

  /** Makes every installation token issued so far expired. */
  expireInstallationTokens(): void {
    for (const t of this.st.tokens.values()) t.expiresAt = Date.now() - 1;
  }

  /** Mints an installation token directly (as POST .../access_tokens would), for tests without an App client. */
  createInstallationToken(installationId = [...this.st.installations.keys()][0] ?? 1): string {
    return mintToken(this.st, installationId, undefined, undefined).token;
  }
}
