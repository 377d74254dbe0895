// Handlers for the App's own operations (JWT-authenticated: the App, its installations, tokens,
// webhook deliveries) and for the authenticated user.
import { randomBytes } from 'node:crypto';
import { mintToken } from '../auth.ts';
import { installationObject, integrationObject, repositoryObject, userObject } from '../objects.ts';
import { type Handler, HttpError, isRecord, iso, type State } from '../state.ts';
import type { HookDelivery, HookDeliveryInput, Permissions } from '../types.ts';

export const appsHandlers: Record<string, Handler> = {
  'apps/get-authenticated': (st) => ({ status: 200, body: integrationObject(st) }),

  'apps/get-repo-installation': (st, ctx) => {
    const full = `${ctx.params.owner}/${ctx.params.repo}`.toLowerCase();
    if (!st.repos.has(full)) throw new HttpError(404, 'Not Found');
    const inst = [...st.installations.values()].find((i) => !i.repositories || i.repositories.has(full));
    if (!inst) throw new HttpError(404, 'Not Found');
    return { status: 200, body: installationObject(st, inst) };
  },

  'apps/create-installation-access-token': (st, ctx) => {
    const id = Number(ctx.params.installation_id);
    const b = isRecord(ctx.body) ? ctx.body : {};
    const names = Array.isArray(b.repositories)
      ? b.repositories.filter((x): x is string => typeof x === 'string')
      : undefined;
    let ids: string[] | undefined;
    if (Array.isArray(b.repository_ids)) {
      ids = b.repository_ids.map((rid) => {
        const repo = [...st.repos.values()].find((r) => r.id === rid);
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
    const t = mintToken(st, id, repoNames, requested);
    const inst = st.installations.get(id)!;
    const body: Record<string, unknown> = {
      token: t.token,
      expires_at: iso(t.expiresAt),
      permissions: t.permissions,
      repository_selection: t.repositories || inst.repositories ? 'selected' : 'all',
    };
    return (async () => {
      if (t.repositories)
        body.repositories = await Promise.all(
          [...t.repositories].map((r) => repositoryObject(st, st.repos.get(r)!, false)),
        );
      return { status: 201, body };
    })();
  },

  'apps/list-webhook-deliveries': (st, ctx) => {
    const perPage = Math.min(100, Math.max(1, Number(ctx.query.get('per_page')?.at(-1) ?? 30) || 30));
    const statusFilter = ctx.query.get('status')?.at(-1);
    let list = [...st.deliveries].sort((a, b) => b.id - a.id);
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
      headers.link = `<${st.baseUrl}/app/hook/deliveries?${q.toString()}>; rel="next"`;
    }
    return { status: 200, headers, body: page.map(({ request: _req, response: _res, ...item }) => item) };
  },

  'apps/get-webhook-delivery': (st, ctx) => {
    const d = st.deliveries.find((x) => x.id === Number(ctx.params.delivery_id));
    if (!d) throw new HttpError(404, 'Not Found');
    return { status: 200, body: { ...d, url: 'https://natops.example.com/webhook' } };
  },

  'apps/redeliver-webhook-delivery': (st, ctx) => {
    const d = st.deliveries.find((x) => x.id === Number(ctx.params.delivery_id));
    if (!d) throw new HttpError(404, 'Not Found');
    st.redeliveries.push(d.id);
    const code = st.options.redeliveryStatusCode ?? 200;
    addHookDelivery(st, {
      ...d,
      id: undefined,
      redelivery: true,
      status_code: code,
      status: undefined,
      delivered_at: undefined,
    });
    return { status: 202, body: {} };
  },

  'users/get-authenticated': (st, ctx) => {
    if (ctx.principal.kind === 'installation') throw new HttpError(403, 'Resource not accessible by integration');
    const created = iso(st.startedAt - 1000 * 86_400_000);
    return {
      status: 200,
      body: {
        ...userObject(st, st.user.login, 'User', st.user.id),
        user_view_type: 'private',
        name: st.user.name,
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
        total_private_repos: st.repos.size,
        owned_private_repos: 0,
        disk_usage: 0,
        collaborators: 0,
        two_factor_authentication: true,
        plan: { name: 'free', space: 976562499, private_repos: 10000, collaborators: 0 },
      },
    };
  },
};

/** Records a webhook delivery; fields left out get what GitHub would show. */
export function addHookDelivery(st: State, d: HookDeliveryInput): HookDelivery {
  const id = d.id ?? 10_000_000 + st.nextId++;
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
    installation_id: d.installation_id === undefined ? ([...st.installations.keys()][0] ?? null) : d.installation_id,
    repository_id: d.repository_id ?? null,
    throttled_at: d.throttled_at ?? null,
    request: d.request ?? { headers: { 'X-GitHub-Event': d.event }, payload: {} },
    response: d.response ?? { headers: {}, payload: '' },
  };
  st.deliveries.push(delivery);
  return delivery;
}
