// Security headers on every route class over real HTTP (public, authenticated, 2FA, errors of each
// kind, rate-limited, docs), HSTS only in production, and credentialed CORS for the CORS_ORIGINS
// allow-list: preflight and simple requests with and without an allowed origin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { connect } from '../../src/db/client.js';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, type TestApp, type TestDatabase, listen,
} from '../support/helper.js';

/** Headers that protect pages: the docs page has them, JSON answers do not. */
const DOCUMENT_ONLY = ['cross-origin-opener-policy', 'origin-agent-cluster', 'x-dns-prefetch-control', 'x-download-options',
  'x-permitted-cross-domain-policies', 'x-xss-protection'];

function expectSecurityHeaders(h: Headers, where: string, opts: { noStore?: boolean } = {}) {
  expect(h.get('x-content-type-options'), where).toBe('nosniff');
  expect(h.get('x-frame-options'), where).toBe('DENY');
  expect(h.get('content-security-policy') ?? '', where).toContain("frame-ancestors 'none'");
  expect(h.get('referrer-policy'), where).toBe('no-referrer');
  expect(h.get('x-powered-by'), where).toBeNull();
  expect(h.get('x-request-id'), where).toBeTruthy();
  if (opts.noStore ?? true) expect(h.get('cache-control'), where).toBe('no-store');
}

describe('security headers on every route class (real HTTP)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let base: string;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH: '2/5m', SECURITY_LOCKOUT_ENABLED: 'false' });
    base = await listen(t.app);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('public, authenticated, error, rate-limited and docs responses all carry them; auth responses are no-store', async () => {
    const user = await makeUser(t.ctx);
    const json = { 'content-type': 'application/json' };
    const login = await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: user.email, password: GOOD_PASSWORD }) });
    expect(login.status).toBe(200);
    const { access_token } = await login.json() as { access_token: string };
    const auth = { authorization: `Bearer ${access_token}` };

    const cases: Array<[string, Promise<Response>, number]> = [
      ['public GET', fetch(`${base}/health`), 200],
      ['auth GET', fetch(`${base}/auth/current-user`, { headers: auth }), 200],
      ['auth POST 204', fetch(`${base}/tf-disable`, { method: 'POST', headers: auth }), 204],
      ['no credentials 401', fetch(`${base}/auth/current-user`), 401],
      ['bad token 401', fetch(`${base}/auth/current-user`, { headers: { authorization: 'Bearer a.b.c' } }), 401],
      ['validation 400', fetch(`${base}/register`, { method: 'POST', headers: json, body: '{}' }), 400],
      ['media type 415', fetch(`${base}/refresh-token`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }), 415],
      ['unknown route 404', fetch(`${base}/no/such/route`), 404],
      ['2FA 401', fetch(`${base}/tf-validate`, { method: 'POST', headers: json, body: JSON.stringify({ tf_token: 'x', code: '123456' }) }), 401],
    ];
    for (const [where, pending, status] of cases) {
      const res = await pending;
      expect(res.status, where).toBe(status);
      expectSecurityHeaders(res.headers, where);
      // a JSON answer: a CSP that allows nothing, and none of the document-only headers
      expect(res.headers.get('content-security-policy'), where).toBe("default-src 'none';frame-ancestors 'none'");
      expect(res.headers.get('cross-origin-resource-policy'), where).toBe('same-site');
      for (const page of DOCUMENT_ONLY) expect(res.headers.get(page), `${where}: ${page}`).toBeNull();
      await res.arrayBuffer();
    }
    expect(login.headers.get('cache-control')).toBe('no-store');
    expectSecurityHeaders(login.headers, 'login');

    // the auth budget is 2/5m here: the third login is 429 with the same headers
    await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: user.email, password: 'x' }) });
    const limited = await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: user.email, password: 'x' }) });
    expect(limited.status).toBe(429);
    expectSecurityHeaders(limited.headers, '429');

    const docs = await fetch(`${base}/docs`, { redirect: 'manual' });
    expectSecurityHeaders(docs.headers, 'docs', { noStore: false });
    const page = await fetch(`${base}/docs/`, { redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expectSecurityHeaders(page.headers, 'docs page', { noStore: false });
    for (const h of DOCUMENT_ONLY) expect(page.headers.get(h), `docs page: ${h}`).not.toBeNull();
    await page.arrayBuffer();
    const spec = await fetch(`${base}/openapi.json`);
    expectSecurityHeaders(spec.headers, 'openapi.json');
  });

  it('no HSTS outside production', async () => {
    const res = await fetch(`${base}/health`);
    expect(res.headers.get('strict-transport-security')).toBeNull();
  });
});

describe('HSTS in production', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('Strict-Transport-Security: max-age one year, includeSubDomains', async () => {
    const config = loadConfig({
      NODE_ENV: 'production', DATABASE_URL: database.url, LOG_LEVEL: 'silent', BCRYPT_LOG_ROUNDS: '4',
      SECRET_KEY: 'production-test-secret-key-0123456789abcdef', SECURITY_PASSWORD_SALT: 'production-test-salt-0123456789abcdef',
      OUTBOX_WORKER_ENABLED: 'false', RATE_LIMIT_ENABLED: 'false',
    });
    const db = connect(database.url, { max: 2 });
    const app = await buildApp(config, { db });
    try {
      const base = await listen(app);
      const res = await fetch(`${base}/health`);
      expect(res.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
      expectSecurityHeaders(res.headers, 'production');
    } finally {
      await app.close();
      await db.close();
    }
  });
});

describe('CORS (real HTTP preflight)', () => {
  const SPA = 'http://spa.example.test:5173';
  let database: TestDatabase;
  let withCors: TestApp;
  let withoutCors: TestApp;
  let corsBase: string;
  let plainBase: string;
  beforeAll(async () => {
    database = await createTestDatabase();
    withCors = await buildTestApp(database, { CORS_ORIGINS: `${SPA}, https://admin.example.test` });
    withoutCors = await buildTestApp(database);
    [corsBase, plainBase] = await Promise.all([listen(withCors.app), listen(withoutCors.app)]);
  });
  afterAll(async () => {
    await Promise.all([withCors.close(), withoutCors.close()]);
    await database.drop();
  });

  const preflight = (base: string, origin: string) => fetch(`${base}/login`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-csrf-token' },
  });

  it('an allowed origin gets a credentialed preflight answer', async () => {
    const res = await preflight(corsBase, SPA);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(SPA);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect((res.headers.get('access-control-allow-headers') ?? '').toLowerCase()).toContain('x-csrf-token');
    expect(res.headers.get('access-control-max-age')).toBe('600');
    expect(res.headers.get('vary') ?? '').toMatch(/origin/i);
    expectSecurityHeaders(res.headers, 'preflight');
  });

  it('an origin not on the list gets no CORS headers (the browser blocks it)', async () => {
    const res = await preflight(corsBase, 'https://evil.example.test');
    // without Access-Control-Allow-Origin the browser refuses the response, whatever else is sent
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const simple = await fetch(`${corsBase}/health`, { headers: { origin: 'https://evil.example.test' } });
    expect(simple.status).toBe(200);
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('simple requests from an allowed origin are credentialed and expose Retry-After and X-Request-Id', async () => {
    const res = await fetch(`${corsBase}/health`, { headers: { origin: SPA } });
    expect(res.headers.get('access-control-allow-origin')).toBe(SPA);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect((res.headers.get('access-control-expose-headers') ?? '').toLowerCase()).toContain('retry-after');
  });

  it('without CORS_ORIGINS there are no CORS headers at all', async () => {
    const res = await preflight(plainBase, SPA);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const simple = await fetch(`${plainBase}/health`, { headers: { origin: SPA } });
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
  });
});
