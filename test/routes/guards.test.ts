// The authorization guards as route preHandlers on test-only routes, registered in a protected scope
// before the app is ready: 401 without credentials, 403 without the role/permission, 200 with it,
// and freshness (REAUTH_REQUIRED) against the injected clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { counties } from '../../src/db/schema/index.js';
import type { UserRecord } from '../../src/security/datastore.js';
import {
  countyRoleRequired, fresh, permissionsAccepted, permissionsRequired, rolesAccepted, rolesRequired,
} from '../../src/routes/guards.js';
import {
  bearer, buildTestAppWith, createTestDatabase, envelopeOf, login, makeUser, TestClock,
  type TestApp, type TestDatabase,
} from '../support/helper.js';

const FRESH_WITHIN = 300;
const ok = async () => ({ ok: true });

describe('guards', () => {
  let database: TestDatabase;
  let t: TestApp;
  const clock = new TestClock();
  const tokens: Record<string, string> = {};
  const cookies: Record<string, { cookie: string; csrf: string }> = {};

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestAppWith(database, {}, clock, (app: FastifyInstance) => {
      app.register(async (scope) => {
        scope.addHook('onRequest', scope.requireAuth);
        scope.get('/t/authenticated', ok);
        scope.get('/t/roles-required', { preHandler: rolesRequired('Citizen', 'Department Officer') }, ok);
        scope.get('/t/roles-accepted', { preHandler: rolesAccepted('Department Officer', 'County Admin') }, ok);
        scope.get('/t/perms-required', { preHandler: permissionsRequired('users:read', 'users:write') }, ok);
        scope.get('/t/perms-accepted', { preHandler: permissionsAccepted('users:read', 'audit:read') }, ok);
        scope.get('/t/county-officer', { preHandler: countyRoleRequired('Department Officer') }, ok);
        scope.get('/t/fresh', { preHandler: fresh(FRESH_WITHIN, () => clock.now()) }, ok);
        scope.post('/t/admin-write', { preHandler: rolesRequired('County Admin') }, ok);
      });
      // A guard on a route whose scope has no authentication hook still refuses anonymous callers.
      app.register(async (scope) => {
        scope.get('/t/unhooked', { preHandler: rolesAccepted('Citizen') }, ok);
      });
    });

    const [county] = await t.ctx.db.select().from(counties).where(eq(counties.name, 'Nairobi'));
    const users: Record<string, UserRecord> = {
      citizen: await makeUser(t.ctx, { roles: ['Citizen'], countyId: county!.id }),
      officer: await makeUser(t.ctx, { roles: ['Department Officer'], countyId: county!.id }),
      officerNoCounty: await makeUser(t.ctx, { roles: ['Department Officer'], countyId: null }),
      citizenOfficer: await makeUser(t.ctx, { roles: ['Citizen', 'Department Officer'], countyId: county!.id }),
      admin: await makeUser(t.ctx, { roles: ['County Admin'] }),
      noRoles: await makeUser(t.ctx, { roles: [] }),
    };
    for (const [name, user] of Object.entries(users)) {
      const s = await login(t.app, user.email);
      tokens[name] = s.access_token;
      cookies[name] = { cookie: s.cookie, csrf: s.csrf_token };
    }
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const get = (url: string, who?: string) => t.app.inject({ url, headers: who ? bearer(tokens[who]!) : {} });

  function expectForbidden(res: LightMyRequestResponse) {
    expect(res.statusCode, res.body).toBe(403);
    expect(envelopeOf(res).code).toBe('FORBIDDEN');
  }

  const ROUTES = ['/t/authenticated', '/t/roles-required', '/t/roles-accepted', '/t/perms-required', '/t/perms-accepted', '/t/county-officer', '/t/fresh', '/t/unhooked'];

  it.each(ROUTES)('%s without credentials → 401 AUTH_REQUIRED', async (url) => {
    const res = await get(url);
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
  });

  it.each(ROUTES.filter((r) => r !== '/t/unhooked'))('%s with a bad token → 401 TOKEN_INVALID', async (url) => {
    const res = await t.app.inject({ url, headers: bearer('a.b.c') });
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
  });

  it('requireAuth alone: any authenticated user, even one with no roles', async () => {
    for (const who of Object.keys(tokens)) expect((await get('/t/authenticated', who)).statusCode, who).toBe(200);
  });

  describe('rolesRequired(Citizen, Department Officer) — every role', () => {
    it('200 with both roles', async () => {
      const res = await get('/t/roles-required', 'citizenOfficer');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ ok: true });
    });
    it.each(['citizen', 'officer', 'admin', 'noRoles'])('403 for %s (lacks one)', async (who) => {
      expectForbidden(await get('/t/roles-required', who));
    });
  });

  describe('rolesAccepted(Department Officer, County Admin) — any role', () => {
    it.each(['officer', 'officerNoCounty', 'citizenOfficer', 'admin'])('200 for %s', async (who) => {
      expect((await get('/t/roles-accepted', who)).statusCode).toBe(200);
    });
    it.each(['citizen', 'noRoles'])('403 for %s', async (who) => {
      expectForbidden(await get('/t/roles-accepted', who));
    });
  });

  describe('permissionsRequired(users:read, users:write) — every permission', () => {
    it('200 for the admin', async () => {
      expect((await get('/t/perms-required', 'admin')).statusCode).toBe(200);
    });
    it.each(['officer', 'citizenOfficer', 'citizen', 'noRoles'])('403 for %s (has at most users:read)', async (who) => {
      expectForbidden(await get('/t/perms-required', who));
    });
  });

  describe('permissionsAccepted(users:read, audit:read) — any permission', () => {
    it.each(['officer', 'citizenOfficer', 'admin'])('200 for %s', async (who) => {
      expect((await get('/t/perms-accepted', who)).statusCode).toBe(200);
    });
    it.each(['citizen', 'noRoles'])('403 for %s', async (who) => {
      expectForbidden(await get('/t/perms-accepted', who));
    });
  });

  describe('countyRoleRequired(Department Officer) — the role and an assigned county', () => {
    it.each(['officer', 'citizenOfficer'])('200 for %s', async (who) => {
      expect((await get('/t/county-officer', who)).statusCode).toBe(200);
    });
    it('403 for an officer without a county', async () => {
      expectForbidden(await get('/t/county-officer', 'officerNoCounty'));
    });
    it.each(['citizen', 'admin', 'noRoles'])('403 for %s (has a county or not, but not the role)', async (who) => {
      expectForbidden(await get('/t/county-officer', who));
    });
  });

  describe('cookie-authenticated callers go through the same guards (and CSRF first)', () => {
    it('GET works by cookie; a forbidden role is still 403', async () => {
      expect((await t.app.inject({ url: '/t/roles-accepted', headers: { cookie: cookies.admin!.cookie } })).statusCode).toBe(200);
      expectForbidden(await t.app.inject({ url: '/t/roles-accepted', headers: { cookie: cookies.citizen!.cookie } }));
    });
    it('an unsafe method by cookie needs the CSRF token before the role is even considered', async () => {
      const noCsrf = await t.app.inject({ method: 'POST', url: '/t/admin-write', headers: { cookie: cookies.admin!.cookie } });
      expect(noCsrf.statusCode).toBe(403);
      expect(envelopeOf(noCsrf).code).toBe('CSRF_FAILED');
      const okRes = await t.app.inject({ method: 'POST', url: '/t/admin-write', headers: { cookie: cookies.admin!.cookie, 'x-csrf-token': cookies.admin!.csrf } });
      expect(okRes.statusCode).toBe(200);
      const citizen = await t.app.inject({ method: 'POST', url: '/t/admin-write', headers: { cookie: cookies.citizen!.cookie, 'x-csrf-token': cookies.citizen!.csrf } });
      expectForbidden(citizen);
    });
  });

  describe('fresh(within)', () => {
    it('200 right after login; 401 REAUTH_REQUIRED with reauth_required:true once the login is older than `within`', async () => {
      const user = await makeUser(t.ctx);
      const s = await login(t.app, user.email);
      const call = (url: string) => t.app.inject({ url, headers: bearer(s.access_token) });
      expect((await call('/t/fresh')).statusCode).toBe(200);
      clock.advance(FRESH_WITHIN - 10);
      expect((await call('/t/fresh')).statusCode).toBe(200);
      clock.advance(20);
      const res = await call('/t/fresh');
      expect(res.statusCode).toBe(401);
      const body = res.json();
      expect(body).toMatchObject({ statusCode: 401, code: 'REAUTH_REQUIRED', reauth_required: true });
      // the session itself is still good: only the freshness-guarded route refuses
      expect((await call('/t/authenticated')).statusCode).toBe(200);
      // a new password login is fresh again
      const again = await login(t.app, user.email);
      expect((await t.app.inject({ url: '/t/fresh', headers: bearer(again.access_token) })).statusCode).toBe(200);
    });

    it('a refresh does not make a session fresh (it is not a primary authentication)', async () => {
      const user = await makeUser(t.ctx);
      const s = await login(t.app, user.email);
      clock.advance(FRESH_WITHIN + 1);
      const r = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s.refresh_token } });
      expect(r.statusCode).toBe(200);
      const res = await t.app.inject({ url: '/t/fresh', headers: bearer(r.json().access_token) });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('REAUTH_REQUIRED');
    });
  });
});
