// User administration: the one code path behind the /users routes and the `users …` / `roles add|remove`
// CLI commands. Each function checks the actor's scope, applies the rules (no self-deactivation, the last
// active County Admin stays), makes the change and writes its audit row in one transaction.
import { and, asc, count, desc, eq, ilike, inArray, ne, notInArray, or, sql, type SQL } from 'drizzle-orm';
import { departments, roles, rolesUsers, users } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { advisoryXactLock } from '../db/locks.js';
import { ROLE_ADMIN, ROLE_CITIZEN } from './role-names.js';
import { AppError, notFound, validationError } from '../errors.js';
import { audit, type AuditSource } from './audit.js';
import { checkPasswordPolicy } from './auth.js';
import type { SecurityContext } from './context.js';
import {
  activateUser, addRoleToUser, createUser, deactivateUser, findRole, findUser, mapUserWriteError,
  removeRoleFromUser, resetUserAccess, setPassword, type UserRecord,
} from './datastore.js';
import { unlockEmail } from './lockout.js';
import {
  assertMayActOn, assertMayGrant, assertMayRevoke, denialAudited, standingOf, SYSTEM_PRINCIPAL, type Principal,
} from './delegation.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

/**
 * Which users an actor may see and manage. County Admins (and the ops CLI) work everywhere; everyone
 * else works inside their own county, and without a county sees nobody.
 */
export type UserScope = { kind: 'all' } | { kind: 'county'; countyId: number | null };
export const GLOBAL_SCOPE: UserScope = Object.freeze({ kind: 'all' });

export function scopeOf(user: Pick<UserRecord, 'roles' | 'countyId'>): UserScope {
  return user.roles.includes(ROLE_ADMIN) ? GLOBAL_SCOPE : { kind: 'county', countyId: user.countyId };
}

/**
 * The caller of an administrative function: where the request came from, which users it sees (scope)
 * and how strong it is (principal: the delegation rule of security/delegation.ts).
 */
export interface Actor extends AuditSource {
  scope: UserScope;
  principal: Principal;
}

/** The ops CLI and other in-process operators: the system principal, every county. */
export function systemActor(source: AuditSource): Actor {
  return { ...source, scope: GLOBAL_SCOPE, principal: SYSTEM_PRINCIPAL };
}

/**
 * The target of an action on another account: locked (role changes and actions on one user serialise),
 * inside the actor's scope (404 otherwise), and no stronger than the actor (403 otherwise).
 */
async function requireTarget(tx: Tx, actor: Actor, id: number): Promise<UserRecord> {
  await tx.select({ id: users.id }).from(users).where(eq(users.id, id)).for('update');
  const user = await requireUserInScope(tx, actor.scope, id);
  assertMayActOn(actor.principal, standingOf(user));
  return user;
}

export const conflict = (message: string) => new AppError(409, 'CONFLICT', message);
const OUTSIDE_COUNTY = 'You can only manage users of your own county';

function scopeWhere(scope: UserScope): SQL | undefined {
  if (scope.kind === 'all') return undefined;
  return scope.countyId === null ? sql`false` : eq(users.countyId, scope.countyId);
}

function inScope(scope: UserScope, user: UserRecord): boolean {
  return scope.kind === 'all' || (scope.countyId !== null && user.countyId === scope.countyId);
}

/** The user, or 404 when it does not exist or lies outside the scope (ids of other counties do not leak). */
export async function requireUserInScope(db: Db, scope: UserScope, id: number): Promise<UserRecord> {
  const user = await findUser(db, { id });
  if (!user || !inScope(scope, user)) throw notFound('User');
  return user;
}

/** Resolves the CLI's USER argument: a numeric id or an email address. */
export async function resolveUser(db: Db, ref: string): Promise<UserRecord> {
  const user = /^[0-9]{1,10}$/.test(ref) ? await findUser(db, { id: Number(ref) }) : await findUser(db, { email: ref });
  if (!user) throw notFound('User');
  return user;
}

// ---------------------------------------------------------------------------------------------- list

export const USER_SORT_FIELDS = {
  id: users.id,
  email: users.email,
  first_name: users.firstName,
  last_name: users.lastName,
  created_at: users.createdAt,
  updated_at: users.updatedAt,
  last_login_at: users.lastLoginAt,
  current_login_at: users.currentLoginAt,
  login_count: users.loginCount,
} as const;
export const MAX_PER_PAGE = 100;

export interface UserListQuery {
  page: number;
  perPage: number;
  /** substring of email, first name, last name or full name (case-insensitive) */
  q?: string;
  role?: string;
  active?: boolean;
  countyId?: number;
  /** comma-separated fields of USER_SORT_FIELDS, `-` for descending: "email,-created_at" */
  sort?: string;
}

const queryError = (field: string, message: string) => validationError({ [field]: [message] }, 'Query parameters are invalid');

export function parseSort(sort: string | undefined): SQL[] {
  const order: SQL[] = [];
  const seen = new Set<string>();
  for (const raw of (sort ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const descending = raw.startsWith('-');
    const name = descending ? raw.slice(1) : raw;
    if (!Object.hasOwn(USER_SORT_FIELDS, name)) {
      throw queryError('sort', `Unknown sort field "${name}"; use ${Object.keys(USER_SORT_FIELDS).join(', ')}`);
    }
    if (seen.has(name)) continue;
    seen.add(name);
    const column = USER_SORT_FIELDS[name as keyof typeof USER_SORT_FIELDS];
    order.push(descending ? desc(column) : asc(column));
  }
  // A unique tiebreaker keeps pages stable.
  if (!seen.has('id')) order.push(asc(users.id));
  return order;
}

const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** An ISO-8601 UTC timestamp with milliseconds, exactly as Date.prototype.toISOString writes it. */
const isoUtc = (column: SQL.Aliased | SQL) => sql`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * One page of users as the API's JSON text, built by PostgreSQL: `{users, page, per_page, total}` where each
 * user is the public user of GET /users/{id} (src/security/presenters.ts; test/routes/users/users.test.ts
 * compares them field by field). The fast path of an admin listing: 50 users with their roles and
 * permissions are one query and no per-row work in Node (measured in bench/: building the page in
 * JavaScript cost more than the rest of the request together). Only public columns are read: the hash,
 * uniquifier and two-factor secret never leave the database.
 */
export async function listUsersJson(ctx: Pick<SecurityContext, 'db'>, scope: UserScope, query: UserListQuery): Promise<string> {
  if (!Number.isInteger(query.page) || query.page < 1) throw queryError('page', 'Must be an integer of at least 1');
  if (!Number.isInteger(query.perPage) || query.perPage < 1 || query.perPage > MAX_PER_PAGE) {
    throw queryError('per_page', `Must be between 1 and ${MAX_PER_PAGE}`);
  }
  const orderBy = parseSort(query.sort);
  const where: (SQL | undefined)[] = [scopeWhere(scope)];
  if (query.q) {
    const p = likePattern(query.q);
    where.push(or(
      ilike(users.email, p), ilike(users.firstName, p), ilike(users.lastName, p),
      sql`(coalesce(${users.firstName}, '') || ' ' || coalesce(${users.lastName}, '')) ilike ${p}`,
    ));
  }
  if (query.role !== undefined) {
    where.push(inArray(users.id, ctx.db.select({ id: rolesUsers.userId }).from(rolesUsers)
      .innerJoin(roles, eq(roles.id, rolesUsers.roleId)).where(eq(roles.name, query.role))));
  }
  if (query.active !== undefined) where.push(eq(users.active, query.active));
  if (query.countyId !== undefined) where.push(eq(users.countyId, query.countyId));
  const condition = and(...where) ?? sql`true`;
  const order = sql.join(orderBy, sql`, `);
  // The page (public columns, its position, the count of every matching row) is cut first; roles,
  // permissions and JSON are built for its rows only, roles in one grouped pass (not per row).
  const [row] = await ctx.db.execute<{ body: string }>(sql`
    with page as (
      select ${users.id} as id, ${users.email} as email, ${users.firstName} as first_name, ${users.lastName} as last_name,
        ${users.phoneNumber} as phone_number, ${users.address} as address, ${users.active} as active,
        ${users.confirmedAt} as confirmed_at, ${users.createdAt} as created_at, ${users.updatedAt} as updated_at,
        ${users.countyId} as county_id, ${users.departmentId} as department_id,
        (${users.tfPrimaryMethod} is not null) as tf_enabled,
        ${users.lastLoginAt} as last_login_at, ${users.currentLoginAt} as current_login_at,
        ${users.lastLoginIp} as last_login_ip, ${users.currentLoginIp} as current_login_ip, ${users.loginCount} as login_count,
        row_number() over (order by ${order}) as n, count(*) over () as total
      from ${users} where ${condition} order by ${order}
      limit ${query.perPage} offset ${(query.page - 1) * query.perPage}
    ), held as (
      select ru.user_id, array_agg(distinct r.name order by r.name) as roles,
        coalesce(array_agg(distinct x order by x) filter (where x is not null), '{}') as permissions
      from ${rolesUsers} ru join ${roles} r on r.id = ru.role_id left join lateral unnest(r.permissions) x on true
      where ru.user_id in (select id from page) group by ru.user_id
    )
    select json_build_object('users', coalesce(json_agg(json_build_object(
        'id', p.id, 'email', p.email, 'first_name', p.first_name, 'last_name', p.last_name,
        'full_name', nullif(concat_ws(' ', nullif(p.first_name, ''), nullif(p.last_name, '')), ''),
        'phone_number', p.phone_number, 'address', p.address, 'active', p.active,
        'confirmed_at', ${isoUtc(sql`p.confirmed_at`)}, 'created_at', ${isoUtc(sql`p.created_at`)},
        'updated_at', ${isoUtc(sql`p.updated_at`)},
        'roles', coalesce(h.roles, '{}'), 'permissions', coalesce(h.permissions, '{}'),
        'county_id', p.county_id, 'department_id', p.department_id, 'tf_enabled', p.tf_enabled,
        'last_login_at', ${isoUtc(sql`p.last_login_at`)}, 'current_login_at', ${isoUtc(sql`p.current_login_at`)},
        'last_login_ip', p.last_login_ip, 'current_login_ip', p.current_login_ip, 'login_count', p.login_count
      ) order by p.n), '[]'::json),
      'page', ${query.page}::int, 'per_page', ${query.perPage}::int,
      -- past the last page no row carries the total: count (coalesce evaluates this only then)
      'total', coalesce(max(p.total), (select count(*) from ${users} where ${condition}))::int
    )::text as body
    from page p left join held h on h.user_id = p.id`);
  // PostgreSQL's json text has spaces around every colon and a line break between array elements
  // (json_agg): re-serialised once here (the page is cached per instance), every endpoint answers the
  // same compact JSON.
  return JSON.stringify(JSON.parse(row!.body));
}

// ------------------------------------------------------------------------------------ create, update

/** A department must belong to the user's county. */
async function checkDepartment(db: Db, countyId: number | null, departmentId: number | null): Promise<void> {
  if (departmentId === null) return;
  const [dep] = await db.select({ countyId: departments.countyId }).from(departments).where(eq(departments.id, departmentId));
  if (!dep) throw validationError({ department_id: ['Unknown department'] });
  if (dep.countyId !== countyId) throw validationError({ department_id: ["The department does not belong to the user's county"] });
}

export interface NewAccount {
  email: string;
  password: string;
  firstName?: string | null;
  lastName?: string | null;
  phoneNumber?: string | null;
  address?: string | null;
  /** role names; default Citizen. An unknown name is a validation error on `roles`. */
  roles?: string[];
  active?: boolean;
  /** accounts made by an administrator count as confirmed unless this is false */
  confirmed?: boolean;
  countyId?: number | null;
  departmentId?: number | null;
}

/**
 * POST /users and the CLI: the account, its roles and its 'user.created' audit row in one
 * transaction; `beforeCommit` runs last inside it (the Idempotency-Key's answer commits with them).
 */
export async function createAccount(ctx: SecurityContext, actor: Actor, input: NewAccount,
  opts: { beforeCommit?: (tx: Tx, user: UserRecord) => Promise<void> } = {}): Promise<UserRecord> {
  checkPasswordPolicy(ctx, 'password', input.password, input.email);
  const roleNames = [...new Set(input.roles ?? [ROLE_CITIZEN])];
  let countyId = input.countyId ?? null;
  if (actor.scope.kind === 'county') {
    if (countyId === null) countyId = actor.scope.countyId;
    if (countyId === null || countyId !== actor.scope.countyId) throw validationError({ county_id: [OUTSIDE_COUNTY] });
  }
  const departmentId = input.departmentId ?? null;
  return denialAudited(ctx, actor, 'user.created', null, { email: input.email, roles: roleNames }, () => ctx.db.transaction(async (tx) => {
    // Every role handed out must be within the actor's own permissions; the rows are share-locked so a
    // concurrent role edit cannot widen them between this check and the commit. Unknown names are
    // left to createUser (400 on `roles`).
    const granted = roleNames.length ? await tx.select().from(roles).where(inArray(roles.name, roleNames)).for('share') : [];
    for (const role of granted) assertMayGrant(actor.principal, role);
    await checkDepartment(tx, countyId, departmentId);
    const user = await createUser(ctx, {
      email: input.email,
      password: input.password,
      firstName: input.firstName,
      lastName: input.lastName,
      phoneNumber: input.phoneNumber,
      address: input.address,
      countyId,
      departmentId,
      active: input.active ?? true,
      confirmedAt: input.confirmed === false ? null : ctx.clock.now(),
      roles: roleNames,
    }, tx);
    await audit(ctx, {
      ...actor, action: 'user.created', targetUserId: user.id,
      details: { email: user.email, roles: user.roles, active: user.active, county_id: user.countyId, department_id: user.departmentId },
    }, tx);
    await opts.beforeCommit?.(tx, user);
    return user;
  }));
}

export interface AccountPatch {
  firstName?: string | null;
  lastName?: string | null;
  phoneNumber?: string | null;
  address?: string | null;
  countyId?: number | null;
  departmentId?: number | null;
}

const PATCH_COLUMNS = {
  firstName: 'first_name', lastName: 'last_name', phoneNumber: 'phone_number', address: 'address',
  countyId: 'county_id', departmentId: 'department_id',
} as const satisfies Record<keyof AccountPatch, string>;

export async function updateAccount(ctx: SecurityContext, actor: Actor, id: number, patch: AccountPatch): Promise<UserRecord> {
  try {
    return await denialAudited(ctx, actor, 'user.updated', id, {}, () => ctx.db.transaction(async (tx) => {
      const user = await requireTarget(tx, actor, id);
      if (actor.scope.kind === 'county' && patch.countyId !== undefined && patch.countyId !== actor.scope.countyId) {
        throw validationError({ county_id: [OUTSIDE_COUNTY] });
      }
      const changed = (Object.keys(PATCH_COLUMNS) as (keyof AccountPatch)[])
        .filter((k) => patch[k] !== undefined && patch[k] !== user[k]);
      if (!changed.length) return user;
      const countyId = patch.countyId !== undefined ? patch.countyId : user.countyId;
      const departmentId = patch.departmentId !== undefined ? patch.departmentId : user.departmentId;
      if (changed.includes('countyId') || changed.includes('departmentId')) {
        if (departmentId !== null && patch.departmentId === undefined && countyId !== user.countyId) {
          throw validationError({ department_id: ["The user's department belongs to the old county: send department_id (or null) with county_id"] });
        }
        await checkDepartment(tx, countyId, departmentId);
      }
      const values = Object.fromEntries(changed.map((k) => [k, patch[k]]));
      await tx.update(users).set({ ...values, updatedAt: ctx.clock.now() }).where(eq(users.id, id));
      const details: Record<string, unknown> = { fields: changed.map((k) => PATCH_COLUMNS[k]) };
      for (const k of ['countyId', 'departmentId'] as const) {
        if (changed.includes(k)) details[PATCH_COLUMNS[k]] = { from: user[k], to: patch[k] };
      }
      await audit(ctx, { ...actor, action: 'user.updated', targetUserId: id, details }, tx);
      return (await findUser(tx, { id }))!;
    }));
  } catch (err) {
    throw mapUserWriteError(err);
  }
}

// ------------------------------------------------------------------------------------ admin actions

/**
 * Serialises every change that can reduce the number of active County Admins, so two admins
 * deactivating each other at the same moment cannot leave none.
 */
async function lockAdminCount(tx: Tx): Promise<void> {
  await advisoryXactLock(tx, 'adminCount');
}

async function assertAnotherActiveAdmin(tx: Tx, userId: number): Promise<void> {
  const [row] = await tx.select({ n: count() }).from(rolesUsers)
    .innerJoin(roles, eq(roles.id, rolesUsers.roleId)).innerJoin(users, eq(users.id, rolesUsers.userId))
    .where(and(eq(roles.name, ROLE_ADMIN), eq(users.active, true), ne(users.id, userId)));
  if (!row || row.n === 0) throw conflict(`This is the last active ${ROLE_ADMIN}; make someone else ${ROLE_ADMIN} first`);
}

export async function deactivateAccount(ctx: SecurityContext, actor: Actor, id: number): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.deactivated', id, {}, () => ctx.db.transaction(async (tx) => {
    await lockAdminCount(tx);
    const user = await requireTarget(tx, actor, id);
    if (actor.actorId === id) throw conflict('You cannot deactivate your own account');
    if (!user.active) return user;
    if (user.roles.includes(ROLE_ADMIN)) await assertAnotherActiveAdmin(tx, id);
    const updated = await deactivateUser(ctx, id, tx);
    await audit(ctx, { ...actor, action: 'user.deactivated', targetUserId: id }, tx);
    return updated;
  }));
}

export async function activateAccount(ctx: SecurityContext, actor: Actor, id: number): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.activated', id, {}, () => ctx.db.transaction(async (tx) => {
    const user = await requireTarget(tx, actor, id);
    if (user.active) return user;
    const updated = await activateUser(ctx, id, tx);
    await audit(ctx, { ...actor, action: 'user.activated', targetUserId: id }, tx);
    return updated;
  }));
}

/** Clears failed-login state (see security/lockout.ts). Safe to call on an account that is not locked. */
export async function unlockAccount(ctx: SecurityContext, actor: Actor, id: number): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.unlocked', id, {}, () => ctx.db.transaction(async (tx) => {
    const user = await requireTarget(tx, actor, id);
    const lifted = await unlockEmail(ctx, user.email, tx);
    await audit(ctx, { ...actor, action: 'user.unlocked', targetUserId: id, details: { lock_lifted: lifted } }, tx);
    return user;
  }));
}

/**
 * Rotates fs_uniquifier and revokes every session: every token and cookie of the user dies.
 * Two-factor authentication is turned off too (datastore.resetUserAccess).
 */
export async function resetAccountAccess(ctx: SecurityContext, actor: Actor, id: number): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.access_reset', id, {}, () => ctx.db.transaction(async (tx) => {
    await requireTarget(tx, actor, id);
    const { twoFactorRevoked } = await resetUserAccess(ctx, id, 'reset_access', tx);
    await audit(ctx, { ...actor, action: 'user.access_reset', targetUserId: id, details: { two_factor_revoked: twoFactorRevoked } }, tx);
    return (await findUser(tx, { id }))!;
  }));
}

/** An administrator sets a password (policy applies); every session of the user ends. */
export async function setAccountPassword(ctx: SecurityContext, actor: Actor, id: number, password: string): Promise<UserRecord> {
  const user = await requireUserInScope(ctx.db, actor.scope, id);
  checkPasswordPolicy(ctx, 'password', password, user.email);
  return denialAudited(ctx, actor, 'user.password_set', id, {}, () => ctx.db.transaction(async (tx) => {
    await requireTarget(tx, actor, id);
    await setPassword(ctx, id, password, tx);
    await resetUserAccess(ctx, id, 'password_set', tx);
    await audit(ctx, { ...actor, action: 'user.password_set', targetUserId: id }, tx);
    return (await findUser(tx, { id }))!;
  }));
}

// ------------------------------------------------------------------------------------------- roles

async function auditRoleChange(ctx: SecurityContext, actor: Actor, tx: Tx, id: number, added: string[], removed: string[]) {
  if (!added.length && !removed.length) return;
  await audit(ctx, { ...actor, action: 'user.roles_changed', targetUserId: id, details: { added, removed } }, tx);
}

/**
 * Replaces the user's roles with exactly `names`. An unknown name is a validation error on `roles`.
 * The actor must be at least as strong as the user (so every removed role is within its permissions)
 * and may add only roles it could grant.
 */
export async function setAccountRoles(ctx: SecurityContext, actor: Actor, id: number, names: string[]): Promise<UserRecord> {
  const wanted = [...new Set(names)];
  return denialAudited(ctx, actor, 'user.roles_changed', id, { roles: wanted }, () => ctx.db.transaction(async (tx) => {
    await lockAdminCount(tx);
    const user = await requireTarget(tx, actor, id);
    const rows = wanted.length ? await tx.select().from(roles).where(inArray(roles.name, wanted)).for('share') : [];
    const missing = wanted.filter((n) => !rows.some((r) => r.name === n));
    if (missing.length) throw validationError({ roles: [`Unknown role: ${missing.join(', ')}`] });
    const added = wanted.filter((n) => !user.roles.includes(n)).sort();
    const removed = user.roles.filter((n) => !wanted.includes(n)).sort();
    for (const role of rows) if (added.includes(role.name)) assertMayGrant(actor.principal, role);
    for (const name of removed) assertMayRevoke(actor.principal, name);
    if (removed.includes(ROLE_ADMIN) && user.active) await assertAnotherActiveAdmin(tx, id);
    const keep = rows.map((r) => r.id);
    await tx.delete(rolesUsers).where(and(eq(rolesUsers.userId, id), keep.length ? notInArray(rolesUsers.roleId, keep) : undefined));
    if (keep.length) await tx.insert(rolesUsers).values(keep.map((roleId) => ({ userId: id, roleId }))).onConflictDoNothing();
    await auditRoleChange(ctx, actor, tx, id, added, removed);
    return (await findUser(tx, { id }))!;
  }));
}

/** Adds one role (idempotent). An unknown role is 404. */
export async function grantRole(ctx: SecurityContext, actor: Actor, id: number, name: string): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.roles_changed', id, { added: [name] }, () => ctx.db.transaction(async (tx) => {
    await requireTarget(tx, actor, id);
    const [role] = await tx.select().from(roles).where(eq(roles.name, name)).for('share');
    if (!role) throw notFound('Role');
    assertMayGrant(actor.principal, role);
    if (await addRoleToUser(tx, id, name)) await auditRoleChange(ctx, actor, tx, id, [name], []);
    return (await findUser(tx, { id }))!;
  }));
}

/** Removes one role (idempotent). An unknown role is 404; the last active County Admin keeps the role. */
export async function revokeRole(ctx: SecurityContext, actor: Actor, id: number, name: string): Promise<UserRecord> {
  return denialAudited(ctx, actor, 'user.roles_changed', id, { removed: [name] }, () => ctx.db.transaction(async (tx) => {
    await lockAdminCount(tx);
    const user = await requireTarget(tx, actor, id);
    if (!(await findRole(tx, name))) throw notFound('Role');
    assertMayRevoke(actor.principal, name);
    if (name === ROLE_ADMIN && user.active && user.roles.includes(ROLE_ADMIN)) await assertAnotherActiveAdmin(tx, id);
    if (await removeRoleFromUser(tx, id, name)) await auditRoleChange(ctx, actor, tx, id, [], [name]);
    return (await findUser(tx, { id }))!;
  }));
}
