// Authentication as GitHub does it: App JWTs for the App's own operations, installation tokens
// (minted here, with their permissions and repositories), plain tokens, and the 403/404 each earns.
import { randomBytes } from 'node:crypto';
import { verifyAppJwt } from '../app-keys.ts';
import type { Operation } from '../openapi.ts';
import { type Ctx, HttpError, type InstallationToken, type Principal, type RepoState, type State } from './state.ts';
import type { PermissionLevel, Permissions } from './types.ts';

const RANK: Record<PermissionLevel, number> = { read: 1, write: 2, admin: 3 };

/** Operations GitHub authenticates as the App itself (a JWT), not as an installation. */
const JWT_OPERATIONS = new Set([
  'apps/get-authenticated',
  'apps/get-repo-installation',
  'apps/create-installation-access-token',
  'apps/list-webhook-deliveries',
  'apps/get-webhook-delivery',
  'apps/redeliver-webhook-delivery',
]);

/** The key of the rate-limit bucket a principal draws on. */
export function rateKey(st: State, p: Principal): string {
  switch (p.kind) {
    case 'installation':
      return `installation:${p.token.installationId}`;
    case 'plain':
      return `user:${st.user.id}`;
    case 'app':
      return `app:${st.app.appId}`;
    default:
      return 'anonymous';
  }
}

/** Who the credentials are, without failing (for rate-limit messages of faults). */
export function peekPrincipal(st: State, headers: Record<string, string>): Principal {
  const m = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (!m) return { kind: 'anonymous' };
  const t = st.tokens.get(m[1]!);
  if (t) return { kind: 'installation', token: t };
  if ((st.options.plainTokens ?? []).includes(m[1]!)) return { kind: 'plain', token: m[1]! };
  return m[1]!.split('.').length === 3 ? { kind: 'app' } : { kind: 'anonymous' };
}

export function authenticate(st: State, op: Operation, headers: Record<string, string>): Principal {
  const m = /^(token|bearer)\s+(\S+)\s*$/i.exec(headers.authorization ?? '');
  if (JWT_OPERATIONS.has(op.operationId)) {
    if (!m) throw new HttpError(401, 'A JSON web token could not be decoded');
    const verdict = verifyAppJwt(st.app, m[2]!);
    if (!verdict.ok) throw new HttpError(401, verdict.message);
    return { kind: 'app' };
  }
  if (!m) throw new HttpError(401, 'Requires authentication');
  const credential = m[2]!;
  const t = st.tokens.get(credential);
  if (t) {
    if (t.expiresAt <= Date.now()) throw new HttpError(401, 'Bad credentials');
    return { kind: 'installation', token: t };
  }
  if ((st.options.plainTokens ?? []).includes(credential)) return { kind: 'plain', token: credential };
  throw new HttpError(401, 'Bad credentials');
}

/** The repository of the request, reachable by the caller, or GitHub's 404. */
export function repoFor(st: State, ctx: Ctx): RepoState {
  const full = `${ctx.params.owner ?? ''}/${ctx.params.repo ?? ''}`.toLowerCase();
  const repo = st.repos.get(full);
  const notFound = new HttpError(404, 'Not Found');
  if (!repo) throw notFound;
  const p = ctx.principal;
  if (p.kind === 'installation') {
    const inst = st.installations.get(p.token.installationId);
    if (
      !inst ||
      (inst.repositories && !inst.repositories.has(full)) ||
      (p.token.repositories && !p.token.repositories.has(full))
    )
      throw notFound;
  } else if (p.kind === 'plain') {
    if (!repoPermissions(st).pull) throw notFound;
  }
  return repo;
}

export function repoPermissions(st: State): { admin: boolean; push: boolean; pull: boolean } {
  return st.options.repoPermissions ?? { admin: true, push: true, pull: true };
}

/**
 * The caller must hold one of `perms` at `level`: an installation token by its permissions (403
 * "Resource not accessible by integration"), a plain token by its repository rights.
 */
export function need(st: State, ctx: Ctx, perms: string[], level: 'read' | 'write'): void {
  const p = ctx.principal;
  if (p.kind === 'installation') {
    const granted = perms.some((name) => {
      const have = name === 'metadata' ? 'read' : p.token.permissions[name];
      return have !== undefined && RANK[have] >= RANK[level];
    });
    if (!granted) throw new HttpError(403, 'Resource not accessible by integration');
  } else if (p.kind === 'plain') {
    const rights = repoPermissions(st);
    if (level === 'write' ? !rights.push : !rights.pull) throw new HttpError(404, 'Not Found');
  }
}

export function appOnly(ctx: Ctx): void {
  if (ctx.principal.kind !== 'installation') throw new HttpError(403, 'You must authenticate via a GitHub App.');
}

export function mintToken(
  st: State,
  installationId: number,
  repositories: string[] | undefined,
  requested: Permissions | undefined,
): InstallationToken {
  const inst = st.installations.get(installationId);
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
      const repo = [...st.repos.values()].find(
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
    expiresAt: Date.now() + (st.options.installationTokenTtlMs ?? 3_600_000),
    permissions,
    repositories: repoSet,
  };
  st.tokens.set(token.token, token);
  st.tokensMinted++;
  return token;
}
