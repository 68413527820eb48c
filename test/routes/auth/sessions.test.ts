// Ending sessions: logout (bearer, cookie-less, by refresh token), the caller's session list and
// per-session revocation, logout-all, and admin-side state changes (reset-access, deactivation,
// role removal) taking effect on the very next request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { sessions, users } from '../../../src/db/schema/index.js';
import {
  addRoleToUser, deactivateUser, findUser, removeRoleFromUser, resetUserAccess,
} from '../../../src/security/datastore.js';
import { rolesRequired } from '../../../src/routes/guards.js';
import {
  bearer, buildTestAppWith, createTestDatabase, envelopeOf, login, makeUser, sidOf, TestClock,
  type LoginResult, type TestApp, type TestDatabase,
} from '../../support/helper.js';

function expectDead(res: LightMyRequestResponse) {
  expect(res.statusCode, res.body).toBe(401);
  expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
}

describe('sessions: logout, listing, revocation, and state changes', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestAppWith(database, {}, new TestClock(), (app) => {
      app.register(async (scope) => {
        scope.addHook('onRequest', scope.requireAuth);
        scope.get('/test/officers-only', { preHandler: rolesRequired('Department Officer') }, async () => ({ ok: true }));
      });
    });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const me = (token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });
  const meByCookie = (cookie: string) => t.app.inject({ url: '/auth/current-user', headers: { cookie } });
  const refresh = (refresh_token: string) => t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token } });
  const logout = (headers: Record<string, string> = {}, payload?: object) =>
    t.app.inject({ method: 'POST', url: '/logout', headers, ...(payload ? { payload } : {}) });
  const sessionRow = async (id: string) => (await t.ctx.db.select().from(sessions).where(eq(sessions.id, id)))[0]!;

  async function twoSessions() {
    const user = await makeUser(t.ctx);
    const a = await login(t.app, user.email);
    const b = await login(t.app, user.email);
    expect(sidOf(a.access_token)).not.toBe(sidOf(b.access_token));
    return { user, a, b };
  }

  describe('POST /logout', () => {
    it('with a bearer token → 204; that session dies at once, the user\'s other session lives', async () => {
      const { a, b } = await twoSessions();
      const res = await logout(bearer(a.access_token));
      expect(res.statusCode).toBe(204);
      expect(res.body).toBe('');
      expectDead(await me(a.access_token));
      expectDead(await meByCookie(a.cookie));
      expect((await me(b.access_token)).statusCode).toBe(200);
      expect((await meByCookie(b.cookie)).statusCode).toBe(200);
      const row = await sessionRow(sidOf(a.access_token));
      expect(row.revokedAt).not.toBeNull();
      expect(row.revokedReason).toBe('logout');
    });

    it('clears the session cookie', async () => {
      const { a } = await twoSessions();
      const res = await logout(bearer(a.access_token));
      const cleared = res.cookies.find((c) => c.name === t.config.SESSION_COOKIE_NAME);
      expect(cleared).toBeDefined();
      expect(cleared!.value).toBe('');
      expect(cleared!.expires!.getTime()).toBeLessThan(Date.now());
    });

    it('with no credentials, an already-dead token, or garbage → still 204', async () => {
      const { a } = await twoSessions();
      expect((await logout()).statusCode).toBe(204);
      expect((await logout(bearer(a.access_token))).statusCode).toBe(204);
      expect((await logout(bearer(a.access_token))).statusCode).toBe(204);
      expect((await logout({ authorization: 'Bearer not.a.token' })).statusCode).toBe(204);
      expect((await logout({ authorization: 'Basic abc' })).statusCode).toBe(204);
      expect((await logout({}, { refresh_token: 'garbage' })).statusCode).toBe(204);
    });

    it('by refresh_token in the body (no other credentials) revokes that session only', async () => {
      const { a, b } = await twoSessions();
      const res = await logout({}, { refresh_token: a.refresh_token });
      expect(res.statusCode).toBe(204);
      expectDead(await me(a.access_token));
      const r = await refresh(a.refresh_token);
      expect(r.statusCode).toBe(401);
      expect(envelopeOf(r).reason).toBe('revoked');
      expect((await me(b.access_token)).statusCode).toBe(200);
    });

    it('a forged refresh token naming someone\'s session id does not log them out', async () => {
      const { a } = await twoSessions();
      const [sid, gen] = a.refresh_token.split('.');
      expect((await logout({}, { refresh_token: `${sid}.${gen}.${'A'.repeat(43)}` })).statusCode).toBe(204);
      expect((await me(a.access_token)).statusCode).toBe(200);
    });

    it('unknown body fields → 400', async () => {
      const { a } = await twoSessions();
      const res = await logout(bearer(a.access_token), { refresh_token: a.refresh_token, all: true });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      expect((await me(a.access_token)).statusCode).toBe(200);
    });
  });

  describe('GET /auth/sessions', () => {
    it('lists the caller\'s live sessions with exactly one `current`', async () => {
      const user = await makeUser(t.ctx);
      const other = await makeUser(t.ctx);
      await login(t.app, other.email);
      const a = await t.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: 'Quiet-Harbor-93-Lantern' }, headers: { 'user-agent': 'phone/1.0' } });
      const b = await login(t.app, user.email);
      const dead = await login(t.app, user.email);
      await logout(bearer(dead.access_token));

      const res = await t.app.inject({ url: '/auth/sessions', headers: bearer(b.access_token) });
      expect(res.statusCode).toBe(200);
      const list = res.json().sessions as Array<Record<string, unknown>>;
      const ids = list.map((s) => s.id);
      expect(ids.sort()).toEqual([sidOf(a.json().access_token), sidOf(b.access_token)].sort());
      expect(list.filter((s) => s.current).map((s) => s.id)).toEqual([sidOf(b.access_token)]);
      const phone = list.find((s) => s.id === sidOf(a.json().access_token))!;
      expect(phone).toMatchObject({ user_agent: 'phone/1.0', ip: '127.0.0.1', current: false });
      expect(Object.keys(phone).sort()).toEqual(['created_at', 'current', 'id', 'ip', 'last_used_at', 'user_agent']);
      expect(new Date(phone.created_at as string).toISOString()).toBe(phone.created_at);

      // the cookie of the other session sees itself as current
      const viaA = await t.app.inject({ url: '/auth/sessions', headers: { cookie: `${t.config.SESSION_COOKIE_NAME}=${a.cookies.find((c) => c.name === t.config.SESSION_COOKIE_NAME)!.value}` } });
      expect(viaA.statusCode).toBe(200);
      expect((viaA.json().sessions as Array<{ id: string; current: boolean }>).filter((s) => s.current).map((s) => s.id))
        .toEqual([sidOf(a.json().access_token)]);
    });

    it('sessions that can no longer be used (idle past SECURITY_REFRESH_TOKEN_MAX_IDLE, or expired) are not listed', async () => {
      const user = await makeUser(t.ctx);
      const old = await login(t.app, user.email);
      t.clock.advance(t.config.SECURITY_REFRESH_TOKEN_MAX_IDLE + 1);
      const recent = await login(t.app, user.email);
      const oldRefresh = await refresh(old.refresh_token);
      expect(envelopeOf(oldRefresh).reason).toBe('idle');
      const res = await t.app.inject({ url: '/auth/sessions', headers: bearer(recent.access_token) });
      expect(res.statusCode).toBe(200);
      expect((res.json().sessions as Array<{ id: string }>).map((s) => s.id)).toEqual([sidOf(recent.access_token)]);
    });

    it('anonymous → 401 AUTH_REQUIRED', async () => {
      const res = await t.app.inject('/auth/sessions');
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
    });
  });

  describe('DELETE /auth/sessions/{id}', () => {
    const del = (token: string, id: string) => t.app.inject({ method: 'DELETE', url: `/auth/sessions/${id}`, headers: bearer(token) });

    it('another of my sessions → 204; it dies, mine lives', async () => {
      const { a, b } = await twoSessions();
      expect((await del(a.access_token, sidOf(b.access_token))).statusCode).toBe(204);
      expectDead(await me(b.access_token));
      expectDead(await meByCookie(b.cookie));
      expect((await refresh(b.refresh_token)).statusCode).toBe(401);
      expect((await me(a.access_token)).statusCode).toBe(200);
    });

    it('my current session → 204, my token dies and the cookie is cleared', async () => {
      const { a, b } = await twoSessions();
      const res = await del(a.access_token, sidOf(a.access_token));
      expect(res.statusCode).toBe(204);
      expect(res.cookies.find((c) => c.name === t.config.SESSION_COOKIE_NAME)?.value).toBe('');
      expectDead(await me(a.access_token));
      expect((await me(b.access_token)).statusCode).toBe(200);
    });

    it('another user\'s session → 404, and it stays alive', async () => {
      const mine = await twoSessions();
      const theirs = await twoSessions();
      const res = await del(mine.a.access_token, sidOf(theirs.a.access_token));
      expect(res.statusCode).toBe(404);
      expect(envelopeOf(res).code).toBe('NOT_FOUND');
      expect((await me(theirs.a.access_token)).statusCode).toBe(200);
    });

    it('an unknown or already-revoked id → 404', async () => {
      const { a, b } = await twoSessions();
      expect((await del(a.access_token, '0d4a4f3e-3f0a-4b7e-9d1e-6f6c7a8b9c0d')).statusCode).toBe(404);
      expect((await del(a.access_token, sidOf(b.access_token))).statusCode).toBe(204);
      expect((await del(a.access_token, sidOf(b.access_token))).statusCode).toBe(404);
    });

    it('a malformed id → 400 VALIDATION_FAILED', async () => {
      const { a } = await twoSessions();
      for (const id of ['not-a-uuid', '123', "x'%20or%201=1"]) {
        const res = await del(a.access_token, id);
        expect(res.statusCode, id).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
    });

    it('anonymous → 401', async () => {
      const { a } = await twoSessions();
      const res = await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${sidOf(a.access_token)}` });
      expect(res.statusCode).toBe(401);
      expect((await me(a.access_token)).statusCode).toBe(200);
    });
  });

  describe('POST /auth/logout-all', () => {
    it('→ 204; every token, cookie and refresh token of the user dies; fs_uniquifier rotated; other users unaffected', async () => {
      const { user, a, b } = await twoSessions();
      const bystander = await twoSessions();
      const before = (await findUser(t.ctx.db, { id: user.id }))!.fsUniquifier;

      const res = await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(a.access_token) });
      expect(res.statusCode).toBe(204);

      const after = (await findUser(t.ctx.db, { id: user.id }))!.fsUniquifier;
      expect(after).not.toBe(before);
      for (const s of [a, b]) {
        expectDead(await me(s.access_token));
        expectDead(await meByCookie(s.cookie));
        expect((await refresh(s.refresh_token)).statusCode).toBe(401);
      }
      expect((await me(bystander.a.access_token)).statusCode).toBe(200);
      // a new login works and names the new uniquifier
      const again = await login(t.app, user.email);
      expect((await me(again.access_token)).statusCode).toBe(200);
    });
  });

  // These changes are made outside any request (as the CLI or SQL would). Requests that change state
  // wait for the cross-instance cache invalidation themselves; out-of-request writers are effective
  // once the change notification has arrived, which authSync() waits for.
  describe('admin-side changes apply on the next request', () => {
    it('resetUserAccess kills live tokens and cookies', async () => {
      const { user, a, b } = await twoSessions();
      expect((await me(a.access_token)).statusCode).toBe(200);
      await resetUserAccess(t.ctx, user.id);
      await t.app.authSync();
      for (const s of [a, b]) {
        expectDead(await me(s.access_token));
        expectDead(await meByCookie(s.cookie));
      }
    });

    it('a rotated fs_uniquifier alone (session rows untouched) already kills bearer tokens', async () => {
      const { user, a } = await twoSessions();
      await t.ctx.db.update(users).set({ fsUniquifier: 'x'.repeat(64) }).where(eq(users.id, user.id));
      await t.app.authSync();
      expectDead(await me(a.access_token));
    });

    it('deactivateUser kills a live token on the next request', async () => {
      const { user, a } = await twoSessions();
      expect((await me(a.access_token)).statusCode).toBe(200);
      await deactivateUser(t.ctx, user.id);
      await t.app.authSync();
      expectDead(await me(a.access_token));
      expectDead(await meByCookie(a.cookie));
    });

    it('active=false alone (sessions not revoked) is enough to refuse bearer and cookie', async () => {
      const { user, a } = await twoSessions();
      await t.ctx.db.update(users).set({ active: false }).where(eq(users.id, user.id));
      await t.app.authSync();
      expectDead(await me(a.access_token));
      expectDead(await meByCookie(a.cookie));
    });

    it('removing a role takes effect on the next request: current-user, a guard and /dashboard', async () => {
      const user = await makeUser(t.ctx, { roles: ['Citizen', 'Department Officer'] });
      const s: LoginResult = await login(t.app, user.email);
      const guarded = () => t.app.inject({ url: '/test/officers-only', headers: bearer(s.access_token) });

      const before = (await me(s.access_token)).json().user;
      expect(before.roles).toEqual(['Citizen', 'Department Officer']);
      expect(before.permissions).toContain('users:read');
      expect((await guarded()).statusCode).toBe(200);
      const dashBefore = (await t.app.inject({ url: '/dashboard', headers: bearer(s.access_token) })).json();
      expect(dashBefore.data).toHaveProperty('citizens');

      expect(await removeRoleFromUser(t.ctx.db, user.id, 'Department Officer')).toBe(true);
      await t.app.authSync();

      const after = (await me(s.access_token)).json().user;
      expect(after.roles).toEqual(['Citizen']);
      expect(after.permissions).not.toContain('users:read');
      const denied = await guarded();
      expect(denied.statusCode).toBe(403);
      expect(envelopeOf(denied).code).toBe('FORBIDDEN');
      const dashAfter = await t.app.inject({ url: '/dashboard', headers: bearer(s.access_token) });
      expect(dashAfter.json().user_roles).toEqual(['Citizen']);
      expect(dashAfter.json().data).toHaveProperty('profile');

      // and granting it back is just as immediate
      await addRoleToUser(t.ctx.db, user.id, 'Department Officer');
      await t.app.authSync();
      expect((await guarded()).statusCode).toBe(200);
    });
  });
});
