// The auth state cache must never serve a revoked session: two app instances on one database, the
// change made through one, the very next request through the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthCache } from '../../src/security/auth-cache.js';
import { PageCache } from '../../src/security/page-cache.js';
import { addRoleToUser, deactivateUser, removeRoleFromUser, resetUserAccess } from '../../src/security/datastore.js';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('auth cache invalidation across two instances', () => {
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

  const me = (t: TestApp, token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });

  /** Logs in through A and makes sure B has the session cached. */
  async function cachedOnB(email: string) {
    const session = await login(a.app, email);
    expect((await me(b, session.access_token)).statusCode).toBe(200);
    expect((await me(b, session.access_token)).statusCode).toBe(200);
    return session;
  }

  it('serves repeated requests from the cache (no stale entry after a change)', async () => {
    const user = await makeUser(a.ctx);
    const s = await cachedOnB(user.email);
    expect(b.app.authCache.get(s.body.user ? (JSON.parse(Buffer.from(s.access_token.split('.')[1]!, 'base64url').toString()).sid as string) : '', Date.now())).toBeDefined();
  });

  it('logout through A → B refuses the token on the very next request (20 rounds)', async () => {
    const user = await makeUser(a.ctx);
    for (let i = 0; i < 20; i++) {
      const s = await cachedOnB(user.email);
      expect((await a.app.inject({ method: 'POST', url: '/logout', headers: bearer(s.access_token) })).statusCode).toBe(204);
      expect((await me(b, s.access_token)).statusCode).toBe(401);
    }
  });

  it('logout-all through A → every cached session of the user dies on B', async () => {
    const user = await makeUser(a.ctx);
    const s1 = await cachedOnB(user.email);
    const s2 = await cachedOnB(user.email);
    expect((await a.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(s1.access_token) })).statusCode).toBe(204);
    expect((await me(b, s1.access_token)).statusCode).toBe(401);
    expect((await me(b, s2.access_token)).statusCode).toBe(401);
  });

  it('DELETE /auth/sessions/{id} through A → B refuses that session', async () => {
    const user = await makeUser(a.ctx);
    const keep = await cachedOnB(user.email);
    const kill = await cachedOnB(user.email);
    const list = (await a.app.inject({ url: '/auth/sessions', headers: bearer(keep.access_token) })).json().sessions as { id: string; current: boolean }[];
    const victim = list.find((x) => !x.current)!;
    expect((await a.app.inject({ method: 'DELETE', url: `/auth/sessions/${victim.id}`, headers: bearer(keep.access_token) })).statusCode).toBe(204);
    expect((await me(b, kill.access_token)).statusCode).toBe(401);
    expect((await me(b, keep.access_token)).statusCode).toBe(200);
  });

  it('profile change through A → B shows the new values at once', async () => {
    const user = await makeUser(a.ctx);
    const s = await cachedOnB(user.email);
    await a.app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(s.access_token), payload: { first_name: 'Renamed' } });
    expect((await me(b, s.access_token)).json().user.first_name).toBe('Renamed');
  });

  it('changes made outside any request (CLI, SQL) reach B once the writer has synced', async () => {
    const user = await makeUser(a.ctx);
    // deactivation
    let s = await cachedOnB(user.email);
    await deactivateUser(a.ctx, user.id);
    await a.app.authSync();
    expect((await me(b, s.access_token)).statusCode).toBe(401);
    await a.ctx.db.execute(`update users set active = true where id = ${user.id}` as never);
    // reset-access
    s = await cachedOnB(user.email);
    await resetUserAccess(a.ctx, user.id);
    await a.app.authSync();
    expect((await me(b, s.access_token)).statusCode).toBe(401);
    // role removal and a role's permissions edited by raw SQL
    s = await cachedOnB(user.email);
    await addRoleToUser(a.ctx.db, user.id, 'Department Officer');
    await a.app.authSync();
    expect((await me(b, s.access_token)).json().user.roles).toEqual(['Citizen', 'Department Officer']);
    await removeRoleFromUser(a.ctx.db, user.id, 'Department Officer');
    await a.app.authSync();
    expect((await me(b, s.access_token)).json().user.roles).toEqual(['Citizen']);
    await a.db.sql`update roles set permissions = array_append(permissions, 'extra:read') where name = 'Citizen'`;
    await a.app.authSync();
    expect((await me(b, s.access_token)).json().user.permissions).toContain('extra:read');
    await a.db.sql`update roles set permissions = array_remove(permissions, 'extra:read') where name = 'Citizen'`;
  });

  describe('GET /users pages (cached per instance, dropped by any user or role change)', () => {
    let adminA: Record<string, string>;
    let adminB: Record<string, string>;
    const marker = `lc${Date.now().toString(36)}`;
    beforeAll(async () => {
      const admin = await makeUser(a.ctx, { roles: ['County Admin'] });
      adminA = bearer((await login(a.app, admin.email)).access_token);
      adminB = bearer((await login(b.app, admin.email)).access_token);
    });
    const list = async (t: TestApp, headers: Record<string, string>) => {
      const res = await t.app.inject({ url: `/users?q=${marker}&sort=email`, headers });
      expect(res.statusCode, res.body).toBe(200);
      return res.json() as { users: { id: number; email: string; first_name: string | null; roles: string[]; active: boolean }[]; total: number };
    };
    /** B has this page cached: the same body twice, and the cache holds a page. */
    const cachedOnB = async () => {
      const first = await list(b, adminB);
      expect(await list(b, adminB)).toEqual(first);
      expect(b.app.pageCache.size).toBeGreaterThan(0);
      return first;
    };

    it('a user created through A is on B\'s next page; role grants, renames and deactivation too', async () => {
      await makeUser(a.ctx, { email: `${marker}-1@example.com` });
      await a.app.authSync();
      expect((await cachedOnB()).total).toBe(1);

      const created = await a.app.inject({
        method: 'POST', url: '/users', headers: adminA,
        payload: { email: `${marker}-2@example.com`, password: 'Quiet-Harbor-93-Lantern' },
      });
      expect(created.statusCode, created.body).toBe(201);
      const second = created.json().user.id as number;
      expect((await list(b, adminB)).total).toBe(2);

      await cachedOnB();
      expect((await a.app.inject({ method: 'POST', url: `/users/${second}/roles/${encodeURIComponent('Department Officer')}`, headers: adminA })).statusCode).toBeLessThan(300);
      expect((await list(b, adminB)).users.find((u) => u.id === second)!.roles).toEqual(['Citizen', 'Department Officer']);

      await cachedOnB();
      expect((await a.app.inject({ method: 'PATCH', url: `/users/${second}`, headers: adminA, payload: { first_name: 'Renamed' } })).statusCode).toBe(200);
      expect((await list(b, adminB)).users.find((u) => u.id === second)!.first_name).toBe('Renamed');

      await cachedOnB();
      expect((await a.app.inject({ method: 'POST', url: `/users/${second}/deactivate`, headers: adminA })).statusCode).toBe(200);
      expect((await list(b, adminB)).users.find((u) => u.id === second)!.active).toBe(false);
    });

    it('writes outside any request (SQL, CLI) reach B once the writer has synced', async () => {
      const before = await cachedOnB();
      await a.db.sql`insert into users (email, password, fs_uniquifier) values (${`${marker}-0@example.com`}, 'x', ${marker + 'uq'})`;
      await a.app.authSync();
      const after = await list(b, adminB);
      expect(after.total).toBe(before.total + 1);
      expect(after.users[0]!.email).toBe(`${marker}-0@example.com`);

      await cachedOnB();
      await a.db.sql`delete from users where email = ${`${marker}-0@example.com`}`;
      await a.app.authSync();
      expect((await list(b, adminB)).total).toBe(before.total);
    });

    it('session changes and login tracking keep the pages; a role\'s rename drops them', () => {
      const cache = new PageCache(30_000);
      cache.setListening(true);
      cache.set('k', '{}', 0, cache.snapshot());
      cache.apply('s:abc');
      cache.apply('t:7:{"login_count":3}');
      expect(cache.get('k', 1)).toBe('{}');
      cache.apply('r:Citizen');
      expect(cache.get('k', 1)).toBeUndefined();
      cache.set('k', '{}', 0, cache.snapshot());
      cache.apply('u:7');
      expect(cache.get('k', 1)).toBeUndefined();
      cache.set('k', '{}', 0, cache.snapshot());
      cache.apply('p');
      expect(cache.get('k', 1)).toBeUndefined();
      const v = cache.snapshot();
      cache.apply('u:8');
      cache.set('k', '{}', 0, v); // loaded before the change: not kept
      expect(cache.get('k', 1)).toBeUndefined();
    });
  });

  it('a load that raced with an invalidation is not cached', () => {
    const cache = new AuthCache(30_000);
    cache.setListening(true);
    const state = { user: { id: 1 }, session: { id: 's1' } } as never;
    const v = cache.snapshot();
    cache.apply('u:1');
    cache.set('s1', state, 0, v);
    expect(cache.get('s1', 1)).toBeUndefined();
    cache.set('s1', state, 0, cache.snapshot());
    expect(cache.get('s1', 1)).toBeDefined();
    cache.apply('s:s1');
    expect(cache.get('s1', 1)).toBeUndefined();
  });

  it('the cache is off (never consulted) while the listener is down, and entries expire', () => {
    const cache = new AuthCache(1000);
    const state = { user: { id: 2 }, session: { id: 's2' } } as never;
    cache.set('s2', state, 0, cache.snapshot());
    expect(cache.get('s2', 1)).toBeUndefined();
    cache.setListening(true);
    cache.set('s2', state, 0, cache.snapshot());
    expect(cache.get('s2', 999)).toBeDefined();
    expect(cache.get('s2', 1000)).toBeUndefined();
    cache.set('s2', state, 0, cache.snapshot());
    cache.setListening(false);
    expect(cache.get('s2', 1)).toBeUndefined();
  });
});
