import { beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { bearer, envelopeOf, GOOD_PASSWORD, login, makeUser } from '../../support/helper.js';
import { useCastFixture } from '../../support/principals.js';

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}@example.com`;

describe('/users', () => {
  const { t, cast } = useCastFixture();
  let admin: Record<string, string>;
  beforeAll(() => {
    admin = cast.as.admin.headers;
  });

  const get = (url: string, headers = admin) => t.app.inject({ method: 'GET', url, headers });
  const send = (method: 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object, headers = admin) =>
    t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  describe('GET /users: pagination, filters, sort', () => {
    const marker = `pg${randomBytes(3).toString('hex')}`;
    beforeAll(async () => {
      for (let i = 0; i < 25; i++) {
        await makeUser(t.ctx, { email: `${marker}-${String(i).padStart(2, '0')}@example.com`, countyId: i % 2 ? cast.countyA.id : cast.countyB.id, active: i % 5 !== 0 });
      }
    });

    it('pages through with a correct total; a page beyond the end is empty', async () => {
      const pages = [];
      for (const page of [1, 2, 3, 4]) {
        const res = await get(`/users?q=${marker}&per_page=10&page=${page}&sort=email`);
        expect(res.statusCode).toBe(200);
        pages.push(res.json());
      }
      expect(pages.map((p) => p.users.length)).toEqual([10, 10, 5, 0]);
      expect(pages.every((p) => p.total === 25 && p.per_page === 10)).toBe(true);
      expect(pages.map((p) => p.page)).toEqual([1, 2, 3, 4]);
      const emails = pages.flatMap((p) => p.users.map((u: { email: string }) => u.email));
      expect(new Set(emails).size).toBe(25);
      expect(emails).toEqual([...emails].sort());
    });

    it('per_page 100 is fine, 101 is 400; page 0 and per_page 0 are 400', async () => {
      const ok = await get('/users?per_page=100');
      expect(ok.statusCode).toBe(200);
      expect(ok.json().per_page).toBe(100);
      for (const q of ['per_page=101', 'per_page=0', 'page=0', 'page=-1', 'per_page=abc']) {
        const res = await get(`/users?${q}`);
        expect(res.statusCode, q).toBe(400);
        const env = envelopeOf(res);
        expect(env.code).toBe('VALIDATION_FAILED');
        expect(Object.keys(env.fields!)).toEqual([q.split('=')[0]]);
      }
    });

    it('defaults: page 1, per_page 20, sorted by id', async () => {
      const body = (await get('/users')).json();
      expect(body).toMatchObject({ page: 1, per_page: 20 });
      const ids = body.users.map((u: { id: number }) => u.id);
      expect(ids).toEqual([...ids].sort((a: number, b: number) => a - b));
    });

    it('filters: q (case-insensitive, names too), active, county_id, role', async () => {
      expect((await get(`/users?q=${marker.toUpperCase()}`)).json().total).toBe(25);
      expect((await get(`/users?q=${marker}&active=false`)).json().total).toBe(5);
      expect((await get(`/users?q=${marker}&active=true`)).json().total).toBe(20);
      expect((await get(`/users?q=${marker}&county_id=${cast.countyA.id}`)).json().total).toBe(12);
      expect((await get(`/users?q=${marker}&county_id=${cast.countyA.id}&active=false`)).json().total).toBe(2);
      const named = await makeUser(t.ctx, { firstName: 'Wanjiku', lastName: 'Kamau' });
      const byName = (await get('/users?q=wanjiku%20kam')).json();
      expect(byName.users.map((u: { id: number }) => u.id)).toEqual([named.id]);
      const officers = (await get('/users?role=Department%20Officer&per_page=100')).json();
      expect(officers.users.every((u: { roles: string[] }) => u.roles.includes('Department Officer'))).toBe(true);
      expect(officers.total).toBeGreaterThanOrEqual(2);
      expect((await get('/users?role=No%20Such%20Role')).json()).toMatchObject({ users: [], total: 0 });
      // LIKE wildcards in q are literal
      expect((await get('/users?q=%25')).json().total).toBe(0);
      expect((await get('/users?q=_')).json().total).toBe(0);
    });

    it('sort: whitelisted fields, several, descending with "-"', async () => {
      const desc = (await get(`/users?q=${marker}&sort=-email&per_page=100`)).json().users.map((u: { email: string }) => u.email);
      expect(desc).toEqual([...desc].sort().reverse());
      const multi = await get(`/users?q=${marker}&sort=-created_at,email`);
      expect(multi.statusCode).toBe(200);
      for (const bad of ['password', 'fs_uniquifier', 'email;drop', '-', 'email,,id']) {
        const res = await get(`/users?sort=${encodeURIComponent(bad)}`);
        expect(res.statusCode, bad).toBe(400);
        expect(envelopeOf(res).fields).toHaveProperty('sort');
      }
    });

    it('unknown query parameters are 400', async () => {
      const res = await get('/users?admin=true');
      expect(res.statusCode).toBe(400);
    });

    it('each listed user is exactly GET /users/{id}: roles and permissions (same order), tf_enabled, every field', async () => {
      // several role sets, one with two roles sharing permissions, one with 2FA switched on
      const multi = await makeUser(t.ctx, { email: `${marker}-multi@example.com`, roles: ['Department Officer', 'Citizen'], countyId: cast.countyA.id });
      const none = await makeUser(t.ctx, { email: `${marker}-none@example.com`, roles: [] });
      await t.db.sql`update users set tf_primary_method = 'authenticator', tf_totp_secret = 'sealed' where id = ${none.id}`;
      // login times and addresses set, a name of one part, an unconfirmed address
      await login(t.app, multi.email);
      await login(t.app, multi.email);
      await makeUser(t.ctx, { email: `${marker}-solo@example.com`, firstName: '', lastName: 'Solo', confirmedAt: null, phoneNumber: '+1 555 0100' });
      const list = (await get(`/users?q=${marker}&per_page=100&sort=-email`)).json();
      expect(list.total).toBe(28);
      for (const u of list.users) {
        const one = await get(`/users/${u.id}`);
        expect(u, u.email).toEqual(one.json().user);
      }
      const byEmail = new Map(list.users.map((u: { email: string }) => [u.email, u]));
      expect(byEmail.get(multi.email)).toMatchObject({ roles: ['Citizen', 'Department Officer'], tf_enabled: false });
      expect(byEmail.get(none.email)).toMatchObject({ roles: [], permissions: [], tf_enabled: true });
      expect(byEmail.get(multi.email)).toMatchObject({ login_count: 2, last_login_ip: '127.0.0.1', current_login_at: expect.stringMatching(/Z$/) });
      expect(byEmail.get(`${marker}-solo@example.com`)).toMatchObject({ full_name: 'Solo', confirmed_at: null });
    });

    it('the total holds past the last page too', async () => {
      const { total } = (await get(`/users?q=${marker}&per_page=10&page=1`)).json();
      expect(total).toBeGreaterThanOrEqual(25);
      const res = (await get(`/users?q=${marker}&per_page=10&page=9`)).json();
      expect(res).toMatchObject({ users: [], total, page: 9 });
      expect((await get('/users?q=no-such-user-anywhere')).json()).toMatchObject({ users: [], total: 0 });
    });

    it('the list never carries secrets', async () => {
      const res = await get('/users?per_page=100');
      expect(res.body).not.toMatch(/fs_uniquifier|"password"|\$cs1\$|\$2[aby]\$/);
    });
  });

  describe('POST /users', () => {
    it('creates a user with roles, county and department (201 {user}); the user can log in', async () => {
      const email = unique('created');
      const res = await send('POST', '/users', {
        email, password: GOOD_PASSWORD, first_name: 'Akinyi', last_name: 'Odhiambo', phone_number: '+254700000001',
        roles: ['Department Officer'], county_id: cast.countyA.id, department_id: cast.countyA.departmentIds[1],
      });
      expect(res.statusCode, res.body).toBe(201);
      const { user } = res.json();
      expect(user).toMatchObject({
        email, first_name: 'Akinyi', full_name: 'Akinyi Odhiambo', active: true, roles: ['Department Officer'],
        county_id: cast.countyA.id, department_id: cast.countyA.departmentIds[1],
      });
      expect(user.confirmed_at).not.toBeNull();
      expect(user.permissions).toContain('users:read');
      expect(res.body).not.toContain(GOOD_PASSWORD);
      await login(t.app, email);
    });

    it('defaults to Citizen; active:false and confirmed:false are honoured', async () => {
      const res = await send('POST', '/users', { email: unique('plain'), password: GOOD_PASSWORD, active: false, confirmed: false });
      expect(res.statusCode).toBe(201);
      expect(res.json().user).toMatchObject({ roles: ['Citizen'], active: false, confirmed_at: null, county_id: null });
    });

    it('a taken email (any case) is 409 EMAIL_TAKEN', async () => {
      const email = unique('dup');
      expect((await send('POST', '/users', { email, password: GOOD_PASSWORD })).statusCode).toBe(201);
      const res = await send('POST', '/users', { email: email.toUpperCase(), password: GOOD_PASSWORD });
      expect(res.statusCode).toBe(409);
      expect(envelopeOf(res).code).toBe('EMAIL_TAKEN');
    });

    it('an unknown role is 400 on field roles, and nothing is created', async () => {
      const email = unique('badrole');
      const res = await send('POST', '/users', { email, password: GOOD_PASSWORD, roles: ['Citizen', 'Wizard'] });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res)).toMatchObject({ code: 'VALIDATION_FAILED', fields: { roles: ['Unknown role: Wizard'] } });
      expect((await get(`/users?q=${email}`)).json().total).toBe(0);
    });

    it('the password policy applies (field password)', async () => {
      for (const password of ['short', 'password123']) {
        const res = await send('POST', '/users', { email: unique('weak'), password });
        expect(res.statusCode, password).toBe(400);
        expect(envelopeOf(res).fields).toHaveProperty('password');
      }
    });

    it("a department outside the user's county is 400 (field department_id)", async () => {
      const res = await send('POST', '/users', {
        email: unique('dept'), password: GOOD_PASSWORD, county_id: cast.countyA.id, department_id: cast.countyB.departmentIds[0],
      });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).fields).toHaveProperty('department_id');
      const noCounty = await send('POST', '/users', { email: unique('dept'), password: GOOD_PASSWORD, department_id: cast.countyB.departmentIds[0] });
      expect(noCounty.statusCode).toBe(400);
      const unknown = await send('POST', '/users', { email: unique('dept'), password: GOOD_PASSWORD, county_id: 999999 });
      expect(unknown.statusCode).toBe(400);
      expect(envelopeOf(unknown).fields).toHaveProperty('county_id');
    });

    it('unknown fields and bad types are 400', async () => {
      const res = await send('POST', '/users', { email: unique('x'), password: GOOD_PASSWORD, fs_uniquifier: 'mine', active: 'yes' });
      expect(res.statusCode).toBe(400);
      expect(Object.keys(envelopeOf(res).fields!).sort()).toEqual(['active', 'fs_uniquifier']);
    });
  });

  describe('GET and PATCH /users/{id}', () => {
    it('reads a user; unknown id 404; a non-numeric id 400', async () => {
      const u = await makeUser(t.ctx);
      expect((await get(`/users/${u.id}`)).json().user.email).toBe(u.email);
      expect((await get('/users/999999')).statusCode).toBe(404);
      expect((await get('/users/abc')).statusCode).toBe(400);
    });

    it('updates profile, county and department', async () => {
      const u = await makeUser(t.ctx);
      const res = await send('PATCH', `/users/${u.id}`, {
        first_name: 'Baraka', address: '1 Moi Avenue', county_id: cast.countyB.id, department_id: cast.countyB.departmentIds[0],
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().user).toMatchObject({ first_name: 'Baraka', address: '1 Moi Avenue', county_id: cast.countyB.id, department_id: cast.countyB.departmentIds[0] });
      const cleared = await send('PATCH', `/users/${u.id}`, { department_id: null, phone_number: null });
      expect(cleared.json().user).toMatchObject({ department_id: null, county_id: cast.countyB.id });
    });

    it("officer-to-department assignment: the department must belong to the user's county", async () => {
      const officer = await makeUser(t.ctx, { roles: ['Department Officer'], countyId: cast.countyA.id });
      const wrong = await send('PATCH', `/users/${officer.id}`, { department_id: cast.countyB.departmentIds[0] });
      expect(wrong.statusCode).toBe(400);
      expect(envelopeOf(wrong).fields).toHaveProperty('department_id');
      const right = await send('PATCH', `/users/${officer.id}`, { department_id: cast.countyA.departmentIds[2] });
      expect(right.json().user.department_id).toBe(cast.countyA.departmentIds[2]);
      // moving county without saying what happens to the department is refused
      const move = await send('PATCH', `/users/${officer.id}`, { county_id: cast.countyB.id });
      expect(move.statusCode).toBe(400);
      expect(envelopeOf(move).fields).toHaveProperty('department_id');
      const unknownDept = await send('PATCH', `/users/${officer.id}`, { department_id: 999999 });
      expect(unknownDept.statusCode).toBe(400);
      expect((await get(`/users/${officer.id}`)).json().user.department_id).toBe(cast.countyA.departmentIds[2]);
    });

    it('empty bodies, unknown fields (email, active, roles) and unknown users are refused', async () => {
      const u = await makeUser(t.ctx);
      expect((await send('PATCH', `/users/${u.id}`, {})).statusCode).toBe(400);
      for (const field of ['email', 'active', 'roles', 'password']) {
        const res = await send('PATCH', `/users/${u.id}`, { [field]: 'x' });
        expect(res.statusCode, field).toBe(400);
        expect(envelopeOf(res).fields).toHaveProperty(field);
      }
      expect((await send('PATCH', '/users/999999', { first_name: 'x' })).statusCode).toBe(404);
    });
  });

  describe('deactivate, activate, unlock, reset-access', () => {
    it('deactivation kills a live bearer token and cookie session at once; activation lets the user log in again', async () => {
      const u = await makeUser(t.ctx);
      const s = await login(t.app, u.email);
      const s2 = await login(t.app, u.email);
      expect((await get('/auth/current-user', bearer(s.access_token))).statusCode).toBe(200);
      const res = await send('POST', `/users/${u.id}/deactivate`);
      expect(res.statusCode).toBe(200);
      expect(res.json().user.active).toBe(false);
      const dead = await get('/auth/current-user', bearer(s.access_token));
      expect(dead.statusCode).toBe(401);
      expect(envelopeOf(dead).code).toBe('TOKEN_INVALID');
      expect((await get('/auth/current-user', { cookie: s2.cookie })).statusCode).toBe(401);
      const refresh = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s.refresh_token } });
      expect(refresh.statusCode).toBe(401);
      const relogin = await t.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: GOOD_PASSWORD } });
      expect(envelopeOf(relogin).code).toBe('ACCOUNT_DISABLED');

      expect((await send('POST', `/users/${u.id}/activate`)).json().user.active).toBe(true);
      expect((await get('/auth/current-user', bearer(s.access_token))).statusCode).toBe(401);
      await login(t.app, u.email);
    });

    it('deactivate and activate are idempotent', async () => {
      const u = await makeUser(t.ctx);
      expect((await send('POST', `/users/${u.id}/deactivate`)).statusCode).toBe(200);
      expect((await send('POST', `/users/${u.id}/deactivate`)).json().user.active).toBe(false);
      expect((await send('POST', `/users/${u.id}/activate`)).statusCode).toBe(200);
      expect((await send('POST', `/users/${u.id}/activate`)).json().user.active).toBe(true);
    });

    it('an admin cannot deactivate themself (409 CONFLICT)', async () => {
      const res = await send('POST', `/users/${cast.as.admin.user!.id}/deactivate`);
      expect(res.statusCode).toBe(409);
      expect(envelopeOf(res).code).toBe('CONFLICT');
      expect((await get('/auth/current-user')).statusCode).toBe(200);
    });

    it('unlock answers {user} and is safe on an account that is not locked', async () => {
      const u = await makeUser(t.ctx);
      const res = await send('POST', `/users/${u.id}/unlock`);
      expect(res.statusCode).toBe(200);
      expect(res.json().user.id).toBe(u.id);
      expect((await send('POST', '/users/999999/unlock')).statusCode).toBe(404);
    });

    it('reset-access kills every token and session and rotates fs_uniquifier; the password still works', async () => {
      const u = await makeUser(t.ctx);
      const s = await login(t.app, u.email);
      const res = await send('POST', `/users/${u.id}/reset-access`);
      expect(res.statusCode).toBe(200);
      expect(res.json().user.active).toBe(true);
      expect((await get('/auth/current-user', bearer(s.access_token))).statusCode).toBe(401);
      expect((await get('/auth/current-user', { cookie: s.cookie })).statusCode).toBe(401);
      const [row] = await t.db.sql`select fs_uniquifier from users where id = ${u.id}`;
      expect(row!.fs_uniquifier).not.toBe(u.fsUniquifier);
      await login(t.app, u.email);
    });

    it('actions on unknown users are 404', async () => {
      for (const action of ['deactivate', 'activate', 'reset-access']) {
        expect((await send('POST', `/users/999999/${action}`)).statusCode, action).toBe(404);
      }
    });
  });

  describe('role assignment', () => {
    it('PUT sets the full set; POST adds; DELETE removes; all idempotent', async () => {
      const u = await makeUser(t.ctx);
      let res = await send('PUT', `/users/${u.id}/roles`, { roles: ['Department Officer', 'Citizen'] });
      expect(res.statusCode).toBe(200);
      expect(res.json().user.roles).toEqual(['Citizen', 'Department Officer']);
      res = await send('PUT', `/users/${u.id}/roles`, { roles: ['Department Officer'] });
      expect(res.json().user.roles).toEqual(['Department Officer']);
      res = await send('POST', `/users/${u.id}/roles/Citizen`);
      expect(res.json().user.roles).toEqual(['Citizen', 'Department Officer']);
      res = await send('POST', `/users/${u.id}/roles/Citizen`);
      expect(res.json().user.roles).toEqual(['Citizen', 'Department Officer']);
      res = await send('DELETE', `/users/${u.id}/roles/Department%20Officer`);
      expect(res.json().user.roles).toEqual(['Citizen']);
      res = await send('DELETE', `/users/${u.id}/roles/Department%20Officer`);
      expect(res.json().user.roles).toEqual(['Citizen']);
      res = await send('PUT', `/users/${u.id}/roles`, { roles: [] });
      expect(res.json().user).toMatchObject({ roles: [], permissions: [] });
    });

    it('an unknown role: 400 (field roles) in a body, 404 in a path', async () => {
      const u = await makeUser(t.ctx);
      const body = await send('PUT', `/users/${u.id}/roles`, { roles: ['Citizen', 'Wizard'] });
      expect(body.statusCode).toBe(400);
      expect(envelopeOf(body).fields).toEqual({ roles: ['Unknown role: Wizard'] });
      expect((await get(`/users/${u.id}`)).json().user.roles).toEqual(['Citizen']);
      for (const method of ['POST', 'DELETE'] as const) {
        const res = await send(method, `/users/${u.id}/roles/Wizard`);
        expect(res.statusCode, method).toBe(404);
        expect(envelopeOf(res).message).toMatch(/Role/);
      }
      expect((await send('POST', '/users/999999/roles/Citizen')).statusCode).toBe(404);
    });

    it('role changes take effect on the next request with the same token', async () => {
      const u = await makeUser(t.ctx);
      const s = bearer((await login(t.app, u.email)).access_token);
      expect((await get('/users', s)).statusCode).toBe(403);
      await send('POST', `/users/${u.id}/roles/County%20Admin`);
      expect((await get('/users', s)).statusCode).toBe(200);
      expect((await get('/auth/current-user', s)).json().user.roles).toEqual(['Citizen', 'County Admin']);
      await send('PUT', `/users/${u.id}/roles`, { roles: ['Citizen'] });
      expect((await get('/users', s)).statusCode).toBe(403);
    });

    it('permission changes on a role take effect on the next request too', async () => {
      const role = (await send('POST', '/roles', { name: `Reader ${randomBytes(3).toString('hex')}`, permissions: [] })).json().role;
      const u = await makeUser(t.ctx, { roles: ['Department Officer'], countyId: cast.countyA.id });
      const s = bearer((await login(t.app, u.email)).access_token);
      await send('POST', `/users/${u.id}/roles/${encodeURIComponent(role.name)}`);
      expect((await send('PATCH', `/users/${cast.as.citizen.user!.id}`, { first_name: 'X' }, s)).statusCode).toBe(403);
      await send('PATCH', `/roles/${role.id}`, { permissions: ['users:write'] });
      // a county-scoped writer: their own county yes, another county is 404
      expect((await send('PATCH', `/users/${cast.as.citizen.user!.id}`, { first_name: 'X' }, s)).statusCode).toBe(200);
      const other = await makeUser(t.ctx, { countyId: cast.countyB.id });
      expect((await send('PATCH', `/users/${other.id}`, { first_name: 'X' }, s)).statusCode).toBe(404);
      // …and cannot move users out of the county or create users elsewhere
      expect((await send('PATCH', `/users/${cast.as.citizen.user!.id}`, { county_id: cast.countyB.id }, s)).statusCode).toBe(400);
      expect((await send('POST', '/users', { email: unique('scoped'), password: GOOD_PASSWORD, county_id: cast.countyB.id }, s)).statusCode).toBe(400);
      const inCounty = await send('POST', '/users', { email: unique('scoped'), password: GOOD_PASSWORD }, s);
      expect(inCounty.statusCode).toBe(201);
      expect(inCounty.json().user.county_id).toBe(cast.countyA.id);
    });
  });

  describe('the last active County Admin', () => {
    it('cannot lose the role, by PUT or DELETE (409); with a second admin it can', async () => {
      const me = cast.as.admin.user!.id;
      const [row] = await t.db.sql`select count(*)::int as n from roles_users ru join roles r on r.id = ru.role_id join users u on u.id = ru.user_id
        where r.name = 'County Admin' and u.active`;
      expect(row!.n).toBe(1);
      const del = await send('DELETE', `/users/${me}/roles/County%20Admin`);
      expect(del.statusCode).toBe(409);
      expect(envelopeOf(del).code).toBe('CONFLICT');
      const put = await send('PUT', `/users/${me}/roles`, { roles: ['Citizen'] });
      expect(put.statusCode).toBe(409);
      expect((await get(`/users/${me}`)).json().user.roles).toEqual(['County Admin']);

      // an inactive second admin does not count
      const second = await makeUser(t.ctx, { roles: ['County Admin'], active: false });
      expect((await send('DELETE', `/users/${me}/roles/County%20Admin`)).statusCode).toBe(409);
      await send('POST', `/users/${second.id}/activate`);
      const s2 = bearer((await login(t.app, second.email)).access_token);
      // two active admins: the second may take the role from the first…
      const ok = await send('DELETE', `/users/${me}/roles/County%20Admin`, undefined, s2);
      expect(ok.statusCode).toBe(200);
      // …and is now the last one: deactivating or demoting them is refused even via another role holder
      expect((await send('DELETE', `/users/${second.id}/roles/County%20Admin`, undefined, s2)).statusCode).toBe(409);
      expect((await send('POST', `/users/${second.id}/deactivate`, undefined, s2)).statusCode).toBe(409);
      // restore
      expect((await send('POST', `/users/${me}/roles/County%20Admin`, undefined, s2)).statusCode).toBe(200);
    });
  });
});
