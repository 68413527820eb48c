// The authentication cache at scale (issue 15): no database statement on a cached authenticated GET
// (counted on the real connection, limiter on as deployed), tracking columns that patch instead of
// dropping, per-key invalidation, LRU bounds and the hit-rate figures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/db/client.js';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { AuthCache } from '../../src/security/auth-cache.js';
import type { AuthState } from '../../src/security/sessions.js';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, TestClock, type TestApp, type TestDatabase } from '../support/helper.js';

const sidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;
const waitFor = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('zero database statements on a cached authenticated GET (limiter on, PostgreSQL store)', () => {
  let database: TestDatabase;
  const statements: string[] = [];
  let counting = false;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('200 GET /auth/current-user: no statement on the request path; only the timed batches (limit counts, session touch)', async () => {
    // the application's own pool, with postgres.js reporting every statement it sends
    const db = connect(database.url, {
      max: 5,
      debug: (_connection: number, query: string) => {
        if (counting) statements.push(query.replace(/\s+/g, ' ').trim());
      },
    });
    const clock = new TestClock();
    // AUTH_CACHE_TTL outlives the minute after which a request slides last_used_at, so one cached entry
    // sees a touch fall due in the middle of the run
    const config = testConfig({
      DATABASE_URL: database.url, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_GLOBAL: '100000/1m', AUTH_CACHE_TTL: '5m',
    });
    const app = await buildApp(config, { db, clock });
    await app.ready();
    try {
      await waitFor(() => app.authCache.enabled);
      const ctx = (await import('../../src/security/context.js')).securityContext(config, { db, clock });
      const user = await makeUser(ctx);
      const s = await login(app, user.email);
      clock.advance(61); // the next request slides last_used_at (a queued write, not a statement of its own)
      for (let i = 0; i < 3; i++) expect((await app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(200);
      await new Promise((r) => setTimeout(r, 300));

      const hitsBefore = app.authCache.stats().hits;
      counting = true;
      const started = performance.now();
      for (let i = 0; i < 200; i++) {
        expect((await app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(200);
        if (i === 100) clock.advance(61); // another touch is due, and a new limit window begins: neither is a statement of the request
      }
      const elapsed = performance.now() - started;
      counting = false;
      const batched = (q: string) => q.startsWith('/* global limit: batch */') || q.startsWith('/* session touch: batch */');
      expect(statements.filter((q) => !batched(q))).toEqual([]);
      // the batches run on a timer (every 250 ms), however many requests there were
      expect(statements.filter(batched).length).toBeLessThanOrEqual(2 * Math.ceil(elapsed / 250) + 2);
      expect(app.authCache.stats().hits - hitsBefore).toBe(200);
      await app.globalBudget!.flush();
      const [row] = await db.sql`select hits from rate_limits where key = 'global:127.0.0.1'`;
      // every request of the current window (the clock moved 61 s at i = 100) was counted, in batches
      expect(row!.hits).toBe(99);
    } finally {
      await app.close();
      await db.close();
    }
  });
});

describe('login tracking does not drop cached sessions or pages (two instances)', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    a = await buildTestApp(database);
    b = await buildTestApp(database);
    await waitFor(() => a.app.authCache.enabled && b.app.authCache.enabled);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  it('a second login of the user (tracking columns) patches B\'s cached session in place; B\'s pages stay', async () => {
    const user = await makeUser(a.ctx);
    const admin = await makeUser(a.ctx, { roles: ['County Admin'] });
    const adminB = bearer((await login(b.app, admin.email)).access_token);
    const s = await login(a.app, user.email);
    // every instance has seen the login's own signals before B loads the session (a load that overlaps
    // an invalidation of its own keys is, rightly, not cached)
    await a.app.authSync();
    const me = () => b.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) });
    expect((await me()).json().user.login_count).toBe(1);
    expect(b.app.authCache.get(sidOf(s.access_token), Date.now())).toBeDefined();
    expect((await b.app.inject({ url: '/users?per_page=5', headers: adminB })).statusCode).toBe(200);
    expect(b.app.pageCache.size).toBe(1);

    await login(a.app, user.email);
    await a.app.authSync();
    // still cached (not dropped), with the new tracking values
    const cached = b.app.authCache.get(sidOf(s.access_token), Date.now());
    expect(cached?.user.loginCount).toBe(2);
    const missesBefore = b.app.authCache.stats().misses;
    const body = (await me()).json().user;
    expect(body.login_count).toBe(2);
    expect(body.current_login_at).not.toBe(body.last_login_at);
    expect(b.app.authCache.stats().misses).toBe(missesBefore);
    expect(b.app.pageCache.size).toBe(1);

    // a deciding column still drops the user's sessions and the pages
    await a.db.sql`update users set first_name = 'Changed' where id = ${user.id}`;
    await a.app.authSync();
    expect(b.app.authCache.get(sidOf(s.access_token), Date.now())).toBeUndefined();
    expect(b.app.pageCache.size).toBe(0);
    expect((await me()).json().user.first_name).toBe('Changed');
  });
});

describe('AuthCache: per-key invalidation, LRU bound, statistics', () => {
  const state = (sid: string, userId: number, roles: string[] = ['Citizen']) =>
    ({ session: { id: sid }, user: { id: userId, roles, permissions: [] } }) as unknown as AuthState;
  const cache = (max = 100) => {
    const c = new AuthCache(30_000, max);
    c.setListening(true);
    return c;
  };

  it('a load that overlapped an invalidation of ITS OWN keys is not cached; one that overlapped others\' is', () => {
    const c = cache();
    let at = c.snapshot();
    c.apply('u:2');
    c.apply('s:other');
    c.apply('r:County Admin');
    expect(c.set('s1', state('s1', 1), 0, at)).toBe(true);
    at = c.snapshot();
    c.apply('u:1');
    expect(c.set('s2', state('s2', 1), 0, at)).toBe(false);
    at = c.snapshot();
    c.apply('s:s3');
    expect(c.set('s3', state('s3', 3), 0, at)).toBe(false);
    at = c.snapshot();
    c.apply('r:Citizen');
    expect(c.set('s4', state('s4', 4), 0, at)).toBe(false);
    expect(c.set('s4', state('s4', 4, ['Department Officer']), 0, at)).toBe(true);
    // tracking changes patch entries and make a concurrent load of that user uncacheable
    at = c.snapshot();
    c.apply('t:5:{"login_count":9,"current_login_at":1000}');
    expect(c.set('s5', state('s5', 5), 0, at)).toBe(false);
    expect(c.stats().racedLoads).toBe(4);
  });

  it('invalidations drop only their keys: a session, every session of a user, every holder of a role', () => {
    const c = cache();
    c.set('a1', state('a1', 1, ['Citizen']), 0, c.snapshot());
    c.set('a2', state('a2', 1, ['Citizen']), 0, c.snapshot());
    c.set('b1', state('b1', 2, ['Department Officer']), 0, c.snapshot());
    c.set('c1', state('c1', 3, ['Citizen', 'County Admin']), 0, c.snapshot());
    c.apply('s:a1');
    expect([c.get('a1', 1), c.get('a2', 1)].map(Boolean)).toEqual([false, true]);
    c.apply('u:1');
    expect(c.get('a2', 1)).toBeUndefined();
    expect(c.get('b1', 1)).toBeDefined();
    c.apply('r:County Admin');
    expect(c.get('c1', 1)).toBeUndefined();
    expect(c.get('b1', 1)).toBeDefined();
    c.apply('p'); // a page signal: no session concerned
    expect(c.get('b1', 1)).toBeDefined();
    c.apply('t:2:{"login_count":4,"current_login_at":1700000000000,"current_login_ip":"203.0.113.9"}');
    const patched = c.get('b1', 1)!;
    expect(patched.user.loginCount).toBe(4);
    expect(patched.user.currentLoginAt).toEqual(new Date(1700000000000));
    expect(patched.user.currentLoginIp).toBe('203.0.113.9');
    c.apply('something-unknown');
    expect(c.size).toBe(0);
  });

  it('holds at most maxEntries sessions, evicting the least recently used; counts hits and misses', () => {
    const c = cache(3);
    for (const sid of ['s1', 's2', 's3']) c.set(sid, state(sid, 1), 0, c.snapshot());
    expect(c.get('s1', 1)).toBeDefined(); // s1 is now the most recently used
    c.set('s4', state('s4', 2), 0, c.snapshot());
    expect(c.size).toBe(3);
    expect(c.get('s2', 1)).toBeUndefined();
    expect(['s1', 's3', 's4'].every((sid) => c.get(sid, 1))).toBe(true);
    const st = c.stats();
    expect(st).toMatchObject({ hits: 4, misses: 1, evictions: 1, size: 3 });
    expect(st.hitRate).toBeCloseTo(0.8);
    // a user's index follows evictions (no leak, no stale drop)
    c.apply('u:1');
    expect(c.size).toBe(1);
  });

  it('10,000 sessions with room for 1,000: memory stays bounded', () => {
    const c = cache(1000);
    for (let i = 0; i < 10_000; i++) c.set(`s${i}`, state(`s${i}`, i), 0, c.snapshot());
    expect(c.size).toBe(1000);
    expect(c.get('s9999', 1)).toBeDefined();
    expect(c.get('s0', 1)).toBeUndefined();
    expect(c.stats().evictions).toBe(9000);
  });
});
