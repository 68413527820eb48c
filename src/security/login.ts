// The one login pipeline (Flask-Security's login_user + tf_enter). Every way to sign in (password,
// 2FA completion, registration auto-login, and the methods to come: email codes and links,
// passkeys, OIDC) goes through these two functions; routes only translate HTTP to a call and the
// outcome back to JSON.
//
// beginLogin(ctx, { identify, verify, method, remember, client, source, countsTowardLockout?, secondFactorDone? })
//   1. identify  — { email } | { userId } | { user }: the account the attempt is for (none: unknown
//                  identity; the attempt is still counted under the address, so a lockout never tells
//                  which addresses exist).
//   2. lock      — reserveAttempt (security/lockout.ts): one atomic upsert; while the address is locked,
//                  or failures + checks in flight have reached the threshold, 429 ACCOUNT_LOCKED with
//                  Retry-After before the secret is looked at. Skipped when countsTowardLockout is false
//                  (registration auto-login: no secret of the account was checked).
//   3. verify    — the method's callback: `verify(user | null)` returns true when the secret is right.
//                  It must do the same work for an unknown identity (dummy bcrypt, a fake code check) and
//                  return false, so unknown and wrong cost and answer the same. It may throw an AppError
//                  of its own (a malformed code); the reservation is then returned uncounted.
//   4. count     — wrong → settleFailure (the threshold-th failure starts the lock, atomically), audit
//                  'login.failed' {reason}, throw `wrong()` (default 401 INVALID_CREDENTIALS).
//   5. rules     — inactive → 403 ACCOUNT_DISABLED, unconfirmed (SECURITY_CONFIRMABLE) → 403
//                  CONFIRMATION_REQUIRED, both INVALID_CREDENTIALS in generic mode; never counted.
//   6. decide    — 2FA enabled (any method: authenticator, email, security keys) → { kind: 'tf_required',
//                  tfToken, tfMethod, tfMethods }; the pending login remembers the first factor (complete it with
//                  completeTwoFactorLogin); a role in SECURITY_TWO_FACTOR_REQUIRED_ROLES without 2FA →
//                  { kind: 'tf_setup_required', tfToken }; otherwise completeLogin. A method that is
//                  itself two factors (a user-verifying passkey) passes `secondFactorDone: 'passkey'`.
//                  The failures stay counted until the login completes, so a tf_token cannot be farmed
//                  to reset them.
//
// completeLogin(ctx, { user, attempt, method, secondFactor?, remember, client, source, db? })
//   ONE SQL statement (one round trip; its own transaction, or the caller's `db` — registration): settle the reservation (clear the failures
//   it saw, never those counted after it began, never a lock), refuse when a lock started meanwhile
//   (429: the right password inside a burst does not win), UPDATE users … RETURNING (tracking; only
//   while the account is still active with the fs_uniquifier the caller saw), INSERT the session and
//   INSERT the 'login.succeeded' audit row. The user is not read again. Returns
//   { kind: 'session', user, session, refreshToken, remember }.
//
// A password login without 2FA costs 3 database round trips: the reservation and the account lookup
// (sent together), and completeLogin's statement (test/security/login.test.ts counts them).
//
// A new method: write its verify callback (and its challenge issuing, e.g. sending the email code),
// call beginLogin with method: 'email_code' | 'passkey' | 'oidc', and answer the LoginOutcome like
// POST /login does (routes/auth/session-response.ts: loginAnswer).
import { getTableColumns, sql, type Table } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { sessions, users, type SessionRow, type UserRow } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, normalizeEmail, type UserRecord } from './datastore.js';
import { NO_SOURCE, audit, scrubDetails, type AuditSource } from './audit.js';
import { lockoutKey, reserveAttempt, settleFailure, settleNeutral, settleSuccessSql, accountLocked, type Attempt } from './lockout.js';
import { newSessionValues } from './sessions.js';
import { createChallenge, openTwoFactorLogin, twoFactorEnabled, twoFactorRequired, validateTwoFactorLogin, type TfMethod } from './two-factor.js';

/** A transaction of the caller (registration: the account and its auto-login commit together). */
type Db = Database | Parameters<Parameters<Database['transaction']>[0]>[0];

export const invalidCredentials = () => new AppError(401, 'INVALID_CREDENTIALS', 'Invalid email or password');

export type LoginMethod = 'password' | 'register' | 'email_code' | 'email_link' | 'passkey' | 'oidc' | (string & {});
export type Identify = { email: string } | { userId: number } | { user: UserRecord };
export interface ClientInfo { ip: string | null; userAgent: string | null }

export interface BeginLoginInput {
  identify: Identify;
  /** The method's secret check. Same work for `null` (unknown identity), then false. */
  verify: (user: UserRecord | null) => Promise<boolean>;
  method: LoginMethod;
  remember: boolean;
  client: ClientInfo;
  source?: AuditSource;
  /** The error for a wrong secret or unknown identity (default 401 INVALID_CREDENTIALS). */
  wrong?: () => AppError;
  /** false: no secret of the account is checked (registration auto-login): no reservation, no lock gate. */
  countsTowardLockout?: boolean;
  /** The method already proved a second factor (e.g. 'passkey' with user verification): no tf step. */
  secondFactorDone?: string;
}

export interface LoginSession {
  kind: 'session';
  user: UserRecord;
  session: SessionRow;
  refreshToken: string;
  remember: boolean;
}
export type LoginOutcome =
  | LoginSession
  | { kind: 'tf_required'; user: UserRecord; tfToken: string; tfMethod: TfMethod; tfMethods: TfMethod[] }
  | { kind: 'tf_setup_required'; user: UserRecord; tfToken: string };

/** The sign-in method in audit details; the password login, the default, is not named (as before the pipeline). */
const methodDetail = (method: LoginMethod) => (method === 'password' ? {} : { method });

async function identifyUser(ctx: SecurityContext, by: Identify): Promise<UserRecord | null> {
  if ('user' in by) return by.user;
  return findUser(ctx.db, 'email' in by ? { email: by.email } : { id: by.userId });
}

export async function beginLogin(ctx: SecurityContext, input: BeginLoginInput): Promise<LoginOutcome> {
  const source = input.source ?? NO_SOURCE;
  const wrong = input.wrong ?? invalidCredentials;
  const counted = input.countsTowardLockout ?? true;
  const refuse = async (reason: string, error: AppError, user: UserRecord | null, email: string | null): Promise<never> => {
    await audit(ctx, { ...source, action: 'login.failed', targetUserId: user?.id ?? null,
      details: { email: email === null ? null : normalizeEmail(email), reason, ...methodDetail(input.method) } });
    throw error;
  };

  // identify and reserve together (one round trip of latency): an address is known up front; a user
  // id is resolved first.
  let user: UserRecord | null;
  let attempt: Attempt = null;
  const lockFor = (email: string) => (counted ? reserveAttempt(ctx, email) : Promise.resolve(null));
  try {
    if ('email' in input.identify) {
      const email = input.identify.email;
      const [reserved, found] = await Promise.allSettled([lockFor(email), identifyUser(ctx, input.identify)]);
      if (found.status === 'rejected') {
        if (reserved.status === 'fulfilled') await settleNeutral(ctx, reserved.value);
        throw found.reason;
      }
      user = found.value;
      if (reserved.status === 'rejected') throw reserved.reason;
      attempt = reserved.value;
    } else {
      user = await identifyUser(ctx, input.identify);
      if (!user) throw wrong();
      attempt = await lockFor(user.email);
    }
  } catch (err) {
    if (err instanceof AppError && err.code === 'ACCOUNT_LOCKED') {
      const email = 'email' in input.identify ? input.identify.email : null;
      return refuse('locked', err, null, email);
    }
    throw err;
  }
  const email = 'email' in input.identify ? input.identify.email : user!.email;

  let ok: boolean;
  try {
    ok = await input.verify(user);
  } catch (err) {
    await settleNeutral(ctx, attempt);
    throw err;
  }
  if (!ok || !user) {
    await settleFailure(ctx, attempt, source);
    return refuse(user ? `bad_${input.method === 'password' ? 'password' : 'secret'}` : 'unknown_user', wrong(), user, email);
  }

  const generic = ctx.config.SECURITY_RETURN_GENERIC_RESPONSES;
  if (!user.active) {
    await settleNeutral(ctx, attempt);
    return refuse('disabled', generic ? invalidCredentials() : new AppError(403, 'ACCOUNT_DISABLED', 'This account is disabled'), user, email);
  }
  if (ctx.config.SECURITY_CONFIRMABLE && !user.confirmedAt) {
    await settleNeutral(ctx, attempt);
    return refuse('unconfirmed', generic ? invalidCredentials()
      : new AppError(403, 'CONFIRMATION_REQUIRED', 'Confirm your email address before logging in'), user, email);
  }
  return decideSecondFactor(ctx, { user, attempt, method: input.method, remember: input.remember, client: input.client,
    source, secondFactorDone: input.secondFactorDone, checkLock: counted });
}

/**
 * Step 6 of beginLogin, also the answer of a registration that logs in: a second factor to give, a
 * forced setup, or the session.
 */
async function decideSecondFactor(ctx: SecurityContext, input: {
  user: UserRecord; attempt: Attempt; method: LoginMethod; remember: boolean; client: ClientInfo; source: AuditSource;
  secondFactorDone?: string; checkLock: boolean; db?: Db;
}): Promise<LoginOutcome> {
  const { user, source } = input;
  if (!input.secondFactorDone) {
    if (twoFactorEnabled(user)) {
      await settleNeutral(ctx, input.attempt);
      // the pending login remembers its first factor; an email method mails its code here
      const pending = await openTwoFactorLogin(ctx, user, { remember: input.remember, firstFactor: input.method, source });
      await audit(ctx, { ...source, actorId: source.actorId ?? user.id, action: 'login.second_factor_required', targetUserId: user.id,
        details: methodDetail(input.method) });
      return { kind: 'tf_required', user, tfToken: pending.token, tfMethod: pending.method, tfMethods: pending.methods };
    }
    if (twoFactorRequired(ctx, user)) {
      await settleNeutral(ctx, input.attempt);
      const challenge = await createChallenge(ctx, user, 'setup', input.remember, input.method, input.db);
      await audit(ctx, { ...source, actorId: source.actorId ?? user.id, action: 'login.second_factor_setup_required', targetUserId: user.id,
        details: methodDetail(input.method) }, input.db);
      return { kind: 'tf_setup_required', user, tfToken: challenge.token };
    }
  }
  return completeLogin(ctx, {
    user, attempt: input.attempt, method: input.method, secondFactor: input.secondFactorDone, remember: input.remember,
    client: input.client, source, checkLock: input.checkLock, db: input.db,
  });
}

/**
 * Registration auto-login: the new account answers like a login, so forced 2FA holds at birth (a new
 * account has no 2FA yet: a session, or the forced setup). `db`: the registration's transaction, so
 * the account never exists without the session (or challenge) its answer names.
 */
export function loginNewAccount(ctx: SecurityContext, input: { user: UserRecord; client: ClientInfo; source?: AuditSource; db?: Db }):
Promise<Exclude<LoginOutcome, { kind: 'tf_required' }>> {
  return decideSecondFactor(ctx, {
    user: input.user, attempt: null, method: 'register', remember: false, client: input.client,
    source: input.source ?? NO_SOURCE, checkLock: false, db: input.db,
  }) as Promise<Exclude<LoginOutcome, { kind: 'tf_required' }>>;
}

export interface CompleteLoginInput {
  user: UserRecord;
  /** the reservation of the check that completed the login (null: none, e.g. a forced 2FA setup) */
  attempt: Attempt;
  method: LoginMethod;
  /** 'totp' | 'recovery' | 'setup' | 'passkey' when a second factor was given */
  secondFactor?: string;
  remember: boolean;
  client: ClientInfo;
  source?: AuditSource;
  /** refuse while the address is locked (default true; registration passes false) */
  checkLock?: boolean;
  /** run the statement in the caller's transaction (registration) */
  db?: Db;
}

/** Rows of to_jsonb(table) back to Drizzle's shape (camelCase keys, Dates). */
function fromJson<T>(table: Table, json: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [key, col] of Object.entries(getTableColumns(table))) {
    const v = json[col.name];
    out[key] = v === null || v === undefined ? null : col.dataType === 'date' ? new Date(v as string) : v;
  }
  return out as T;
}

const ts = (d: Date) => d.toISOString();

/**
 * Completes a login in one statement: settle the lockout reservation (or just check the lock), update
 * tracking with UPDATE … RETURNING, open the session, write the audit row. See the header.
 */
export async function completeLogin(ctx: SecurityContext, input: CompleteLoginInput): Promise<LoginSession> {
  const { config } = ctx;
  const { user, client } = input;
  const source = input.source ?? NO_SOURCE;
  const now = ctx.clock.now();
  const { values: s, refreshToken } = newSessionValues(ctx, {
    userId: user.id, ip: client.ip, userAgent: client.userAgent, fsPaa: now, remember: input.remember,
  });
  const checkLock = (input.checkLock ?? true) && config.SECURITY_LOCKOUT_ENABLED;
  const lockRow = input.attempt
    ? settleSuccessSql(input.attempt)
    : checkLock
      ? sql`select locked_until from login_attempts where email = ${lockoutKey(user.email)} for update`
      : sql`select null::timestamptz as locked_until where false`;
  const tracking = config.SECURITY_TRACKABLE
    ? sql`last_login_at = current_login_at, last_login_ip = current_login_ip, current_login_at = ${ts(now)}::timestamptz,
          current_login_ip = ${client.ip}::text, login_count = login_count + 1`
    : sql`login_count = login_count`;
  const details = scrubDetails({ session_id: s.id, ...methodDetail(input.method), ...(input.secondFactor ? { second_factor: input.secondFactor } : {}) });
  const rows = await (input.db ?? ctx.db).execute<{ u: Record<string, unknown> | null; s: Record<string, unknown> | null; locked_until: string | null }>(sql`
    with l as (${lockRow}),
    u as (
      update users set ${tracking}
      where id = ${user.id} and fs_uniquifier = ${user.fsUniquifier} and active
        and not exists (select 1 from l where l.locked_until > ${ts(now)}::timestamptz)
      returning *
    ),
    s as (
      insert into sessions (id, user_id, created_at, last_used_at, expires_at, ip, user_agent, refresh_token_hash,
        refresh_generation, refresh_seed, csrf_token, fs_paa, kind, remember)
      select ${s.id}::uuid, u.id, ${ts(s.createdAt)}::timestamptz, ${ts(s.createdAt)}::timestamptz, ${ts(s.expiresAt)}::timestamptz,
        ${s.ip ?? null}::text, ${s.userAgent ?? null}::text, ${s.refreshTokenHash}::text, 0, ${s.refreshSeed}::text,
        ${s.csrfToken}::text, ${ts(s.fsPaa)}::timestamptz, 'login', ${s.remember ?? false}::boolean
      from u
      returning *
    ),
    a as (
      insert into audit_events (created_at, action, actor_id, target_user_id, ip, user_agent, request_id, details)
      select ${ts(now)}::timestamptz, 'login.succeeded', ${source.actorId ?? user.id}::int, s.user_id, ${source.ip}::text,
        ${source.userAgent?.slice(0, 512) ?? null}::text, ${source.requestId}::text, ${JSON.stringify(details)}::jsonb
      from s
      returning id
    )
    select (select to_jsonb(u) from u) as u, (select to_jsonb(s) from s) as s,
      (select max(l.locked_until)::text from l) as locked_until`);
  const row = rows[0]!;
  if (!row.u || !row.s) {
    const lockedUntil = row.locked_until ? new Date(row.locked_until) : null;
    if (lockedUntil && lockedUntil.getTime() > now.getTime()) {
      await audit(ctx, { ...source, actorId: source.actorId ?? user.id, action: 'login.failed', targetUserId: user.id,
        details: { email: user.email, reason: 'locked', ...methodDetail(input.method) } });
      throw accountLocked((lockedUntil.getTime() - now.getTime()) / 1000);
    }
    // deactivated, reset or logged out everywhere while the login was under way
    throw invalidCredentials();
  }
  const updated = fromJson<UserRow>(users, row.u);
  const session = fromJson<SessionRow>(sessions, row.s);
  return { kind: 'session', user: { ...updated, roles: user.roles, permissions: user.permissions }, session, refreshToken, remember: input.remember };
}

/** The password method: bcrypt against the account's hash, a dummy hash for an unknown address; rehash on the way. */
export function passwordLogin(ctx: SecurityContext, input: { email: string; password: string; remember: boolean; client: ClientInfo; source?: AuditSource }): Promise<LoginOutcome> {
  return beginLogin(ctx, {
    identify: { email: input.email }, method: 'password', remember: input.remember, client: input.client, source: input.source,
    verify: async (user) => {
      if (!user) {
        await ctx.passwords.dummyVerify(input.password);
        return false;
      }
      const { ok, needsRehash } = await ctx.passwords.verify(input.password, user.password);
      if (ok && needsRehash) {
        const hash = await ctx.passwords.hash(input.password);
        await ctx.db.update(users).set({ password: hash }).where(sql`${users.id} = ${user.id}`);
        user.password = hash;
      }
      return ok;
    },
  });
}

/**
 * POST /tf-validate: the second step. The code is a counted secret check (a wrong TOTP or recovery
 * code counts toward the address's lockout); the right one completes the login with its reservation.
 */
export async function completeTwoFactorLogin(ctx: SecurityContext, input: { tfToken: string; code: string; client: ClientInfo; source?: AuditSource }): Promise<LoginSession> {
  const source = input.source ?? NO_SOURCE;
  const { user, remember, method, firstFactor, attempt } = await validateTwoFactorLogin(ctx, input.tfToken, input.code, source);
  // audited under the factor that opened the pending login (password, email code or link, OIDC)
  return completeLogin(ctx, { user, attempt, method: firstFactor, secondFactor: method, remember, client: input.client, source });
}
