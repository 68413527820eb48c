// Every PostgreSQL advisory lock the service takes, in one table, so no two locks share a number by
// accident. The single-key form (pg_advisory_xact_lock(bigint)) and the two-key form
// (pg_advisory_xact_lock(int, int)) are separate lock spaces in PostgreSQL, but a number here names one
// lock in either form; test/db/locks.test.ts checks that they stay distinct and that no other file
// takes an advisory lock with a literal number.
import { sql, type SQL } from 'drizzle-orm';

export const ADVISORY_LOCKS = {
  /** start-up: migrations and the seed, session-level on a dedicated connection (db/migrate.ts) */
  startup: 7263000,
  /** the seeder (several instances starting at once) */
  seed: 7263001,
  /** every change that can reduce the number of active County Admins */
  adminCount: 7263002,
  /** the per-address mail throttle (second key: hashtext(lower(recipient))) */
  mailThrottle: 7263003,
} as const;
export type AdvisoryLock = keyof typeof ADVISORY_LOCKS;

interface Executor { execute(query: SQL): PromiseLike<unknown> }

/** Takes the lock until the end of the transaction `tx`; with `subKey`, one lock per (lock, subKey) pair. */
export async function advisoryXactLock(tx: Executor, lock: AdvisoryLock, subKey?: SQL): Promise<void> {
  const id = ADVISORY_LOCKS[lock];
  await tx.execute(subKey === undefined ? sql`select pg_advisory_xact_lock(${id})` : sql`select pg_advisory_xact_lock(${id}, ${subKey})`);
}

type Tagged = (strings: TemplateStringsArray, ...values: number[]) => PromiseLike<unknown>;

/**
 * Session-level form, for the start-up lock only: held on one connection (postgres.js `sql` or a
 * reserved connection) across several transactions, until unlocked or the connection ends.
 */
export const advisorySessionLock = (sql: Tagged, lock: AdvisoryLock) => sql`select pg_advisory_lock(${ADVISORY_LOCKS[lock]})`;
export const advisorySessionUnlock = (sql: Tagged, lock: AdvisoryLock) => sql`select pg_advisory_unlock(${ADVISORY_LOCKS[lock]})`;
