// Flask-Security's datastore verbs over Drizzle. Routes and the CLI both call these, so "deactivate a
// user" is one code path whether it comes from HTTP or a terminal.
import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { randomUUID } from 'node:crypto';
import {
  roles, rolesUsers, sessions, twoFactorChallenges, users, webauthnChallenges, webauthnCredentials, type RoleRow, type UserRow,
} from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { AppError, emailTaken, notFound, pgError, validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { canonicalEmail } from './email-address.js';

export interface UserRecord extends UserRow {
  roles: string[];
  permissions: string[];
}

export const newUniquifier = () => randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');

// Drizzle prints a single-table column unqualified ("id"), which inside these subqueries would bind
// to roles.id; name the outer column explicitly.
const outerUserId = sql.raw('"users"."id"');
export const roleNames = sql<string[]>`coalesce((select array_agg(r.name order by r.name) from ${rolesUsers} ru join ${roles} r on r.id = ru.role_id where ru.user_id = ${outerUserId}), '{}'::text[])`;
export const permissionNames = sql<string[]>`coalesce((select array_agg(distinct p order by p) from ${rolesUsers} ru join ${roles} r on r.id = ru.role_id cross join unnest(r.permissions) p where ru.user_id = ${outerUserId}), '{}'::text[])`;

/** Same normalisation everywhere an address is compared or stored (NFC, canonical IDN domain). */
export function normalizeEmail(email: string): string {
  return canonicalEmail(email);
}

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

export async function findUser(db: Db, by: { id: number } | { email: string }): Promise<UserRecord | null> {
  const where = 'id' in by
    ? eq(users.id, by.id)
    : sql`lower(${users.email}) = lower(${normalizeEmail(by.email)})`;
  const rows = await db.select({ user: users, roles: roleNames, permissions: permissionNames }).from(users).where(where).limit(1);
  const row = rows[0];
  return row ? { ...row.user, roles: row.roles, permissions: row.permissions } : null;
}

/** findUser by id, or 404. */
export async function requireUser(db: Db, id: number): Promise<UserRecord> {
  const user = await findUser(db, { id });
  if (!user) throw notFound('User');
  return user;
}

export async function findRole(db: Db, name: string): Promise<RoleRow | null> {
  const rows = await db.select().from(roles).where(eq(roles.name, name)).limit(1);
  return rows[0] ?? null;
}

export async function createRole(db: Db, input: { name: string; description?: string | null; permissions?: string[] }): Promise<RoleRow> {
  try {
    const [row] = await db.insert(roles).values({
      name: input.name,
      description: input.description ?? null,
      permissions: [...new Set(input.permissions ?? [])].sort(),
    }).returning();
    return row!;
  } catch (err) {
    if (pgError(err)?.code === '23505') throw new AppError(409, 'CONFLICT', `Role "${input.name}" already exists`, { fields: { name: ['Role name is taken'] } });
    throw err;
  }
}

export interface CreateUserInput {
  email: string;
  password: string;
  /** already hashed (so a caller can hash before opening a transaction); else `password` is hashed here */
  passwordHash?: string;
  firstName?: string | null;
  lastName?: string | null;
  phoneNumber?: string | null;
  address?: string | null;
  countyId?: number | null;
  departmentId?: number | null;
  active?: boolean;
  confirmedAt?: Date | null;
  roles?: string[];
}

/** Inserts the user and their roles in one transaction. A taken address (any case) is 409 EMAIL_TAKEN. */
export async function createUser(ctx: SecurityContext, input: CreateUserInput, db: Db = ctx.db): Promise<UserRecord> {
  const hash = input.passwordHash ?? await ctx.passwords.hash(input.password);
  const now = ctx.clock.now();
  const run = async (tx: Tx) => {
    const roleRows = input.roles?.length
      ? await tx.select().from(roles).where(inArray(roles.name, input.roles))
      : [];
    const missing = (input.roles ?? []).filter((n) => !roleRows.some((r) => r.name === n));
    if (missing.length) throw validationError({ roles: [`Unknown role: ${missing.join(', ')}`] });
    const [row] = await tx.insert(users).values({
      email: normalizeEmail(input.email),
      password: hash,
      firstName: input.firstName ?? null,
      lastName: input.lastName ?? null,
      phoneNumber: input.phoneNumber ?? null,
      address: input.address ?? null,
      countyId: input.countyId ?? null,
      departmentId: input.departmentId ?? null,
      active: input.active ?? true,
      confirmedAt: input.confirmedAt ?? null,
      fsUniquifier: newUniquifier(),
      createdAt: now,
      updatedAt: now,
    }).returning();
    if (roleRows.length) await tx.insert(rolesUsers).values(roleRows.map((r) => ({ userId: row!.id, roleId: r.id })));
    return (await findUser(tx, { id: row!.id }))!;
  };
  try {
    // in the caller's transaction as it is (no savepoint: every caller lets the error end it)
    return 'rollback' in db ? await run(db as Tx) : await (db as Database).transaction(run);
  } catch (err) {
    throw mapUserWriteError(err);
  }
}

/** Unique and foreign-key violations on users become the contract's 409 / 400. */
export function mapUserWriteError(err: unknown): unknown {
  const pg = pgError(err);
  if (!pg) return err;
  if (pg.code === '23505' && pg.constraint_name === 'users_email_lower_idx') return emailTaken();
  if (pg.code === '23503' && pg.constraint_name === 'users_county_id_counties_id_fk') return validationError({ county_id: ['Unknown county'] });
  if (pg.code === '23503' && pg.constraint_name === 'users_department_id_departments_id_fk') return validationError({ department_id: ['Unknown department'] });
  return err;
}

export async function addRoleToUser(db: Db, userId: number, roleName: string): Promise<boolean> {
  const role = await findRole(db, roleName);
  if (!role) throw notFound('Role');
  const inserted = await db.insert(rolesUsers).values({ userId, roleId: role.id }).onConflictDoNothing().returning();
  return inserted.length > 0;
}

export async function removeRoleFromUser(db: Db, userId: number, roleName: string): Promise<boolean> {
  const role = await findRole(db, roleName);
  if (!role) throw notFound('Role');
  const deleted = await db.delete(rolesUsers).where(and(eq(rolesUsers.userId, userId), eq(rolesUsers.roleId, role.id))).returning();
  return deleted.length > 0;
}

/** Revokes every live session of a user (their cookies, access and refresh tokens die at once). */
export async function revokeUserSessions(db: Db, userId: number, reason: string, now: Date): Promise<number> {
  const rows = await db.update(sessions).set({ revokedAt: now, revokedReason: reason })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt))).returning({ id: sessions.id });
  return rows.length;
}

export async function activateUser(ctx: SecurityContext, userId: number, db: Db = ctx.db): Promise<UserRecord> {
  await db.update(users).set({ active: true, updatedAt: ctx.clock.now() }).where(eq(users.id, userId));
  return requireUser(db, userId);
}

/** Deactivates and revokes every session at once. Pass `db` to run inside the caller's transaction. */
export async function deactivateUser(ctx: SecurityContext, userId: number, db?: Db): Promise<UserRecord> {
  const now = ctx.clock.now();
  const work = async (tx: Db) => {
    await tx.update(users).set({ active: false, updatedAt: now }).where(eq(users.id, userId));
    await revokeUserSessions(tx, userId, 'deactivated', now);
    await revokePasskeys(tx, userId);
  };
  if (db) await work(db);
  else await ctx.db.transaction(work);
  return requireUser(db ?? ctx.db, userId);
}

/** Every passkey and pending WebAuthn ceremony of the user goes (deactivation, admin reset-access), and 2FA by keys alone with them. */
async function revokePasskeys(db: Db, userId: number): Promise<void> {
  await db.delete(webauthnCredentials).where(eq(webauthnCredentials.userId, userId));
  await db.delete(webauthnChallenges).where(eq(webauthnChallenges.userId, userId));
  // two-factor by security keys alone (method "webauthn") goes with the keys
  await db.update(users).set({ tfPrimaryMethod: null, tfTotpSecret: null, tfTotpLastStep: null, tfRecoveryCodes: null })
    .where(and(eq(users.id, userId), eq(users.tfPrimaryMethod, 'webauthn')));
}

/**
 * Flask-Security's set_uniquifier: a new fs_uniquifier invalidates every token ever issued to the
 * user (pending two-factor logins too), and every session row is revoked so cookie sessions die too.
 *
 * The admin's reset-access (reason 'reset_access', the default) also switches two-factor
 * authentication off (secret and recovery codes gone) and deletes the passkeys, for an account whose owner lost the device or
 * whose factors may be compromised. Logout-all, password change and password reset keep 2FA: a
 * password reset never bypasses the second factor.
 */
export async function resetUserAccess(ctx: SecurityContext, userId: number, reason = 'reset_access', db?: Db,
  opts: { revokeTwoFactor?: boolean } = {}): Promise<{ twoFactorRevoked: boolean }> {
  const now = ctx.clock.now();
  const revokeTwoFactor = opts.revokeTwoFactor ?? reason === 'reset_access';
  const work = async (tx: Db) => {
    const [before] = revokeTwoFactor
      ? await tx.select({ method: users.tfPrimaryMethod }).from(users).where(eq(users.id, userId)).for('update')
      : [];
    const updated = await tx.update(users).set({
      fsUniquifier: newUniquifier(), updatedAt: now,
      ...(revokeTwoFactor ? { tfPrimaryMethod: null, tfTotpSecret: null, tfTotpLastStep: null, tfRecoveryCodes: null } : {}),
    }).where(eq(users.id, userId)).returning({ id: users.id });
    if (!updated.length) throw notFound('User');
    await revokeUserSessions(tx, userId, reason, now);
    await tx.delete(twoFactorChallenges).where(eq(twoFactorChallenges.userId, userId));
    if (revokeTwoFactor) await revokePasskeys(tx, userId);
    // the caller audits the reset; it learns here whether two-factor authentication went with it
    return { twoFactorRevoked: before?.method != null };
  };
  return db ? work(db) : ctx.db.transaction(work);
}

export async function setPassword(ctx: SecurityContext, userId: number, password: string, db: Db = ctx.db): Promise<void> {
  const hash = await ctx.passwords.hash(password);
  await db.update(users).set({ password: hash, updatedAt: ctx.clock.now() }).where(eq(users.id, userId));
}

export interface ProfilePatch {
  firstName?: string | null;
  lastName?: string | null;
  phoneNumber?: string | null;
  address?: string | null;
}

export async function updateProfile(ctx: SecurityContext, userId: number, patch: ProfilePatch): Promise<UserRecord> {
  const values = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  if (Object.keys(values).length) {
    await ctx.db.update(users).set({ ...values, updatedAt: ctx.clock.now() }).where(eq(users.id, userId));
  }
  return requireUser(ctx.db, userId);
}
