import { beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { envelopeOf, makeUser } from '../../support/helper.js';
import { useCastFixture, PRINCIPALS, type PrincipalName } from '../../support/principals.js';

const name = (prefix = 'Role') => `${prefix} ${randomBytes(3).toString('hex')}`;

describe('/roles', () => {
  const { t, cast } = useCastFixture();
  let admin: Record<string, string>;
  beforeAll(() => {
    admin = cast.as.admin.headers;
  });

  const req = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers = admin) =>
    t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
  const create = async (body: object = {}) => {
    const res = await req('POST', '/roles', { name: name(), ...body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().role as { id: number; name: string; permissions: string[] };
  };

  describe('authorization matrix', () => {
    type Expect = Record<PrincipalName, number>;
    const adminOnly = (ok: number): Expect => ({ anonymous: 401, citizen: 403, officerA: 403, officerB: 403, admin: ok });
    const rows: { name: string; method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: (id: number) => string; payload?: () => object; expect: Expect }[] = [
      { name: 'list', method: 'GET', url: () => '/roles', expect: adminOnly(200) },
      { name: 'create', method: 'POST', url: () => '/roles', payload: () => ({ name: name() }), expect: adminOnly(201) },
      { name: 'read', method: 'GET', url: (id) => `/roles/${id}`, expect: adminOnly(200) },
      { name: 'update', method: 'PATCH', url: (id) => `/roles/${id}`, payload: () => ({ description: 'changed' }), expect: adminOnly(200) },
      { name: 'delete', method: 'DELETE', url: (id) => `/roles/${id}`, expect: adminOnly(204) },
    ];
    for (const row of rows) {
      for (const who of PRINCIPALS) {
        it(`${row.method} ${row.name} as ${who} → ${row.expect[who]}`, async () => {
          const role = await create();
          const res = await t.app.inject({
            method: row.method, url: row.url(role.id), headers: cast.as[who].headers, ...(row.payload ? { payload: row.payload() } : {}),
          });
          expect(res.statusCode, res.body).toBe(row.expect[who]);
        });
      }
    }
  });

  it('lists the seeded roles with their permissions, user counts and the seeded flag', async () => {
    const res = await req('GET', '/roles');
    const roles = res.json().roles as { name: string; seeded: boolean; permissions: string[]; user_count: number }[];
    const admins = roles.find((r) => r.name === 'County Admin')!;
    expect(admins).toMatchObject({ seeded: true });
    expect(admins.permissions).toEqual(expect.arrayContaining(['users:write', 'roles:write', 'audit:read', 'org:write']));
    expect(admins.user_count).toBeGreaterThanOrEqual(1);
    expect(roles.filter((r) => r.seeded).map((r) => r.name).sort()).toEqual(['Citizen', 'County Admin', 'Department Officer']);
  });

  it('creates a role (permissions deduplicated and sorted); reads it back', async () => {
    const role = await create({ description: 'Reads things', permissions: ['users:read', 'audit:read', 'users:read', 'reports:*'] });
    expect(role.permissions).toEqual(['audit:read', 'reports:*', 'users:read']);
    const res = await req('GET', `/roles/${role.id}`);
    expect(res.json().role).toMatchObject({ id: role.id, name: role.name, description: 'Reads things', seeded: false, user_count: 0 });
    expect((await req('GET', '/roles/999999')).statusCode).toBe(404);
  });

  it('a duplicate name is 409 CONFLICT (create and rename)', async () => {
    const a = await create();
    const b = await create();
    const dup = await req('POST', '/roles', { name: a.name });
    expect(dup.statusCode).toBe(409);
    expect(envelopeOf(dup).code).toBe('CONFLICT');
    const rename = await req('PATCH', `/roles/${b.id}`, { name: a.name });
    expect(rename.statusCode).toBe(409);
    expect((await req('POST', '/roles', { name: 'County Admin' })).statusCode).toBe(409);
  });

  it('permission strings are validated', async () => {
    for (const bad of ['users', 'Users:read', 'users:read:all', 'users read', ':read', 'users:', 'users:re4d']) {
      const res = await req('POST', '/roles', { name: name(), permissions: [bad] });
      expect(res.statusCode, bad).toBe(400);
      expect(Object.keys(envelopeOf(res).fields!)[0]).toMatch(/^permissions/);
    }
    const role = await create();
    expect((await req('PATCH', `/roles/${role.id}`, { permissions: ['ok:read', 'NOT OK'] })).statusCode).toBe(400);
  });

  it('role names are validated; unknown fields and empty patches are 400', async () => {
    for (const bad of ['', ' leading', 'trailing ', 'semi;colon', 'x'.repeat(65)]) {
      expect((await req('POST', '/roles', { name: bad })).statusCode, JSON.stringify(bad)).toBe(400);
    }
    const role = await create();
    expect((await req('PATCH', `/roles/${role.id}`, {})).statusCode).toBe(400);
    expect((await req('PATCH', `/roles/${role.id}`, { seeded: false })).statusCode).toBe(400);
  });

  it('PATCH renames and replaces permissions; 404 for unknown ids', async () => {
    const role = await create({ permissions: ['a:read'] });
    const newName = name('Renamed');
    const res = await req('PATCH', `/roles/${role.id}`, { name: newName, description: null, permissions: ['b:write', 'a:read'] });
    expect(res.statusCode).toBe(200);
    expect(res.json().role).toMatchObject({ name: newName, description: null, permissions: ['a:read', 'b:write'] });
    expect((await req('PATCH', '/roles/999999', { description: 'x' })).statusCode).toBe(404);
  });

  it('seeded roles can be edited but not renamed or deleted (409)', async () => {
    const citizen = (await req('GET', '/roles')).json().roles.find((r: { name: string }) => r.name === 'Citizen');
    const edit = await req('PATCH', `/roles/${citizen.id}`, { description: 'Residents', permissions: [...citizen.permissions, 'services:read'] });
    expect(edit.statusCode).toBe(200);
    expect(edit.json().role.permissions).toContain('services:read');
    const rename = await req('PATCH', `/roles/${citizen.id}`, { name: 'Resident' });
    expect(rename.statusCode).toBe(409);
    // sending the same name is not a rename
    expect((await req('PATCH', `/roles/${citizen.id}`, { name: 'Citizen' })).statusCode).toBe(200);
    const del = await req('DELETE', `/roles/${citizen.id}?force=true`);
    expect(del.statusCode).toBe(409);
    expect(envelopeOf(del).code).toBe('CONFLICT');
    await req('PATCH', `/roles/${citizen.id}`, { description: citizen.description, permissions: citizen.permissions });
  });

  it('deleting an assigned role is 409 unless force=true; force removes the assignments', async () => {
    const role = await create({ permissions: ['users:read'] });
    const u = await makeUser(t.ctx, { roles: ['Citizen', role.name] });
    const refused = await req('DELETE', `/roles/${role.id}`);
    expect(refused.statusCode).toBe(409);
    expect(envelopeOf(refused).message).toMatch(/force=true/);
    expect((await req('DELETE', `/roles/${role.id}?force=false`)).statusCode).toBe(409);
    const forced = await req('DELETE', `/roles/${role.id}?force=true`);
    expect(forced.statusCode).toBe(204);
    expect(forced.body).toBe('');
    expect((await req('GET', `/roles/${role.id}`)).statusCode).toBe(404);
    expect((await req('GET', `/users/${u.id}`)).json().user.roles).toEqual(['Citizen']);
    expect((await req('DELETE', `/roles/${role.id}`)).statusCode).toBe(404);
  });

  it('an unassigned role is deleted without force', async () => {
    const role = await create();
    expect((await req('DELETE', `/roles/${role.id}`)).statusCode).toBe(204);
  });
});
