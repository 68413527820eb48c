// Regression tests for issue 14's measured bullets: NUL and other controls, out-of-range dates,
// router-level errors, body-less operations. Each request here answered 500, bypassed the envelope
// or the security headers, or was accepted loosely before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { connect, type AddressInfo } from 'node:net';
import { bearer, buildTestApp, createTestDatabase, envelopeOf, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';

function expectSecurityHeaders(res: LightMyRequestResponse) {
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['x-frame-options']).toBe('DENY');
  expect(String(res.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['x-powered-by']).toBeUndefined();
}

describe('input handling (issue 14)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let admin: Record<string, string>;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { SECURITY_REGISTERABLE: 'true', RATE_LIMIT_ENABLED: 'false' });
    const user = await makeUser(t.ctx, { roles: ['County Admin'] });
    admin = bearer((await login(t.app, user.email)).access_token);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  describe('text policy: NUL, controls, lone surrogates, U+FFFD are field errors, never 500', () => {
    const BAD = ['a\u0000b', 'a\u001bb', 'line\r\nInjected: 1', 'a\u007fb', 'a\u0085b', 'a\ud800b', 'a\udc00', 'a\ufffdb'];

    it('POST /register first_name', async () => {
      for (const bad of BAD) {
        const res = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'nul@example.com', password: 'Quiet-Harbor-93-Lantern', first_name: bad } });
        expect(res.statusCode, JSON.stringify(bad)).toBe(400);
        const env = envelopeOf(res);
        expect(env.code).toBe('VALIDATION_FAILED');
        expect(Object.keys(env.fields!)).toContain('first_name');
      }
    });

    it('admin writes: users, roles, counties, departments, personal tokens', async () => {
      const cases: Array<[string, string, Record<string, unknown>, string]> = [
        ['POST', '/users', { email: 'n2@example.com', password: 'Quiet-Harbor-93-Lantern', last_name: 'x\u0000' }, 'last_name'],
        ['PATCH', '/users/1', { address: 'x\u0000' }, 'address'],
        ['POST', '/roles', { name: 'Auditor', description: 'x\u0000' }, 'description'],
        ['POST', '/counties', { name: 'x\u0000' }, 'name'],
        ['POST', '/counties/1/departments', { name: 'x\u0000' }, 'name'],
        ['POST', '/auth/tokens', { name: 'x\u0000' }, 'name'],
        ['PATCH', '/auth/current-user', { first_name: 'x\u0000' }, 'first_name'],
      ];
      for (const [method, url, payload, field] of cases) {
        const res = await t.app.inject({ method: method as 'POST', url, payload, headers: admin });
        expect(res.statusCode, `${method} ${url}`).toBe(400);
        expect(Object.keys(envelopeOf(res).fields!), `${method} ${url}`).toContain(field);
      }
    });

    it('a valid string with an RTL script, emoji and combining marks is accepted', async () => {
      const res = await t.app.inject({ method: 'PATCH', url: '/auth/current-user', payload: { first_name: 'مريم 👩🏽‍💻 e\u0301' }, headers: admin });
      expect(res.statusCode).toBe(200);
      expect(res.json().user.first_name).toBe('مريم 👩🏽‍💻 e\u0301');
    });

    // (An invalid percent-encoding such as %FF is kept as the literal text "%FF" by the query parser:
    // harmless, nothing to refuse.)
    it('query parameters: GET /users?q=%00 and ?role=%00 are 400 with the field named', async () => {
      for (const [q, field] of [['q=%00', 'q'], ['role=%00', 'role'], ['q=a%1Bb', 'q']] as const) {
        const res = await t.app.inject({ method: 'GET', url: `/users?${q}`, headers: admin });
        expect(res.statusCode, q).toBe(400);
        expect(Object.keys(envelopeOf(res).fields!), q).toContain(field);
      }
    });

    it('path parameters: a NUL in a role name or a link token is 400, not 500', async () => {
      for (const url of ['/users/1/roles/Cit%00izen', '/reset/abc%00def', '/reset/%1B%5B2J']) {
        const res = await t.app.inject({ method: url.startsWith('/users') ? 'POST' : 'GET', url, headers: admin });
        expect(res.statusCode, url).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
    });
  });

  describe('dates outside 1900–9999 are 400', () => {
    it('GET /audit?from=0000-01-01T00:00:00Z (was a 500: date/time field value out of range)', async () => {
      for (const v of ['0000-01-01T00:00:00Z', '1899-12-31T23:59:59Z', '10000-01-01T00:00:00Z', '9999-12-31T23:59:59-01:00', '2024-02-30T00:00:00Z', '2024-01-01']) {
        const res = await t.app.inject({ method: 'GET', url: `/audit?from=${encodeURIComponent(v)}`, headers: admin });
        expect(res.statusCode, v).toBe(400);
        expect(Object.keys(envelopeOf(res).fields!), v).toContain('from');
      }
      const ok = await t.app.inject({ method: 'GET', url: `/audit?from=1900-01-01T00:00:00Z&to=${encodeURIComponent('9999-12-31T23:59:59+01:00')}`, headers: admin });
      expect(ok.statusCode).toBe(200);
    });
  });

  describe('router and client errors: the envelope and every security header', () => {
    it('GET /reset/%zz (FST_ERR_BAD_URL) → 400 envelope', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/reset/%zz' });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      expectSecurityHeaders(res);
      expect(res.headers['x-request-id']).toBeTruthy();
    });

    it('a 10 KB path token (FST_ERR_MAX_PARAM_LENGTH) → 414 envelope', async () => {
      const res = await t.app.inject({ method: 'GET', url: `/reset/${'a'.repeat(10_000)}` });
      expect(res.statusCode).toBe(414);
      expect(envelopeOf(res)).toMatchObject({ statusCode: 414, error: 'URI Too Long', code: 'VALIDATION_FAILED' });
      expectSecurityHeaders(res);
    });

    it('HTTP the parser cannot read (real socket): 400 envelope with the security headers', async () => {
      const other = await buildTestApp(database);
      try {
        await other.app.listen({ port: 0, host: '127.0.0.1' });
        const { port } = other.app.server.address() as AddressInfo;
        const raw = await new Promise<string>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
          let data = '';
          socket.on('data', (d) => (data += d.toString()));
          socket.on('end', () => resolve(data));
          socket.on('error', reject);
        });
        expect(raw).toMatch(/^HTTP\/1\.1 400 /);
        expect(raw).toMatch(/x-content-type-options: nosniff/i);
        expect(raw).toMatch(/x-frame-options: DENY/i);
        expect(raw).toMatch(/cache-control: no-store/i);
        expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED' });
      } finally {
        await other.close();
      }
    });

    it('bad JSON, wrong media type, too large, unknown route: envelope and headers', async () => {
      const responses = [
        await t.app.inject({ method: 'POST', url: '/login', payload: '{"email":', headers: { 'content-type': 'application/json' } }),
        await t.app.inject({ method: 'POST', url: '/login', payload: 'email=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
        await t.app.inject({ method: 'POST', url: '/login', payload: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } }),
        await t.app.inject({ method: 'GET', url: '/no/such/route' }),
      ];
      expect(responses.map((r) => r.statusCode)).toEqual([400, 415, 413, 404]);
      for (const res of responses) {
        envelopeOf(res);
        expectSecurityHeaders(res);
      }
    });
  });

  describe('body-less operations', () => {
    it('an empty body (or {}) is accepted whatever the Content-Type, even an unparseable one', async () => {
      for (const [contentType, payload] of [['application/json', ''], ['text/plain', ''], ['application/octet-stream', ''], [undefined, ''],
        ['application/json, text/plain', ''], ['application/json', '{}'], ['application/json', ' { } ']] as const) {
        const user = await makeUser(t.ctx);
        const headers = { ...bearer((await login(t.app, user.email)).access_token), ...(contentType ? { 'content-type': contentType } : {}) };
        const res = await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers, payload });
        expect(res.statusCode, `${contentType} ${payload}`).toBe(204);
      }
    });

    it('a body with content → 400 VALIDATION_FAILED "This operation takes no body"', async () => {
      const target = await makeUser(t.ctx);
      for (const [payload, contentType] of [['{"anything":true}', 'application/json'], ['[]', 'application/json'], ['null', 'application/json'], ['hello', 'text/plain'], ['x', undefined]] as const) {
        const res = await t.app.inject({
          method: 'POST', url: `/users/${target.id}/roles/Citizen`, payload,
          headers: { ...admin, ...(contentType ? { 'content-type': contentType } : {}) },
        });
        expect(res.statusCode, payload).toBe(400);
        expect(envelopeOf(res)).toMatchObject({ code: 'VALIDATION_FAILED', message: 'This operation takes no body' });
      }
    });

    it('POST /logout: no body, an empty body of any type, or {} all work', async () => {
      for (const [payload, contentType] of [[undefined, undefined], ['', 'application/json'], ['', 'text/plain'], ['{}', 'application/json']] as const) {
        const res = await t.app.inject({ method: 'POST', url: '/logout', ...(payload !== undefined ? { payload } : {}), headers: contentType ? { 'content-type': contentType } : {} });
        expect(res.statusCode, `${payload} ${contentType}`).toBe(204);
      }
    });

    it('a route that takes a body still refuses other media types (415) and empty JSON (400 INVALID_JSON)', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/login', payload: 'a', headers: { 'content-type': 'text/plain' } });
      expect(res.statusCode).toBe(415);
      const empty = await t.app.inject({ method: 'POST', url: '/login', payload: '', headers: { 'content-type': 'application/json' } });
      expect(envelopeOf(empty).code).toBe('INVALID_JSON');
    });
  });
});
