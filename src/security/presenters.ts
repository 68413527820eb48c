// Presenters: the public shapes of the contract, built here and only here, for the routes and the CLI
// alike (user §4, role, audit event, county, department, session, personal token). Never a hash, the
// uniquifier or any secret; each route's response schema enforces the same list on the way out.
// (One exception, for speed: users.listUsersJson builds the user shape of a list page in SQL; a test
// compares it with publicUser field by field.)
import type { AuditEventRow, SessionRow } from '../db/schema/index.js';
import type { UserRecord } from './datastore.js';
import type { RoleRecord } from './roles.js';
import type { CountyRow, DepartmentRow } from './org.js';
import type { CreatedToken, TokenListItem } from './personal-tokens.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

// Users served from the auth cache are the same object across requests: shape each once.
const shaped = new WeakMap<UserRecord, ReturnType<typeof shapeUser>>();

export function publicUser(u: UserRecord, extra: { tfEnabled?: boolean } = {}) {
  if (extra.tfEnabled !== undefined) return shapeUser(u, extra);
  let out = shaped.get(u);
  if (!out) shaped.set(u, (out = shapeUser(u, extra)));
  return out;
}

function shapeUser(u: UserRecord, extra: { tfEnabled?: boolean }) {
  const full = [u.firstName, u.lastName].filter(Boolean).join(' ');
  return {
    id: u.id,
    email: u.email,
    first_name: u.firstName,
    last_name: u.lastName,
    full_name: full || null,
    phone_number: u.phoneNumber,
    address: u.address,
    active: u.active,
    confirmed_at: iso(u.confirmedAt),
    created_at: u.createdAt.toISOString(),
    updated_at: u.updatedAt.toISOString(),
    roles: u.roles,
    permissions: u.permissions,
    county_id: u.countyId,
    department_id: u.departmentId,
    tf_enabled: extra.tfEnabled ?? u.tfPrimaryMethod !== null,
    last_login_at: iso(u.lastLoginAt),
    current_login_at: iso(u.currentLoginAt),
    last_login_ip: u.lastLoginIp,
    current_login_ip: u.currentLoginIp,
    login_count: u.loginCount,
  };
}

export type PublicUser = ReturnType<typeof publicUser>;

export function publicRole(r: RoleRecord) {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    permissions: [...r.permissions].sort(),
    seeded: r.seeded,
    user_count: r.userCount,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

/** The public (API, CLI export) form of an audit event. */
export function publicAuditEvent(e: AuditEventRow) {
  return {
    id: e.id,
    action: e.action,
    actor_id: e.actorId,
    target_user_id: e.targetUserId,
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    created_at: e.createdAt.toISOString(),
    details: e.details,
  };
}

export const publicCounty = (c: CountyRow) => ({ id: c.id, name: c.name, created_at: c.createdAt.toISOString(), updated_at: c.updatedAt.toISOString() });

export const publicDepartment = (d: DepartmentRow) => ({
  id: d.id, county_id: d.countyId, name: d.name, created_at: d.createdAt.toISOString(), updated_at: d.updatedAt.toISOString(),
});

/** A session as its owner sees it in GET /auth/sessions; `currentId` marks the one asking. */
export const publicSession = (s: SessionRow, currentId: string) => ({
  id: s.id, created_at: s.createdAt.toISOString(), last_used_at: s.lastUsedAt.toISOString(),
  ip: s.ip, user_agent: s.userAgent, current: s.id === currentId,
});

/** A live personal token in a listing: never its value. */
export const publicPersonalToken = (t: TokenListItem) => ({
  id: t.id, name: t.name, permissions: t.permissions, created_at: t.createdAt.toISOString(),
  expires_at: t.expiresAt.toISOString(), last_used_at: t.lastUsedAt.toISOString(),
});

/** A personal token just created: the only time its value is shown. */
export const createdPersonalToken = (t: CreatedToken) => ({
  id: t.id, name: t.name, token: t.token, permissions: t.permissions,
  created_at: t.createdAt.toISOString(), expires_at: t.expiresAt?.toISOString() ?? null,
});

export type ActivityActor = 'self' | 'administrator' | 'system' | 'anonymous';

/** Who caused an event, as the user it concerns (`viewerId`) may learn it. */
export function activityActor(e: Pick<AuditEventRow, 'actorId' | 'ip'>, viewerId: number): ActivityActor {
  if (e.actorId === viewerId) return 'self';
  if (e.actorId !== null) return 'administrator';
  // No actor and no request address: not a request at all, but the CLI or the service itself.
  return e.ip === null ? 'system' : 'anonymous';
}

/**
 * An event as GET /auth/activity shows it to `viewerId`. What another principal did shows a label, never
 * that principal's id, IP, user agent or request id (staff details do not leak to the people they serve).
 */
export function activityEvent(e: AuditEventRow, viewerId: number) {
  const actor = activityActor(e, viewerId);
  const own = actor === 'self' || actor === 'anonymous';
  return {
    id: e.id,
    action: e.action,
    actor,
    actor_id: actor === 'self' ? e.actorId : null,
    target_user_id: e.targetUserId,
    ip: own ? e.ip : null,
    user_agent: own ? e.userAgent : null,
    request_id: own ? e.requestId : null,
    created_at: e.createdAt.toISOString(),
    details: e.details,
  };
}
