// The readiness probe's question to the database, asked here so routes never write SQL.
import { sql } from 'drizzle-orm';
import type { Database } from './client.js';

/** Resolves when the database answers a trivial query; rejects with the driver's error otherwise. */
export async function pingDatabase(db: Database): Promise<void> {
  await db.execute(sql`select 1`);
}
