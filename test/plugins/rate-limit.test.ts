// Per-IP rate limits over real HTTP: the per-route classes (auth, refresh, totp) and the global limit
// (the 404 handler included), 429 RATE_LIMITED with Retry-After and RateLimit-* headers, windows on
// the TestClock, two instances on one database sharing one budget (the PostgreSQL store), the
// in-memory store, and the client address only from X-Forwarded-For with TRUST_PROXY.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp, createTestDatabase, TestClock, type TestApp, type TestDatabase, listen,
} from '../support/helper.js';

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) as Record<string, unknown> : null };
}

const badLogin = { email: 'nobody@example.com', password: 'Wrong-Harbor-94-Lantern' };
const LIMITS = {
  RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH: '4/5m', RATE_LIMIT_REFRESH: '3/5m', RATE_LIMIT_TOTP: '2/1m',
  RATE_LIMIT_GLOBAL: '12/1m', SECURITY_LOCKOUT_ENABLED: 'false',
};

describe('rate limits, PostgreSQL store, two instances on one database', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let a: TestApp;
  let b: TestApp;
  let baseA: string;
  let baseB: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    a = await buildTestApp(database, LIMITS, clock);
    b = await buildTestApp(database, LIMITS, clock);
    [baseA, baseB] = await Promise.all([listen(a.app), listen(b.app)]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await database.drop();
  });

  // Every test starts with fresh windows for 127.0.0.1.
  const nextWindow = () => clock.advance(5 * 60 + 1);

  it('POST /login: the auth budget (4/5m) is shared by both instances; the 5th request is 429 RATE_LIMITED with Retry-After', async () => {
    nextWindow();
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const r = await call(i % 2 ? baseB : baseA, 'POST', '/login', badLogin);
      statuses.push(r.status);
      expect(r.headers.get('ratelimit-limit')).toBe('4');
      expect(r.headers.get('ratelimit-remaining')).toBe(String(3 - i));
    }
    expect(statuses).toEqual([401, 401, 401, 401]);
    for (const base of [baseA, baseB]) {
      const r = await call(base, 'POST', '/login', badLogin);
      expect(r.status).toBe(429);
      expect(r.json).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'RATE_LIMITED' });
      const retry = Number(r.headers.get('retry-after'));
      expect(retry).toBeGreaterThan(290);
      expect(retry).toBeLessThanOrEqual(300);
      expect(r.headers.get('ratelimit-remaining')).toBe('0');
      expect(Number(r.headers.get('ratelimit-reset'))).toBe(retry);
      // the envelope and the security headers are there on a 429 too
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
    // register, reset and confirm have their own auth budget (per route)
    expect((await call(baseA, 'POST', '/register', { email: 'x@example.com', password: 'short' })).status).toBe(400);
  });

  it('the window ends on the clock: requests pass again', async () => {
    nextWindow();
    for (let i = 0; i < 4; i++) await call(baseA, 'POST', '/login', badLogin);
    expect((await call(baseB, 'POST', '/login', badLogin)).status).toBe(429);
    clock.advance(5 * 60 + 1);
    expect((await call(baseB, 'POST', '/login', badLogin)).status).toBe(401);
  });

  it('each route class has its own budget: refresh 3/5m, tf-validate 2/1m', async () => {
    nextWindow();
    const refresh = [];
    for (let i = 0; i < 4; i++) refresh.push((await call(i % 2 ? baseB : baseA, 'POST', '/refresh-token', { refresh_token: 'nope' })).status);
    expect(refresh).toEqual([401, 401, 401, 429]);
    const totp = [];
    for (let i = 0; i < 3; i++) totp.push((await call(baseA, 'POST', '/tf-validate', { tf_token: 'nope', code: '123456' })).status);
    expect(totp).toEqual([401, 401, 429]);
    // the auth class is untouched by those
    expect((await call(baseA, 'POST', '/login', badLogin)).status).toBe(401);
  });

  it('the global budget (12/1m) covers every route, the 404 handler included, across instances', async () => {
    nextWindow();
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await call(i % 2 ? baseB : baseA, 'GET', i % 3 ? '/health' : '/no-such-route');
      statuses.push(r.status);
    }
    expect(statuses.filter((s) => s === 429)).toEqual([]);
    const limited404 = await call(baseA, 'GET', '/no-such-route');
    expect(limited404.status).toBe(429);
    expect(limited404.json!.code).toBe('RATE_LIMITED');
    const limitedHealth = await call(baseB, 'GET', '/health');
    expect(limitedHealth.status).toBe(429);
    expect(limitedHealth.headers.get('retry-after')).not.toBeNull();
    // a class route is held by the global budget too
    expect((await call(baseA, 'POST', '/login', badLogin)).status).toBe(429);
  });

  it('the counters are rows of rate_limits (one per limit and client)', async () => {
    const rows = await a.db.sql`select key, hits from rate_limits order by key`;
    const keys = rows.map((r) => r.key as string);
    expect(keys).toEqual(expect.arrayContaining(['auth:/login:127.0.0.1', 'global:127.0.0.1', 'refresh:/refresh-token:127.0.0.1', 'totp:/tf-validate:127.0.0.1']));
  });
});

describe('rate limits, in-memory store and client addresses', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let mem: TestApp;
  let proxied: TestApp;
  let direct: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    mem = await buildTestApp(database, { ...LIMITS, RATE_LIMIT_STORE: 'memory' }, clock);
    proxied = await buildTestApp(database, { ...LIMITS, RATE_LIMIT_STORE: 'memory', TRUST_PROXY: '127.0.0.1' }, clock);
    direct = await buildTestApp(database, { ...LIMITS, RATE_LIMIT_STORE: 'memory' }, clock);
  });
  afterAll(async () => {
    await Promise.all([mem.close(), proxied.close(), direct.close()]);
    await database.drop();
  });

  it('RATE_LIMIT_STORE=memory limits this instance and writes nothing to the database', async () => {
    const base = await listen(mem.app);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await call(base, 'POST', '/login', badLogin)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);
    const [{ n }] = await mem.db.sql`select count(*)::int as n from rate_limits` as unknown as [{ n: number }];
    expect(n).toBe(0);
    clock.advance(5 * 60 + 1);
    expect((await call(base, 'POST', '/login', badLogin)).status).toBe(401);
  });

  it('X-Forwarded-For names the client only behind a trusted proxy (TRUST_PROXY)', async () => {
    const viaProxy = await listen(proxied.app);
    for (let i = 0; i < 4; i++) await call(viaProxy, 'POST', '/login', badLogin, { 'x-forwarded-for': '203.0.113.7' });
    expect((await call(viaProxy, 'POST', '/login', badLogin, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429);
    // another client behind the same proxy has its own budget
    expect((await call(viaProxy, 'POST', '/login', badLogin, { 'x-forwarded-for': '203.0.113.8' })).status).toBe(401);

    // without TRUST_PROXY the header is ignored: changing it does not escape the limit
    const noProxy = await listen(direct.app);
    for (let i = 0; i < 4; i++) await call(noProxy, 'POST', '/login', badLogin, { 'x-forwarded-for': `198.51.100.${i}` });
    expect((await call(noProxy, 'POST', '/login', badLogin, { 'x-forwarded-for': '198.51.100.99' })).status).toBe(429);
  });
});

describe('rate limits off (the test profile default)', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { RATE_LIMIT_AUTH: '1/5m' });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('no limits and no RateLimit headers', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await t.app.inject({ method: 'POST', url: '/login', payload: badLogin });
      expect(r.statusCode).toBe(401);
      expect(r.headers['ratelimit-limit']).toBeUndefined();
    }
  });
});
