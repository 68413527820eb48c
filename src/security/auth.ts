// Credential checks and registration: the rules of the contract's login and register views,
// independent of HTTP.
import { eq, sql } from 'drizzle-orm';
import { users } from '../db/schema/index.js';
import { AppError, validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { createSession, type NewSession } from './sessions.js';
import { createUser, findUser, normalizeEmail, type CreateUserInput, type UserRecord } from './datastore.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { ROLE_CITIZEN } from './role-names.js';
import { queueRegistrationMail } from './confirmable.js';
import { accountLocked, lockedFor, recordLoginFailure } from './lockout.js';

export const invalidCredentials = () => new AppError(401, 'INVALID_CREDENTIALS', 'Invalid email or password');

/**
 * Checks an email/password pair. Unknown email and wrong password cost the same bcrypt work and
 * produce the same error; whether the account is disabled or unconfirmed is only said after a
 * correct password (and not even then in generic-responses mode).
 *
 * Lockout (security/lockout.ts) comes first: a locked address is refused (429 ACCOUNT_LOCKED) even
 * with the right password, after the same bcrypt work, whether or not it has an account. Every
 * failure counts towards the address's lockout; the caller clears the count once the whole login
 * (the second factor included) has succeeded.
 */
export async function checkCredentials(ctx: SecurityContext, email: string, password: string, source: AuditSource = NO_SOURCE): Promise<UserRecord> {
  // Every refusal is recorded with its reason (never the password); the response stays generic.
  const refuse = async (reason: string, error: AppError, userId: number | null = null): Promise<never> => {
    await audit(ctx, { ...source, action: 'login.failed', targetUserId: userId, details: { email: normalizeEmail(email), reason } });
    throw error;
  };
  // A locked address is refused before the password is looked at, with the same bcrypt work.
  const lockedSeconds = await lockedFor(ctx, email);
  if (lockedSeconds > 0) {
    await ctx.passwords.dummyVerify(password);
    return refuse('locked', accountLocked(lockedSeconds));
  }
  const user = await findUser(ctx.db, { email });
  if (!user) {
    await ctx.passwords.dummyVerify(password);
    await recordLoginFailure(ctx, email, source);
    return refuse('unknown_user', invalidCredentials());
  }
  const { ok, needsRehash } = await ctx.passwords.verify(password, user.password);
  if (!ok) {
    await recordLoginFailure(ctx, email, source);
    return refuse('bad_password', invalidCredentials(), user.id);
  }
  if (needsRehash) {
    const hash = await ctx.passwords.hash(password);
    await ctx.db.update(users).set({ password: hash }).where(eq(users.id, user.id));
  }
  const generic = ctx.config.SECURITY_RETURN_GENERIC_RESPONSES;
  if (!user.active) return refuse('disabled', generic ? invalidCredentials() : new AppError(403, 'ACCOUNT_DISABLED', 'This account is disabled'), user.id);
  if (ctx.config.SECURITY_CONFIRMABLE && !user.confirmedAt) {
    return refuse('unconfirmed', generic ? invalidCredentials() : new AppError(403, 'CONFIRMATION_REQUIRED', 'Confirm your email address before logging in'), user.id);
  }
  return user;
}

export interface ClientInfo { ip: string | null; userAgent: string | null }

/** Opens a session for an authenticated user and records the login (trackable) atomically. */
export async function startSession(ctx: SecurityContext, user: UserRecord, client: ClientInfo): Promise<NewSession & { user: UserRecord }> {
  const now = ctx.clock.now();
  const created = await ctx.db.transaction(async (tx) => {
    if (ctx.config.SECURITY_TRACKABLE) {
      await tx.update(users).set({
        lastLoginAt: sql`${users.currentLoginAt}`,
        lastLoginIp: sql`${users.currentLoginIp}`,
        currentLoginAt: now,
        currentLoginIp: client.ip,
        loginCount: sql`${users.loginCount} + 1`,
      }).where(eq(users.id, user.id));
    }
    return createSession(ctx, { userId: user.id, ip: client.ip, userAgent: client.userAgent, fsPaa: now }, tx);
  });
  const fresh = ctx.config.SECURITY_TRACKABLE ? (await findUser(ctx.db, { id: user.id }))! : user;
  return { ...created, user: fresh };
}

export type RegisterInput = Omit<CreateUserInput, 'roles' | 'active' | 'confirmedAt' | 'departmentId'>;

/** Policy messages for a new password, keyed for the envelope's `fields`. */
export function checkPasswordPolicy(ctx: SecurityContext, field: string, password: string, email?: string): void {
  const problems = ctx.passwords.validate(password, { email });
  if (problems.length) throw validationError({ [field]: problems });
}

export async function registerUser(ctx: SecurityContext, input: RegisterInput): Promise<UserRecord> {
  checkPasswordPolicy(ctx, 'password', input.password, input.email);
  // bcrypt first: a connection is not held open for the ~150 ms a hash takes at cost 12.
  const passwordHash = await ctx.passwords.hash(input.password);
  // The account and its email (confirmation / welcome) commit together: the transactional outbox.
  return ctx.db.transaction(async (tx) => {
    const user = await createUser(ctx, {
      ...input,
      passwordHash,
      roles: [ROLE_CITIZEN],
      confirmedAt: null,
    }, tx);
    await queueRegistrationMail(ctx, tx, user);
    return user;
  });
}
