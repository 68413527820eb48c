// Read-only queries behind GET /dashboard (the core owns the SQL; the route shapes the answer).
import { and, count, desc, eq, gt } from 'drizzle-orm';
import { counties, departments, loginAttempts, roles, rolesUsers, sessions, users } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { ROLE_CITIZEN } from './role-names.js';

export async function adminOverview(db: Database, now: Date) {
  const [byRole, byCounty, recent, locked] = await Promise.all([
    db.select({ role: roles.name, count: count(rolesUsers.userId) }).from(roles)
      .leftJoin(rolesUsers, eq(rolesUsers.roleId, roles.id)).groupBy(roles.name).orderBy(roles.name),
    db.select({ county_id: users.countyId, county: counties.name, count: count() }).from(users)
      .leftJoin(counties, eq(counties.id, users.countyId)).groupBy(users.countyId, counties.name).orderBy(counties.name),
    db.select({ id: users.id, email: users.email, created_at: users.createdAt }).from(users).orderBy(desc(users.createdAt), desc(users.id)).limit(10),
    // addresses locked by the login lockout right now (an address need not belong to an account)
    db.select({ email: loginAttempts.email, lockedUntil: loginAttempts.lockedUntil }).from(loginAttempts)
      .where(gt(loginAttempts.lockedUntil, now)).orderBy(desc(loginAttempts.lockedUntil)).limit(50),
  ]);
  return {
    users_by_role: byRole,
    users_by_county: byCounty,
    recent_registrations: recent.map((r) => ({ ...r, created_at: r.created_at.toISOString() })),
    locked_accounts: locked.map((r) => ({ email: r.email, locked_until: r.lockedUntil!.toISOString() })),
  };
}

export async function officerOverview(db: Database, countyId: number | null, departmentId: number | null) {
  const [county] = countyId ? await db.select({ id: counties.id, name: counties.name }).from(counties).where(eq(counties.id, countyId)) : [];
  const [department] = departmentId ? await db.select({ id: departments.id, name: departments.name }).from(departments).where(eq(departments.id, departmentId)) : [];
  const citizens = countyId
    ? await db.select({ id: users.id, email: users.email, first_name: users.firstName, last_name: users.lastName }).from(users)
      .innerJoin(rolesUsers, eq(rolesUsers.userId, users.id)).innerJoin(roles, eq(roles.id, rolesUsers.roleId))
      .where(and(eq(users.countyId, countyId), eq(roles.name, ROLE_CITIZEN))).orderBy(users.id).limit(50)
    : [];
  return { county: county ?? null, department: department ?? null, citizens };
}

export async function citizenActivity(db: Database, userId: number) {
  const rows = await db.select({ at: sessions.createdAt, ip: sessions.ip, user_agent: sessions.userAgent }).from(sessions)
    .where(eq(sessions.userId, userId)).orderBy(desc(sessions.createdAt)).limit(10);
  return rows.map((r) => ({ event: 'login', at: r.at.toISOString(), ip: r.ip, user_agent: r.user_agent }));
}

