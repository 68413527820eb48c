// The ops CLI against the test database: exit codes, one-line errors, and effects seen through the
// API (same security/ functions, same rules, same audit rows). Commands run in-process through
// runCli, the entry the binary calls, with their own stdin/stdout/stderr; the tests about the process
// itself (argv, a piped stdin, the bin) run real child processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../src/cli/index.js';
import { bearer, buildTestApp, createTestDatabase, GOOD_PASSWORD, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NEW_PASSWORD = 'Amber-Kettle-71-Meadow';

interface Result { code: number | null; stdout: string; stderr: string }

// A child process costs about 1.5 s with tsx, hence the longer timeout.
describe('ops CLI', { timeout: 90_000 }, () => {
  let database: TestDatabase;
  let t: TestApp;

  /** one command line in-process, as the binary runs it */
  async function run(args: string[], input?: string): Promise<Result> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(args, {
      stdin: Readable.from(input === undefined ? [] : [input]),
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { ...process.env, DATABASE_URL: database.url, NODE_ENV: 'test' },
    });
    // the command changed state outside a request of this app: let its auth cache catch up (authSync)
    await t.app.authSync();
    return { code, stdout, stderr };
  }

  /** one command line as a real child process (its argv, its piped stdin, its exit code) */
  function runChild(args: string[], input?: string, entry = ['--import', 'tsx', 'src/cli/index.ts']): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [...entry, ...args], {
        cwd: ROOT,
        env: { ...process.env, DATABASE_URL: database.url, NODE_ENV: 'test' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      if (input !== undefined) child.stdin.write(input);
      child.stdin.end();
    });
  }
  /** a failure: the given exit code and exactly one line on stderr */
  function failed(r: Result, code: number): string {
    expect(r.code, r.stderr).toBe(code);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: /);
    return lines[0]!;
  }
  function ok(r: Result): string {
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  }
  const auditRows = (action: string, userId: number) =>
    t.db.sql`select * from audit_events where action = ${action} and target_user_id = ${userId} order by id`;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('users create: password from stdin, roles, county; --json prints the API user; the user can log in', async () => {
    const email = `cli-${randomBytes(3).toString('hex')}@example.com`;
    const out = ok(await run(['users', 'create', email, '--first-name', 'Achieng', '--role', 'Department Officer', '--role', 'Citizen',
      '--county', '1', '--department', '1', '--password-stdin', '--json'], `${NEW_PASSWORD}\n`));
    const { user } = JSON.parse(out);
    expect(user).toMatchObject({ email, first_name: 'Achieng', roles: ['Citizen', 'Department Officer'], county_id: 1, department_id: 1, active: true });
    expect(out).not.toContain(NEW_PASSWORD);
    await login(t.app, email, NEW_PASSWORD);
    const [row] = await auditRows('user.created', user.id);
    expect(row).toMatchObject({ actor_id: null, ip: null });
    expect(row!.user_agent).toMatch(/^county-services-cli/);
    expect(JSON.stringify(row)).not.toContain(NEW_PASSWORD);
  });

  it('users create: one-line failures for a taken email, a weak password, an unknown role, a bad email; nothing created', async () => {
    const existing = await makeUser(t.ctx);
    expect(failed(await run(['users', 'create', existing.email.toUpperCase(), '--password-stdin'], NEW_PASSWORD), 1)).toMatch(/email/i);
    const weak = `weak-${randomBytes(3).toString('hex')}@example.com`;
    expect(failed(await run(['users', 'create', weak, '--password-stdin'], 'short\n'), 1))
      .toBe('error: password: Password must be at least 8 characters');
    expect(failed(await run(['users', 'create', weak, '--role', 'Wizard', '--password-stdin'], NEW_PASSWORD), 1)).toBe('error: roles: Unknown role: Wizard');
    expect(failed(await run(['users', 'create', 'not-an-email', '--password-stdin'], NEW_PASSWORD), 1)).toMatch(/^error: email: /);
    const [row] = await t.db.sql`select count(*)::int as n from users where lower(email) = ${weak}`;
    expect(row!.n).toBe(0);
  });

  it('passwords never come from the command line: no --password option, and no TTY without --password-stdin is an error', async () => {
    const email = `argv-${randomBytes(3).toString('hex')}@example.com`;
    expect(failed(await runChild(['users', 'create', email, '--password', NEW_PASSWORD]), 2)).toMatch(/Unknown option '--password'/);
    expect(failed(await runChild(['users', 'create', email]), 2)).toMatch(/--password-stdin/);
    expect(failed(await runChild(['users', 'create', email, '--password-stdin'], ''), 2)).toBe('error: no password on stdin');
  });

  it('users show / list: by id or email, human and --json', async () => {
    const marker = `lst${randomBytes(3).toString('hex')}`;
    const u = await makeUser(t.ctx, { email: `${marker}-a@example.com`, firstName: 'Kamau', countyId: 2 });
    await makeUser(t.ctx, { email: `${marker}-b@example.com`, active: false });
    expect(ok(await run(['users', 'show', String(u.id)]))).toMatch(new RegExp(`email:\\s+${u.email}[\\s\\S]*county_id:\\s+2`));
    expect(JSON.parse(ok(await run(['users', 'show', u.email.toUpperCase(), '--json']))).user.id).toBe(u.id);
    const list = JSON.parse(ok(await run(['users', 'list', '--q', marker, '--active', 'yes', '--json'])));
    expect(list).toMatchObject({ total: 1, page: 1, per_page: 20 });
    expect(list.users[0].email).toBe(u.email);
    const human = ok(await run(['users', 'list', '--q', marker, '--sort=-email']));
    expect(human.split('\n')[0]).toMatch(/^ID\s+EMAIL\s+ACTIVE\s+ROLES\s+COUNTY$/);
    expect(human.indexOf(`${marker}-b`)).toBeLessThan(human.indexOf(`${marker}-a`));
    expect(human).toMatch(/page 1 of 1, 2 user\(s\)/);
    expect(failed(await run(['users', 'list', '--per-page', '101']), 1)).toMatch(/^error: per_page: /);
    expect(failed(await run(['users', 'list', '--sort', 'password']), 1)).toMatch(/^error: sort: /);
    expect(failed(await run(['users', 'show', 'nobody@example.com']), 1)).toBe('error: User not found');
  });

  it('deactivate kills live tokens at once; activate; reset-access; unlock; exactly as the API does', async () => {
    const u = await makeUser(t.ctx);
    const s = await login(t.app, u.email);
    expect(ok(await run(['users', 'deactivate', u.email]))).toMatch(/deactivate: user \d+ .* active: no/);
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(401);
    expect(JSON.parse(ok(await run(['users', 'activate', String(u.id), '--json']))).user.active).toBe(true);
    const s2 = await login(t.app, u.email);
    ok(await run(['users', 'reset-access', String(u.id)]));
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s2.access_token) })).statusCode).toBe(401);
    expect(JSON.parse(ok(await run(['users', 'unlock', u.email, '--json']))).user.id).toBe(u.id);
    for (const action of ['user.deactivated', 'user.activated', 'user.access_reset', 'user.unlocked']) {
      expect((await auditRows(action, u.id)).length, action).toBe(1);
    }
    expect(failed(await run(['users', 'deactivate', '999999']), 1)).toBe('error: User not found');
  });

  it('change-password: policy applies; the new password works, the old one and every session do not', async () => {
    const u = await makeUser(t.ctx);
    const s = await login(t.app, u.email);
    expect(failed(await run(['users', 'change-password', u.email, '--password-stdin'], 'password123\n'), 1)).toMatch(/^error: password: .*common/);
    await login(t.app, u.email);
    ok(await run(['users', 'change-password', u.email, '--password-stdin'], `${NEW_PASSWORD}\r\n`));
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: GOOD_PASSWORD } })).statusCode).toBe(401);
    await login(t.app, u.email, NEW_PASSWORD);
    expect((await auditRows('user.password_set', u.id)).length).toBe(1);
  });

  it('roles: create, list, add/remove permissions, add/remove to users; unknown names fail in one line', async () => {
    const name = `Auditor ${randomBytes(2).toString('hex')}`;
    const { role } = JSON.parse(ok(await run(['roles', 'create', name, '--description', 'Reads the log', '--permission', 'audit:read', '--json'])));
    expect(role).toMatchObject({ name, permissions: ['audit:read'], seeded: false });
    expect(ok(await run(['roles', 'list']))).toMatch(new RegExp(`${name}\\s+0\\s+audit:read`));
    expect(JSON.parse(ok(await run(['roles', 'add-permissions', name, 'users:read', 'org:read', '--json']))).role.permissions)
      .toEqual(['audit:read', 'org:read', 'users:read']);
    expect(JSON.parse(ok(await run(['roles', 'remove-permissions', name, 'org:read', '--json']))).role.permissions).toEqual(['audit:read', 'users:read']);
    expect(failed(await run(['roles', 'add-permissions', name, 'NOT VALID']), 1)).toMatch(/^error: permissions: Invalid permission/);
    expect(failed(await run(['roles', 'create', name]), 1)).toMatch(/^error: name: /);

    const u = await makeUser(t.ctx);
    const s = bearer((await login(t.app, u.email)).access_token);
    expect((await t.app.inject({ url: '/audit', headers: s })).statusCode).toBe(403);
    expect(JSON.parse(ok(await run(['roles', 'add', u.email, name, '--json']))).user.roles).toEqual([name, 'Citizen'].sort());
    expect((await t.app.inject({ url: '/audit', headers: s })).statusCode).toBe(200);
    ok(await run(['roles', 'remove', String(u.id), name]));
    expect((await t.app.inject({ url: '/audit', headers: s })).statusCode).toBe(403);

    expect(failed(await run(['roles', 'add', u.email, 'Wizard']), 1)).toBe('error: Role not found');
    expect(failed(await run(['roles', 'add-permissions', 'Wizard', 'a:b']), 1)).toBe('error: Role not found');
    expect(failed(await run(['roles', 'add', 'ghost@example.com', name]), 1)).toBe('error: User not found');
  });

  it('the last active County Admin cannot be deactivated or demoted from the CLI either', async () => {
    const [row] = await t.db.sql`select count(*)::int as n from roles_users ru join roles r on r.id = ru.role_id join users u on u.id = ru.user_id
      where r.name = 'County Admin' and u.active`;
    expect(row!.n).toBe(0);
    const admin = await makeUser(t.ctx, { roles: ['County Admin'] });
    expect(failed(await run(['users', 'deactivate', admin.email]), 1)).toMatch(/last active County Admin/);
    expect(failed(await run(['roles', 'remove', admin.email, 'County Admin']), 1)).toMatch(/last active County Admin/);
    expect((await t.app.inject({ url: `/users/${admin.id}`, headers: bearer((await login(t.app, admin.email)).access_token) })).json().user.active).toBe(true);
  });

  it('audit export: JSON lines, oldest first, filterable', async () => {
    const all = ok(await run(['audit', 'export'])).trimEnd().split('\n').map((l) => JSON.parse(l));
    const [count] = await t.db.sql`select count(*)::int as n from audit_events`;
    expect(all).toHaveLength(count!.n);
    expect(all.map((e) => e.id)).toEqual([...all.map((e) => e.id)].sort((a, b) => a - b));
    expect(Object.keys(all[0]).sort()).toEqual(['action', 'actor_id', 'created_at', 'details', 'id', 'ip', 'request_id', 'target_user_id', 'user_agent']);
    const deactivations = ok(await run(['audit', 'export', '--action', 'user.deactivated'])).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(deactivations.length).toBeGreaterThan(0);
    expect(deactivations.every((e) => e.action === 'user.deactivated')).toBe(true);
    expect(ok(await run(['audit', 'export', '--from', '2999-01-01']))).toBe('');
    expect(failed(await run(['audit', 'export', '--from', 'yesterday']), 2)).toMatch(/--from/);
  });

  it('usage errors exit 2 with one line; --help exits 0; the bin runs the same CLI', async () => {
    expect(failed(await runChild(['users', 'frobnicate']), 2)).toBe('error: unknown command "users frobnicate"; run county-services --help');
    expect(failed(await runChild(['users', 'show']), 2)).toBe('error: usage: county-services users show USER');
    expect(failed(await runChild(['users', 'list', '--county', 'abc']), 2)).toBe('error: --county must be a positive integer');
    const help = await runChild(['--help'], undefined, ['bin/county-services.js']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/users deactivate USER/);
    expect(help.stdout).toMatch(/audit export/);
  });
});
