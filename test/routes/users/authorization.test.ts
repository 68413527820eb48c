// Every /users endpoint × every principal. Officers read their own county only (404 elsewhere, so ids
// do not leak); writes are County Admin only; citizens 403; nobody 401.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { makeCast, PRINCIPALS, type Cast, type PrincipalName } from '../../support/principals.js';

type Expect = Record<PrincipalName, number>;
const ADMIN_ONLY = (ok: number): Expect => ({ anonymous: 401, citizen: 403, officerA: 403, officerB: 403, admin: ok });
const READ_COUNTY_A: Expect = { anonymous: 401, citizen: 403, officerA: 200, officerB: 404, admin: 200 };
const READ_COUNTY_B: Expect = { anonymous: 401, citizen: 403, officerA: 404, officerB: 200, admin: 200 };

interface Row {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** builds the URL; `target` is a fresh user of county A made for this request */
  url: (target: number, c: Cast) => string;
  payload?: (c: Cast) => object;
  expect: Expect;
  targetCounty?: 'A' | 'B';
}

const ROWS: Row[] = [
  { name: 'list users', method: 'GET', url: () => '/users', expect: { anonymous: 401, citizen: 403, officerA: 200, officerB: 200, admin: 200 } },
  {
    name: 'create user', method: 'POST', url: () => '/users', expect: ADMIN_ONLY(201),
    payload: (c) => ({ email: `new-${randomBytes(4).toString('hex')}@example.com`, password: GOOD_PASSWORD, county_id: c.countyA.id }),
  },
  { name: 'read user (county A)', method: 'GET', url: (id) => `/users/${id}`, expect: READ_COUNTY_A },
  { name: 'read user (county B)', method: 'GET', url: (id) => `/users/${id}`, expect: READ_COUNTY_B, targetCounty: 'B' },
  { name: 'update user', method: 'PATCH', url: (id) => `/users/${id}`, payload: () => ({ first_name: 'Changed' }), expect: ADMIN_ONLY(200) },
  { name: 'deactivate', method: 'POST', url: (id) => `/users/${id}/deactivate`, expect: ADMIN_ONLY(200) },
  { name: 'activate', method: 'POST', url: (id) => `/users/${id}/activate`, expect: ADMIN_ONLY(200) },
  { name: 'unlock', method: 'POST', url: (id) => `/users/${id}/unlock`, expect: ADMIN_ONLY(200) },
  { name: 'reset access', method: 'POST', url: (id) => `/users/${id}/reset-access`, expect: ADMIN_ONLY(200) },
  { name: 'set roles', method: 'PUT', url: (id) => `/users/${id}/roles`, payload: () => ({ roles: ['Citizen', 'Department Officer'] }), expect: ADMIN_ONLY(200) },
  { name: 'add role', method: 'POST', url: (id) => `/users/${id}/roles/Department%20Officer`, expect: ADMIN_ONLY(200) },
  { name: 'remove role', method: 'DELETE', url: (id) => `/users/${id}/roles/Citizen`, expect: ADMIN_ONLY(200) },
];

describe('/users authorization matrix', () => {
  let database: TestDatabase;
  let t: TestApp;
  let cast: Cast;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    cast = await makeCast(t);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  for (const row of ROWS) {
    for (const who of PRINCIPALS) {
      it(`${row.method} ${row.name} as ${who} → ${row.expect[who]}`, async () => {
        const target = await makeUser(t.ctx, { countyId: row.targetCounty === 'B' ? cast.countyB.id : cast.countyA.id });
        const res = await t.app.inject({
          method: row.method, url: row.url(target.id, cast), headers: cast.as[who].headers,
          ...(row.payload ? { payload: row.payload(cast) } : {}),
        });
        expect(res.statusCode, res.body).toBe(row.expect[who]);
        if (res.statusCode >= 400) {
          const code = envelopeOf(res).code;
          expect(code).toBe({ 401: 'AUTH_REQUIRED', 403: 'FORBIDDEN', 404: 'NOT_FOUND' }[res.statusCode]);
        } else if (row.name !== 'list users') {
          expect(res.json().user).toBeDefined();
        }
      });
    }
  }

  it('an officer without a county is refused (403), even for reads', async () => {
    const officer = await makeUser(t.ctx, { roles: ['Department Officer'] });
    const s = await login(t.app, officer.email);
    const res = await t.app.inject({ url: '/users', headers: bearer(s.access_token) });
    expect(res.statusCode).toBe(403);
  });

  it('officers list only their own county, whatever county_id they ask for', async () => {
    const mine = await t.app.inject({ url: '/users?per_page=100', headers: cast.as.officerA.headers });
    expect(mine.statusCode).toBe(200);
    const body = mine.json();
    expect(body.users.length).toBeGreaterThan(0);
    expect(body.users.every((u: { county_id: number }) => u.county_id === cast.countyA.id)).toBe(true);
    const [row] = await t.db.sql`select count(*)::int as n from users where county_id = ${cast.countyA.id}`;
    expect(body.total).toBe(row!.n);
    const other = await t.app.inject({ url: `/users?county_id=${cast.countyB.id}`, headers: cast.as.officerA.headers });
    expect(other.json()).toMatchObject({ users: [], total: 0 });
  });

  it('IDOR: an officer cannot read, and cannot tell apart, a user of another county and a missing id', async () => {
    const other = await makeUser(t.ctx, { countyId: cast.countyB.id });
    const a = await t.app.inject({ url: `/users/${other.id}`, headers: cast.as.officerA.headers });
    const b = await t.app.inject({ url: '/users/999999', headers: cast.as.officerA.headers });
    expect(a.statusCode).toBe(404);
    expect(b.statusCode).toBe(404);
    expect(a.body).toBe(b.body);
  });
});
