// Counties and their departments: the organisation users are assigned to.
import { asc, eq, sql } from 'drizzle-orm';
import { counties, departments } from '../db/schema/index.js';
import { AppError, notFound, pgError, validationError } from '../errors.js';
import { audit, type AuditSource } from './audit.js';
import type { SecurityContext } from './context.js';

export type CountyRow = typeof counties.$inferSelect;
export type DepartmentRow = typeof departments.$inferSelect;

function cleanName(name: string): string {
  const trimmed = name.trim().replace(/\s+/g, ' ');
  if (!trimmed.length || trimmed.length > 100) throw validationError({ name: ['Must be 1-100 characters'] });
  return trimmed;
}

const nameTaken = (what: string) => new AppError(409, 'CONFLICT', `${what} with this name already exists`, { fields: { name: ['Name is taken'] } });

export async function listCounties(ctx: Pick<SecurityContext, 'db'>): Promise<CountyRow[]> {
  return ctx.db.select().from(counties).orderBy(asc(sql`lower(${counties.name})`), asc(counties.id));
}

export async function requireCounty(ctx: Pick<SecurityContext, 'db'>, id: number): Promise<CountyRow> {
  const [county] = await ctx.db.select().from(counties).where(eq(counties.id, id));
  if (!county) throw notFound('County');
  return county;
}

export async function createCounty(ctx: SecurityContext, by: AuditSource, input: { name: string }): Promise<CountyRow> {
  const name = cleanName(input.name);
  try {
    return await ctx.db.transaction(async (tx) => {
      const now = ctx.clock.now();
      const [county] = await tx.insert(counties).values({ name, createdAt: now, updatedAt: now }).returning();
      await audit(ctx, { ...by, action: 'county.created', details: { county_id: county!.id, name } }, tx);
      return county!;
    });
  } catch (err) {
    if (pgError(err)?.code === '23505') throw nameTaken('A county');
    throw err;
  }
}

export async function listDepartments(ctx: Pick<SecurityContext, 'db'>, countyId: number): Promise<DepartmentRow[]> {
  await requireCounty(ctx, countyId);
  return ctx.db.select().from(departments).where(eq(departments.countyId, countyId))
    .orderBy(asc(sql`lower(${departments.name})`), asc(departments.id));
}

export async function createDepartment(ctx: SecurityContext, by: AuditSource, countyId: number, input: { name: string }): Promise<DepartmentRow> {
  const name = cleanName(input.name);
  try {
    return await ctx.db.transaction(async (tx) => {
      const now = ctx.clock.now();
      const [department] = await tx.insert(departments).values({ countyId, name, createdAt: now, updatedAt: now }).returning();
      await audit(ctx, { ...by, action: 'department.created', details: { department_id: department!.id, county_id: countyId, name } }, tx);
      return department!;
    });
  } catch (err) {
    const pg = pgError(err);
    if (pg?.code === '23503') throw notFound('County');
    if (pg?.code === '23505') throw nameTaken('A department of this county');
    throw err;
  }
}

