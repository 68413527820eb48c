// Account lockout (brute-force defence per address). Failed logins are counted per normalised email,
// whether or not an account has it, so a lockout says nothing about which addresses exist. After
// SECURITY_LOCKOUT_THRESHOLD failures within SECURITY_LOCKOUT_WINDOW the address is refused for
// SECURITY_LOCKOUT_DURATION, doubling with each repeat up to SECURITY_LOCKOUT_MAX_DURATION. A
// completed login clears the record. The state is in PostgreSQL (login_attempts), so every instance
// agrees; each change is one transaction that locks the address's row.
import { and, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import { loginAttempts, rateLimits, twoFactorChallenges, users } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import type { Database } from '../db/client.js';
import { normalizeEmail } from './datastore.js';
import { isMailAddress } from './mail.js';
import { enqueueMail } from './outbox.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

export interface LockoutStatus {
  email: string;
  locked: boolean;
  lockedUntil: Date | null;
  /** seconds until the lock ends (0 when not locked) */
  retryAfter: number;
  /** failures counted in the current window */
  failures: number;
  /** locks so far (the next one lasts SECURITY_LOCKOUT_DURATION · 2^lockCount, capped) */
  lockCount: number;
}

/** The key failures are counted under: the address as compared everywhere, lower-cased. */
export const lockoutKey = (email: string) => normalizeEmail(email).toLowerCase();

export function accountLocked(retryAfter: number): AppError {
  const seconds = Math.max(1, Math.ceil(retryAfter));
  return new AppError(429, 'ACCOUNT_LOCKED', 'Too many failed sign-in attempts for this account; try again later', {
    headers: { 'retry-after': String(seconds) },
  });
}

/** Length of the lock that follows `previousLocks` earlier ones: doubling, capped. */
export function lockDuration(ctx: SecurityContext, previousLocks: number): number {
  const { SECURITY_LOCKOUT_DURATION: base, SECURITY_LOCKOUT_MAX_DURATION: cap } = ctx.config;
  return Math.min(base * 2 ** Math.min(previousLocks, 20), cap);
}

export async function lockoutStatus(ctx: SecurityContext, email: string): Promise<LockoutStatus> {
  const key = lockoutKey(email);
  const now = ctx.clock.now();
  const [row] = await ctx.db.select().from(loginAttempts).where(eq(loginAttempts.email, key)).limit(1);
  const locked = !!row?.lockedUntil && row.lockedUntil.getTime() > now.getTime();
  const windowOpen = !!row && row.windowStartedAt.getTime() + ctx.config.SECURITY_LOCKOUT_WINDOW * 1000 > now.getTime();
  return {
    email: key,
    locked,
    lockedUntil: locked ? row!.lockedUntil : null,
    retryAfter: locked ? Math.ceil((row!.lockedUntil!.getTime() - now.getTime()) / 1000) : 0,
    failures: row && windowOpen ? row.failures : 0,
    lockCount: row?.lockCount ?? 0,
  };
}

/** Seconds the address is still locked for; 0 when it may try (or lockout is off). */
export async function lockedFor(ctx: SecurityContext, email: string): Promise<number> {
  if (!ctx.config.SECURITY_LOCKOUT_ENABLED) return 0;
  const now = ctx.clock.now();
  const [row] = await ctx.db.select({ lockedUntil: loginAttempts.lockedUntil }).from(loginAttempts)
    .where(and(eq(loginAttempts.email, lockoutKey(email)), gt(loginAttempts.lockedUntil, now))).limit(1);
  return row?.lockedUntil ? Math.ceil((row.lockedUntil.getTime() - now.getTime()) / 1000) : 0;
}

/** Throws 429 ACCOUNT_LOCKED while the address is locked. */
export async function assertNotLocked(ctx: SecurityContext, email: string): Promise<void> {
  const seconds = await lockedFor(ctx, email);
  if (seconds > 0) throw accountLocked(seconds);
}

/**
 * Counts one failed attempt (wrong password, unknown address, wrong two-factor code). Returns the
 * lock it caused, if any. The owner of the address is told by email when the lock starts (an outbox
 * row written in the same transaction, resolved at delivery: nothing is sent for an address without
 * an account, so known and unknown addresses cost the same here).
 */
export async function recordLoginFailure(ctx: SecurityContext, email: string, source: AuditSource = NO_SOURCE): Promise<{ lockedUntil: Date | null }> {
  const { config } = ctx;
  if (!config.SECURITY_LOCKOUT_ENABLED) return { lockedUntil: null };
  const key = lockoutKey(email);
  const now = ctx.clock.now();
  return ctx.db.transaction(async (tx) => {
    await tx.insert(loginAttempts).values({ email: key, failures: 0, windowStartedAt: now, lastFailureAt: now, lockCount: 0 })
      .onConflictDoNothing();
    const [row] = await tx.select().from(loginAttempts).where(eq(loginAttempts.email, key)).for('update');
    const r = row!;
    // already locked (a request that passed the check just before the lock started): not counted twice
    if (r.lockedUntil && r.lockedUntil.getTime() > now.getTime()) return { lockedUntil: r.lockedUntil };
    // repeat locks double only while they keep coming; a quiet spell as long as the cap forgets them
    const lockCount = r.lockedUntil && now.getTime() - r.lockedUntil.getTime() > config.SECURITY_LOCKOUT_MAX_DURATION * 1000 ? 0 : r.lockCount;
    const windowOver = r.failures === 0 || now.getTime() - r.windowStartedAt.getTime() >= config.SECURITY_LOCKOUT_WINDOW * 1000;
    const failures = windowOver ? 1 : r.failures + 1;
    const windowStartedAt = windowOver ? now : r.windowStartedAt;
    if (failures < config.SECURITY_LOCKOUT_THRESHOLD) {
      await tx.update(loginAttempts).set({ failures, windowStartedAt, lastFailureAt: now, lockCount })
        .where(eq(loginAttempts.email, key));
      return { lockedUntil: null };
    }
    const lockedUntil = new Date(now.getTime() + lockDuration(ctx, lockCount) * 1000);
    await tx.update(loginAttempts).set({ failures: 0, windowStartedAt: now, lastFailureAt: now, lockedUntil, lockCount: lockCount + 1 })
      .where(eq(loginAttempts.email, key));
    const [owner] = await tx.select({ id: users.id }).from(users).where(sql`lower(${users.email}) = ${key}`).limit(1);
    await audit(ctx, { ...source, action: 'account.locked', targetUserId: owner?.id ?? null,
      details: { email: key, locked_until: lockedUntil.toISOString(), lock_count: lockCount + 1 } }, tx);
    if (isMailAddress(key)) {
      await enqueueMail(ctx, tx, { template: 'account_locked', recipient: key, payload: { until: lockedUntil.toISOString() } });
    }
    return { lockedUntil };
  });
}

/** A completed login: the address starts from a clean record. */
export async function clearLoginFailures(ctx: SecurityContext, email: string): Promise<void> {
  if (!ctx.config.SECURITY_LOCKOUT_ENABLED) return;
  await ctx.db.delete(loginAttempts).where(eq(loginAttempts.email, lockoutKey(email)));
}

/**
 * Ends a lock at once and forgets the failures (admin API and CLI). Returns whether the address was
 * locked. The caller audits it (users.unlockAccount: 'user.unlocked', in the same transaction `db`).
 */
export async function unlockEmail(ctx: SecurityContext, email: string, db: Database | Tx = ctx.db): Promise<boolean> {
  const now = ctx.clock.now();
  const rows = await db.delete(loginAttempts).where(eq(loginAttempts.email, lockoutKey(email)))
    .returning({ lockedUntil: loginAttempts.lockedUntil });
  return rows.some((r) => r.lockedUntil !== null && r.lockedUntil.getTime() > now.getTime());
}

/**
 * Deletes state that no longer matters: rate-limit windows that ended, failure records whose window
 * and lock (and the memory of it) are over, two-factor challenges a day past their expiry.
 */
export async function pruneSecurityState(ctx: SecurityContext): Promise<void> {
  const now = ctx.clock.now();
  const { SECURITY_LOCKOUT_WINDOW: window, SECURITY_LOCKOUT_MAX_DURATION: cap } = ctx.config;
  const quiet = new Date(now.getTime() - Math.max(window, cap) * 1000);
  const lockForgotten = new Date(now.getTime() - cap * 1000);
  await ctx.db.delete(rateLimits).where(lt(rateLimits.expiresAt, now));
  await ctx.db.delete(loginAttempts).where(and(
    lt(loginAttempts.lastFailureAt, quiet),
    or(isNull(loginAttempts.lockedUntil), lt(loginAttempts.lockedUntil, lockForgotten)),
  ));
  await ctx.db.delete(twoFactorChallenges).where(lt(twoFactorChallenges.expiresAt, new Date(now.getTime() - 86400_000)));
}
