// The stand-in's in-memory state (repositories, installations, tokens, queues of faults) and the
// small types and helpers every part shares; each part is plain functions over one State.
import { createHash } from 'node:crypto';
import { makeTestApp, type TestApp } from '../app-keys.ts';
import type { Operation } from '../openapi.ts';
import {
  DEFAULT_INSTALLATION_PERMISSIONS,
  type FaultOptions,
  type HookDelivery,
  type Permissions,
  type PostedStatus,
  type PullRequestConfig,
  type RecordedRequest,
  type StandInOptions,
  type StoredCheckRun,
  type StoredComment,
} from './types.ts';

export interface InstallationState {
  id: number;
  account: string;
  /** lower-case full names, or undefined for all */
  repositories: Set<string> | undefined;
  permissions: Permissions;
  createdAt: string;
}

export interface InstallationToken {
  token: string;
  installationId: number;
  expiresAt: number;
  permissions: Permissions;
  repositories: Set<string> | undefined;
}

export type Principal =
  | { kind: 'installation'; token: InstallationToken }
  | { kind: 'plain'; token: string }
  | { kind: 'app' }
  | { kind: 'anonymous' };

export interface IssueState {
  number: number;
  comments: StoredComment[];
  pull: PullRequestConfig | undefined;
  createdAt: string;
}

export interface RepoState {
  fullName: string;
  owner: string;
  name: string;
  gitDir: string;
  id: number;
  statuses: Map<string, PostedStatus[]>;
  checkRuns: Map<number, StoredCheckRun>;
  issues: Map<number, IssueState>;
}

export interface Ctx {
  op: Operation;
  params: Record<string, string>;
  query: Map<string, string[]>;
  body: unknown;
  headers: Record<string, string>;
  principal: Principal;
  rawPath: string;
  rawQuery: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, unknown>[],
  ) {
    super(message);
  }
}

export type Handler = (st: State, ctx: Ctx) => Promise<Reply> | Reply;

export const WEB = 'https://github.com';
export const SHA = /^[0-9a-f]{40}$/;

/** GitHub's timestamps: ISO 8601, seconds, UTC. */
export const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
export const nodeId = (kind: string, id: number | string): string =>
  Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64').replace(/=+$/, '');
export const numericId = (s: string): number =>
  (createHash('sha256').update(s).digest().readUInt32BE(0) % 100_000_000) + 1000;
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
export const codePoints = (s: string): number => [...s].length;

interface Hold {
  match: (method: string, path: string) => boolean;
  released: Promise<void>;
}

export interface State {
  readonly options: StandInOptions;
  readonly app: TestApp;
  readonly user: { login: string; id: number; name: string };
  /** set once the server listens */
  baseUrl: string;
  readonly startedAt: number;
  readonly requests: RecordedRequest[];
  readonly violations: string[];
  readonly blobFetches: Map<string, number>;
  readonly redeliveries: number[];
  readonly repos: Map<string, RepoState>;
  readonly installations: Map<number, InstallationState>;
  readonly tokens: Map<string, InstallationToken>;
  readonly faults: (FaultOptions & { remaining: number })[];
  readonly holds: Hold[];
  readonly deliveries: HookDelivery[];
  readonly rate: Map<string, { used: number; reset: number }>;
  readonly objectCache: Map<string, unknown>;
  tokensMinted: number;
  nextId: number;
}

export function createState(options: StandInOptions): State {
  const startedAt = Date.now();
  const st: State = {
    options,
    app: options.app ?? makeTestApp(),
    user: {
      login: options.user?.login ?? 'natops-tester',
      id: options.user?.id ?? 583231,
      name: options.user?.name ?? 'natops tester',
    },
    baseUrl: '',
    startedAt,
    requests: [],
    violations: [],
    blobFetches: new Map(),
    redeliveries: [],
    repos: new Map(),
    installations: new Map(),
    tokens: new Map(),
    faults: [],
    holds: [],
    deliveries: [],
    rate: new Map(),
    objectCache: new Map(),
    tokensMinted: 0,
    nextId: 1,
  };
  let i = 0;
  for (const [fullName, gitDir] of Object.entries(options.repos ?? {})) {
    const [owner, name, ...rest] = fullName.split('/');
    if (!owner || !name || rest.length > 0) throw new TypeError(`repository "${fullName}" is not owner/name`);
    st.repos.set(fullName.toLowerCase(), {
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
  const firstOwner = [...st.repos.values()][0]?.owner ?? 'natops';
  for (const inst of options.installations ?? [{ id: 1 }]) {
    st.installations.set(inst.id, {
      id: inst.id,
      account: inst.account ?? firstOwner,
      repositories: inst.repositories ? new Set(inst.repositories.map((r) => r.toLowerCase())) : undefined,
      permissions: { ...(inst.permissions ?? DEFAULT_INSTALLATION_PERMISSIONS) },
      createdAt: iso(st.startedAt - 86_400_000),
    });
  }
  return st;
}

export function knownRepo(st: State, fullName: string): RepoState {
  const r = st.repos.get(fullName.toLowerCase());
  if (!r)
    throw new Error(
      `the stand-in has no repository ${fullName} (configured: ${[...st.repos.values()].map((x) => x.fullName).join(', ')})`,
    );
  return r;
}

export function issueOf(repo: RepoState, number: number): IssueState {
  let i = repo.issues.get(number);
  if (!i) {
    i = { number, comments: [], pull: undefined, createdAt: iso(Date.now()) };
    repo.issues.set(number, i);
  }
  return i;
}
