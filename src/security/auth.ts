// Registration and the password policy, independent of HTTP. Logins are security/login.ts.
import type { Database } from '../db/client.js';
import { validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { createUser, type CreateUserInput, type UserRecord } from './datastore.js';
import { ROLE_CITIZEN } from './role-names.js';
import { queueRegistrationMail } from './confirmable.js';
import { NO_SOURCE, audit, type AuditSource } from './audit.js';
import { loginNewAccount, type ClientInfo, type LoginOutcome } from './login.js';

export { invalidCredentials, type ClientInfo } from './login.js';

export type RegisterInput = Omit<CreateUserInput, 'roles' | 'active' | 'confirmedAt' | 'departmentId'>;

/** Policy messages for a new password, keyed for the envelope's `fields`. */
export function checkPasswordPolicy(ctx: SecurityContext, field: string, password: string, email?: string): void {
  const problems = ctx.passwords.validate(password, { email });
  if (problems.length) throw validationError({ [field]: problems });
}

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];

export interface Registration {
  user: UserRecord;
  /** the auto-login's outcome (a new account has no 2FA yet: a session, or the forced setup); null without `login` */
  login: Exclude<LoginOutcome, { kind: 'tf_required' }> | null;
}

export interface RegisterOptions {
  /** where the registration came from (the 'user.registered' audit row) */
  source?: AuditSource;
  /** log the new account in, for this client */
  login?: ClientInfo | null;
  /** runs last inside the transaction: the caller records the answer it will give (an Idempotency-Key) */
  beforeCommit?: (tx: Tx, registration: Registration) => Promise<void>;
}

/**
 * A new Citizen account. ONE transaction holds everything the registration writes: the account and
 * its role, its email (confirmation / welcome: the transactional outbox), the 'user.registered'
 * audit row, the auto-login's session and 'login.succeeded' row (or the forced 2FA setup challenge),
 * and whatever `beforeCommit` adds (the Idempotency-Key's answer). A lost connection therefore
 * leaves all of it or none of it (test/db/outage.test.ts cuts registrations at many moments).
 */
export async function registerUser(ctx: SecurityContext, input: RegisterInput, opts: RegisterOptions = {}): Promise<Registration> {
  checkPasswordPolicy(ctx, 'password', input.password, input.email);
  // bcrypt first: a connection is not held open for the ~150 ms a hash takes at cost 12.
  const passwordHash = await ctx.passwords.hash(input.password);
  return ctx.db.transaction(async (tx) => {
    const user = await createUser(ctx, {
      ...input,
      passwordHash,
      roles: [ROLE_CITIZEN],
      confirmedAt: null,
    }, tx);
    await queueRegistrationMail(ctx, tx, user);
    const source = opts.source ?? NO_SOURCE;
    await audit(ctx, { ...source, actorId: source.actorId ?? user.id, action: 'user.registered', targetUserId: user.id }, tx);
    const login = opts.login ? await loginNewAccount(ctx, { user, client: opts.login, source: { ...source, actorId: source.actorId ?? user.id }, db: tx }) : null;
    const registration = { user, login };
    await opts.beforeCommit?.(tx, registration);
    return registration;
  });
}
