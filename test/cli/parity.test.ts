// CLI parity with the admin API: each command added for an HTTP operation prints (with --json) the body
// the API answers, applies the same rules (same core function, same TypeBox schema), and its effect is
// seen through the API. Commands run in-process (test/support/cli.ts); the parity table in
// docs/operations.md is checked against openapi/openapi.json and the CLI's command list.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/commands.js';
import { errorLine, UsageError } from '../../src/cli/io.js';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { county } from '../support/principals.js';
import { runCli, runCliJson } from '../support/cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tag = () => randomBytes(3).toString('hex');

describe('CLI parity with the admin API', () => {
  let database: TestDatabase;
  let t: TestApp;
  let admin: Record<string, string>;
  const api = async (method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', url: string, payload?: object) => {
    const res = await t.app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: res.body ? res.json() : undefined };
  };
  /** the one line the CLI would print after "error: " */
  const failure = async (argv: string[]) => {
    try {
      await runCli(t.ctx, argv);
    } catch (err) {
      return { line: errorLine(err), usage: err instanceof UsageError };
    }
    throw new Error(`${argv.join(' ')} succeeded`);
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    const a = await makeUser(t.ctx, { roles: ['County Admin'] });
    admin = bearer((await login(t.app, a.email)).access_token);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('users update: profile, county and department as PATCH /users/{id}; the same refusals; empty clears', async () => {
    const a = await county(t, 'Nairobi');
    const b = await county(t, 'Mombasa');
    const u = await makeUser(t.ctx, { firstName: 'Old', countyId: a.id, departmentId: a.departmentIds[0] });
    const { user } = await runCliJson<{ user: Record<string, unknown> }>(t.ctx, ['users', 'update', u.email, '--first-name', 'Wanjiru', '--last-name', 'Kariuki',
      '--phone', '+254700000001', '--county', String(b.id), '--department', String(b.departmentIds[0])]);
    expect(user).toMatchObject({ first_name: 'Wanjiru', full_name: 'Wanjiru Kariuki', phone_number: '+254700000001', county_id: b.id, department_id: b.departmentIds[0] });
    expect((await api('GET', `/users/${u.id}`)).body).toEqual({ user });

    // the API's own answers to the same mistakes
    const wrongDep = await failure(['users', 'update', String(u.id), '--department', String(a.departmentIds[0])]);
    const viaApi = await api('PATCH', `/users/${u.id}`, { department_id: a.departmentIds[0] });
    expect(viaApi.status).toBe(400);
    expect(wrongDep.line).toBe(`department_id: ${viaApi.body.fields.department_id[0]}`);
    expect((await failure(['users', 'update', String(u.id), '--county', String(a.id)])).line).toMatch(/^department_id: /);
    const long = await failure(['users', 'update', String(u.id), '--first-name', 'x'.repeat(101)]);
    expect(long.line).toMatch(/^first_name: Must be at most 100 characters/);
    expect((await api('PATCH', `/users/${u.id}`, { first_name: 'x'.repeat(101) })).status).toBe(400);
    expect(await failure(['users', 'update', String(u.id)])).toEqual({ line: expect.stringMatching(/nothing to update/), usage: true });
    expect((await failure(['users', 'update', String(u.id), '--county', 'abc'])).usage).toBe(true);

    const cleared = await runCliJson<{ user: Record<string, unknown> }>(t.ctx, ['users', 'update', String(u.id), '--last-name', '', '--county', 'none', '--department', 'none']);
    expect(cleared.user).toMatchObject({ last_name: null, full_name: 'Wanjiru', county_id: null, department_id: null });
    const [row] = await t.db.sql`select details from audit_events where action = 'user.updated' and target_user_id = ${u.id} and actor_id is null order by id limit 1`;
    expect(row!.details.fields).toEqual(expect.arrayContaining(['first_name', 'county_id', 'department_id']));
  });

  it('users set-roles: the full set as PUT /users/{id}/roles, taking effect on the next request; unknown roles and the last admin refused', async () => {
    const u = await makeUser(t.ctx);
    // a fresh session after each change: what a grant does to a live, cached session through another
    // process is test/cli/beside-server.test.ts's and the cache's business (security/auth-cache.ts)
    const rolesStatus = async () => (await t.app.inject({ url: '/roles', headers: bearer((await login(t.app, u.email)).access_token) })).statusCode;
    expect(await rolesStatus()).toBe(403);
    const { user } = await runCliJson<{ user: { roles: string[] } }>(t.ctx, ['users', 'set-roles', u.email, 'County Admin', 'Citizen']);
    expect(user.roles).toEqual(['Citizen', 'County Admin']);
    expect(await rolesStatus()).toBe(200);
    expect((await runCliJson<{ user: { roles: string[] } }>(t.ctx, ['users', 'set-roles', String(u.id), 'Citizen'])).user.roles).toEqual(['Citizen']);
    expect(await rolesStatus()).toBe(403);

    expect((await failure(['users', 'set-roles', u.email, 'Citizen', 'Wizard'])).line).toBe('roles: Unknown role: Wizard');
    expect((await api('PUT', `/users/${u.id}/roles`, { roles: ['Citizen', 'Wizard'] })).body.fields.roles).toEqual(['Unknown role: Wizard']);
    expect(await failure(['users', 'set-roles', u.email])).toEqual({ line: expect.stringMatching(/--none/), usage: true });
    expect((await runCliJson<{ user: { roles: string[] } }>(t.ctx, ['users', 'set-roles', u.email, '--none'])).user.roles).toEqual([]);

    // the only active County Admin of this database keeps the role (the same 409 as the API's)
    const [{ n }] = await t.db.sql`select count(*)::int as n from roles_users ru join roles r on r.id = ru.role_id join users x on x.id = ru.user_id
      where r.name = 'County Admin' and x.active` as unknown as [{ n: number }];
    expect(n).toBe(1);
    const [{ id: adminId }] = await t.db.sql`select ru.user_id as id from roles_users ru join roles r on r.id = ru.role_id where r.name = 'County Admin'` as unknown as [{ id: number }];
    expect((await failure(['users', 'set-roles', String(adminId), 'Citizen'])).line).toMatch(/last active County Admin/);
  });

  it('roles show / update (rename, description, permissions) / delete (force) as GET/PATCH/DELETE /roles/{id}', async () => {
    const name = `Clerk ${tag()}`;
    const created = await runCliJson<{ role: { id: number } }>(t.ctx, ['roles', 'create', name, '--permission', 'org:read']);
    const id = created.role.id;
    expect(await runCliJson(t.ctx, ['roles', 'show', name])).toEqual((await api('GET', `/roles/${id}`)).body);
    expect(await runCli(t.ctx, ['roles', 'show', String(id)])).toMatch(new RegExp(`name:\\s+${name}[\\s\\S]*permissions:\\s+org:read`));

    const renamed = `Registrar ${tag()}`;
    const { role } = await runCliJson<{ role: Record<string, unknown> }>(t.ctx, ['roles', 'update', name, '--name', renamed, '--description', 'Keeps the books',
      '--permission', 'audit:read', '--permission', 'users:read']);
    expect(role).toMatchObject({ id, name: renamed, description: 'Keeps the books', permissions: ['audit:read', 'users:read'] });
    expect((await api('GET', `/roles/${id}`)).body).toEqual({ role });
    expect((await runCliJson<{ role: { permissions: string[] } }>(t.ctx, ['roles', 'update', String(id), '--no-permissions'])).role.permissions).toEqual([]);

    expect((await failure(['roles', 'update', 'Citizen', '--name', 'Resident'])).line).toMatch(/seeded role "Citizen" cannot be renamed/);
    expect((await api('PATCH', `/roles/${(await runCliJson<{ role: { id: number } }>(t.ctx, ['roles', 'show', 'Citizen'])).role.id}`, { name: 'Resident' })).status).toBe(409);
    expect((await failure(['roles', 'update', renamed, '--name', 'County Admin'])).line).toMatch(/already|taken/i);
    expect((await failure(['roles', 'update', renamed, '--permission', 'NOT VALID'])).line).toMatch(/^permissions: /);
    expect((await failure(['roles', 'update', renamed])).usage).toBe(true);
    expect((await failure(['roles', 'show', 'Wizard'])).line).toBe('Role not found');

    const u = await makeUser(t.ctx, { roles: ['Citizen', renamed] });
    expect((await failure(['roles', 'delete', renamed])).line).toMatch(/assigned to 1 user/);
    expect((await failure(['roles', 'delete', 'County Admin', '--force'])).line).toMatch(/seeded role/);
    expect(await runCli(t.ctx, ['roles', 'delete', renamed, '--force'])).toMatch(new RegExp(`deleted role ${id}`));
    expect((await api('GET', `/roles/${id}`)).status).toBe(404);
    expect((await api('GET', `/users/${u.id}`)).body.user.roles).toEqual(['Citizen']);
  });

  it('counties and departments: list and create as /counties and /counties/{id}/departments', async () => {
    expect(await runCliJson(t.ctx, ['counties', 'list'])).toEqual((await api('GET', '/counties')).body);
    const name = `Kisumu ${tag()}`;
    const { county: c } = await runCliJson<{ county: { id: number; name: string } }>(t.ctx, ['counties', 'create', name]);
    expect(c.name).toBe(name);
    expect((await api('GET', '/counties')).body.counties).toContainEqual(c);
    expect((await failure(['counties', 'create', name])).line).toMatch(/^name: Name is taken/);
    expect((await failure(['counties', 'create', 'x'.repeat(101)])).line).toMatch(/^name: /);

    const { department } = await runCliJson<{ department: { id: number; county_id: number } }>(t.ctx, ['departments', 'create', String(c.id), 'Water']);
    expect(department.county_id).toBe(c.id);
    expect(await runCliJson(t.ctx, ['departments', 'list', String(c.id)])).toEqual((await api('GET', `/counties/${c.id}/departments`)).body);
    expect((await failure(['departments', 'create', String(c.id), 'Water'])).line).toMatch(/^name: /);
    expect((await failure(['departments', 'list', '999999'])).line).toBe('County not found');
    expect((await failure(['departments', 'create', '999999', 'Roads'])).line).toBe('County not found');
    expect((await failure(['departments', 'list', 'abc'])).usage).toBe(true);
    // the new department is usable at once: a user can be placed in it
    const u = await makeUser(t.ctx);
    expect((await runCliJson<{ user: Record<string, unknown> }>(t.ctx, ['users', 'update', String(u.id), '--county', String(c.id), '--department', String(department.id)])).user)
      .toMatchObject({ county_id: c.id, department_id: department.id });
  });

  it('audit list: the page of GET /audit, with its cursor and filters', async () => {
    const page = await runCliJson<{ events: { id: number; action: string }[]; next_cursor: string }>(t.ctx, ['audit', 'list', '--limit', '3']);
    expect(page).toEqual((await api('GET', '/audit?limit=3')).body);
    expect(page.events).toHaveLength(3);
    const older = await runCliJson(t.ctx, ['audit', 'list', '--limit', '3', '--cursor', page.next_cursor]);
    expect(older).toEqual((await api('GET', `/audit?limit=3&cursor=${page.next_cursor}`)).body);
    const filtered = await runCliJson<{ events: { action: string }[] }>(t.ctx, ['audit', 'list', '--action', 'role.deleted']);
    expect(filtered).toEqual((await api('GET', '/audit?action=role.deleted')).body);
    expect(await runCli(t.ctx, ['audit', 'list', '--limit', '1'])).toMatch(/^ID\s+TIME\s+ACTION\s+ACTOR\s+TARGET\n[\s\S]*older: --cursor /);
    expect((await failure(['audit', 'list', '--limit', '101'])).line).toMatch(/^limit: /);
    expect((await failure(['audit', 'list', '--action', 'NOT VALID'])).line).toMatch(/^action: /);
    expect((await failure(['audit', 'list', '--cursor', 'bogus'])).line).toBe('cursor: Invalid cursor');
  });

  it('the parity table in docs/operations.md: every admin operation has its CLI command, every command its row', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
    const section = doc.slice(doc.indexOf('<!-- parity-table -->'), doc.indexOf('<!-- /parity-table -->'));
    expect(section.length).toBeGreaterThan(100);
    const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| HTTP') && !l.startsWith('|---'));
    const openapi = JSON.parse(readFileSync(path.join(ROOT, 'openapi/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, { operationId: string; tags: string[] }>> };
    const adminOps = Object.values(openapi.paths).flatMap((m) => Object.values(m))
      .filter((o) => o.tags.some((x) => ['users', 'roles', 'org', 'audit'].includes(x)) && o.operationId !== 'getActivity')
      .map((o) => o.operationId);
    expect(adminOps.length).toBeGreaterThanOrEqual(20);
    const commandsOf = (row: string) => [...(row.split('|')[2] ?? '').matchAll(/`([a-z-]+ [a-z-]+)[^`]*`/g)].map((m) => m[1]!);
    for (const op of adminOps) {
      const row = rows.find((r) => r.includes(`(${op})`));
      expect(row, `no row for ${op}`).toBeDefined();
      const commands = commandsOf(row!);
      expect(commands.length, `no CLI command for ${op}`).toBeGreaterThan(0);
      for (const c of commands) expect(Object.keys(COMMANDS), `${op}: ${c}`).toContain(c);
    }
    const named = new Set(rows.flatMap(commandsOf));
    for (const c of [...Object.keys(COMMANDS), 'db migrate', 'db seed']) expect(named.has(c), `no row for the command ${c}`).toBe(true);
  });
});
