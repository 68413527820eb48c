import { beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { envelopeOf } from '../../support/helper.js';
import { useCastFixture, PRINCIPALS, type Cast, type PrincipalName } from '../../support/principals.js';

const name = (prefix: string) => `${prefix} ${randomBytes(3).toString('hex')}`;

describe('counties and departments', () => {
  const { t, cast } = useCastFixture();
  let admin: Record<string, string>;
  beforeAll(() => {
    admin = cast.as.admin.headers;
  });

  const req = (method: 'GET' | 'POST', url: string, payload?: object, headers = admin) =>
    t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  describe('authorization matrix: any authenticated user reads, org:write writes', () => {
    type Expect = Record<PrincipalName, number>;
    const READ: Expect = { anonymous: 401, citizen: 200, officerA: 200, officerB: 200, admin: 200 };
    const WRITE: Expect = { anonymous: 401, citizen: 403, officerA: 403, officerB: 403, admin: 201 };
    const rows: { name: string; method: 'GET' | 'POST'; url: (c: Cast) => string; payload?: () => object; expect: Expect }[] = [
      { name: 'list counties', method: 'GET', url: () => '/counties', expect: READ },
      { name: 'create county', method: 'POST', url: () => '/counties', payload: () => ({ name: name('County') }), expect: WRITE },
      { name: 'list departments', method: 'GET', url: (c) => `/counties/${c.countyA.id}/departments`, expect: READ },
      { name: 'create department', method: 'POST', url: (c) => `/counties/${c.countyB.id}/departments`, payload: () => ({ name: name('Dept') }), expect: WRITE },
    ];
    for (const row of rows) {
      for (const who of PRINCIPALS) {
        it(`${row.method} ${row.name} as ${who} → ${row.expect[who]}`, async () => {
          const res = await t.app.inject({ method: row.method, url: row.url(cast), headers: cast.as[who].headers, ...(row.payload ? { payload: row.payload() } : {}) });
          expect(res.statusCode, res.body).toBe(row.expect[who]);
        });
      }
    }
  });

  it('lists the seeded counties and their departments', async () => {
    const counties = (await req('GET', '/counties')).json().counties as { id: number; name: string }[];
    expect(counties.map((c) => c.name)).toEqual(expect.arrayContaining(['Kisumu', 'Mombasa', 'Nairobi']));
    const deps = (await req('GET', `/counties/${cast.countyA.id}/departments`)).json().departments;
    expect(deps.map((d: { name: string }) => d.name)).toEqual(['Health', 'Lands and Housing', 'Transport']);
    expect(deps.every((d: { county_id: number }) => d.county_id === cast.countyA.id)).toBe(true);
  });

  it('creates a county and a department; names are unique case-insensitively (409)', async () => {
    const countyName = name('Nakuru');
    const created = await req('POST', '/counties', { name: `  ${countyName}  ` });
    expect(created.statusCode).toBe(201);
    const county = created.json().county;
    expect(county.name).toBe(countyName);
    const dup = await req('POST', '/counties', { name: countyName.toUpperCase() });
    expect(dup.statusCode).toBe(409);
    expect(envelopeOf(dup).code).toBe('CONFLICT');

    const dep = await req('POST', `/counties/${county.id}/departments`, { name: 'Health' });
    expect(dep.statusCode).toBe(201);
    expect(dep.json().department).toMatchObject({ county_id: county.id, name: 'Health' });
    expect((await req('POST', `/counties/${county.id}/departments`, { name: 'health' })).statusCode).toBe(409);
    // the same department name in another county is fine (Health exists in Nairobi too)
    expect((await req('GET', `/counties/${county.id}/departments`)).json().departments).toHaveLength(1);
  });

  it('unknown counties are 404; bad ids and names are 400', async () => {
    expect((await req('GET', '/counties/999999/departments')).statusCode).toBe(404);
    expect((await req('POST', '/counties/999999/departments', { name: 'X' })).statusCode).toBe(404);
    expect((await req('GET', '/counties/abc/departments')).statusCode).toBe(400);
    for (const body of [{}, { name: '' }, { name: '   ' }, { name: 'x'.repeat(101) }, { name: 'ok', extra: 1 }]) {
      expect((await req('POST', '/counties', body)).statusCode, JSON.stringify(body)).toBe(400);
    }
  });

  it('a new department can be assigned to an officer of that county', async () => {
    const dep = (await req('POST', `/counties/${cast.countyA.id}/departments`, { name: name('Finance') })).json().department;
    const res = await t.app.inject({ method: 'PATCH', url: `/users/${cast.as.officerA.user!.id}`, headers: admin, payload: { department_id: dep.id } });
    expect(res.statusCode).toBe(200);
    expect(res.json().user.department_id).toBe(dep.id);
    const elsewhere = await t.app.inject({ method: 'PATCH', url: `/users/${cast.as.officerB.user!.id}`, headers: admin, payload: { department_id: dep.id } });
    expect(elsewhere.statusCode).toBe(400);
  });
});
