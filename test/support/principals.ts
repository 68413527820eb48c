// The cast of the authorization tests: a citizen, an officer in county A, an officer in county B, a
// County Admin, and nobody at all. Each logged-in principal carries bearer headers.
import { eq } from 'drizzle-orm';
import { counties, departments } from '../../src/db/schema/index.js';
import type { UserRecord } from '../../src/security/datastore.js';
import { afterAll, beforeAll } from 'vitest';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from './helper.js';
import { lateBound } from './late-bound.js';

export type PrincipalName = 'anonymous' | 'citizen' | 'officerA' | 'officerB' | 'admin';
export const PRINCIPALS: PrincipalName[] = ['anonymous', 'citizen', 'officerA', 'officerB', 'admin'];

export interface Principal { user: UserRecord | null; headers: Record<string, string> }

export interface Cast {
  countyA: { id: number; departmentIds: number[] };
  countyB: { id: number; departmentIds: number[] };
  as: Record<PrincipalName, Principal>;
}

export async function county(t: TestApp, name: string): Promise<{ id: number; departmentIds: number[] }> {
  const [c] = await t.db.db.select().from(counties).where(eq(counties.name, name));
  const deps = await t.db.db.select({ id: departments.id }).from(departments).where(eq(departments.countyId, c!.id)).orderBy(departments.id);
  return { id: c!.id, departmentIds: deps.map((d) => d.id) };
}

export async function makeCast(t: TestApp): Promise<Cast> {
  const countyA = await county(t, 'Nairobi');
  const countyB = await county(t, 'Mombasa');
  const users = {
    citizen: await makeUser(t.ctx, { roles: ['Citizen'], countyId: countyA.id }),
    officerA: await makeUser(t.ctx, { roles: ['Department Officer'], countyId: countyA.id, departmentId: countyA.departmentIds[0] }),
    officerB: await makeUser(t.ctx, { roles: ['Department Officer'], countyId: countyB.id, departmentId: countyB.departmentIds[0] }),
    admin: await makeUser(t.ctx, { roles: ['County Admin'] }),
  };
  const as = { anonymous: { user: null, headers: {} } } as Record<PrincipalName, Principal>;
  for (const [name, user] of Object.entries(users)) {
    const session = await login(t.app, user.email);
    as[name as PrincipalName] = { user, headers: bearer(session.access_token) };
  }
  return { countyA, countyB, as };
}

/**
 * The set-up of an admin-API describe block: its own database, an app on it and the cast of
 * principals (makeCast), built in beforeAll and closed in afterAll. `t` and `cast` stand for them.
 */
export function useCastFixture(): { t: TestApp; cast: Cast } {
  const database = lateBound<TestDatabase>('the database');
  const app = lateBound<TestApp>('the app');
  const cast = lateBound<Cast>('the cast');
  beforeAll(async () => {
    database.set(await createTestDatabase());
    app.set(await buildTestApp(database.proxy));
    cast.set(await makeCast(app.proxy));
  });
  afterAll(async () => {
    await app.value?.close();
    await database.value?.drop();
  });
  return { t: app.proxy, cast: cast.proxy };
}
