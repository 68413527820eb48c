// Role and permission administration: the one code path behind /roles and the `roles …` CLI commands.
// Seeded roles (Citizen, Department Officer, County Admin) may be edited but never renamed or deleted:
// the code and the seed refer to them by name.
import { asc, count, eq } from 'drizzle-orm';
import { roles, rolesUsers, type RoleRow } from '../db/schema/index.js';
import { SEEDED_ROLE_NAMES } from './role-names.js';
import { AppError, notFound, pgError, validationError } from '../errors.js';
import { audit, type AuditSource } from './audit.js';
import type { SecurityContext } from './context.js';
import { createRole, findRole } from './datastore.js';
import { conflict } from './users.js';
import { assertMayDefineRole, denialAudited, type Principal } from './delegation.js';

/** Who edits roles: the audit source and the principal the delegation rule weighs (an Actor fits). */
export interface RoleEditor extends AuditSource { principal: Principal }

/** `resource:action`, lowercase; `*` allowed as the action (`users:*`). */
export const PERMISSION_PATTERN = '^[a-z]+:[a-z*]+$';
const PERMISSION_RE = new RegExp(PERMISSION_PATTERN);
export const ROLE_NAME_PATTERN = '^[A-Za-z0-9](?:[A-Za-z0-9 _.-]{0,62}[A-Za-z0-9._-])?$';
const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);

export interface RoleRecord extends RoleRow {
  userCount: number;
  seeded: boolean;
}

export const isSeededRole = (name: string) => SEEDED_ROLE_NAMES.includes(name);

function checkPermissions(perms: string[]): string[] {
  const bad = perms.filter((p) => !PERMISSION_RE.test(p));
  if (bad.length) throw validationError({ permissions: [`Invalid permission: ${bad.join(', ')} (expected resource:action, e.g. users:read)`] });
  return [...new Set(perms)].sort();
}

function checkName(name: string): string {
  if (!ROLE_NAME_RE.test(name)) throw validationError({ name: ['Role names are 1-64 letters, digits, spaces, dots, dashes or underscores'] });
  return name;
}

const nameTaken = (name: string) => new AppError(409, 'CONFLICT', `Role "${name}" already exists`, { fields: { name: ['Role name is taken'] } });

const withCount = async (db: SecurityContext['db'], where?: ReturnType<typeof eq>): Promise<RoleRecord[]> => {
  const rows = await db.select({ role: roles, userCount: count(rolesUsers.userId) }).from(roles)
    .leftJoin(rolesUsers, eq(rolesUsers.roleId, roles.id)).where(where).groupBy(roles.id).orderBy(asc(roles.id));
  return rows.map((r) => ({ ...r.role, userCount: r.userCount, seeded: isSeededRole(r.role.name) }));
};

export async function listRoles(ctx: Pick<SecurityContext, 'db'>): Promise<RoleRecord[]> {
  return withCount(ctx.db);
}

export async function getRole(ctx: Pick<SecurityContext, 'db'>, id: number): Promise<RoleRecord> {
  const [role] = await withCount(ctx.db, eq(roles.id, id));
  if (!role) throw notFound('Role');
  return role;
}

export interface NewRole { name: string; description?: string | null; permissions?: string[] }

export async function createRoleAudited(ctx: SecurityContext, by: RoleEditor, input: NewRole): Promise<RoleRecord> {
  const name = checkName(input.name);
  const permissions = checkPermissions(input.permissions ?? []);
  const id = await denialAudited(ctx, by, 'role.created', null, { name, permissions }, () => ctx.db.transaction(async (tx) => {
    assertMayDefineRole(by.principal, null, permissions);
    const role = await createRole(tx, { name, description: input.description ?? null, permissions });
    await audit(ctx, { ...by, action: 'role.created', details: { role_id: role.id, name, permissions } }, tx);
    return role.id;
  }));
  return getRole(ctx, id);
}

export interface RolePatch { name?: string; description?: string | null; permissions?: string[] }

export async function updateRole(ctx: SecurityContext, by: RoleEditor, id: number, patch: RolePatch): Promise<RoleRecord> {
  const permissions = patch.permissions === undefined ? undefined : checkPermissions(patch.permissions);
  try {
    await denialAudited(ctx, by, 'role.updated', null, { role_id: id, permissions }, () => ctx.db.transaction(async (tx) => {
      const [role] = await tx.select().from(roles).where(eq(roles.id, id)).for('update');
      if (!role) throw notFound('Role');
      // Any change to a role (even a description) needs the editor to hold what the role gives, before and after.
      assertMayDefineRole(by.principal, role, permissions ?? role.permissions);
      const changes: Partial<RoleRow> = {};
      const details: Record<string, unknown> = { role_id: id, name: role.name };
      if (patch.name !== undefined && patch.name !== role.name) {
        if (isSeededRole(role.name)) throw conflict(`The seeded role "${role.name}" cannot be renamed`);
        changes.name = checkName(patch.name);
        details.renamed = { from: role.name, to: patch.name };
      }
      if (patch.description !== undefined && patch.description !== role.description) changes.description = patch.description;
      if (permissions !== undefined && permissions.join() !== [...role.permissions].sort().join()) {
        changes.permissions = permissions;
        details.permissions_added = permissions.filter((p) => !role.permissions.includes(p));
        details.permissions_removed = role.permissions.filter((p) => !permissions.includes(p));
      }
      if (!Object.keys(changes).length) return;
      await tx.update(roles).set({ ...changes, updatedAt: ctx.clock.now() }).where(eq(roles.id, id));
      await audit(ctx, { ...by, action: 'role.updated', details: { ...details, fields: Object.keys(changes) } }, tx);
    }));
  } catch (err) {
    if (pgError(err)?.code === '23505') throw nameTaken(patch.name ?? '');
    throw err;
  }
  return getRole(ctx, id);
}

/** Adds and removes permissions of a role named `name` (the CLI's add-permissions / remove-permissions). */
export async function changeRolePermissions(ctx: SecurityContext, by: RoleEditor, name: string, change: { add?: string[]; remove?: string[] }): Promise<RoleRecord> {
  const add = checkPermissions(change.add ?? []);
  const remove = checkPermissions(change.remove ?? []);
  const role = await findRole(ctx.db, name);
  if (!role) throw notFound('Role');
  // The row is locked, so concurrent changes to the same role compose instead of overwriting each other.
  const id = await denialAudited(ctx, by, 'role.updated', null, { role_id: role.id, name, add, remove }, () => ctx.db.transaction(async (tx) => {
    const [before] = await tx.select().from(roles).where(eq(roles.id, role.id)).for('update');
    const next = [...new Set([...before!.permissions.filter((p) => !remove.includes(p)), ...add])].sort();
    assertMayDefineRole(by.principal, before!, next);
    const added = next.filter((p) => !before!.permissions.includes(p));
    const removed = before!.permissions.filter((p) => !next.includes(p));
    if (added.length || removed.length) {
      await tx.update(roles).set({ permissions: next, updatedAt: ctx.clock.now() }).where(eq(roles.id, role.id));
      await audit(ctx, {
        ...by, action: 'role.updated',
        details: { role_id: role.id, name, fields: ['permissions'], permissions_added: added, permissions_removed: removed },
      }, tx);
    }
    return role.id;
  }));
  return getRole(ctx, id);
}

/** Deletes a role. Seeded roles never; a role still assigned only with `force` (the assignments go too). */
export async function deleteRole(ctx: SecurityContext, by: RoleEditor, id: number, opts: { force?: boolean } = {}): Promise<void> {
  await denialAudited(ctx, by, 'role.deleted', null, { role_id: id }, () => ctx.db.transaction(async (tx) => {
    const [role] = await tx.select().from(roles).where(eq(roles.id, id)).for('update');
    if (!role) throw notFound('Role');
    if (isSeededRole(role.name)) throw conflict(`The seeded role "${role.name}" cannot be deleted`);
    assertMayDefineRole(by.principal, role, []);
    const [assigned] = await tx.select({ n: count() }).from(rolesUsers).where(eq(rolesUsers.roleId, id));
    const users = assigned?.n ?? 0;
    if (users > 0 && !opts.force) throw conflict(`The role is assigned to ${users} user(s); delete with force=true to unassign it`);
    await tx.delete(roles).where(eq(roles.id, id));
    await audit(ctx, { ...by, action: 'role.deleted', details: { role_id: id, name: role.name, permissions: role.permissions, unassigned_users: users } }, tx);
  }));
}

/** The public form of a role (API and CLI). */
