// GitHub's published REST description (OpenAPI 3.0.3, from @octokit/openapi) for the GitHub
// stand-in: loaded once per process, made ajv-compatible, and used to check every request a
// client sends and every JSON answer the stand-in gives. Only the un-dereferenced
// api.github.com.json is read (13 MB); the package's index would pull in all of its 385 MB.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export const METHODS = ['get', 'post', 'patch', 'put', 'delete'] as const;
export type Method = (typeof METHODS)[number];

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required: boolean;
  multiSegment: boolean;
  /** the parameter's schema, `$ref`s resolved (for coercing query strings) */
  schema: JsonObject;
  /** where the schema lives in the description, as an ajv reference */
  schemaRef: string;
}

export interface Operation {
  operationId: string;
  /** GitHub's documentation page for it, for error bodies' documentation_url */
  docsUrl: string;
  method: Method;
  /** the path template, as in the description: /repos/{owner}/{repo} */
  template: string;
  parameters: Parameter[];
  /** JSON pointer (escaped, `gh#...`) to the requestBody object, if there is one */
  requestBodyRef: string | undefined;
  requestBodyRequired: boolean;
  /** status code (or "default") -> ajv reference of its application/json schema, or null when it has no JSON body */
  responses: Map<string, string | null>;
}

export interface RouteMatch {
  operation: Operation;
  /** path parameters, percent-decoded */
  params: Record<string, string>;
}

interface Route {
  template: string;
  regex: RegExp;
  names: string[];
  literalChars: number;
  multiSegments: number;
  operations: Map<Method, Operation>;
}

const SPEC_FILE = fileURLToPath(
  new URL('../../../node_modules/@octokit/openapi/generated/api.github.com.json', import.meta.url),
);

let spec: JsonObject | undefined;
let ajv: Ajv | undefined;
let routes: Route[] | undefined;
const validators = new Map<string, ValidateFunction>();

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The description, parsed once per process and normalised for ajv. */
export function loadSpec(): JsonObject {
  if (spec) return spec;
  const parsed: unknown = JSON.parse(readFileSync(SPEC_FILE, 'utf8'));
  if (!isObject(parsed) || !isObject(parsed.paths)) throw new Error(`${SPEC_FILE}: not an OpenAPI description`);
  normaliseNullable(parsed);
  spec = parsed;
  return spec;
}

/**
 * OpenAPI 3.0 lets `nullable: true` stand beside `allOf`/`oneOf`/`anyOf` without a `type`, which
 * ajv rejects ("nullable" cannot be used without "type"); rewrite those as "null or the rest". An
 * `enum` beside `nullable: true` must list null for ajv to accept null.
 */
function normaliseNullable(node: Json): void {
  if (Array.isArray(node)) {
    for (const v of node) normaliseNullable(v);
    return;
  }
  if (!isObject(node)) return;
  for (const v of Object.values(node)) normaliseNullable(v);
  if (typeof node.nullable !== 'boolean') return;
  if (node.type === undefined) {
    const nullable = node.nullable;
    delete node.nullable;
    if (!nullable) return;
    const rest: JsonObject = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === 'description' || k === 'title') continue;
      rest[k] = v;
      delete node[k];
    }
    if (Object.keys(rest).length > 0) node.anyOf = [{ type: 'null' }, rest];
  } else if (node.nullable && Array.isArray(node.enum) && !node.enum.includes(null)) {
    node.enum.push(null);
  }
}

function getAjv(): Ajv {
  if (ajv) return ajv;
  const a = new Ajv({ strict: false, allErrors: true, validateSchema: false });
  addFormats.default(a);
  // Vendor formats GitHub uses that ajv-formats does not know: nothing to check.
  a.addFormat('repo.nwo', true);
  a.addSchema(loadSpec(), 'gh');
  ajv = a;
  return a;
}

/** RFC 6901 escape plus percent-encoding, as ajv resolves `$ref` fragments as URIs. */
function pointerPart(s: string): string {
  return encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'));
}

export function pointer(...parts: string[]): string {
  return `gh#/${parts.map(pointerPart).join('/')}`;
}

/** Follows `$ref`s inside the description (`#/components/...`). */
export function resolve(node: Json | undefined): { node: Json | undefined; ref: string[] | undefined } {
  let ref: string[] | undefined;
  let cur = node;
  for (let i = 0; i < 32 && isObject(cur) && typeof cur.$ref === 'string'; i++) {
    const target: string = cur.$ref;
    if (!target.startsWith('#/')) throw new Error(`external $ref ${target}`);
    ref = target
      .slice(2)
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    let at: Json | undefined = loadSpec();
    for (const p of ref) at = isObject(at) ? at[p] : undefined;
    cur = at;
  }
  return { node: cur, ref };
}

/** A compiled validator for an ajv reference into the description (or an ad-hoc schema), cached. */
export function validatorFor(key: string, schema: () => JsonObject): ValidateFunction {
  let v = validators.get(key);
  if (!v) {
    v = getAjv().compile(schema());
    validators.set(key, v);
  }
  return v;
}

function buildParameter(raw: Json, at: string[]): Parameter | undefined {
  const { node, ref } = resolve(raw);
  if (!isObject(node) || typeof node.name !== 'string' || typeof node.in !== 'string') return undefined;
  const where = ref ?? at;
  const schema = resolve(node.schema).node;
  return {
    name: node.name,
    in: node.in as Parameter['in'],
    required: node.required === true,
    multiSegment: node['x-multi-segment'] === true,
    schema: isObject(schema) ? schema : {},
    schemaRef: pointer(...where, 'schema'),
  };
}

function buildRoutes(): Route[] {
  if (routes) return routes;
  const paths = loadSpec().paths;
  if (!isObject(paths)) throw new Error('description without paths');
  const out: Route[] = [];
  for (const [template, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    const operations = new Map<Method, Operation>();
    const shared = Array.isArray(item.parameters) ? item.parameters : [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObject(op) || typeof op.operationId !== 'string') continue;
      const params = new Map<string, Parameter>();
      shared.forEach((p, i) => {
        const built = buildParameter(p, ['paths', template, 'parameters', String(i)]);
        if (built) params.set(`${built.in}:${built.name}`, built);
      });
      (Array.isArray(op.parameters) ? op.parameters : []).forEach((p, i) => {
        const built = buildParameter(p, ['paths', template, method, 'parameters', String(i)]);
        if (built) params.set(`${built.in}:${built.name}`, built);
      });
      let requestBodyRef: string | undefined;
      let requestBodyRequired = false;
      const rb = resolve(op.requestBody);
      if (isObject(rb.node) && isObject(rb.node.content) && rb.node.content['application/json'] !== undefined) {
        requestBodyRef = pointer(
          ...(rb.ref ?? ['paths', template, method, 'requestBody']),
          'content',
          'application/json',
          'schema',
        );
        requestBodyRequired = rb.node.required === true;
      }
      const responses = new Map<string, string | null>();
      if (isObject(op.responses)) {
        for (const [code, r] of Object.entries(op.responses)) {
          const res = resolve(r);
          const content = isObject(res.node) ? res.node.content : undefined;
          const json = isObject(content) ? content['application/json'] : undefined;
          responses.set(
            code,
            isObject(json) && json.schema !== undefined
              ? pointer(
                  ...(res.ref ?? ['paths', template, method, 'responses', code]),
                  'content',
                  'application/json',
                  'schema',
                )
              : null,
          );
        }
      }
      operations.set(method, {
        operationId: op.operationId,
        docsUrl:
          isObject(op.externalDocs) && typeof op.externalDocs.url === 'string'
            ? op.externalDocs.url
            : 'https://docs.github.com/rest',
        method,
        template,
        parameters: [...params.values()],
        requestBodyRef,
        requestBodyRequired,
        responses,
      });
    }
    if (operations.size === 0) continue;
    const first = operations.values().next().value;
    const multi = new Set(first?.parameters.filter((p) => p.in === 'path' && p.multiSegment).map((p) => p.name));
    const names: string[] = [];
    let literalChars = 0;
    let multiSegments = 0;
    const source = template.replace(/\{([^}]+)\}|[^{]+/g, (m, name: string | undefined) => {
      if (name === undefined) {
        literalChars += m.length;
        return m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      }
      names.push(name);
      if (multi.has(name)) {
        multiSegments++;
        return '(.+?)';
      }
      return '([^/]+?)';
    });
    out.push({ template, regex: new RegExp(`^${source}$`), names, literalChars, multiSegments, operations });
  }
  // Most specific first: /commits/{ref}/status before the multi-segment /commits/{ref}.
  out.sort((a, b) => a.multiSegments - b.multiSegments || b.literalChars - a.literalChars);
  routes = out;
  return out;
}

/**
 * The operation for a method and a raw (still percent-encoded) path; `methods` lists what the
 * path allows when it matched a template but not for this method.
 */
export function findOperation(method: string, rawPath: string): RouteMatch | { methods: string[] } | undefined {
  const m = method.toLowerCase();
  let allowed: string[] | undefined;
  for (const route of buildRoutes()) {
    const found = route.regex.exec(rawPath);
    if (!found) continue;
    const op = route.operations.get(m as Method);
    if (!op) {
      allowed ??= [...route.operations.keys()].map((x) => x.toUpperCase());
      continue;
    }
    const params: Record<string, string> = {};
    let ok = true;
    route.names.forEach((name, i) => {
      try {
        params[name] = decodeURIComponent(found[i + 1] ?? '');
      } catch {
        ok = false;
      }
    });
    if (!ok) continue;
    return { operation: op, params };
  }
  return allowed ? { methods: allowed } : undefined;
}

/** Query and path values arrive as strings: make them what the parameter's schema says. */
export function coerce(schema: JsonObject, value: string | string[]): unknown {
  const one = (s: string, type: Json | undefined): unknown => {
    if ((type === 'integer' || type === 'number') && /^-?\d+(\.\d+)?$/.test(s)) return Number(s);
    if (type === 'boolean' && (s === 'true' || s === 'false')) return s === 'true';
    return s;
  };
  if (schema.type === 'array') {
    const items = resolve(schema.items).node;
    const itemType = isObject(items) ? items.type : undefined;
    const list = Array.isArray(value) ? value : value.split(',');
    return list.map((s) => one(s, itemType));
  }
  if (Array.isArray(value)) return value.map((s) => one(s, schema.type));
  return one(value, schema.type);
}

export function formatErrors(where: string, errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const p = e.params as Record<string, unknown>;
    let extra = '';
    if (typeof p.additionalProperty === 'string') extra = ` (${p.additionalProperty})`;
    else if (Array.isArray(p.allowedValues)) extra = ` (${p.allowedValues.map((v) => JSON.stringify(v)).join(', ')})`;
    return `${where}${e.instancePath} ${e.message ?? 'is invalid'}${extra}`;
  });
}

function parametersValidator(op: Operation, where: 'path' | 'query'): ValidateFunction {
  return validatorFor(`${op.method} ${op.template} ${where}`, () => {
    const params = op.parameters.filter((p) => p.in === where);
    return {
      type: 'object',
      properties: Object.fromEntries(params.map((p) => [p.name, { $ref: p.schemaRef }])),
      required: params.filter((p) => p.required || where === 'path').map((p) => p.name),
      additionalProperties: false,
    };
  });
}

export interface RequestParts {
  params: Record<string, string>;
  /** every query value as sent (repeated keys give several) */
  query: Map<string, string[]>;
  /** the parsed JSON body, or undefined when none was sent */
  body: unknown;
}

/** Everything wrong with a request, by the description (and by `extra`, its missing limits). */
export function validateRequest(op: Operation, req: RequestParts): string[] {
  const problems: string[] = [];
  const byName = new Map(op.parameters.map((p) => [`${p.in}:${p.name}`, p]));
  const path: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(req.params)) {
    const p = byName.get(`path:${name}`);
    path[name] = p ? coerce(p.schema, value) : value;
  }
  const pv = parametersValidator(op, 'path');
  if (!pv(path)) problems.push(...formatErrors('path', pv.errors));
  const query: Record<string, unknown> = {};
  for (const [name, values] of req.query) {
    const p = byName.get(`query:${name}`);
    if (p && p.schema.type !== 'array' && values.length > 1)
      problems.push(`query/${name} given ${values.length} times`);
    query[name] = p
      ? coerce(p.schema, p.schema.type === 'array' ? values : (values[values.length - 1] ?? ''))
      : values.join(',');
  }
  const qv = parametersValidator(op, 'query');
  if (!qv(query)) problems.push(...formatErrors('query', qv.errors));
  if (op.requestBodyRef === undefined) {
    if (req.body !== undefined && !(isObject(req.body) && Object.keys(req.body).length === 0))
      problems.push('body: this operation takes no body');
  } else if (req.body === undefined) {
    if (op.requestBodyRequired) problems.push('body: required but missing');
  } else {
    const ref = op.requestBodyRef;
    const bv = validatorFor(ref, () => ({ $ref: ref }));
    if (!bv(req.body)) problems.push(...formatErrors('body', bv.errors));
    const schema = resolveRef(ref);
    unknownProperties(schema, req.body as Json, 'body', problems);
  }
  return problems;
}

function resolveRef(ref: string): Json | undefined {
  const parts = ref
    .replace(/^gh#\//, '')
    .split('/')
    .map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'));
  let at: Json | undefined = loadSpec();
  for (const p of parts) at = isObject(at) ? at[p] : undefined;
  return at;
}

/**
 * Property names a schema declares, with its allOf/anyOf/oneOf branches, and whether it takes
 * others. Branches that only constrain (`anyOf: [{ properties: { status: ... }, additionalProperties:
 * true }]`) do not open a schema that declares its own properties.
 */
function declared(schema: Json | undefined, depth = 0): { props: Map<string, Json>; open: boolean } {
  const node = resolve(schema).node;
  const props = new Map<string, Json>();
  if (!isObject(node) || depth > 8) return { props, open: true };
  let open = node.additionalProperties === true || isObject(node.additionalProperties);
  if (isObject(node.properties)) for (const [k, v] of Object.entries(node.properties)) props.set(k, v);
  const own = props.size > 0;
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
    const branches = node[key];
    if (!Array.isArray(branches)) continue;
    for (const b of branches) {
      const inner = declared(b, depth + 1);
      if (!own && inner.open && inner.props.size > 0) open = true;
      for (const [k, v] of inner.props) if (!props.has(k)) props.set(k, v);
    }
  }
  if (props.size === 0) open = true;
  return { props, open };
}

/**
 * GitHub ignores body fields it does not know, so a misspelt optional field would silently do
 * nothing; the stand-in reports any field the description does not declare.
 */
function unknownProperties(schema: Json | undefined, data: Json, where: string, out: string[], depth = 0): void {
  if (depth > 16) return;
  const node = resolve(schema).node;
  if (!isObject(node)) return;
  if (Array.isArray(data)) {
    if (node.items !== undefined)
      for (const [i, d] of data.entries()) unknownProperties(node.items, d, `${where}/${i}`, out, depth + 1);
    return;
  }
  if (!isObject(data)) return;
  const { props, open } = declared(node);
  for (const [k, v] of Object.entries(data)) {
    const s = props.get(k);
    if (s !== undefined) unknownProperties(s, v, `${where}/${k}`, out, depth + 1);
    else if (!open) out.push(`${where}/${k} is not a field the description declares (misspelt?)`);
  }
}

/** Checks one of the stand-in's own JSON answers against what the description promises. */
export function validateResponse(op: Operation, status: number, body: unknown): string[] {
  const code = String(status);
  const ref = op.responses.has(code) ? op.responses.get(code) : op.responses.get('default');
  if (ref === undefined) {
    // An unlisted success is a stand-in bug; unlisted errors (401, 429...) GitHub gives anywhere.
    return status >= 200 && status < 300
      ? [`response ${status} is not one the description lists (${[...op.responses.keys()].join(', ')})`]
      : [];
  }
  if (ref === null)
    return body === undefined ? [] : [`response ${status} has a JSON body the description does not give`];
  const v = validatorFor(ref, () => ({ $ref: ref }));
  return v(body) ? [] : formatErrors(`response ${status}`, v.errors);
}

/**
 * Checks a webhook payload (as tests deliver it) against the description's schema for the event
 * and action (`x-webhooks`, e.g. pull-request-labeled); the errors, none when it matches.
 */
export function validateWebhook(event: string, action: string | undefined, payload: unknown): string[] {
  const name = [event, action].filter(Boolean).join('-').replace(/_/g, '-');
  const hooks = loadSpec()['x-webhooks'];
  if (!isObject(hooks) || !isObject(hooks[name])) return [`no webhook ${name} in the description`];
  const ref = pointer('x-webhooks', name, 'post', 'requestBody', 'content', 'application/json', 'schema');
  const v = validatorFor(ref, () => ({ $ref: ref }));
  return v(payload) ? [] : formatErrors(name, v.errors);
}
