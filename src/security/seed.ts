// Idempotent seed: the three roles of the contract, a few counties and departments, and — in
// development only — the well-known test admin. Existing rows are never overwritten, so admins'
// edits to seeded roles survive a restart.
import { sql } from 'drizzle-orm';
import { counties, departments, roles } from '../db/schema/index.js';
import { advisoryXactLock } from '../db/locks.js';
import type { SecurityContext } from './context.js';
import { AppError, pgError } from '../errors.js';
import { createUser, findUser } from './datastore.js';
import { ROLE_ADMIN, SEEDED_ROLES } from './role-names.js';

const SEEDED_COUNTIES: Record<string, string[]> = {
  Nairobi: ['Health', 'Lands and Housing', 'Transport'],
  Mombasa: ['Health', 'Water and Sanitation'],
  Kisumu: ['Health', 'Education'],
};

export const DEV_ADMIN_EMAIL = 'admin@test.com';
export const DEV_ADMIN_PASSWORD = 'password123';

export interface SeedResult { roles: number; counties: number; departments: number; devAdminCreated: boolean }

export async function seed(ctx: SecurityContext, opts: { devAdmin: boolean; warn?: (msg: string) => void }): Promise<SeedResult> {
  const result: SeedResult = { roles: 0, counties: 0, departments: 0, devAdminCreated: false };
  await ctx.db.transaction(async (tx) => {
    // Serialise concurrent seeders (several instances starting at once).
    await advisoryXactLock(tx, 'seed');
    const insertedRoles = await tx.insert(roles)
      .values(SEEDED_ROLES.map((r) => ({ name: r.name, description: r.description, permissions: [...r.permissions].sort() })))
      .onConflictDoNothing({ target: roles.name }).returning({ id: roles.id });
    result.roles = insertedRoles.length;
    for (const [county, deps] of Object.entries(SEEDED_COUNTIES)) {
      const inserted = await tx.insert(counties).values({ name: county }).onConflictDoNothing().returning({ id: counties.id });
      result.counties += inserted.length;
      const [row] = inserted.length ? inserted : await tx.select({ id: counties.id }).from(counties).where(sql`lower(${counties.name}) = lower(${county})`);
      const insertedDeps = await tx.insert(departments).values(deps.map((name) => ({ countyId: row!.id, name }))).onConflictDoNothing().returning({ id: departments.id });
      result.departments += insertedDeps.length;
    }
  });
  if (opts.devAdmin) {
    const existing = await findUser(ctx.db, { email: DEV_ADMIN_EMAIL });
    if (!existing) {
      try {
        await createUser(ctx, {
          email: DEV_ADMIN_EMAIL,
          password: DEV_ADMIN_PASSWORD,
          firstName: 'Test',
          lastName: 'Admin',
          confirmedAt: ctx.clock.now(),
          roles: [ROLE_ADMIN],
        });
        result.devAdminCreated = true;
      } catch (err) {
        // another seeder (an instance starting beside this one) created it first
        if (!(err instanceof AppError && err.code === 'EMAIL_TAKEN') && pgError(err)?.code !== '23505') throw err;
      }
    }
    opts.warn?.(
      `DEVELOPMENT ONLY: the test admin ${DEV_ADMIN_EMAIL} exists with the well-known password from the README. ` +
      'Never run with NODE_ENV=development on a reachable host.',
    );
  }
  return result;
}
