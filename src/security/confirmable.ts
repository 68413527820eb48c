// Confirmable (Flask-Security): a new account's address is confirmed by a one-time link before the
// account may log in (the login check itself lives in auth.ts).
import { eq } from 'drizzle-orm';
import { users } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import type { SecurityContext } from './context.js';
import { normalizeEmail, type UserRecord } from './datastore.js';
import { fingerprintMatches, linkExpired, linkInvalid, verifyLink, linkLifetime } from './links.js';
import { enqueueMail, enqueueThrottled } from './outbox.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

/**
 * The mail of a registration, written in the registration's transaction: the confirmation link when
 * confirmable (it doubles as the welcome mail when SECURITY_SEND_REGISTER_EMAIL), else the welcome
 * mail when asked for, or in generic-responses mode (where every registration answers "check your
 * email", so a new address gets a message just as an existing one does).
 */
export async function queueRegistrationMail(ctx: SecurityContext, tx: Tx, user: UserRecord): Promise<void> {
  const { config } = ctx;
  if (config.SECURITY_CONFIRMABLE) {
    await enqueueMail(ctx, tx, { template: 'confirm', recipient: user.email, userId: user.id, payload: { welcome: config.SECURITY_SEND_REGISTER_EMAIL } });
  } else if (config.SECURITY_SEND_REGISTER_EMAIL || config.SECURITY_RETURN_GENERIC_RESPONSES) {
    await enqueueMail(ctx, tx, { template: 'welcome', recipient: user.email, userId: user.id });
  }
}

/**
 * Generic-responses registration of an address that already has an account: the owner hears about
 * it (with a reset link), the caller learns nothing. At most one such message per minute.
 */
export async function notifyExistingRegistration(ctx: SecurityContext, email: string, beforeCommit?: (tx: Tx) => Promise<void>): Promise<void> {
  await enqueueThrottled(ctx, { template: 'register_existing', recipient: normalizeEmail(email) }, beforeCommit);
}

/**
 * POST /confirm: queues a new confirmation link. Known, unknown and already-confirmed addresses do
 * the same work here (the row is resolved at delivery); at most one message per address per minute.
 */
export async function requestConfirmation(ctx: SecurityContext, email: string): Promise<void> {
  await enqueueThrottled(ctx, { template: 'confirm', recipient: normalizeEmail(email) });
}

/**
 * GET /confirm/{token}. Idempotent: an address that is already confirmed answers as confirmed.
 * Returns the user id and whether this call confirmed the address (false: it already was).
 */
export async function confirmEmail(ctx: SecurityContext, token: string): Promise<{ userId: number; confirmed: boolean }> {
  const now = ctx.clock.now();
  // age is checked below, after "already confirmed" (a stale link for a done job is not an error)
  const claims = verifyLink(ctx.config, 'confirm', token, now, Number.MAX_SAFE_INTEGER);
  const expired = now.getTime() / 1000 - claims.t > linkLifetime(ctx.config, 'confirm');
  return ctx.db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, claims.u)).for('update');
    if (!user || !fingerprintMatches(ctx.config, claims, user)) throw linkInvalid();
    if (user.confirmedAt) return { userId: user.id, confirmed: false };
    if (expired) throw linkExpired();
    await tx.update(users).set({ confirmedAt: now, updatedAt: now }).where(eq(users.id, user.id));
    return { userId: user.id, confirmed: true };
  });
}
