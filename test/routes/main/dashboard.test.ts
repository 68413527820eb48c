// GET /dashboard: the message, and `data` by the caller's highest role (County Admin > Department
// Officer > Citizen), computed from the current database state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { counties, departments } from '../../../src/db/schema/index.js';
import type { UserRecord } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, login, makeUser, type TestApp, type TestDatabase,
} from '../../support/helper.js';

interface Named { id: number; name: string }

describe('GET /dashboard', () => {
  let database: TestDatabase;
  let t: TestApp;
  let nairobi: Named;
  let mombasa: Named;
  let nairobiHealth: Named;
  const created: Record<string, UserRecord> = {};

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    const county = async (name: string) => (await t.ctx.db.select({ id: counties.id, name: counties.name }).from(counties).where(eq(counties.name, name)))[0]!;
    nairobi = await county('Nairobi');
    mombasa = await county('Mombasa');
    nairobiHealth = (await t.ctx.db.select({ id: departments.id, name: departments.name }).from(departments)
      .where(and(eq(departments.countyId, nairobi.id), eq(departments.name, 'Health'))))[0]!;

    // one fresh database: these are all the users there are
    created.citizenN1 = await makeUser(t.ctx, { roles: ['Citizen'], countyId: nairobi.id, firstName: 'Wanjiru', lastName: 'Kamau' });
    created.citizenN2 = await makeUser(t.ctx, { roles: ['Citizen'], countyId: nairobi.id });
    created.citizenM = await makeUser(t.ctx, { roles: ['Citizen'], countyId: mombasa.id });
    created.citizenNone = await makeUser(t.ctx, { roles: ['Citizen'] });
    created.officer = await makeUser(t.ctx, { roles: ['Department Officer'], countyId: nairobi.id, departmentId: nairobiHealth.id });
    created.officerNoCounty = await makeUser(t.ctx, { roles: ['Department Officer'] });
    created.admin = await makeUser(t.ctx, { roles: ['County Admin'] });
    created.adminCitizen = await makeUser(t.ctx, { roles: ['County Admin', 'Citizen'] });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  async function dashboardOf(user: UserRecord) {
    const { access_token } = await login(t.app, user.email);
    const res = await t.app.inject({ url: '/dashboard', headers: bearer(access_token) });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  it('anonymous → 401 AUTH_REQUIRED', async () => {
    const res = await t.app.inject('/dashboard');
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
  });

  it('a dead token → 401 TOKEN_INVALID', async () => {
    const res = await t.app.inject({ url: '/dashboard', headers: bearer('a.b.c') });
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
  });

  describe('Citizen', () => {
    it('message, ids, roles, own profile and recent login activity', async () => {
      const user = created.citizenN1!;
      await login(t.app, user.email);
      const body = await dashboardOf(user);
      expect(Object.keys(body).sort()).toEqual(['data', 'message', 'status', 'user_id', 'user_roles']);
      expect(body).toMatchObject({
        message: `Welcome to your dashboard, ${user.email}!`, user_id: user.id, user_roles: ['Citizen'], status: 'success',
      });
      expect(Object.keys(body.data).sort()).toEqual(['profile', 'recent_activity']);
      expect(body.data.profile).toMatchObject({
        id: user.id, email: user.email, first_name: 'Wanjiru', last_name: 'Kamau', roles: ['Citizen'], county_id: nairobi.id,
      });
      expect(body.data.profile).not.toHaveProperty('password');
      expect(body.data.profile).not.toHaveProperty('fs_uniquifier');
      expect(JSON.stringify(body)).not.toContain(user.fsUniquifier);
      // two logins so far (the one above and dashboardOf's), newest first
      expect(body.data.recent_activity).toHaveLength(2);
      for (const e of body.data.recent_activity) {
        expect(e).toMatchObject({ event: 'login', ip: '127.0.0.1' });
        expect(new Date(e.at).toISOString()).toBe(e.at);
      }
      const times = body.data.recent_activity.map((e: { at: string }) => e.at);
      expect([...times].sort().reverse()).toEqual(times);
    });

    it('recent activity is the caller\'s own only', async () => {
      const body = await dashboardOf(created.citizenM!);
      expect(body.data.recent_activity).toHaveLength(1);
      expect(body.data.profile.id).toBe(created.citizenM!.id);
    });
  });

  describe('Department Officer', () => {
    it('their county and department, and the citizens of that county only', async () => {
      const body = await dashboardOf(created.officer!);
      expect(body.message).toBe(`Welcome to your dashboard, ${created.officer!.email}!`);
      expect(body.user_roles).toEqual(['Department Officer']);
      expect(Object.keys(body.data).sort()).toEqual(['citizens', 'county', 'department']);
      expect(body.data.county).toEqual(nairobi);
      expect(body.data.department).toEqual(nairobiHealth);
      const ids = body.data.citizens.map((c: { id: number }) => c.id);
      expect(ids).toEqual([created.citizenN1!.id, created.citizenN2!.id]);
      expect(ids).not.toContain(created.citizenM!.id);
      expect(ids).not.toContain(created.citizenNone!.id);
      expect(ids).not.toContain(created.officer!.id);
      expect(body.data.citizens[0]).toEqual({
        id: created.citizenN1!.id, email: created.citizenN1!.email, first_name: 'Wanjiru', last_name: 'Kamau',
      });
    });

    it('an officer without a county sees nulls and no citizens', async () => {
      const body = await dashboardOf(created.officerNoCounty!);
      expect(body.data).toEqual({ county: null, department: null, citizens: [] });
    });
  });

  describe('County Admin', () => {
    it('counts of users by role and county, recent registrations, locked accounts', async () => {
      const body = await dashboardOf(created.admin!);
      expect(body.message).toBe(`Welcome to your dashboard, ${created.admin!.email}!`);
      expect(body.user_roles).toEqual(['County Admin']);
      expect(Object.keys(body.data).sort()).toEqual(['locked_accounts', 'recent_registrations', 'users_by_county', 'users_by_role']);
      expect(body.data.users_by_role).toEqual(expect.arrayContaining([
        { role: 'Citizen', count: 5 },
        { role: 'Department Officer', count: 2 },
        { role: 'County Admin', count: 2 },
      ]));
      expect(body.data.users_by_role).toHaveLength(3);
      const byCounty = Object.fromEntries(body.data.users_by_county.map((c: { county: string | null; count: number }) => [c.county ?? '(none)', c.count]));
      expect(byCounty).toEqual({ Nairobi: 3, Mombasa: 1, '(none)': 4 });
      const total = Object.keys(created).length;
      expect(body.data.recent_registrations).toHaveLength(Math.min(10, total));
      expect(body.data.recent_registrations[0]).toMatchObject({ id: created.adminCitizen!.id, email: created.adminCitizen!.email });
      expect(body.data.recent_registrations.map((r: { id: number }) => r.id).sort((a: number, b: number) => a - b))
        .toEqual(Object.values(created).map((u) => u.id).sort((a, b) => a - b));
      expect(body.data.locked_accounts).toEqual([]);
    });

    it('the highest role wins: an admin who is also a Citizen gets the admin data', async () => {
      const body = await dashboardOf(created.adminCitizen!);
      expect(body.user_roles).toEqual(['Citizen', 'County Admin']);
      expect(body.data).toHaveProperty('users_by_role');
      expect(body.data).not.toHaveProperty('profile');
    });

    it('counts follow the current state: a new citizen is counted on the next request', async () => {
      const { access_token } = await login(t.app, created.admin!.email);
      const count = async () => {
        const res = await t.app.inject({ url: '/dashboard', headers: bearer(access_token) });
        return (res.json().data.users_by_role as Array<{ role: string; count: number }>).find((r) => r.role === 'Citizen')!.count;
      };
      const before = await count();
      const extra = await makeUser(t.ctx, { roles: ['Citizen'] });
      expect(await count()).toBe(before + 1);
      const res = await t.app.inject({ url: '/dashboard', headers: bearer(access_token) });
      expect(res.json().data.recent_registrations[0].id).toBe(extra.id);
    });
  });
});
