// Brute-force defence state, shared by every instance through PostgreSQL.
//
// login_attempts: failed logins per normalised email (lower-cased, NFKC), whether or not an account
// has that address, so a lockout never tells which addresses exist. Written only by atomic upserts
// (src/security/lockout.ts).
//
// rate_limits: the per-IP request counters of @fastify/rate-limit's PostgreSQL store
// (src/plugins/rate-limit.ts): one row per limit and client, a fixed window that restarts when it ends.
import { index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const loginAttempts = pgTable('login_attempts', {
  email: text('email').primaryKey(),
  // Failures inside the current window; the window starts at the first failure after the last reset.
  failures: integer('failures').notNull().default(0),
  windowStartedAt: timestamp('window_started_at', { withTimezone: true }).notNull(),
  lastFailureAt: timestamp('last_failure_at', { withTimezone: true }).notNull(),
  // Set while the address is refused; lock_count doubles the next lock's duration.
  lockedUntil: timestamp('locked_until', { withTimezone: true }),
  lockCount: integer('lock_count').notNull().default(0),
  // Checks in flight: reserved before the secret is verified, settled after (security/lockout.ts), so
  // failures + pending never exceeds the threshold, whatever the concurrency. A reservation left by a
  // crashed process stops counting at pending_until.
  pending: integer('pending').notNull().default(0),
  pendingUntil: timestamp('pending_until', { withTimezone: true }),
}, (t) => [index('login_attempts_locked_until_idx').on(t.lockedUntil)]);

export const rateLimits = pgTable('rate_limits', {
  key: text('key').primaryKey(),
  hits: integer('hits').notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
}, (t) => [index('rate_limits_expires_at_idx').on(t.expiresAt)]);

export type LoginAttemptRow = typeof loginAttempts.$inferSelect;
