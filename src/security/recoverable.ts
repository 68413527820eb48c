// Recoverable (Flask-Security): password reset by a one-time link sent to the account's address.
import { eq, sql } from 'drizzle-orm';
import { users } from '../db/schema/index.js';
import type { SecurityContext } from './context.js';
import { checkPasswordPolicy } from './auth.js';
import { findUser, normalizeEmail, resetUserAccess, type UserRecord } from './datastore.js';
import { fingerprintMatches, linkInvalid, linkLifetime, verifyLink, type LinkClaims } from './links.js';
import { enqueueMail, enqueueThrottled } from './outbox.js';

/**
 * POST /reset. The same work whether or not the address has an account: one throttled outbox row,
 * resolved at delivery (an unknown or deactivated address is skipped there). At most one message
 * per address per minute.
 */
export async function requestPasswordReset(ctx: SecurityContext, email: string): Promise<void> {
  await enqueueThrottled(ctx, { template: 'reset', recipient: normalizeEmail(email) });
}

/** The account a reset link names, when the link is good: signed, young, unused, account active. */
async function resetLinkUser(ctx: SecurityContext, token: string): Promise<{ user: UserRecord; claims: LinkClaims }> {
  const claims = verifyLink(ctx.config, 'reset', token, ctx.clock.now(), linkLifetime(ctx.config, 'reset'));
  const user = await findUser(ctx.db, { id: claims.u });
  if (!user || !user.active || !fingerprintMatches(ctx.config, claims, user)) throw linkInvalid();
  return { user, claims };
}

/** GET /reset/{token}: checks the link without consuming it. */
export async function checkResetLink(ctx: SecurityContext, token: string): Promise<UserRecord> {
  return (await resetLinkUser(ctx, token)).user;
}

/**
 * POST /reset/{token}: sets the password (policy-checked), rotates fs_uniquifier and revokes every
 * session, and queues the notice, in one transaction. The new hash changes the link's fingerprint,
 * which consumes the link; the row lock makes two concurrent uses resolve to one success. A reset
 * link also proves the address, so it confirms an unconfirmed account. Returns the user's id.
 */
export async function resetPassword(ctx: SecurityContext, token: string, password: string): Promise<number> {
  const { user, claims } = await resetLinkUser(ctx, token);
  checkPasswordPolicy(ctx, 'password', password, user.email);
  const hash = await ctx.passwords.hash(password);
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    const [locked] = await tx.select().from(users).where(eq(users.id, user.id)).for('update');
    if (!locked || !locked.active || !fingerprintMatches(ctx.config, claims, locked)) throw linkInvalid();
    await tx.update(users).set({ password: hash, confirmedAt: sql`coalesce(${users.confirmedAt}, ${now.toISOString()}::timestamptz)`, updatedAt: now })
      .where(eq(users.id, locked.id));
    await resetUserAccess(ctx, locked.id, 'password_reset', tx);
    if (ctx.config.SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL) {
      await enqueueMail(ctx, tx, { template: 'password_reset', recipient: locked.email, userId: locked.id });
    }
  });
  return user.id;
}
