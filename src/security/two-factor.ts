// Two-factor authentication with an authenticator app (TOTP, RFC 6238, via otplib) and single-use
// recovery codes. Framework-free: the routes in routes/auth/two-factor.ts call these.
//
// Login with 2FA: a correct password yields a tf_token (a two_factor_challenges row, named by a
// signed id) instead of a session; POST /tf-validate with the token and a code opens the session.
// The token lives SECURITY_TWO_FACTOR_TOKEN_WITHIN, dies after TF_MAX_ATTEMPTS wrong codes, is used
// once, and is bound to the user's fs_uniquifier (a password reset, logout-all or reset-access kills
// it). Wrong codes also count towards the address's lockout.
//
// Setup: POST /tf-setup returns a new secret and a tf_setup_token that carries it sealed (nothing is
// stored until a code proves the app has it); POST /tf-setup/{token} with a code stores the secret
// (sealed, AES-256-GCM) and returns ten recovery codes, stored as keyed hashes.
//
// Users of SECURITY_TWO_FACTOR_REQUIRED_ROLES without 2FA get a tf_token of purpose "setup" at login:
// it allows POST /tf-setup (in place of a session) and the confirming POST /tf-setup/{token}, which
// then completes the login.
import { and, eq, gt, isNull, lt, ne, or, sql } from 'drizzle-orm';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { generateSecret, generateURI, verify as verifyTotp } from 'otplib';
import QRCode from 'qrcode';
import { sessions, twoFactorChallenges, users, type TfPurpose, type TwoFactorChallengeRow } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, type UserRecord } from './datastore.js';
import { reserveAttempt, settleFailure, settleNeutral, type Attempt } from './lockout.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { open, seal } from './secret-box.js';
import { safeEqual } from './tokens.js';
import { purposeKeyBytes } from './keyring.js';

export const TF_METHOD = 'authenticator';
/** Wrong codes one tf_token survives. */
export const TF_MAX_ATTEMPTS = 5;
export const RECOVERY_CODE_COUNT = 10;
/** A setup-purpose token and a tf_setup_token live this long (scanning a QR code takes a while). */
const SETUP_WITHIN_SECONDS = 600;
const TOTP_PERIOD = 30;

type Tx = Parameters<Parameters<SecurityContext['db']['transaction']>[0]>[0];

export const twoFactorInvalid = (message = 'The two-factor code is invalid') => new AppError(401, 'TWO_FACTOR_INVALID', message);
const tokenDead = () => twoFactorInvalid('The two-factor token is invalid or expired; log in again');

export const twoFactorEnabled = (u: Pick<UserRecord, 'tfPrimaryMethod' | 'tfTotpSecret'>) => u.tfPrimaryMethod !== null && u.tfTotpSecret !== null;

/** Whether one of the user's roles is forced into 2FA (SECURITY_TWO_FACTOR_REQUIRED_ROLES). */
export function twoFactorRequired(ctx: SecurityContext, u: Pick<UserRecord, 'roles'>): boolean {
  const required = ctx.config.SECURITY_TWO_FACTOR_REQUIRED_ROLES;
  return required.length > 0 && u.roles.some((r) => required.includes(r));
}

/** The columns that switch 2FA off (resetUserAccess in datastore.ts clears the same). */
export const TWO_FACTOR_CLEARED = { tfPrimaryMethod: null, tfTotpSecret: null, tfTotpLastStep: null, tfRecoveryCodes: null } as const;

// ---- keys and encodings ----

const keys = (ctx: SecurityContext, purpose: 'tf-token' | 'recovery-code'): Buffer[] => purposeKeyBytes(ctx.config, purpose);
const mac = (key: Buffer, value: string) => createHmac('sha256', key).update(value).digest('base64url');

function sealTotpSecret(ctx: SecurityContext, userId: number, secret: string): string {
  return seal(ctx.config, 'totp-secret', secret, `user:${userId}`);
}
function openTotpSecret(ctx: SecurityContext, user: UserRecord): string | null {
  return user.tfTotpSecret ? open(ctx.config, 'totp-secret', user.tfTotpSecret, `user:${user.id}`) : null;
}

// Recovery codes: 12 characters of an unambiguous alphabet (60 bits), shown as XXXX-XXXX-XXXX.
const CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
const normalizeRecoveryCode = (code: string) => code.toUpperCase().replace(/[\s-]/g, '');
function newRecoveryCode(): string {
  const bytes = randomBytes(12);
  let s = '';
  for (const b of bytes) s += CODE_ALPHABET[b & 31];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}
/** Stored form of a recovery code under each key (the first is the current one). */
const recoveryHashes = (ctx: SecurityContext, code: string) => keys(ctx, 'recovery-code').map((k) => mac(k, normalizeRecoveryCode(code)));

function newRecoveryCodes(ctx: SecurityContext): { codes: string[]; hashes: string[] } {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  return { codes, hashes: codes.map((c) => recoveryHashes(ctx, c)[0]!) };
}

const TOTP_RE = /^[0-9]{6}$/;
const RECOVERY_RE = /^[A-Z2-9]{12}$/;

/** The time step of a TOTP code that is valid now (±1 step) and later than `after`, else null. */
async function totpStep(ctx: SecurityContext, secret: string, code: string, after: number | null): Promise<number | null> {
  if (!TOTP_RE.test(code)) return null;
  const result = await verifyTotp({
    secret, token: code, period: TOTP_PERIOD,
    epoch: Math.floor(ctx.clock.now().getTime() / 1000),
    epochTolerance: TOTP_PERIOD,
    ...(after !== null ? { afterTimeStep: after } : {}),
  });
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}

/**
 * Checks a code against the user's enabled 2FA: a TOTP code (each time step accepted once: the
 * last accepted step is advanced atomically, so a replay on any instance fails) or a recovery code
 * (removed atomically, so it works once).
 */
export async function verifyTwoFactorCode(ctx: SecurityContext, user: UserRecord, rawCode: string, source: AuditSource = NO_SOURCE): Promise<'totp' | 'recovery' | null> {
  const code = rawCode.replace(/\s/g, '');
  if (TOTP_RE.test(code)) {
    const secret = openTotpSecret(ctx, user);
    if (!secret) return null;
    const step = await totpStep(ctx, secret, code, user.tfTotpLastStep);
    if (step === null) return null;
    const advanced = await ctx.db.update(users).set({ tfTotpLastStep: step })
      .where(and(eq(users.id, user.id), sql`${users.tfPrimaryMethod} is not null`,
        or(isNull(users.tfTotpLastStep), lt(users.tfTotpLastStep, step))))
      .returning({ id: users.id });
    return advanced.length ? 'totp' : null;
  }
  if (RECOVERY_RE.test(normalizeRecoveryCode(code))) {
    for (const h of recoveryHashes(ctx, code)) {
      const used = await ctx.db.update(users).set({ tfRecoveryCodes: sql`array_remove(${users.tfRecoveryCodes}, ${h})` })
        .where(and(eq(users.id, user.id), sql`${h} = any(${users.tfRecoveryCodes})`))
        .returning({ remaining: sql<number>`coalesce(cardinality(${users.tfRecoveryCodes}), 0)` });
      if (used.length) {
        await audit(ctx, { ...source, action: 'tf.recovery_code_used', targetUserId: user.id, details: { remaining: Number(used[0]!.remaining) } });
        return 'recovery';
      }
    }
  }
  return null;
}

// ---- tf_token: a challenge row named by a signed id ----

function tfToken(ctx: SecurityContext, row: Pick<TwoFactorChallengeRow, 'id' | 'purpose'>): string {
  return `${row.id}.${mac(keys(ctx, 'tf-token')[0]!, `${row.id}.${row.purpose}`)}`;
}

const TF_TOKEN_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

/** The challenge id of a genuine token of this purpose, else null (no database access). */
function tokenChallengeId(ctx: SecurityContext, token: string, purpose: TfPurpose): string | null {
  const m = TF_TOKEN_RE.exec(token);
  if (!m) return null;
  const ok = keys(ctx, 'tf-token').some((k) => safeEqual(mac(k, `${m[1]}.${purpose}`), m[2]!));
  return ok ? m[1]! : null;
}

export interface Challenge { token: string; expiresIn: number }

/** Opens a pending two-factor login (purpose "login") or a forced setup (purpose "setup"). */
export async function createChallenge(ctx: SecurityContext, user: UserRecord, purpose: TfPurpose, remember: boolean,
  db: SecurityContext['db'] | Tx = ctx.db): Promise<Challenge> {
  const now = ctx.clock.now();
  const within = purpose === 'setup' ? SETUP_WITHIN_SECONDS : ctx.config.SECURITY_TWO_FACTOR_TOKEN_WITHIN;
  const row = { id: randomUUID(), purpose };
  await db.insert(twoFactorChallenges).values({
    ...row, userId: user.id, fsUniquifier: user.fsUniquifier, remember, attempts: 0,
    createdAt: now, expiresAt: new Date(now.getTime() + within * 1000),
  });
  return { token: tfToken(ctx, row), expiresIn: within };
}

interface LiveChallenge { challenge: TwoFactorChallengeRow; user: UserRecord }

/** The live challenge a token names, with its user; throws 401 TWO_FACTOR_INVALID otherwise. */
async function liveChallenge(ctx: SecurityContext, token: string, purpose: TfPurpose): Promise<LiveChallenge> {
  const id = tokenChallengeId(ctx, token, purpose);
  if (!id) throw tokenDead();
  const now = ctx.clock.now();
  const [challenge] = await ctx.db.select().from(twoFactorChallenges).where(and(
    eq(twoFactorChallenges.id, id), eq(twoFactorChallenges.purpose, purpose), isNull(twoFactorChallenges.usedAt),
    gt(twoFactorChallenges.expiresAt, now), lt(twoFactorChallenges.attempts, TF_MAX_ATTEMPTS),
  )).limit(1);
  if (!challenge) throw tokenDead();
  const user = await findUser(ctx.db, { id: challenge.userId });
  if (!user || !user.active || !safeEqual(user.fsUniquifier, challenge.fsUniquifier)) throw tokenDead();
  return { challenge, user };
}

/** Takes one of the challenge's attempts before a code is checked, so parallel guesses cannot exceed the limit. */
async function takeAttempt(ctx: SecurityContext, id: string): Promise<void> {
  const rows = await ctx.db.update(twoFactorChallenges).set({ attempts: sql`${twoFactorChallenges.attempts} + 1` })
    .where(and(eq(twoFactorChallenges.id, id), isNull(twoFactorChallenges.usedAt), gt(twoFactorChallenges.expiresAt, ctx.clock.now()),
      lt(twoFactorChallenges.attempts, TF_MAX_ATTEMPTS)))
    .returning({ id: twoFactorChallenges.id });
  if (!rows.length) throw tokenDead();
}

/** Marks the challenge used; false when another request used it first. */
async function consume(ctx: SecurityContext, id: string, db: SecurityContext['db'] | Tx = ctx.db): Promise<boolean> {
  const rows = await db.update(twoFactorChallenges).set({ usedAt: ctx.clock.now() })
    .where(and(eq(twoFactorChallenges.id, id), isNull(twoFactorChallenges.usedAt))).returning({ id: twoFactorChallenges.id });
  return rows.length > 0;
}

/**
 * POST /tf-validate: the second step of a login. The code is a counted secret check: the address's
 * slot is reserved first (429 ACCOUNT_LOCKED while locked), a wrong code counts as a failure. Returns
 * the user, the login's `remember` choice and the reservation; the caller (security/login.ts)
 * completes the login with it.
 */
export async function validateTwoFactorLogin(ctx: SecurityContext, token: string, code: string, source: AuditSource = NO_SOURCE):
Promise<{ user: UserRecord; remember: boolean; method: 'totp' | 'recovery'; attempt: Attempt }> {
  const { challenge, user } = await liveChallenge(ctx, token, 'login');
  if (!twoFactorEnabled(user)) throw tokenDead();
  const attempt = await reserveAttempt(ctx, user.email);
  let method: 'totp' | 'recovery' | null;
  try {
    await takeAttempt(ctx, challenge.id);
    method = await verifyTwoFactorCode(ctx, user, code, source);
  } catch (err) {
    await settleNeutral(ctx, attempt);
    throw err;
  }
  if (!method) {
    await settleFailure(ctx, attempt, source);
    await audit(ctx, { ...source, action: 'login.failed', targetUserId: user.id, details: { email: user.email, reason: 'bad_second_factor' } });
    throw twoFactorInvalid();
  }
  if (!(await consume(ctx, challenge.id))) {
    await settleNeutral(ctx, attempt);
    throw tokenDead();
  }
  return { user, remember: challenge.remember, method, attempt };
}

// ---- setup ----

interface SetupClaims { u: number; q: string; s: string; e: number; c: string | null }

export interface SetupStart { secret: string; otpauthUri: string; qrCode: string; setupToken: string; expiresIn: number }

async function startSetup(ctx: SecurityContext, user: UserRecord, challengeId: string | null): Promise<SetupStart> {
  const secret = generateSecret();
  const otpauthUri = generateURI({ issuer: ctx.config.SECURITY_TOTP_ISSUER, label: user.email, secret, period: TOTP_PERIOD });
  const qrCode = await QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
  const claims: SetupClaims = {
    u: user.id, q: user.fsUniquifier, s: secret, c: challengeId,
    e: Math.floor(ctx.clock.now().getTime() / 1000) + SETUP_WITHIN_SECONDS,
  };
  return { secret, otpauthUri, qrCode, setupToken: seal(ctx.config, 'tf-setup', JSON.stringify(claims)), expiresIn: SETUP_WITHIN_SECONDS };
}

/** POST /tf-setup by a signed-in user (the route checks freshness). Nothing is stored yet. */
export function beginSetup(ctx: SecurityContext, user: UserRecord): Promise<SetupStart> {
  return startSetup(ctx, user, null);
}

/** POST /tf-setup with a setup-purpose tf_token (a required role at login, no session yet). */
export async function beginForcedSetup(ctx: SecurityContext, tfToken: string): Promise<SetupStart> {
  const { challenge, user } = await liveChallenge(ctx, tfToken, 'setup');
  return startSetup(ctx, user, challenge.id);
}

const setupInvalid = (message = 'The code is wrong or the setup token is invalid or expired') => new AppError(400, 'TWO_FACTOR_INVALID', message);

export interface SetupDone {
  user: UserRecord;
  recoveryCodes: string[];
  /** set when the setup completed a forced-setup login: the caller opens the session */
  login: { remember: boolean } | null;
}

/**
 * POST /tf-setup/{tf_setup_token}: a code from the app proves it holds the secret; 2FA is switched
 * on (replacing an earlier secret) with ten new recovery codes. A token from a signed-in setup needs
 * that user's session (`authUserId`); one from a forced setup needs none and completes the login.
 */
export async function confirmSetup(ctx: SecurityContext, setupToken: string, code: string, authUserId: number | null,
  source: AuditSource = NO_SOURCE, authSessionId: string | null = null): Promise<SetupDone> {
  const raw = open(ctx.config, 'tf-setup', setupToken);
  let claims: SetupClaims | null = null;
  try {
    claims = raw ? JSON.parse(raw) as SetupClaims : null;
  } catch {
    claims = null;
  }
  if (!claims || typeof claims.u !== 'number' || typeof claims.s !== 'string' || typeof claims.e !== 'number') throw setupInvalid();
  const now = ctx.clock.now();
  if (claims.e * 1000 <= now.getTime()) throw setupInvalid();
  let remember = false;
  if (claims.c === null) {
    if (authUserId === null) throw new AppError(401, 'AUTH_REQUIRED', 'Authentication is required');
    if (authUserId !== claims.u) throw setupInvalid();
  } else {
    const [challenge] = await ctx.db.select().from(twoFactorChallenges).where(and(
      eq(twoFactorChallenges.id, claims.c), eq(twoFactorChallenges.purpose, 'setup'), isNull(twoFactorChallenges.usedAt),
      gt(twoFactorChallenges.expiresAt, now), lt(twoFactorChallenges.attempts, TF_MAX_ATTEMPTS),
    )).limit(1);
    if (!challenge || challenge.userId !== claims.u) throw setupInvalid();
    remember = challenge.remember;
    try {
      await takeAttempt(ctx, challenge.id);
    } catch {
      throw setupInvalid();
    }
  }
  const user = await findUser(ctx.db, { id: claims.u });
  if (!user || !user.active || !safeEqual(user.fsUniquifier, claims.q)) throw setupInvalid();
  const step = await totpStep(ctx, claims.s, code.replace(/\s/g, ''), null);
  if (step === null) throw setupInvalid('The code is wrong; check the time on your device and try the current code');

  const { codes, hashes } = newRecoveryCodes(ctx);
  await ctx.db.transaction(async (tx) => {
    if (claims.c !== null && !(await consume(ctx, claims.c, tx))) throw setupInvalid();
    await tx.update(users).set({
      tfPrimaryMethod: TF_METHOD, tfTotpSecret: sealTotpSecret(ctx, user.id, claims.s), tfTotpLastStep: step,
      tfRecoveryCodes: hashes, updatedAt: now,
    }).where(eq(users.id, user.id));
    // Like a password change: every other session of the user (opened without this factor, perhaps
    // by someone else) ends, and so do pending logins; this client's session stays.
    await tx.update(sessions).set({ revokedAt: now, revokedReason: 'tf_enabled' }).where(and(
      eq(sessions.userId, user.id), isNull(sessions.revokedAt), authSessionId ? ne(sessions.id, authSessionId) : sql`true`,
    ));
    await tx.delete(twoFactorChallenges).where(and(eq(twoFactorChallenges.userId, user.id),
      claims.c !== null ? ne(twoFactorChallenges.id, claims.c) : sql`true`));
    await audit(ctx, { ...source, action: 'tf.enabled', targetUserId: user.id, details: { method: TF_METHOD, forced: claims.c !== null } }, tx);
  });
  return { user: (await findUser(ctx.db, { id: user.id }))!, recoveryCodes: codes, login: claims.c === null ? null : { remember } };
}

/**
 * POST /tf-disable: 2FA off, its secret and recovery codes gone, pending 2FA logins dead. A user
 * whose role is in SECURITY_TWO_FACTOR_REQUIRED_ROLES cannot switch it off: 403 FORBIDDEN (an admin's
 * reset-access still can, for a lost device).
 */
export async function disableTwoFactor(ctx: SecurityContext, user: UserRecord, source: AuditSource = NO_SOURCE): Promise<void> {
  if (twoFactorRequired(ctx, user)) {
    throw new AppError(403, 'FORBIDDEN', 'Your role requires two-factor authentication; it cannot be switched off');
  }
  const userId = user.id;
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ ...TWO_FACTOR_CLEARED, updatedAt: ctx.clock.now() }).where(eq(users.id, userId));
    await tx.delete(twoFactorChallenges).where(eq(twoFactorChallenges.userId, userId));
    await audit(ctx, { ...source, action: 'tf.disabled', targetUserId: userId }, tx);
  });
}

/** POST /mf-recovery-codes: ten new codes; the old ones die. 409 when 2FA is off. */
export async function regenerateRecoveryCodes(ctx: SecurityContext, userId: number, source: AuditSource = NO_SOURCE): Promise<string[]> {
  const { codes, hashes } = newRecoveryCodes(ctx);
  const rows = await ctx.db.update(users).set({ tfRecoveryCodes: hashes, updatedAt: ctx.clock.now() })
    .where(and(eq(users.id, userId), sql`${users.tfPrimaryMethod} is not null`)).returning({ id: users.id });
  if (!rows.length) throw new AppError(409, 'CONFLICT', 'Two-factor authentication is not enabled');
  await audit(ctx, { ...source, action: 'tf.recovery_codes_regenerated', targetUserId: userId });
  return codes;
}

// ---- other second factors (passkeys, security/webauthn.ts) complete the same pending login ----

/** The pending two-factor login a tf_token names, without consuming it; 401 TWO_FACTOR_INVALID otherwise. */
export async function pendingTwoFactorLogin(ctx: SecurityContext, token: string): Promise<{ challengeId: string; user: UserRecord; remember: boolean }> {
  const { challenge, user } = await liveChallenge(ctx, token, 'login');
  return { challengeId: challenge.id, user, remember: challenge.remember };
}

/** Consumes a pending login another factor completed; false when it was used or expired meanwhile. */
export async function consumeTwoFactorLogin(ctx: SecurityContext, challengeId: string): Promise<boolean> {
  const rows = await ctx.db.update(twoFactorChallenges).set({ usedAt: ctx.clock.now() })
    .where(and(eq(twoFactorChallenges.id, challengeId), eq(twoFactorChallenges.purpose, 'login'), isNull(twoFactorChallenges.usedAt),
      gt(twoFactorChallenges.expiresAt, ctx.clock.now())))
    .returning({ id: twoFactorChallenges.id });
  return rows.length > 0;
}
