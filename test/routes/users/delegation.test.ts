// Regression tests over HTTP for issue 12's measured holes: escalation through creation (the README's
// Writer/Auditor example), acting on someone stronger, role edits past the editor's permissions, and the
// County Admin-only rules. The generated matrix is in delegation.property.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { auditEvents, users } from '../../../src/db/schema/index.js';
import { findUser } from '../../../src/security/datastore.js';
import { bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { county } from '../../support/principals.js';

describe('delegation over HTTP (no climbing)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let admin: Record<string, string>;
  let countyId: number;
  let writer: { id: number; name: string };
  let auditor: { id: number; name: string };
  let officer: { id: number; email: string; headers: Record<string, string> };

  const call = (headers: Record<string, string>, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
  const actions = async (action: string) =>
    (await t.db.db.select().from(auditEvents).where(eq(auditEvents.action, action))).length;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    countyId = (await county(t, 'Nairobi')).id;
    const root = await makeUser(t.ctx, { roles: ['County Admin'] });
    admin = bearer((await login(t.app, root.email)).access_token);
    // The README's example roles, made by an admin.
    const mk = async (name: string, permissions: string[]) => {
      const res = await call(admin, 'POST', '/roles', { name, permissions });
      expect(res.statusCode, res.body).toBe(201);
      return { id: res.json().role.id as number, name };
    };
    writer = await mk('Writer', ['users:read', 'users:write']);
    auditor = await mk('Auditor', ['audit:read', 'roles:write']);
    const o = await makeUser(t.ctx, { roles: ['Department Officer', 'Writer'], countyId });
    officer = { id: o.id, email: o.email, headers: bearer((await login(t.app, o.email)).access_token) };
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  describe('escalation through creation (Writer + Department Officer)', () => {
    it('PUT /users/{id}/roles with Auditor is refused (the officer lacks roles:write)', async () => {
      const citizen = await makeUser(t.ctx, { countyId });
      const res = await call(officer.headers, 'PUT', `/users/${citizen.id}/roles`, { roles: ['Auditor'] });
      expect(res.statusCode).toBe(403);
      expect((await findUser(t.db.db, { id: citizen.id }))!.roles).toEqual(['Citizen']);
    });

    it('POST /users with roles:["Auditor"] is 403: no user, no user.created row, a user.created.denied row', async () => {
      const email = `climber-${randomBytes(3).toString('hex')}@example.com`;
      const createdBefore = await actions('user.created');
      const res = await call(officer.headers, 'POST', '/users', { email, password: GOOD_PASSWORD, roles: ['Auditor'], county_id: countyId });
      expect(res.statusCode, res.body).toBe(403);
      expect(envelopeOf(res).code).toBe('FORBIDDEN');
      expect(envelopeOf(res).message).toContain('audit:read');
      expect(await findUser(t.db.db, { email })).toBeNull();
      expect(await actions('user.created')).toBe(createdBefore);
      const [denied] = await t.db.db.select().from(auditEvents).where(eq(auditEvents.action, 'user.created.denied'));
      expect(denied).toMatchObject({ actorId: officer.id, details: expect.objectContaining({ email, roles: ['Auditor'], missing: ['audit:read', 'roles:write'] }) });
    });

    it('roles the officer could grant are still created (Citizen, Writer); the default Citizen too', async () => {
      for (const roles of [['Citizen'], ['Writer'], undefined]) {
        const email = `ok-${randomBytes(3).toString('hex')}@example.com`;
        const res = await call(officer.headers, 'POST', '/users', { email, password: GOOD_PASSWORD, ...(roles ? { roles } : {}), county_id: countyId });
        expect(res.statusCode, res.body).toBe(201);
        expect(res.json().user.roles).toEqual(roles ?? ['Citizen']);
      }
    });

    it('the rest of the chain is shut too: an Auditor holder cannot widen Writer, nor create a role beyond its permissions', async () => {
      // Suppose an admin made an Auditor: it still cannot PATCH Writer (it lacks users:*) ...
      const aud = await makeUser(t.ctx, { roles: ['Auditor'] });
      const a = bearer((await login(t.app, aud.email)).access_token);
      const all = ['users:read', 'users:write', 'roles:read', 'roles:write', 'audit:read', 'org:write'];
      const patch = await call(a, 'PATCH', `/roles/${writer.id}`, { permissions: all });
      expect(patch.statusCode, patch.body).toBe(403);
      // ... nor add a permission it lacks to its own role, nor create one.
      expect((await call(a, 'PATCH', `/roles/${auditor.id}`, { permissions: ['audit:read', 'roles:write', 'users:write'] })).statusCode).toBe(403);
      expect((await call(a, 'POST', '/roles', { name: `Mine ${randomBytes(2).toString('hex')}`, permissions: ['users:write'] })).statusCode).toBe(403);
      const role = (await call(admin, 'GET', `/roles/${writer.id}`)).json().role;
      expect(role.permissions).toEqual(['users:read', 'users:write']);
      // within its own permissions it may define roles
      expect((await call(a, 'POST', '/roles', { name: `Reader ${randomBytes(2).toString('hex')}`, permissions: ['audit:read'] })).statusCode).toBe(201);
      expect(await actions('role.updated.denied')).toBe(2);
      // the officer's own permissions never changed
      expect((await call(officer.headers, 'GET', '/auth/current-user')).json().user.permissions).toEqual(['org:read', 'profile:read', 'profile:write', 'users:read', 'users:write']);
    });

    it('only a County Admin edits the County Admin role or grants County Admin', async () => {
      const strong = await makeUser(t.ctx, { roles: ['Department Officer', 'Writer', 'Auditor'], countyId });
      const s = bearer((await login(t.app, strong.email)).access_token);
      const roles = (await call(admin, 'GET', '/roles')).json().roles as { id: number; name: string; permissions: string[] }[];
      const ca = roles.find((r) => r.name === 'County Admin')!;
      expect((await call(s, 'PATCH', `/roles/${ca.id}`, { description: 'hijacked' })).statusCode).toBe(403);
      const citizen = await makeUser(t.ctx, { countyId });
      expect((await call(s, 'POST', `/users/${citizen.id}/roles/County%20Admin`)).statusCode).toBe(403);
      expect((await call(s, 'POST', '/users', { email: `ca-${randomBytes(3).toString('hex')}@example.com`, password: GOOD_PASSWORD, roles: ['County Admin'], county_id: countyId })).statusCode).toBe(403);
      expect((await findUser(t.db.db, { id: citizen.id }))!.roles).toEqual(['Citizen']);
    });
  });

  describe('acting on someone stronger', () => {
    it('an officer with Writer cannot reset-access, deactivate, PATCH or change the roles of a County Admin of their county', async () => {
      const target = await makeUser(t.ctx, { roles: ['County Admin'], countyId, firstName: 'Ada' });
      const targetSession = await login(t.app, target.email);
      const [before] = await t.db.db.select().from(users).where(eq(users.id, target.id));
      for (const [method, url, payload] of [
        ['POST', `/users/${target.id}/reset-access`, undefined],
        ['POST', `/users/${target.id}/deactivate`, undefined],
        ['POST', `/users/${target.id}/unlock`, undefined],
        ['PATCH', `/users/${target.id}`, { first_name: 'Mallory' }],
      ] as const) {
        const res = await call(officer.headers, method, url, payload);
        expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(403);
        expect(envelopeOf(res).code).toBe('FORBIDDEN');
      }
      const [after] = await t.db.db.select().from(users).where(eq(users.id, target.id));
      expect(after).toEqual(before);
      // the admin's session is alive: reset-access and deactivation did not happen
      expect((await call(bearer(targetSession.access_token), 'GET', '/auth/current-user')).statusCode).toBe(200);
      for (const a of ['user.access_reset', 'user.deactivated', 'user.unlocked', 'user.updated']) {
        const rows = await t.db.db.select().from(auditEvents).where(eq(auditEvents.targetUserId, target.id));
        expect(rows.some((r) => r.action === a), a).toBe(false);
        expect(rows.some((r) => r.action === `${a}.denied` && r.actorId === officer.id), `${a}.denied`).toBe(true);
      }
    });

    it('nor act on an account holding any permission the officer lacks (a custom role), but on a citizen of their county it may', async () => {
      const withAudit = await makeUser(t.ctx, { roles: ['Citizen', 'Auditor'], countyId });
      expect((await call(officer.headers, 'POST', `/users/${withAudit.id}/deactivate`)).statusCode).toBe(403);
      const citizen = await makeUser(t.ctx, { countyId });
      expect((await call(officer.headers, 'POST', `/users/${citizen.id}/deactivate`)).statusCode).toBe(200);
      expect((await call(officer.headers, 'PATCH', `/users/${citizen.id}`, { first_name: 'Grace' })).statusCode).toBe(200);
      // out of the county it stays 404, whatever the strength
      const elsewhere = await makeUser(t.ctx, { countyId: (await county(t, 'Mombasa')).id });
      expect((await call(officer.headers, 'POST', `/users/${elsewhere.id}/deactivate`)).statusCode).toBe(404);
    });

    it('a County Admin signed in interactively manages other admins; the same admin through a personal token cannot', async () => {
      const other = await makeUser(t.ctx, { roles: ['County Admin'] });
      const me = await makeUser(t.ctx, { roles: ['County Admin'] });
      const s = await login(t.app, me.email);
      const pat = (await call(bearer(s.access_token), 'POST', '/auth/tokens', { name: 'automation' })).json().token as string;
      expect((await call(bearer(pat), 'POST', `/users/${other.id}/unlock`)).statusCode).toBe(403);
      const citizen = await makeUser(t.ctx);
      expect((await call(bearer(pat), 'POST', `/users/${citizen.id}/roles/County%20Admin`)).statusCode).toBe(403);
      expect((await call(bearer(pat), 'POST', `/users/${citizen.id}/roles/Writer`)).statusCode).toBe(200);
      expect((await call(bearer(s.access_token), 'POST', `/users/${other.id}/unlock`)).statusCode).toBe(200);
      expect((await call(bearer(s.access_token), 'POST', `/users/${citizen.id}/roles/County%20Admin`)).statusCode).toBe(200);
    });
  });
});
