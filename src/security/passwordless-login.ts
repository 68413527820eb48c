// How a passwordless sign-in ends: the ONE function every passkey and email sign-in calls once the
// method's secret was checked (security/webauthn.ts, security/unified-signin.ts).
//
// INTEGRATION NOTE: this mirrors POST /login until the shared login pipeline (security/login.ts)
// lands; it should then become a thin call to completeLogin / the pipeline's 2FA decision, with no
// change to its callers. It applies the same rules as a password login, in the same order:
// active → confirmed → second factor (challenge or forced setup) → clear the failures counted before
// → tracking + session → audit.
import { eq, sql } from 'drizzle-orm';
import { users } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, type UserRecord } from './datastore.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { invalidCredentials, startSession, type ClientInfo } from './auth.js';
import { clearLoginFailures } from './lockout.js';
import { createChallenge, twoFactorEnabled, twoFactorRequired } from './two-factor.js';
import type { NewSession } from './sessions.js';

export type PasswordlessMethod = 'webauthn' | 'email_code' | 'email_link';

export interface PasswordlessLogin {
  user: UserRecord;
  method: PasswordlessMethod;
  /**
   * The sign-in was already multi-factor (a passkey with user verification) or completed a pending
   * two-factor login: no second factor is asked for.
   */
  multiFactor: boolean;
  /** the method proved the address (an email code or link): an unconfirmed account is confirmed by it */
  provesAddress?: boolean;
  remember: boolean;
  client: ClientInfo;
  source?: AuditSource;
  /** audit details of the success (e.g. the credential used) */
  details?: Record<string, unknown>;
}

export type PasswordlessOutcome =
  | { kind: 'session'; started: NewSession & { user: UserRecord }; remember: boolean }
  | { kind: 'tf_required'; tfToken: string }
  | { kind: 'tf_setup_required'; tfToken: string };

export async function endPasswordlessLogin(ctx: SecurityContext, login: PasswordlessLogin): Promise<PasswordlessOutcome> {
  const source = login.source ?? NO_SOURCE;
  let user = login.user;
  const generic = ctx.config.SECURITY_RETURN_GENERIC_RESPONSES;
  const refuse = async (reason: string, error: AppError): Promise<never> => {
    await audit(ctx, { ...source, actorId: user.id, action: 'login.failed', targetUserId: user.id, details: { email: user.email, reason, method: login.method } });
    throw error;
  };
  if (!user.active) return refuse('disabled', generic ? invalidCredentials() : new AppError(403, 'ACCOUNT_DISABLED', 'This account is disabled'));
  if (ctx.config.SECURITY_CONFIRMABLE && !user.confirmedAt) {
    if (!login.provesAddress) {
      return refuse('unconfirmed', generic ? invalidCredentials() : new AppError(403, 'CONFIRMATION_REQUIRED', 'Confirm your email address before logging in'));
    }
    // a code or link that reached the mailbox proves the address, as a reset link does
    const now = ctx.clock.now();
    await ctx.db.update(users).set({ confirmedAt: sql`coalesce(${users.confirmedAt}, ${now.toISOString()}::timestamptz)`, updatedAt: now })
      .where(eq(users.id, user.id));
    await audit(ctx, { ...source, actorId: user.id, action: 'email.confirmed', targetUserId: user.id, details: { method: login.method } });
    user = (await findUser(ctx.db, { id: user.id }))!;
  }
  if (!login.multiFactor) {
    // The first factor was right but the login is not complete: the lockout count stays until the
    // second factor is given (as after a password).
    if (twoFactorEnabled(user)) {
      const challenge = await createChallenge(ctx, user, 'login', login.remember);
      await audit(ctx, { ...source, actorId: user.id, action: 'login.second_factor_required', targetUserId: user.id, details: { method: login.method } });
      return { kind: 'tf_required', tfToken: challenge.token };
    }
    if (twoFactorRequired(ctx, user)) {
      const challenge = await createChallenge(ctx, user, 'setup', login.remember);
      await audit(ctx, { ...source, actorId: user.id, action: 'login.second_factor_setup_required', targetUserId: user.id, details: { method: login.method } });
      return { kind: 'tf_setup_required', tfToken: challenge.token };
    }
  }
  await clearLoginFailures(ctx, user.email);
  const started = await startSession(ctx, user, login.client);
  await audit(ctx, { ...source, actorId: user.id, action: 'login.succeeded', targetUserId: user.id,
    details: { session_id: started.session.id, method: login.method, ...login.details } });
  return { kind: 'session', started, remember: login.remember };
}
