// Account lockout (brute-force defence per address). Failed logins are counted per normalised email,
// whether or not an account has it, so a lockout says nothing about which addresses exist. After
// SECURITY_LOCKOUT_THRESHOLD failures within SECURITY_LOCKOUT_WINDOW the address is refused for
// SECURITY_LOCKOUT_DURATION, doubling with each repeat up to SECURITY_LOCKOUT_MAX_DURATION. Every
// check of a secret (login password, current password at /verify, /change-password, /change-email,
// TOTP and recovery codes, one-time codes) reserves a slot first and settles it after, so the count
// and the lock are decided atomically in PostgreSQL (login_attempts, one statement per step holding
// the address's row lock): no burst of parallel checks on any number of instances verifies more than
// the threshold. A success clears only the failures counted before it began, never a lock.
import { and, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import { loginAttempts, rateLimits, twoFactorChallenges, twoFactorEmailCodes, users, usSigninCodes, webauthnChallenges } from '../db/schema/index.js';
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

/**
 * A reserved check of a secret: taken before the secret is verified (reserveAttempt), settled after
 * (settleFailure / settleNeutral / settleSuccess, or completeLogin in security/login.ts). `failures`
 * and `windowStartedAt` are the count the reservation saw: a success clears those and only those.
 * null when lockout is off.
 */
export type Attempt = { key: string; failures: number; windowStartedAt: string } | null;

/** How long a reservation counts as in flight before it is presumed dead (a crashed process). */
const PENDING_SECONDS = 30;

const iso = (d: Date) => d.toISOString();

/**
 * Step one of every secret check: one atomic upsert that refuses (429 ACCOUNT_LOCKED) while the
 * address is locked, or while failures already counted plus checks in flight have reached the
 * threshold, and otherwise reserves a slot. So at most SECURITY_LOCKOUT_THRESHOLD secrets are ever
 * verified (and answered as failures) for one address before the lock, on any number of instances.
 * A refusal costs no bcrypt work and is not counted.
 */
export async function reserveAttempt(ctx: SecurityContext, email: string): Promise<Attempt> {
  const { config } = ctx;
  if (!config.SECURITY_LOCKOUT_ENABLED) return null;
  const key = lockoutKey(email);
  const now = ctx.clock.now();
  const nowS = iso(now);
  const windowCut = iso(new Date(now.getTime() - config.SECURITY_LOCKOUT_WINDOW * 1000));
  const until = iso(new Date(now.getTime() + PENDING_SECONDS * 1000));
  const restart = sql`(a.failures = 0 or a.window_started_at <= ${windowCut}::timestamptz)`;
  const inFlight = sql`(case when a.pending_until > ${nowS}::timestamptz then a.pending else 0 end)`;
  const rows = await ctx.db.execute<{ failures: number; window_started_at: string }>(sql`
    insert into login_attempts as a (email, failures, window_started_at, last_failure_at, lock_count, pending, pending_until)
    values (${key}, 0, ${nowS}::timestamptz, ${nowS}::timestamptz, 0, 1, ${until}::timestamptz)
    on conflict (email) do update set
      failures = case when ${restart} then 0 else a.failures end,
      window_started_at = case when ${restart} then ${nowS}::timestamptz else a.window_started_at end,
      pending = ${inFlight} + 1,
      pending_until = ${until}::timestamptz
    where (a.locked_until is null or a.locked_until <= ${nowS}::timestamptz)
      and (case when ${restart} then 0 else a.failures end) + ${inFlight} < ${config.SECURITY_LOCKOUT_THRESHOLD}
    returning failures, window_started_at::text`);
  const row = rows[0];
  if (row) return { key, failures: Number(row.failures), windowStartedAt: row.window_started_at };
  // Refused: locked, or every remaining slot is taken by checks in flight (which may yet lock it).
  const [state] = await ctx.db.select({ lockedUntil: loginAttempts.lockedUntil }).from(loginAttempts).where(eq(loginAttempts.email, key)).limit(1);
  const seconds = state?.lockedUntil && state.lockedUntil.getTime() > now.getTime() ? (state.lockedUntil.getTime() - now.getTime()) / 1000 : 1;
  throw accountLocked(seconds);
}

/** Seconds the address is still locked for; 0 when it may try (or lockout is off). */
export async function lockedFor(ctx: SecurityContext, email: string): Promise<number> {
  if (!ctx.config.SECURITY_LOCKOUT_ENABLED) return 0;
  const now = ctx.clock.now();
  const [row] = await ctx.db.select({ lockedUntil: loginAttempts.lockedUntil }).from(loginAttempts)
    .where(and(eq(loginAttempts.email, lockoutKey(email)), gt(loginAttempts.lockedUntil, now))).limit(1);
  return row?.lockedUntil ? Math.ceil((row.lockedUntil.getTime() - now.getTime()) / 1000) : 0;
}

/**
 * The reservation was a wrong secret (or an unknown address): it becomes a counted failure, in one
 * statement that holds the address's row lock, and the failure that reaches the threshold starts the
 * lock, SECURITY_LOCKOUT_DURATION · 2^lock_count (capped), lock_count + 1 in the same statement, so
 * the doubling cannot restart under a race. The owner is told by email when the lock starts (an
 * outbox row in the same transaction, resolved at delivery: nothing is sent for an address without
 * an account). Returns the lock it caused, if any.
 */
export async function settleFailure(ctx: SecurityContext, attempt: Attempt, source: AuditSource = NO_SOURCE): Promise<{ lockedUntil: Date | null }> {
  if (!attempt) return { lockedUntil: null };
  const { config } = ctx;
  const now = ctx.clock.now();
  const nowS = iso(now);
  const capSeconds = config.SECURITY_LOCKOUT_MAX_DURATION;
  return ctx.db.transaction(async (tx) => {
    const rows = await tx.execute<{ locked_until: string | null; lock_count: number; just_locked: boolean }>(sql`
      with o as (
        select failures, locked_until, lock_count,
          (locked_until is not null and locked_until > ${nowS}::timestamptz) as locked_now,
          -- repeat locks double only while they keep coming; a quiet spell as long as the cap forgets them
          (case when locked_until is not null and locked_until < ${nowS}::timestamptz - make_interval(secs => ${capSeconds})
            then 0 else lock_count end) as previous_locks
        from login_attempts where email = ${attempt.key} for update
      ), n as (
        select o.*, (not o.locked_now and o.failures + 1 >= ${config.SECURITY_LOCKOUT_THRESHOLD}) as locks from o
      )
      update login_attempts a set
        pending = greatest(a.pending - 1, 0),
        last_failure_at = ${nowS}::timestamptz,
        failures = case when n.locked_now then a.failures when n.locks then 0 else a.failures + 1 end,
        window_started_at = case when n.locks then ${nowS}::timestamptz else a.window_started_at end,
        locked_until = case when n.locks then ${nowS}::timestamptz + make_interval(secs =>
          least(${config.SECURITY_LOCKOUT_DURATION}::float8 * power(2, least(n.previous_locks, 20)), ${capSeconds}::float8))
          else a.locked_until end,
        lock_count = case when n.locks then n.previous_locks + 1 else a.lock_count end
      from n where a.email = ${attempt.key}
      returning a.locked_until::text, a.lock_count, n.locks as just_locked`);
    const row = rows[0];
    if (!row?.just_locked) return { lockedUntil: null };
    const lockedUntil = new Date(row.locked_until!);
    const key = attempt.key;
    const [owner] = await tx.select({ id: users.id }).from(users).where(sql`lower(${users.email}) = ${key}`).limit(1);
    await audit(ctx, { ...source, action: 'account.locked', targetUserId: owner?.id ?? null,
      details: { email: key, locked_until: lockedUntil.toISOString(), lock_count: Number(row.lock_count) } }, tx);
    if (isMailAddress(key)) {
      await enqueueMail(ctx, tx, { template: 'account_locked', recipient: key, payload: { until: lockedUntil.toISOString() } });
    }
    return { lockedUntil };
  });
}

/** The secret was right but nothing completed (a second factor is due, the account is disabled): the slot is returned, nothing cleared. */
export async function settleNeutral(ctx: SecurityContext, attempt: Attempt): Promise<void> {
  if (!attempt) return;
  await ctx.db.execute(sql`update login_attempts set pending = greatest(pending - 1, 0) where email = ${attempt.key}`);
}

/**
 * SQL that settles a successful check: the slot is returned and the failures the reservation saw
 * are forgotten, but not those counted after it began (same window: subtract what it saw; a new
 * window, i.e. a lock or an expiry since, is left alone), and never a lock. completeLogin embeds it
 * in its one statement; settleSuccess runs it alone.
 */
export function settleSuccessSql(attempt: NonNullable<Attempt>) {
  return sql`update login_attempts set
      pending = greatest(pending - 1, 0),
      failures = case when window_started_at = ${attempt.windowStartedAt}::timestamptz then greatest(failures - ${attempt.failures}, 0) else failures end
    where email = ${attempt.key}
    returning locked_until`;
}

export async function settleSuccess(ctx: SecurityContext, attempt: Attempt): Promise<void> {
  if (!attempt) return;
  await ctx.db.execute(settleSuccessSql(attempt));
}

/**
 * One counted check of a secret for an address (a current password, a TOTP or recovery code, a
 * one-time code): reserve → verify → settle. A wrong secret counts toward the lockout like a failed
 * login; while the address is locked the check is refused with 429 ACCOUNT_LOCKED before the secret
 * is looked at. Returns what `verify` returned when it is truthy; throws what `wrong()` builds otherwise.
 */
export async function checkSecret<T>(ctx: SecurityContext, input: {
  email: string; verify: () => Promise<T | null | false>; wrong: () => Error; source?: AuditSource;
  /** names the check in the audit row of a failure ('password' by default) */
  check?: string; userId?: number;
}): Promise<T> {
  const attempt = await reserveAttempt(ctx, input.email);
  let result: T | null | false;
  try {
    result = await input.verify();
  } catch (err) {
    await settleNeutral(ctx, attempt);
    throw err;
  }
  if (!result) {
    await settleFailure(ctx, attempt, input.source);
    await audit(ctx, { ...(input.source ?? NO_SOURCE), action: 'secret_check.failed', targetUserId: input.userId ?? null,
      details: { email: lockoutKey(input.email), check: input.check ?? 'password' } });
    throw input.wrong();
  }
  await settleSuccess(ctx, attempt);
  return result;
}

/** Throws 429 ACCOUNT_LOCKED while the address is locked. */
export async function assertNotLocked(ctx: SecurityContext, email: string): Promise<void> {
  const seconds = await lockedFor(ctx, email);
  if (seconds > 0) throw accountLocked(seconds);
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
const mailRateLimited = (retryAfter: number) => new AppError(429, 'RATE_LIMITED', 'Too many codes were requested for this address; try again later', {
  headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfter))) },
});

/**
 * One mailed code against its bucket's send budget (SECURITY_US_SEND_LIMIT; one atomic upsert in
 * rate_limits, so parallel requests on any instance share it); 429 RATE_LIMITED beyond it. Buckets:
 * `us-send:<address>` (email sign-in codes), `tf-send:<user id>` (email second-factor codes).
 */
export async function countMailSend(ctx: SecurityContext, bucket: string): Promise<void> {
  const { max, windowSeconds } = ctx.config.SECURITY_US_SEND_LIMIT;
  const now = ctx.clock.now();
  const end = new Date(now.getTime() + windowSeconds * 1000).toISOString();
  const nowIso = now.toISOString();
  const [row] = await ctx.sql<{ hits: number; end_ms: string }[]>`
    insert into rate_limits as r (key, hits, expires_at) values (${bucket}, 1, ${end}::timestamptz)
    on conflict (key) do update set
      hits = case when r.expires_at <= ${nowIso}::timestamptz then 1 else r.hits + 1 end,
      expires_at = case when r.expires_at <= ${nowIso}::timestamptz then excluded.expires_at else r.expires_at end
    returning hits, (extract(epoch from expires_at) * 1000)::bigint::text as end_ms`;
  if (Number(row!.hits) > max) throw mailRateLimited((Number(row!.end_ms) - now.getTime()) / 1000);
}

export async function pruneSecurityState(ctx: SecurityContext): Promise<void> {
  const now = ctx.clock.now();
  const { SECURITY_LOCKOUT_WINDOW: window, SECURITY_LOCKOUT_MAX_DURATION: cap } = ctx.config;
  const quiet = new Date(now.getTime() - Math.max(window, cap) * 1000);
  const lockForgotten = new Date(now.getTime() - cap * 1000);
  await ctx.db.delete(rateLimits).where(lt(rateLimits.expiresAt, now));
  await ctx.db.delete(loginAttempts).where(and(
    lt(loginAttempts.lastFailureAt, quiet),
    or(isNull(loginAttempts.lockedUntil), lt(loginAttempts.lockedUntil, lockForgotten)),
    // never under a check in flight: its failure must find the row to be counted
    or(isNull(loginAttempts.pendingUntil), lt(loginAttempts.pendingUntil, now)),
  ));
  await ctx.db.delete(twoFactorChallenges).where(lt(twoFactorChallenges.expiresAt, new Date(now.getTime() - 86400_000)));
  // passwordless (security/webauthn.ts, security/unified-signin.ts): ceremonies and email codes a day past their expiry
  await ctx.db.delete(webauthnChallenges).where(lt(webauthnChallenges.expiresAt, new Date(now.getTime() - 86400_000)));
  await ctx.db.delete(usSigninCodes).where(lt(usSigninCodes.expiresAt, new Date(now.getTime() - 86400_000)));
  await ctx.db.delete(twoFactorEmailCodes).where(lt(twoFactorEmailCodes.expiresAt, new Date(now.getTime() - 86400_000)));
}
