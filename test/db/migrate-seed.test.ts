import { describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { runMigrations } from '../../src/db/migrate.js';
import { SEEDED_ROLES } from '../../src/security/role-names.js';
import { DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, seed } from '../../src/security/seed.js';
import { findUser } from '../../src/security/datastore.js';
import { useTestApp } from '../support/helper.js';

describe('migrations and seed', () => {
  const t = useTestApp();

  const counts = async () => {
    const rows = await t.db.sql`select (select count(*) from roles)::int as roles, (select count(*) from counties)::int as counties,
      (select count(*) from departments)::int as departments, (select count(*) from users)::int as users`;
    return rows[0];
  };

  it('migrations are idempotent: running them again changes nothing', async () => {
    const before = await t.db.sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
    await runMigrations(t.db.db);
    const after = await t.db.sql`select count(*)::int as n from drizzle.__drizzle_migrations`;
    expect(after[0]!.n).toBe(before[0]!.n);
    expect(before[0]!.n).toBeGreaterThanOrEqual(2);
  });

  it('the schema has the contract tables, a case-insensitive unique email and a unique fs_uniquifier', async () => {
    const tables = await t.db.sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`;
    expect(tables.map((r) => r.table_name)).toEqual(expect.arrayContaining(['users', 'roles', 'roles_users', 'counties', 'departments', 'sessions']));
    await t.db.sql`insert into users (email, password, fs_uniquifier) values ('Case@Example.com', 'x', 'u1')`;
    await expect(t.db.sql`insert into users (email, password, fs_uniquifier) values ('case@example.COM', 'x', 'u2')`).rejects.toMatchObject({ code: '23505' });
    await expect(t.db.sql`insert into users (email, password, fs_uniquifier) values ('other@example.com', 'x', 'u1')`).rejects.toMatchObject({ code: '23505' });
    await t.db.sql`delete from users where fs_uniquifier = 'u1'`;
  });

  it('roles_users cascades when a user is deleted', async () => {
    const [u] = await t.db.sql`insert into users (email, password, fs_uniquifier) values ('cascade@example.com', 'x', 'u3') returning id`;
    await t.db.sql`insert into roles_users (user_id, role_id) select ${u!.id}, id from roles where name = 'Citizen'`;
    await t.db.sql`delete from users where id = ${u!.id}`;
    const left = await t.db.sql`select count(*)::int as n from roles_users where user_id = ${u!.id}`;
    expect(left[0]!.n).toBe(0);
  });

  it('the template was seeded with the three roles and their permissions', async () => {
    const rows = await t.db.db.execute(sql`select name, permissions from roles order by id`);
    const byName = Object.fromEntries(rows.map((r) => [r.name, r.permissions]));
    for (const role of SEEDED_ROLES) expect(byName[role.name]).toEqual([...role.permissions].sort());
    expect(byName['County Admin']).toEqual(expect.arrayContaining(['users:write', 'roles:write', 'audit:read', 'org:write']));
    expect(byName['Department Officer']).toContain('users:read');
  });

  it('seed is idempotent and does not overwrite edited roles', async () => {
    await t.db.sql`update roles set description = 'edited' where name = 'Citizen'`;
    const before = await counts();
    const r = await seed(t.ctx, { devAdmin: false });
    expect(r).toMatchObject({ roles: 0, counties: 0, departments: 0, devAdminCreated: false });
    expect(await counts()).toEqual(before);
    const [citizen] = await t.db.sql`select description from roles where name = 'Citizen'`;
    expect(citizen!.description).toBe('edited');
  });

  it('the development seed creates the test admin once, with a warning that never prints the password', async () => {
    const warnings: string[] = [];
    const first = await seed(t.ctx, { devAdmin: true, warn: (m) => warnings.push(m) });
    const second = await seed(t.ctx, { devAdmin: true, warn: (m) => warnings.push(m) });
    expect(first.devAdminCreated).toBe(true);
    expect(second.devAdminCreated).toBe(false);
    const admin = await findUser(t.ctx.db, { email: DEV_ADMIN_EMAIL });
    expect(admin?.roles).toEqual(['County Admin']);
    expect(admin?.confirmedAt).not.toBeNull();
    expect((await t.ctx.passwords.verify(DEV_ADMIN_PASSWORD, admin!.password)).ok).toBe(true);
    expect(warnings.length).toBe(2);
    expect(warnings.join(' ')).toMatch(/DEVELOPMENT ONLY/);
    expect(warnings.join(' ')).not.toContain(DEV_ADMIN_PASSWORD);
  });

  it('concurrent seeders do not collide', async () => {
    const results = await Promise.all([seed(t.ctx, { devAdmin: false }), seed(t.ctx, { devAdmin: false }), seed(t.ctx, { devAdmin: false })]);
    expect(results.every((r) => r.roles === 0)).toBe(true);
  });
});
