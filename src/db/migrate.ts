// Migrations (drizzle's journal) and the start-up lock. Instances that start together on one
// database take turns: a PostgreSQL advisory lock, held on a dedicated connection, covers the
// migrations and the seed, so the second instance finds the schema in place instead of racing the
// first to CREATE TABLE. A failure names the driver's cause, never the SQL text and its parameters.
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database, DbHandle } from './client.js';
import * as schema from './schema/index.js';
import { describeDatabaseError } from '../errors.js';
import { ADVISORY_LOCKS, advisorySessionLock, advisorySessionUnlock } from './locks.js';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

/** The advisory lock of the start-up (migrations + seed): db/locks.ts, session-level. */
export const STARTUP_LOCK = ADVISORY_LOCKS.startup;
/** How long an instance waits for another one's start-up before giving up, seconds. */
const STARTUP_LOCK_WAIT = 120;

function wrap(what: string, err: unknown): Error {
  return new Error(`${what} failed: ${describeDatabaseError(err)}`, { cause: err });
}

/**
 * Runs `fn` while holding the start-up lock, on a dedicated single connection without a statement
 * timeout (a migration may take long; waiting for the lock is bounded by STARTUP_LOCK_WAIT).
 */
export async function withStartupLock<T>(url: string, fn: (db: Database) => Promise<T>): Promise<T> {
  const sql = postgres(url, {
    max: 1, onnotice: () => undefined, connect_timeout: 10,
    connection: { application_name: 'county-services-startup', statement_timeout: 0 },
  });
  try {
    try {
      await sql`select set_config('lock_timeout', ${`${STARTUP_LOCK_WAIT}s`}, false)`;
      await advisorySessionLock(sql, 'startup');
      await sql`select set_config('lock_timeout', '0', false)`;
    } catch (err) {
      throw wrap('taking the start-up lock', err);
    }
    try {
      return await fn(drizzle(sql, { schema }));
    } finally {
      await Promise.resolve(advisorySessionUnlock(sql, 'startup')).catch(() => undefined);
    }
  } finally {
    await sql.end({ timeout: 5 }).catch(() => undefined);
  }
}

async function applyMigrations(db: Database): Promise<void> {
  try {
    await migrate(db, { migrationsFolder: MIGRATIONS_DIR, migrationsSchema: 'drizzle' });
  } catch (err) {
    throw wrap('database migrations', err);
  }
}

/**
 * Applies every committed migration not yet applied (idempotent), under the start-up lock. Given a
 * DbHandle it uses a dedicated connection; given only a Database, the lock is held on a connection
 * reserved from its pool (which then needs at least two connections).
 */
export async function runMigrations(target: DbHandle | Database, opts: { locked?: boolean } = {}): Promise<void> {
  if (opts.locked) return applyMigrations(target as Database);
  if ('url' in target && 'sql' in target) return withStartupLock(target.url, applyMigrations);
  const db = target as Database;
  const reserved = await (db as unknown as { $client: postgres.Sql }).$client.reserve();
  try {
    await advisorySessionLock(reserved, 'startup');
    try {
      await applyMigrations(db);
    } finally {
      await Promise.resolve(advisorySessionUnlock(reserved, 'startup')).catch(() => undefined);
    }
  } finally {
    reserved.release();
  }
}
