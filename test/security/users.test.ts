import { describe, expect, it } from 'vitest';
import { NO_SOURCE } from '../../src/security/audit.js';
import { lockoutStatus, reserveAttempt, settleFailure } from '../../src/security/lockout.js';
import {
  deactivateAccount, GLOBAL_SCOPE, unlockAccount, listUsersJson, requireUserInScope, revokeRole, scopeOf, setAccountRoles, type Actor,
} from '../../src/security/users.js';
import { SYSTEM_PRINCIPAL, userPrincipal, type Principal } from '../../src/security/delegation.js';
import { makeUser, useTestApp } from '../support/helper.js';

// A user id acts as an interactive County Admin; null is the system (the CLI).
const adminPrincipal = (id: number) => userPrincipal({ id, roles: ['County Admin'], permissions: [] }, 'session');
const actor = (id: number | null, scope = GLOBAL_SCOPE, principal: Principal = id === null ? SYSTEM_PRINCIPAL : adminPrincipal(id)): Actor =>
  ({ ...NO_SOURCE, actorId: id, scope, principal });

describe('security/users', () => {
  const t = useTestApp();

  const activeAdmins = async () =>
    (await t.db.sql`select count(*)::int as n from roles_users ru join roles r on r.id = ru.role_id join users u on u.id = ru.user_id
      where r.name = 'County Admin' and u.active`)[0]!.n as number;

  it('scopeOf: County Admin everywhere; others in their county; no county, nobody', async () => {
    expect(scopeOf({ roles: ['County Admin'], countyId: 3 })).toEqual({ kind: 'all' });
    expect(scopeOf({ roles: ['Department Officer'], countyId: 3 })).toEqual({ kind: 'county', countyId: 3 });
    const u = await makeUser(t.ctx, { countyId: 1 });
    await expect(requireUserInScope(t.db.db, { kind: 'county', countyId: 2 }, u.id)).rejects.toMatchObject({ statusCode: 404 });
    await expect(requireUserInScope(t.db.db, { kind: 'county', countyId: null }, u.id)).rejects.toMatchObject({ statusCode: 404 });
    expect((await requireUserInScope(t.db.db, { kind: 'county', countyId: 1 }, u.id)).id).toBe(u.id);
    const nobody = await listUsersJson(t.ctx, { kind: 'county', countyId: null }, { page: 1, perPage: 10 });
    expect(JSON.parse(nobody)).toEqual({ users: [], page: 1, per_page: 10, total: 0 });
  });

  it('listUsersJson validates its own input (the CLI has no schema in front of it)', async () => {
    await expect(listUsersJson(t.ctx, GLOBAL_SCOPE, { page: 1, perPage: 101 })).rejects.toMatchObject({ statusCode: 400, fields: { per_page: expect.any(Array) } });
    await expect(listUsersJson(t.ctx, GLOBAL_SCOPE, { page: 0, perPage: 10 })).rejects.toMatchObject({ fields: { page: expect.any(Array) } });
    await expect(listUsersJson(t.ctx, GLOBAL_SCOPE, { page: 1, perPage: 10, sort: 'password' })).rejects.toMatchObject({ fields: { sort: expect.any(Array) } });
  });

  it('two admins deactivating each other at the same moment: exactly one succeeds, one admin remains', async () => {
    expect(await activeAdmins()).toBe(0);
    const a = await makeUser(t.ctx, { roles: ['County Admin'] });
    const b = await makeUser(t.ctx, { roles: ['County Admin'] });
    for (let round = 0; round < 3; round++) {
      const results = await Promise.allSettled([
        deactivateAccount(t.ctx, actor(a.id), b.id),
        deactivateAccount(t.ctx, actor(b.id), a.id),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(rejected.reason).toMatchObject({ statusCode: 409, code: 'CONFLICT' });
      expect(await activeAdmins()).toBe(1);
      await t.db.sql`update users set active = true where id in (${a.id}, ${b.id})`;
    }
  });

  it('the last admin cannot be deactivated or demoted even by the CLI (no actor)', async () => {
    const [other] = await t.db.sql`select u.id from users u join roles_users ru on ru.user_id = u.id join roles r on r.id = ru.role_id where r.name = 'County Admin' order by u.id desc limit 1`;
    await deactivateAccount(t.ctx, actor(null), other!.id as number);
    const [last] = await t.db.sql`select u.id from users u join roles_users ru on ru.user_id = u.id join roles r on r.id = ru.role_id where r.name = 'County Admin' and u.active`;
    const id = last!.id as number;
    await expect(deactivateAccount(t.ctx, actor(null), id)).rejects.toMatchObject({ statusCode: 409 });
    await expect(revokeRole(t.ctx, actor(null), id, 'County Admin')).rejects.toMatchObject({ statusCode: 409 });
    await expect(setAccountRoles(t.ctx, actor(null), id, [])).rejects.toMatchObject({ statusCode: 409 });
    expect(await activeAdmins()).toBe(1);
  });

  it('a county-scoped actor cannot grant or revoke County Admin', async () => {
    const u = await makeUser(t.ctx, { countyId: 1 });
    const officer = await makeUser(t.ctx, { roles: ['Department Officer'], countyId: 1 });
    const strong = userPrincipal({ id: officer.id, roles: officer.roles, permissions: [...officer.permissions, 'users:write', 'roles:write'] }, 'session');
    const scoped = actor(officer.id, { kind: 'county', countyId: 1 }, strong);
    await expect(setAccountRoles(t.ctx, scoped, u.id, ['County Admin'])).rejects.toMatchObject({ statusCode: 403 });
    expect((await setAccountRoles(t.ctx, scoped, u.id, ['Department Officer'])).roles).toEqual(['Department Officer']);
  });

  it('unlockAccount lifts the lock and writes its audit row in one transaction: when the audit row fails, the lock stays', async () => {
    const u = await makeUser(t.ctx);
    for (let i = 0; i < t.config.SECURITY_LOCKOUT_THRESHOLD; i++) await settleFailure(t.ctx, await reserveAttempt(t.ctx, u.email));
    expect((await lockoutStatus(t.ctx, u.email)).locked).toBe(true);
    // PostgreSQL refuses a NUL in text: the audit insert fails inside the transaction
    await expect(unlockAccount(t.ctx, { ...actor(null), ip: 'bad\u0000ip' }, u.id)).rejects.toThrow();
    expect((await lockoutStatus(t.ctx, u.email)).locked).toBe(true);
    await unlockAccount(t.ctx, actor(null), u.id);
    expect((await lockoutStatus(t.ctx, u.email)).locked).toBe(false);
  });
});
