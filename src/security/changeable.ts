// Changeable (Flask-Security): change the password while signed in, re-authenticate (freshness), and
// change the email address through a link sent to the new address.
import { and, eq, isNull } from 'drizzle-orm';
import { sessions, users } from '../db/schema/index.js';
import { validationError, emailTaken } from '../errors.js';
import type { SecurityContext } from './context.js';
import { checkPasswordPolicy, type ClientInfo } from './auth.js';
import { findUser, mapUserWriteError, normalizeEmail, resetUserAccess, type UserRecord } from './datastore.js';
import { createSession, type NewSession } from './sessions.js';
import { fingerprintMatches, linkClaims, linkInvalid, linkLifetime, verifyLink } from './links.js';
import { enqueueMail } from './outbox.js';
import { normalizePassword } from './passwords.js';
import { checkSecret } from './lockout.js';
import { NO_SOURCE, type AuditSource } from './audit.js';

/**
 * The caller's password, checked with the same bcrypt work as a login; wrong → a field error. It is a
 * counted secret check (security/lockout.ts checkSecret): a wrong one counts toward the account's
 * lockout like a failed login, and while the account is locked the live session gets 429
 * ACCOUNT_LOCKED here before the password is looked at (the session itself is not killed).
 */
async function requirePassword(ctx: SecurityContext, user: UserRecord, password: string, field = 'password',
  message = 'Password is incorrect', source: AuditSource = NO_SOURCE) {
  await checkSecret(ctx, {
    email: user.email, source, userId: user.id, check: 'current_password',
    verify: async () => (await ctx.passwords.verify(password, user.password)).ok,
    wrong: () => validationError({ [field]: [message] }),
  });
}

/** POST /verify: re-authentication. The session's last primary authentication becomes now. */
export async function verifySession(ctx: SecurityContext, user: UserRecord, sessionId: string, password: string, source: AuditSource = NO_SOURCE): Promise<void> {
  await requirePassword(ctx, user, password, 'password', 'Password is incorrect', source);
  await ctx.db.update(sessions).set({ fsPaa: ctx.clock.now() })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, user.id), isNull(sessions.revokedAt)));
}

/**
 * POST /change-password. Every session and token of the user dies (new fs_uniquifier, sessions
 * revoked); the caller gets a new session (fresh: they just gave their password). One transaction,
 * with the notice.
 */
export async function changePassword(ctx: SecurityContext, user: UserRecord, current: string, next: string, client: ClientInfo,
  source: AuditSource = NO_SOURCE, opts: { remember?: boolean } = {}): Promise<NewSession & { user: UserRecord }> {
  await requirePassword(ctx, user, current, 'password', 'Current password is incorrect', source);
  if (normalizePassword(next) === normalizePassword(current)) {
    throw validationError({ new_password: ['The new password must differ from the current one'] });
  }
  checkPasswordPolicy(ctx, 'new_password', next, user.email);
  const hash = await ctx.passwords.hash(next);
  const now = ctx.clock.now();
  const created = await ctx.db.transaction(async (tx) => {
    const [locked] = await tx.select().from(users).where(eq(users.id, user.id)).for('update');
    // changed by a concurrent request since we checked it: the current password no longer holds
    if (!locked || locked.password !== user.password) throw validationError({ password: ['Current password is incorrect'] });
    await tx.update(users).set({ password: hash, updatedAt: now }).where(eq(users.id, user.id));
    await resetUserAccess(ctx, user.id, 'password_change', tx);
    if (ctx.config.SECURITY_SEND_PASSWORD_CHANGE_EMAIL) {
      await enqueueMail(ctx, tx, { template: 'password_changed', recipient: locked.email, userId: user.id });
    }
    // a remembered login stays remembered: the new session (and its cookie) keeps the flag
    return createSession(ctx, { userId: user.id, ip: client.ip, userAgent: client.userAgent, fsPaa: now, remember: opts.remember ?? false }, tx);
  });
  return { ...created, user: (await findUser(ctx.db, { id: user.id }))! };
}

/**
 * POST /change-email: a link to the new address (which proves it) and a notice to the current one.
 * A taken address is 409 EMAIL_TAKEN, or, with generic responses, the same 202 with no link.
 */
export async function requestEmailChange(ctx: SecurityContext, user: UserRecord, newEmail: string, password: string,
  source: AuditSource = NO_SOURCE): Promise<void> {
  await requirePassword(ctx, user, password, 'password', 'Password is incorrect', source);
  const email = normalizeEmail(newEmail);
  if (email.toLowerCase() === user.email.toLowerCase()) throw validationError({ email: ['This is already your email address'] });
  const taken = (await findUser(ctx.db, { email })) !== null;
  if (taken && !ctx.config.SECURITY_RETURN_GENERIC_RESPONSES) throw emailTaken();
  const claims = linkClaims(ctx.config, 'change_email', user, ctx.clock.now(), { newEmail: email });
  await ctx.db.transaction(async (tx) => {
    if (!taken) await enqueueMail(ctx, tx, { template: 'change_email', recipient: email, userId: user.id, payload: { claims } });
    await enqueueMail(ctx, tx, { template: 'change_email_requested', recipient: user.email, userId: user.id, payload: { newEmail: email } });
  });
}

/**
 * POST /change-email/{token}: swaps the address (and marks it confirmed: the link proved it). The
 * old address's fingerprint is in the link, so the swap consumes it. An address taken meanwhile is
 * 409 (the unique index decides, not a check-then-write).
 */
export async function confirmEmailChange(ctx: SecurityContext, token: string): Promise<UserRecord> {
  const now = ctx.clock.now();
  const claims = verifyLink(ctx.config, 'change_email', token, now, linkLifetime(ctx.config, 'change_email'));
  const newEmail = claims.e!;
  try {
    await ctx.db.transaction(async (tx) => {
      const [locked] = await tx.select().from(users).where(eq(users.id, claims.u)).for('update');
      if (!locked || !locked.active || !fingerprintMatches(ctx.config, claims, locked)) throw linkInvalid();
      await tx.update(users).set({ email: newEmail, confirmedAt: now, updatedAt: now }).where(eq(users.id, locked.id));
      if (ctx.config.SECURITY_SEND_EMAIL_CHANGE_NOTICE) {
        await enqueueMail(ctx, tx, { template: 'email_changed', recipient: locked.email, userId: locked.id, payload: { newEmail } });
      }
    });
  } catch (err) {
    throw mapUserWriteError(err);
  }
  return (await findUser(ctx.db, { id: claims.u }))!;
}
