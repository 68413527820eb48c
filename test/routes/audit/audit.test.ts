import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, login, makeUser, type LoginResult, type TestApp, type TestDatabase,
} from '../../support/helper.js';
import { makeCast, PRINCIPALS, type Cast } from '../../support/principals.js';

interface Event {
  id: number; action: string; actor_id: number | null; target_user_id: number | null; ip: string | null;
  user_agent: string | null; request_id: string | null; created_at: string; details: Record<string, unknown>;
}

describe('the audit log over HTTP', () => {
  let database: TestDatabase;
  let t: TestApp;
  let cast: Cast;
  let admin: Record<string, string>;
  let adminId: number;
  /** every credential that went over the wire in this file: none may appear in the audit log */
  const secrets = new Set<string>();
  const remember = (s: LoginResult) => {
    for (const v of [s.access_token, s.refresh_token, s.csrf_token, s.cookie.split('=')[1]!]) secrets.add(v);
    return s;
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    cast = await makeCast(t);
    admin = cast.as.admin.headers;
    adminId = cast.as.admin.user!.id;
    secrets.add(GOOD_PASSWORD);
    secrets.add(admin.authorization!.slice('Bearer '.length));
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const events = async (query: string): Promise<Event[]> => {
    const res = await t.app.inject({ url: `/audit?${query}`, headers: admin });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().events;
  };
  const latest = async (action: string, userId?: number) =>
    (await events(`action=${action}${userId ? `&user_id=${userId}` : ''}&limit=1`))[0];

  it('authorization: GET /audit needs audit:read; GET /auth/activity any authenticated user', async () => {
    const expected = { anonymous: 401, citizen: 403, officerA: 403, officerB: 403, admin: 200 };
    for (const who of PRINCIPALS) {
      expect((await t.app.inject({ url: '/audit', headers: cast.as[who].headers })).statusCode, who).toBe(expected[who]);
      expect((await t.app.inject({ url: '/auth/activity', headers: cast.as[who].headers })).statusCode, who).toBe(who === 'anonymous' ? 401 : 200);
    }
  });

  describe('each audited action writes a row', () => {
    it('registration and login success carry ip, user agent and request id', async () => {
      const email = `reg-${randomBytes(3).toString('hex')}@example.com`;
      const password = `Reg-Pass-${randomBytes(4).toString('hex')}-Lantern`;
      secrets.add(password);
      const reg = await t.app.inject({ method: 'POST', url: '/register', payload: { email, password }, headers: { 'user-agent': 'audit-test/1.0', 'x-request-id': 'req-register-1' } });
      expect(reg.statusCode).toBe(201);
      for (const k of ['access_token', 'refresh_token', 'csrf_token']) secrets.add(reg.json()[k]);
      const id = reg.json().user.id;
      expect(await latest('user.registered', id)).toMatchObject({ actor_id: id, target_user_id: id, user_agent: 'audit-test/1.0', request_id: 'req-register-1', ip: '127.0.0.1' });

      const res = await t.app.inject({ method: 'POST', url: '/login', payload: { email, password }, headers: { 'user-agent': 'audit-test/2.0', 'x-request-id': 'req-login-1' } });
      expect(res.statusCode).toBe(200);
      for (const k of ['access_token', 'refresh_token', 'csrf_token']) secrets.add(res.json()[k]);
      const e = await latest('login.succeeded', id);
      expect(e).toMatchObject({ actor_id: id, target_user_id: id, user_agent: 'audit-test/2.0', request_id: 'req-login-1', ip: '127.0.0.1' });
      expect(e!.details.session_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(e!.created_at)).toBeGreaterThan(Date.now() - 60_000);
    });

    it('login failures record the reason and the address, never the password', async () => {
      const u = await makeUser(t.ctx);
      const wrong = `Wrong-${randomBytes(6).toString('hex')}`;
      secrets.add(wrong);
      await t.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: wrong } });
      expect(await latest('login.failed', u.id)).toMatchObject({ actor_id: null, target_user_id: u.id, details: { email: u.email, reason: 'bad_password' } });

      const ghost = `ghost-${randomBytes(3).toString('hex')}@example.com`;
      await t.app.inject({ method: 'POST', url: '/login', payload: { email: ghost, password: wrong } });
      const unknown = (await events('action=login.failed&limit=10')).find((e) => e.details.email === ghost);
      expect(unknown).toMatchObject({ target_user_id: null, details: { reason: 'unknown_user' } });

      const disabled = await makeUser(t.ctx, { active: false });
      await t.app.inject({ method: 'POST', url: '/login', payload: { email: disabled.email, password: GOOD_PASSWORD } });
      expect((await latest('login.failed', disabled.id))!.details.reason).toBe('disabled');
    });

    it('logout (bearer or refresh token), logout-all, session revocation, profile changes', async () => {
      const u = await makeUser(t.ctx);
      const s1 = remember(await login(t.app, u.email));
      await t.app.inject({ method: 'POST', url: '/logout', headers: bearer(s1.access_token) });
      expect(await latest('logout', u.id)).toMatchObject({ actor_id: u.id, target_user_id: u.id });

      const s2 = remember(await login(t.app, u.email));
      const before = (await events(`action=logout&user_id=${u.id}`)).length;
      await t.app.inject({ method: 'POST', url: '/logout', payload: { refresh_token: s2.refresh_token } });
      expect((await events(`action=logout&user_id=${u.id}`)).length).toBe(before + 1);

      const s3 = remember(await login(t.app, u.email));
      const s4 = remember(await login(t.app, u.email));
      const sessRes = await t.app.inject({ url: '/auth/sessions', headers: bearer(s3.access_token) });
      expect(sessRes.statusCode, sessRes.body).toBe(200);
      const sid = sessRes.json().sessions.find((s: { current: boolean }) => !s.current).id;
      await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${sid}`, headers: bearer(s3.access_token) });
      expect((await latest('session.revoked', u.id))!.details.session_id).toBe(sid);

      await t.app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(s3.access_token), payload: { first_name: 'Zawadi', phone_number: '+254711111111' } });
      expect((await latest('profile.updated', u.id))!.details.fields).toEqual(['first_name', 'phone_number']);

      await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(s3.access_token) });
      expect(await latest('logout_all', u.id)).toMatchObject({ actor_id: u.id, target_user_id: u.id });
      expect(s4).toBeDefined();
    });

    it('refresh-token reuse is recorded against the owner of the session', async () => {
      const u = await makeUser(t.ctx);
      const s = remember(await login(t.app, u.email));
      const first = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s.refresh_token } });
      secrets.add(first.json().refresh_token);
      secrets.add(first.json().access_token);
      t.clock.advance(60); // beyond the grace window
      const reuse = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s.refresh_token } });
      expect(reuse.json().reason).toBe('reused');
      expect(await latest('refresh_token.reused', u.id)).toMatchObject({ actor_id: null, target_user_id: u.id });
    });

    it('administrative actions record the admin as actor', async () => {
      const email = `adm-${randomBytes(3).toString('hex')}@example.com`;
      const created = await t.app.inject({ method: 'POST', url: '/users', headers: admin, payload: { email, password: GOOD_PASSWORD, roles: ['Citizen'] } });
      const id = created.json().user.id;
      const call = (method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) =>
        t.app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) });
      await call('PATCH', `/users/${id}`, { first_name: 'Neema', county_id: cast.countyA.id });
      await call('POST', `/users/${id}/deactivate`);
      await call('POST', `/users/${id}/activate`);
      await call('POST', `/users/${id}/unlock`);
      await call('POST', `/users/${id}/reset-access`);
      await call('PUT', `/users/${id}/roles`, { roles: ['Department Officer'] });
      await call('POST', `/users/${id}/roles/Citizen`);
      await call('DELETE', `/users/${id}/roles/Citizen`);

      const mine = (await events(`user_id=${id}&limit=100`)).filter((e) => e.actor_id === adminId);
      expect(mine.every((e) => e.target_user_id === id)).toBe(true);
      // newest first
      expect(mine.map((e) => e.action)).toEqual([
        'user.roles_changed', 'user.roles_changed', 'user.roles_changed', 'user.access_reset', 'user.unlocked',
        'user.activated', 'user.deactivated', 'user.updated', 'user.created',
      ]);
      expect(mine[0]!.details).toEqual({ added: [], removed: ['Citizen'] });
      expect(mine[2]!.details).toEqual({ added: ['Department Officer'], removed: ['Citizen'] });
      expect(mine[7]!.details).toEqual({ fields: ['first_name', 'county_id'], county_id: { from: null, to: cast.countyA.id } });
      expect(mine[8]!.details).toMatchObject({ email, roles: ['Citizen'] });

      const role = (await call('POST', '/roles', { name: `Aud ${randomBytes(3).toString('hex')}`, permissions: ['x:read'] })).json().role;
      await call('PATCH', `/roles/${role.id}`, { permissions: ['x:read', 'y:write'] });
      await call('DELETE', `/roles/${role.id}`);
      const roleEvents = (await events('limit=3')).map((e) => [e.action, e.actor_id, e.details.role_id]);
      expect(roleEvents).toEqual([['role.deleted', adminId, role.id], ['role.updated', adminId, role.id], ['role.created', adminId, role.id]]);
      expect((await latest('role.updated'))!.details).toMatchObject({ permissions_added: ['y:write'], permissions_removed: [] });

      const county = (await call('POST', '/counties', { name: `Aud County ${randomBytes(2).toString('hex')}` })).json().county;
      await call('POST', `/counties/${county.id}/departments`, { name: 'Roads' });
      expect((await latest('county.created'))!.details.county_id).toBe(county.id);
      expect((await latest('department.created'))!.details).toMatchObject({ county_id: county.id, name: 'Roads' });
    });

    it('refused actions are not recorded', async () => {
      const newest = async () => (await events('limit=1'))[0]!.id;
      const before = await newest();
      expect((await t.app.inject({ method: 'POST', url: `/users/${adminId}/deactivate`, headers: admin })).statusCode).toBe(409);
      expect((await t.app.inject({ method: 'POST', url: `/users/${cast.as.citizen.user!.id}/deactivate`, headers: cast.as.officerA.headers })).statusCode).toBe(403);
      expect(await newest()).toBe(before);
    });
  });

  it('no row contains a password, token, cookie, csrf token, password hash or fs_uniquifier', async () => {
    const rows = await t.db.sql`select row_to_json(a)::text as j from audit_events a`;
    const dump = rows.map((r) => r.j as string).join('\n');
    expect(rows.length).toBeGreaterThan(20);
    const users = await t.db.sql`select password, fs_uniquifier from users`;
    for (const u of users) {
      secrets.add(u.password as string);
      secrets.add(u.fs_uniquifier as string);
    }
    expect(secrets.size).toBeGreaterThan(20);
    for (const s of secrets) expect(dump.includes(s), `secret leaked: ${s.slice(0, 8)}…`).toBe(false);
    expect(dump).not.toMatch(/"password"|\$2[aby]\$|\$cs1\$/);
  });

  describe('GET /audit: filters and cursor pagination', () => {
    it('walks every page newest first; next_cursor is null at the end', async () => {
      const [count] = await t.db.sql`select count(*)::int as n from audit_events`;
      const seen: number[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 100; i++) {
        const url: string = `/audit?limit=7${cursor ? `&cursor=${cursor}` : ''}`;
        const res = await t.app.inject({ url, headers: admin });
        const page: { events: Event[]; next_cursor: string | null } = res.json();
        expect(page.events.length).toBeLessThanOrEqual(7);
        seen.push(...page.events.map((e) => e.id));
        cursor = page.next_cursor;
        if (!cursor) break;
      }
      expect(seen.length).toBe(count!.n);
      expect(seen).toEqual([...seen].sort((a, b) => b - a));
      expect(new Set(seen).size).toBe(seen.length);
    });

    it('user_id matches actor or target; action is exact; from inclusive, to exclusive', async () => {
      const byAdmin = await events(`user_id=${adminId}&limit=100`);
      expect(byAdmin.every((e) => e.actor_id === adminId || e.target_user_id === adminId)).toBe(true);
      const logins = await events('action=login.succeeded&limit=100');
      expect(logins.length).toBeGreaterThan(3);
      expect(logins.every((e) => e.action === 'login.succeeded')).toBe(true);
      const pivot = logins[2]!;
      const from = await events(`action=login.succeeded&from=${encodeURIComponent(pivot.created_at)}&limit=100`);
      expect(from.every((e) => e.created_at >= pivot.created_at)).toBe(true);
      expect(from.map((e) => e.id)).toContain(pivot.id);
      const to = await events(`action=login.succeeded&to=${encodeURIComponent(pivot.created_at)}&limit=100`);
      expect(to.every((e) => e.created_at < pivot.created_at)).toBe(true);
      expect(await events('action=no.such_action')).toEqual([]);
    });

    it('bad parameters are 400', async () => {
      for (const q of ['limit=101', 'limit=0', 'cursor=garbage', `cursor=${Buffer.from('v1:abc').toString('base64url')}`, 'from=yesterday', 'user_id=x', 'action=DROP TABLE', 'page=2']) {
        const res = await t.app.inject({ url: `/audit?${q}`, headers: admin });
        expect(res.statusCode, q).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
    });
  });

  it("GET /auth/activity: the caller's own events only, same shape, paginated", async () => {
    const u = await makeUser(t.ctx);
    await t.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: 'not-the-password' } });
    const s = remember(await login(t.app, u.email));
    await t.app.inject({ method: 'POST', url: `/users/${u.id}/unlock`, headers: admin });
    const res = await t.app.inject({ url: '/auth/activity', headers: bearer(s.access_token) });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['events', 'next_cursor']);
    expect(body.events.map((e: Event) => e.action)).toEqual(['user.unlocked', 'login.succeeded', 'login.failed']);
    expect(body.events.every((e: Event) => e.actor_id === u.id || e.target_user_id === u.id)).toBe(true);
    const page1 = (await t.app.inject({ url: '/auth/activity?limit=2', headers: bearer(s.access_token) })).json();
    expect(page1.events).toHaveLength(2);
    const page2 = (await t.app.inject({ url: `/auth/activity?limit=2&cursor=${page1.next_cursor}`, headers: bearer(s.access_token) })).json();
    expect(page2.events.map((e: Event) => e.action)).toEqual(['login.failed']);
    expect(page2.next_cursor).toBeNull();
    expect((await t.app.inject({ url: `/auth/activity?user_id=${adminId}`, headers: bearer(s.access_token) })).statusCode).toBe(400);
  });
});
