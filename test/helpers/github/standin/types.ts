// The stand-in's public types: its options, what it records, and the shapes tests read and set.
// The entry point (../standin.ts) re-exports them all.
import type { TestApp } from '../app-keys.ts';

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
