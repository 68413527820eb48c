// The schema-driven fuzzer's engine: reads openapi/openapi.json (whatever operations it holds today),
// generates valid requests from the declared schemas with json-schema-faker, mutates them with
// fast-check, and checks every answer against the operation's documented responses.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { generateSync } from 'json-schema-faker';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = Record<string, unknown>;

export interface Parameter { name: string; in: 'path' | 'query' | 'header' | 'cookie'; required?: boolean; schema: Schema }
export interface Operation {
  id: string;
  method: string;
  path: string;
  params: Parameter[];
  body?: { schema: Schema; required: boolean };
  /** documented statuses → validator of the JSON body (undefined: no content) */
  responses: Map<number, ValidateFunction | 'other' | undefined>;
  /** security requirement alternatives; [] or [{}] present = anonymous allowed */
  authenticated: boolean;
  anonymousAllowed: boolean;
}

const DOC_ID = 'https://county-services.invalid/openapi.json';

export function loadOperations(file = new URL('../../openapi/openapi.json', import.meta.url)): Operation[] {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as {
    paths: Record<string, Record<string, Schema>>; components: { schemas: Record<string, Schema> };
  };
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  ajv.addSchema({ $id: DOC_ID, $defs: doc.components.schemas });
  const relink = (s: unknown): unknown => {
    if (Array.isArray(s)) return s.map(relink);
    if (!s || typeof s !== 'object') return s;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      out[k] = k === '$ref' && typeof v === 'string' ? v.replace('#/components/schemas/', `${DOC_ID}#/$defs/`) : relink(v);
    }
    return out;
  };
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(item)) {
      const op = raw as {
        operationId?: string; parameters?: Parameter[]; security?: Array<Record<string, string[]>>;
        requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
        responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
      };
      const responses = new Map<number, ValidateFunction | 'other' | undefined>();
      for (const [status, r] of Object.entries(op.responses)) {
        const schema = r.content?.['application/json']?.schema;
        // a non-JSON answer (an HTML page, a redirect body) is not checked against a schema
        responses.set(Number(status), schema ? ajv.compile(relink(schema) as Schema) : r.content && Object.keys(r.content).length ? 'other' : undefined);
      }
      const security = op.security ?? [];
      const anonymousAllowed = security.length === 0 || security.some((s) => Object.keys(s).length === 0);
      ops.push({
        id: op.operationId ?? `${method} ${path}`,
        method: method.toUpperCase(), path,
        params: op.parameters ?? [],
        body: op.requestBody?.content['application/json'] ? { schema: op.requestBody.content['application/json'].schema, required: op.requestBody.required !== false } : undefined,
        responses, authenticated: security.length > 0, anonymousAllowed,
      });
    }
  }
  return ops;
}

/** A schema without the $refs json-schema-faker would need to resolve (request schemas use none). */
function generate(schema: Schema, seed: number): Json {
  try {
    return generateSync(schema as never, { seed, optionalsProbability: 0.5, maxLength: 40 } as never) as Json;
  } catch {
    // e.g. minProperties with every member optional: fake them all
    try {
      return generateSync(schema as never, { seed, alwaysFakeOptionals: true, maxLength: 40 } as never) as Json;
    } catch {
      return (schema.examples as Json[] | undefined)?.[0] ?? (schema.type === 'object' ? {} : '');
    }
  }
}

// ---- hostile values ----

export const NASTY_STRINGS: string[] = [
  '', ' ', 'a\u0000b', '\u0000', 'a\u0001\u0002\u001f', 'ESC\u001b[2J\u001b[31mred', 'line\r\nSet-Cookie: x=1', '\t', '\u007f', '\u0085\u009b',
  '\ud800', 'x\udfffy', '\ufffd', '\ufeffbom', '\u202eevil\u202c', '\u2066rtl\u2069', 'مرحبا بالعالم', 'עברית', '👩🏽‍💻🇰🇪', 'e\u0301\u0301\u0301',
  'Ω≈ç√∫', 'ß', 'İ', 'ǅ', '\u2028\u2029', "'; drop table users; --", '" OR 1=1 --', '%00', '%s%s%n', '{{7*7}}', '${jndi:ldap://x}',
  '<script>alert(1)</script>', '../../etc/passwd', 'https://evil.example/verify', 'www.evil.example', 'evil.example',
  'a'.repeat(255), 'a'.repeat(1025), 'é'.repeat(600), 'x'.repeat(70_000), '9'.repeat(400), '-0', '1e309', 'NaN', 'null', 'true',
  'ünïcødé@exämple.com', 'user@xn--bcher-kva.example', 'Ünïcødé@Bücher.EXAMPLE', 'a@b', '@', 'a@b..c', 'admin@test.com',
  '2024-02-30T00:00:00Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '10000-01-01T00:00:00Z', '1969-12-31T23:59:59.999999999Z',
];
export const NASTY_NUMBERS: Json[] = [0, -1, 1, 2147483647, 2147483648, -2147483649, 9007199254740991, 9007199254740992, 1e308, -1e308, 0.5, -0, 1e-7, 100, 101];
export const NASTY_VALUES: Json[] = [null, true, false, [], {}, [null], { a: { b: { c: [] } } }, '', 0, ...NASTY_NUMBERS.slice(0, 4)];
export const CONTENT_TYPES: Array<string | undefined> = [
  undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16',
  'application/json; charset=latin1', 'application/merge-patch+json', 'application/JSON', 'application/json, text/plain', 'application/xml',
  '*/*', 'garbage', 'application/octet-stream',
];

// ---- mutations ----

export type Mutation =
  | { kind: 'valid' }
  | { kind: 'dropField'; pick: number }
  | { kind: 'extraField'; name: string; value: Json }
  | { kind: 'typeSwap'; pick: number; value: Json }
  | { kind: 'nastyString'; pick: number; value: string }
  | { kind: 'nastyNumber'; pick: number; value: Json }
  | { kind: 'rawBody'; body: string | readonly number[] }
  | { kind: 'contentType'; type: string | undefined; body: 'valid' | 'empty' }
  | { kind: 'nastyPath'; pick: number; value: string }
  | { kind: 'nastyQuery'; pick: number; value: string }
  | { kind: 'rawQuery'; query: string }
  | { kind: 'noBody' }
  | { kind: 'headers'; headers: Record<string, string> }
  /** one character slipped into an otherwise valid string (body member, query or path parameter) */
  | { kind: 'inject'; where: 'body' | 'query' | 'path'; pick: number; at: number; char: string };

/** What PostgreSQL, a log line, a mail header or a terminal must never receive raw. */
export const INJECTED_CHARS = ['\u0000', '\u0001', '\u0008', '\t', '\n', '\r\n', '\u001b[2J', '\u007f', '\u0085', '\u009b', '\ud800', '\udc00', '\ufffd'];

const nastyString = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 5 }) },
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'valid' as const }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('inject' as const), where: fc.constantFrom('body' as const, 'body' as const, 'query' as const, 'path' as const), pick: fc.nat(), at: fc.nat(), char: fc.constantFrom(...INJECTED_CHARS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dropField' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('extraField' as const), name: fc.constantFrom('admin', 'roles', 'id', '__proto__', 'constructor', 'fs_uniquifier', 'password_hash', ''), value: fc.constantFrom<Json>(true, 'x', 1, { isAdmin: true }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('typeSwap' as const), pick: fc.nat(), value: fc.constantFrom(...NASTY_VALUES) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('nastyString' as const), pick: fc.nat(), value: nastyString }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('nastyNumber' as const), pick: fc.nat(), value: fc.constantFrom(...NASTY_NUMBERS) }) },
  {
    weight: 2, arbitrary: fc.record({
      kind: fc.constant('rawBody' as const),
      body: fc.oneof(
        fc.constantFrom('', '{', '[]', 'null', '"x"', '42', '{"a":1,"a":2}', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}',
          '[' .repeat(5000), '{"email":"a\\u0000@b.co"}', '\ufeff{}', '{}garbage'),
        // invalid UTF-8 inside a JSON string, overlong encodings, a lone surrogate encoded as UTF-8
        fc.constantFrom([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d], [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d],
          [0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d], [0xc3, 0x28]),
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('contentType' as const), type: fc.constantFrom(...CONTENT_TYPES), body: fc.constantFrom('valid' as const, 'empty' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('nastyPath' as const), pick: fc.nat(), value: fc.oneof(nastyString, fc.constantFrom('%zz', '%', '%c0%af', '..', '%2e%2e', 'a'.repeat(1100), '0', '-1', '1.5', '1e3', '0x10', ' 1', '99999999999')) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('nastyQuery' as const), pick: fc.nat(), value: nastyString }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('rawQuery' as const), query: fc.constantFrom('%zz', 'a=%00', 'q=%00&q=%00', 'page=1&page=2', 'per_page=101', 'per_page=-1', 'limit=0', '__proto__[x]=1', 'from=0000-01-01T00:00:00Z', 'q=' + '%41'.repeat(3000), '&&&', '=', 'role[]=x') }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'noBody' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('headers' as const), headers: fc.constantFrom<Record<string, string>>({ 'content-encoding': 'gzip' }, { 'x-request-id': '../../x' }, { 'accept': 'text/html' }, { 'x-http-method-override': 'DELETE' }, { 'x-forwarded-for': '1.2.3.4' }) }) },
);

// ---- building a request ----

/** encodeURIComponent, except that a lone surrogate is sent as its (invalid) 3-byte UTF-8 form. */
export function encodeComponent(v: string): string {
  let out = '';
  for (const ch of v) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0xd800 && c <= 0xdfff) {
      out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    } else out += encodeURIComponent(ch);
  }
  return out;
}

export interface FuzzRequest { method: string; url: string; headers: Record<string, string>; payload?: string | Buffer; pathMutated: boolean }

/** Paths to every member in a JSON value (for picking a field to mutate). */
function members(value: Json, path: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  if (value && typeof value === 'object') {
    for (const [k, v] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
      out.push([...path, k]);
      members(v as Json, [...path, k], out);
    }
  }
  return out;
}
function setAt(root: Json, path: Array<string | number>, value: Json | undefined): void {
  let node = root as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else node[last] = value;
}
const stringMembers = (v: Json) => members(v).filter((p) => typeof p.reduce<Json>((n, k) => (n as Record<string, Json>)[k]!, v) === 'string');
const numberMembers = (v: Json) => members(v).filter((p) => typeof p.reduce<Json>((n, k) => (n as Record<string, Json>)[k]!, v) === 'number');

function insertAt(value: string, at: number, char: string): string {
  const i = value.length ? at % (value.length + 1) : 0;
  return value.slice(0, i) + char + value.slice(i);
}

export interface Known {
  /** integer ids worth hitting (existing users, roles, counties) */
  ids: number[];
  roleNames: string[];
  /** a password that is right for the principal (reaches the paths behind a password check) */
  password: string;
}

export function buildRequest(op: Operation, seed: number, m: Mutation, known: Known): FuzzRequest {
  let pathMutated = false;
  // parameters
  const values: Record<string, Json> = {};
  const pathParams = op.params.filter((p) => p.in === 'path');
  const queryParams = op.params.filter((p) => p.in === 'query');
  for (const [i, p] of op.params.entries()) {
    if (p.in !== 'path' && p.in !== 'query') continue;
    if (p.in === 'query' && !p.required && (seed >> (i % 16)) & 1) continue;
    let v = generate(p.schema, seed + i);
    if (p.in === 'path' && p.schema.type === 'integer' && seed % 2 === 0) v = known.ids[Math.abs(seed) % known.ids.length]!;
    if (p.in === 'path' && p.name === 'role' && seed % 2 === 0) v = known.roleNames[Math.abs(seed) % known.roleNames.length]!;
    values[`${p.in}:${p.name}`] = v;
  }
  if (m.kind === 'nastyPath' && pathParams.length) {
    const p = pathParams[m.pick % pathParams.length]!;
    values[`path:${p.name}`] = m.value;
    pathMutated = true;
  }
  if (m.kind === 'nastyQuery' && queryParams.length) values[`query:${queryParams[m.pick % queryParams.length]!.name}`] = m.value;
  if (m.kind === 'inject' && m.where !== 'body') {
    const keys = Object.keys(values).filter((k) => k.startsWith(`${m.where}:`) && typeof values[k] === 'string');
    if (keys.length) {
      const k = keys[m.pick % keys.length]!;
      values[k] = insertAt(values[k] as string, m.at, m.char);
    }
  }
  // Raw path mutations ('%zz') go in unencoded; everything else is percent-encoded into one segment.
  const RAW = new Set(['%zz', '%', '%c0%af', '%2e%2e']);
  const url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const v = String(values[`path:${name}`]);
    return RAW.has(v) ? v : encodeComponent(v).replace(/\./g, '%2E');
  });
  const query = Object.entries(values).filter(([k]) => k.startsWith('query:'))
    .map(([k, v]) => `${encodeComponent(k.slice(6))}=${encodeComponent(String(v))}`);
  if (m.kind === 'rawQuery') query.push(m.query);
  const fullUrl = query.length ? `${url}?${query.join('&')}` : url;

  const headers: Record<string, string> = m.kind === 'headers' ? { ...m.headers } : {};
  let payload: string | Buffer | undefined;
  if (op.body || op.method !== 'GET') {
    let body: Json | undefined = op.body ? generate(op.body.schema, seed) : undefined;
    if (op.body && body && typeof body === 'object' && !Array.isArray(body)) {
      // a right password now and then, to get past the password checks
      for (const k of ['password', 'new_password']) if (k in body && seed % 3 !== 0) body[k] = k === 'password' ? known.password : `${known.password}-new`;
    }
    if (body !== undefined) {
      if (m.kind === 'dropField' || m.kind === 'typeSwap') {
        const all = members(body);
        if (all.length) setAt(body, all[m.pick % all.length]!, m.kind === 'dropField' ? undefined : m.value);
      } else if (m.kind === 'extraField' && typeof body === 'object' && body && !Array.isArray(body)) {
        (body as Record<string, Json>)[m.name] = m.value;
      } else if (m.kind === 'nastyString') {
        const all = stringMembers(body);
        if (all.length) setAt(body, all[m.pick % all.length]!, m.value);
      } else if (m.kind === 'inject' && m.where === 'body') {
        const all = stringMembers(body);
        if (all.length) {
          const path = all[m.pick % all.length]!;
          setAt(body, path, insertAt(path.reduce<Json>((n, k) => (n as Record<string, Json>)[k]!, body) as string, m.at, m.char));
        }
      } else if (m.kind === 'nastyNumber') {
        const all = numberMembers(body);
        if (all.length) setAt(body, all[m.pick % all.length]!, m.value);
      }
    } else if (m.kind === 'extraField') {
      body = { [m.name]: m.value };
    }
    if (m.kind === 'rawBody') {
      payload = typeof m.body === 'string' ? m.body : Buffer.from([...m.body]);
      headers['content-type'] = 'application/json';
    } else if (m.kind === 'contentType') {
      payload = m.body === 'empty' ? '' : JSON.stringify(body ?? {});
      if (m.type) headers['content-type'] = m.type;
    } else if (m.kind !== 'noBody' && body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
  }
  return { method: op.method, url: fullUrl, headers, payload, pathMutated };
}

// ---- checking an answer ----

export interface Answer { statusCode: number; headers: Record<string, unknown>; body: string }

export const SECURITY_HEADERS: Array<[string, RegExp]> = [
  ['x-content-type-options', /^nosniff$/],
  ['x-frame-options', /^DENY$/],
  ['content-security-policy', /frame-ancestors 'none'/],
  ['cache-control', /no-store/],
];

/** Problems with an answer; empty when it keeps every promise of the document. */
export function checkAnswer(op: Operation, req: FuzzRequest, res: Answer, secrets: Iterable<string>): string[] {
  const problems: string[] = [];
  if (res.statusCode >= 500) problems.push(`status ${res.statusCode} (never 5xx): ${res.body.slice(0, 300)}`);
  const documented = op.responses.has(res.statusCode);
  let json: unknown;
  const isJson = /^application\/json/.test(String(res.headers['content-type'] ?? ''));
  if (res.body.length && (isJson || res.statusCode >= 400)) {
    try {
      json = JSON.parse(res.body);
    } catch {
      problems.push(`body is not JSON: ${res.body.slice(0, 200)}`);
    }
  }
  const routeNotFound = res.statusCode === 404 && typeof (json as { message?: unknown })?.message === 'string' && (json as { message: string }).message.startsWith('Route ');
  if (!documented && !(routeNotFound && req.pathMutated)) problems.push(`status ${res.statusCode} is not documented (documented: ${[...op.responses.keys()].join(', ')})`);
  if (documented) {
    const validate = op.responses.get(res.statusCode);
    if (validate === 'other') {
      // documented as something other than JSON: nothing more to check here
    } else if (validate) {
      if (!isJson) problems.push(`content-type ${String(res.headers['content-type'])} for a JSON response`);
      if (!validate(json)) problems.push(`body does not match the ${res.statusCode} schema: ${JSON.stringify(validate.errors?.slice(0, 3))} body=${res.body.slice(0, 300)}`);
    } else if (res.body.length) problems.push(`status ${res.statusCode} documents no content but has a body: ${res.body.slice(0, 200)}`);
  }
  if (res.statusCode >= 400) {
    const e = json as { statusCode?: unknown; code?: unknown; message?: unknown; error?: unknown } | undefined;
    if (!e || e.statusCode !== res.statusCode || typeof e.code !== 'string' || typeof e.message !== 'string' || typeof e.error !== 'string') problems.push(`not an error envelope: ${res.body.slice(0, 200)}`);
    if (res.statusCode === 500 && /at |select |insert |update |postgres/i.test(res.body)) problems.push('a 500 body with internal text');
  }
  if (res.statusCode === 429 && !res.headers['retry-after']) problems.push('429 without Retry-After');
  for (const [name, re] of SECURITY_HEADERS) {
    if (!re.test(String(res.headers[name] ?? ''))) problems.push(`header ${name} missing or wrong: ${String(res.headers[name])}`);
  }
  if (res.headers['x-powered-by'] !== undefined) problems.push('x-powered-by present');
  problems.push(...secretsIn(res.body, secrets).map((s) => `secret in the body: ${s}`));
  return problems;
}

/** The secrets (or their class) found in `text`. */
export function secretsIn(text: string, secrets: Iterable<string>): string[] {
  const found: string[] = [];
  if (/\$2[aby]\$\d\d\$/.test(text)) found.push('a bcrypt hash');
  for (const s of secrets) if (s && s.length >= 8 && text.includes(s)) found.push(`${s.slice(0, 6)}…`);
  return found;
}

export function describeRequest(req: FuzzRequest): string {
  const payload = req.payload === undefined ? '(none)' : Buffer.isBuffer(req.payload) ? `<bytes ${req.payload.toString('hex').slice(0, 80)}>` : JSON.stringify(req.payload.slice(0, 300));
  return `${req.method} ${req.url.slice(0, 300)} headers=${JSON.stringify(req.headers)} payload=${payload}`;
}
