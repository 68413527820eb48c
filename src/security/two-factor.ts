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
//
// Methods (users.tf_primary_method; two-factor is on exactly when it is set):
// - "authenticator": TOTP, above.
// - "email": a 6-digit code mailed to the account's address at each login (and by POST /tf-send-code),
//   bound to that pending login (two_factor_email_codes, purpose "login"); set up like the app, the
//   tf_setup_token naming a code mailed for the purpose (purpose "setup"). Codes are derived from the
//   row id at delivery (the row and the outbox hold nothing usable), used once, live
//   SECURITY_US_TOKEN_VALIDITY at most (and never past the pending login), sends share the
//   SECURITY_US_SEND_LIMIT budget per account (bucket tf-send:<user id>).
// - "webauthn": no code method, but "secondary" security keys (security/webauthn.ts): the first
//   such key switches two-factor on, deleting the last one switches it off again. Any key of the
//   account completes a pending login (POST /wan-signin with the tf_token).
// Recovery codes complete a pending login under every method. A pending login remembers its first
// factor (two_factor_challenges.first_factor) so the completed login is audited under it.
import { and, desc, eq, gt, isNull, lt, ne, or, sql } from 'drizzle-orm';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { generateSecret, generateURI, verify as verifyTotp } from 'otplib';
import QRCode from 'qrcode';
import {
  sessions, twoFactorChallenges, twoFactorEmailCodes, users, webauthnCredentials,
  type TfEmailPurpose, type TfPurpose, type TwoFactorChallengeRow,
} from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, type UserRecord } from './datastore.js';
import { countMailSend, reserveAttempt, settleFailure, settleNeutral, type Attempt } from './lockout.js';
import { enqueueMail } from './outbox.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { open, seal } from './secret-box.js';
import { safeEqual } from './tokens.js';
import { purposeKeyBytes } from './keyring.js';

export const TF_METHOD = 'authenticator';
/** The methods a pending login may be completed with (tf_method / tf_methods of a tf_required answer). */
export const TF_METHODS = ['authenticator', 'email', 'webauthn'] as const;
export type TfMethod = (typeof TF_METHODS)[number];
/** The methods POST /tf-setup sets up (a security key is registered with POST /wan-register, usage "secondary"). */
export type TfSetupMethod = Exclude<TfMethod, 'webauthn'>;
/** Wrong codes one tf_token survives. */
export const TF_MAX_ATTEMPTS = 5;
export const RECOVERY_CODE_COUNT = 10;
/** A setup-purpose token and a tf_setup_token live this long (scanning a QR code takes a while). */
const SETUP_WITHIN_SECONDS = 600;
const TOTP_PERIOD = 30;

type Tx = Parameters<Parameters<SecurityContext['db']['transaction']>[0]>[0];

export const twoFactorInvalid = (message = 'The two-factor code is invalid') => new AppError(401, 'TWO_FACTOR_INVALID', message);
const tokenDead = () => twoFactorInvalid('The two-factor token is invalid or expired; log in again');

export const twoFactorEnabled = (u: Pick<UserRecord, 'tfPrimaryMethod'>) => u.tfPrimaryMethod !== null;

/** Whether one of the user's roles is forced into 2FA (SECURITY_TWO_FACTOR_REQUIRED_ROLES). */
export function twoFactorRequired(ctx: SecurityContext, u: Pick<UserRecord, 'roles'>): boolean {
  const required = ctx.config.SECURITY_TWO_FACTOR_REQUIRED_ROLES;
  return required.length > 0 && u.roles.some((r) => required.includes(r));
}

/** The columns that switch 2FA off (resetUserAccess in datastore.ts clears the same). */
export const TWO_FACTOR_CLEARED = { tfPrimaryMethod: null, tfTotpSecret: null, tfTotpLastStep: null, tfRecoveryCodes: null } as const;

// ---- keys and encodings ----

const keys = (ctx: SecurityContext, purpose: 'tf-token' | 'recovery-code' | 'tf-email-code' | 'tf-email-code-hash'): Buffer[] =>
  purposeKeyBytes(ctx.config, purpose);
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
export async function verifyTwoFactorCode(ctx: SecurityContext, user: UserRecord, rawCode: string, source: AuditSource = NO_SOURCE,
  challengeId: string | null = null): Promise<'totp' | 'email' | 'recovery' | null> {
  const code = rawCode.replace(/\s/g, '');
  if (TOTP_RE.test(code) && user.tfPrimaryMethod === 'email') {
    return challengeId !== null && (await useEmailCode(ctx, { userId: user.id, purpose: 'login', challengeId }, code)) ? 'email' : null;
  }
  if (TOTP_RE.test(code)) {
    const secret = openTotpSecret(ctx, user);
    if (!secret) return null;
    const step = await totpStep(ctx, secret, code, user.tfTotpLastStep);
    if (step === null) return null;
    const advanced = await ctx.db.update(users).set({ tfTotpLastStep: step })
      .where(and(eq(users.id, user.id), eq(users.tfPrimaryMethod, TF_METHOD),
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

/**
 * Opens a pending two-factor login (purpose "login") or a forced setup (purpose "setup"), remembering
 * the first factor that opened it; inside the caller's transaction when given one.
 */
export async function createChallenge(ctx: SecurityContext, user: UserRecord, purpose: TfPurpose, remember: boolean,
  firstFactor: string = 'password', db: SecurityContext['db'] | Tx = ctx.db): Promise<Challenge & { id: string; expiresAt: Date }> {
  const now = ctx.clock.now();
  const within = purpose === 'setup' ? SETUP_WITHIN_SECONDS : ctx.config.SECURITY_TWO_FACTOR_TOKEN_WITHIN;
  const row = { id: randomUUID(), purpose };
  const expiresAt = new Date(now.getTime() + within * 1000);
  await db.insert(twoFactorChallenges).values({
    ...row, userId: user.id, fsUniquifier: user.fsUniquifier, remember, firstFactor, attempts: 0, createdAt: now, expiresAt,
  });
  return { id: row.id, token: tfToken(ctx, row), expiresIn: within, expiresAt };
}

/** The methods that can complete a pending login of this user: its code method and, with any key, "webauthn". */
export async function twoFactorMethods(ctx: SecurityContext, user: UserRecord): Promise<TfMethod[]> {
  const methods: TfMethod[] = [];
  if (user.tfPrimaryMethod === 'authenticator' && user.tfTotpSecret !== null) methods.push('authenticator');
  if (user.tfPrimaryMethod === 'email') methods.push('email');
  const [key] = await ctx.db.select({ id: webauthnCredentials.id }).from(webauthnCredentials).where(eq(webauthnCredentials.userId, user.id)).limit(1);
  if (key) methods.push('webauthn');
  return methods;
}

export interface PendingLogin { token: string; method: TfMethod; methods: TfMethod[] }

/**
 * Step 6 of the login pipeline when two-factor is on: the pending login, and for the email method
 * its first code mailed. A send over the account's budget is skipped (audited), not an error: the
 * login still answers tf_required (a recovery code or a key still completes it; POST /tf-send-code
 * answers 429 with Retry-After).
 */
export async function openTwoFactorLogin(ctx: SecurityContext, user: UserRecord, input: { remember: boolean; firstFactor: string; source: AuditSource }):
Promise<PendingLogin> {
  const challenge = await createChallenge(ctx, user, 'login', input.remember, input.firstFactor);
  const methods = await twoFactorMethods(ctx, user);
  if (user.tfPrimaryMethod === 'email') {
    try {
      await sendEmailCode(ctx, user, 'login', challenge.id, challenge.expiresAt, input.source);
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'RATE_LIMITED')) throw err;
      await audit(ctx, { ...input.source, action: 'tf.email_code_throttled', targetUserId: user.id });
    }
  }
  const method: TfMethod = user.tfPrimaryMethod === 'email' || user.tfPrimaryMethod === TF_METHOD ? user.tfPrimaryMethod : 'webauthn';
  return { token: challenge.token, method, methods };
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
Promise<{ user: UserRecord; remember: boolean; method: 'totp' | 'email' | 'recovery'; firstFactor: string; attempt: Attempt }> {
  const { challenge, user } = await liveChallenge(ctx, token, 'login');
  if (!twoFactorEnabled(user)) throw tokenDead();
  const attempt = await reserveAttempt(ctx, user.email);
  let method: 'totp' | 'email' | 'recovery' | null;
  try {
    await takeAttempt(ctx, challenge.id);
    method = await verifyTwoFactorCode(ctx, user, code, source, challenge.id);
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
  return { user, remember: challenge.remember, method, firstFactor: challenge.firstFactor ?? 'password', attempt };
}

// ---- email codes (method "email") ----

const EMAIL_CODES_CONSIDERED = 5;

/** The 6-digit code of a row (under each key; the first is the current one). */
function emailCodesFor(ctx: SecurityContext, id: string): string[] {
  return keys(ctx, 'tf-email-code').map((k) => String(createHmac('sha256', k).update(id).digest().readUInt32BE(0) % 1_000_000).padStart(6, '0'));
}
const emailCodeHash = (key: Buffer, id: string, code: string) => mac(key, `${id}:${code}`);

/**
 * Mails a code to the account's address (through the outbox, rendered at delivery): counts the send
 * against the account's budget (429 RATE_LIMITED beyond it), stores the code's keyed hash.
 */
async function sendEmailCode(ctx: SecurityContext, user: UserRecord, purpose: TfEmailPurpose, challengeId: string | null, notAfter: Date,
  source: AuditSource): Promise<string> {
  await countMailSend(ctx, `tf-send:${user.id}`);
  const now = ctx.clock.now();
  const id = randomUUID();
  const expiresAt = new Date(Math.min(notAfter.getTime(), now.getTime() + ctx.config.SECURITY_US_TOKEN_VALIDITY * 1000));
  await ctx.db.transaction(async (tx) => {
    await tx.insert(twoFactorEmailCodes).values({
      id, userId: user.id, purpose, challengeId, codeHash: emailCodeHash(keys(ctx, 'tf-email-code-hash')[0]!, id, emailCodesFor(ctx, id)[0]!),
      attempts: 0, createdAt: now, expiresAt,
    });
    await enqueueMail(ctx, tx, { template: 'tf_email_code', recipient: user.email, userId: user.id, payload: { code_id: id } });
    await audit(ctx, { ...source, action: 'tf.email_code_sent', targetUserId: user.id, details: { purpose } }, tx);
  });
  return id;
}

/** What the message carries, rendered at delivery; null when the code is no longer usable or not the account's. */
export async function twoFactorMailContent(ctx: SecurityContext, codeId: unknown, userId: number): Promise<{ code: string; expiresAt: Date; purpose: TfEmailPurpose } | null> {
  if (typeof codeId !== 'string' || !/^[0-9a-f-]{36}$/.test(codeId)) return null;
  const [row] = await ctx.db.select().from(twoFactorEmailCodes).where(and(eq(twoFactorEmailCodes.id, codeId), eq(twoFactorEmailCodes.userId, userId),
    isNull(twoFactorEmailCodes.usedAt), gt(twoFactorEmailCodes.expiresAt, ctx.clock.now()))).limit(1);
  return row ? { code: emailCodesFor(ctx, row.id)[0]!, expiresAt: row.expiresAt, purpose: row.purpose } : null;
}

/**
 * Uses a mailed code: for a login, any live code of that pending login (its tf_token's attempts bound
 * the guesses); for a setup, the one row the setup token names, which takes one of its own attempts
 * first (so parallel guesses cannot exceed TF_MAX_ATTEMPTS). A right code is consumed atomically: of
 * two parallel uses one wins.
 */
async function useEmailCode(ctx: SecurityContext, by: { userId: number; purpose: 'login'; challengeId: string } | { userId: number; purpose: 'setup'; id: string },
  code: string): Promise<boolean> {
  if (!TOTP_RE.test(code)) return false;
  const now = ctx.clock.now();
  const live = and(eq(twoFactorEmailCodes.userId, by.userId), eq(twoFactorEmailCodes.purpose, by.purpose), isNull(twoFactorEmailCodes.usedAt),
    gt(twoFactorEmailCodes.expiresAt, now), lt(twoFactorEmailCodes.attempts, TF_MAX_ATTEMPTS));
  let rows;
  if (by.purpose === 'setup') {
    rows = await ctx.db.update(twoFactorEmailCodes).set({ attempts: sql`${twoFactorEmailCodes.attempts} + 1` })
      .where(and(live, eq(twoFactorEmailCodes.id, by.id))).returning();
  } else {
    rows = await ctx.db.select().from(twoFactorEmailCodes).where(and(live, eq(twoFactorEmailCodes.challengeId, by.challengeId)))
      .orderBy(desc(twoFactorEmailCodes.createdAt)).limit(EMAIL_CODES_CONSIDERED);
  }
  const hashKeys = keys(ctx, 'tf-email-code-hash');
  const match = rows.find((r) => hashKeys.some((k) => safeEqual(emailCodeHash(k, r.id, code), r.codeHash)));
  if (!match) return false;
  const used = await ctx.db.update(twoFactorEmailCodes).set({ usedAt: now })
    .where(and(eq(twoFactorEmailCodes.id, match.id), isNull(twoFactorEmailCodes.usedAt), gt(twoFactorEmailCodes.expiresAt, now)))
    .returning({ id: twoFactorEmailCodes.id });
  return used.length > 0;
}

/**
 * POST /tf-send-code: another code for a pending login whose method is email (the earlier ones stay
 * good until they expire or one is used). 409 for another method; 429 over the send budget.
 */
export async function resendTwoFactorCode(ctx: SecurityContext, token: string, source: AuditSource = NO_SOURCE): Promise<void> {
  const { challenge, user } = await liveChallenge(ctx, token, 'login');
  if (user.tfPrimaryMethod !== 'email') throw new AppError(409, 'CONFLICT', 'This account\'s two-factor method does not mail codes');
  await sendEmailCode(ctx, user, 'login', challenge.id, challenge.expiresAt, source);
}

// ---- setup ----

/** The sealed tf_setup_token: user, fs_uniquifier, method, the TOTP secret or the mailed code's row, expiry, forced-setup challenge. */
interface SetupClaims { u: number; q: string; m?: TfSetupMethod; s?: string; k?: string; e: number; c: string | null }

export type SetupStart =
  | { method: 'authenticator'; secret: string; otpauthUri: string; qrCode: string; setupToken: string; expiresIn: number }
  | { method: 'email'; setupToken: string; expiresIn: number };

async function startSetup(ctx: SecurityContext, user: UserRecord, method: TfSetupMethod, challengeId: string | null, source: AuditSource): Promise<SetupStart> {
  const now = ctx.clock.now();
  if (method === 'email') {
    const codeId = await sendEmailCode(ctx, user, 'setup', challengeId, new Date(now.getTime() + SETUP_WITHIN_SECONDS * 1000), source);
    const within = Math.min(SETUP_WITHIN_SECONDS, ctx.config.SECURITY_US_TOKEN_VALIDITY);
    const claims: SetupClaims = { u: user.id, q: user.fsUniquifier, m: 'email', k: codeId, c: challengeId, e: Math.floor(now.getTime() / 1000) + within };
    return { method, setupToken: seal(ctx.config, 'tf-setup', JSON.stringify(claims)), expiresIn: within };
  }
  const secret = generateSecret();
  const otpauthUri = generateURI({ issuer: ctx.config.SECURITY_TOTP_ISSUER, label: user.email, secret, period: TOTP_PERIOD });
  const qrCode = await QRCode.toDataURL(otpauthUri, { errorCorrectionLevel: 'M', margin: 2, width: 240 });
  const claims: SetupClaims = {
    u: user.id, q: user.fsUniquifier, m: 'authenticator', s: secret, c: challengeId,
    e: Math.floor(now.getTime() / 1000) + SETUP_WITHIN_SECONDS,
  };
  return { method, secret, otpauthUri, qrCode, setupToken: seal(ctx.config, 'tf-setup', JSON.stringify(claims)), expiresIn: SETUP_WITHIN_SECONDS };
}

/** POST /tf-setup by a signed-in user (the route checks freshness). Nothing is stored yet (email: the code is mailed). */
export function beginSetup(ctx: SecurityContext, user: UserRecord, method: TfSetupMethod = 'authenticator', source: AuditSource = NO_SOURCE): Promise<SetupStart> {
  return startSetup(ctx, user, method, null, source);
}

/** POST /tf-setup with a setup-purpose tf_token (a required role at login, no session yet). */
export async function beginForcedSetup(ctx: SecurityContext, tfToken: string, method: TfSetupMethod = 'authenticator', source: AuditSource = NO_SOURCE): Promise<SetupStart> {
  const { challenge, user } = await liveChallenge(ctx, tfToken, 'setup');
  return startSetup(ctx, user, method, challenge.id, source);
}

const setupInvalid = (message = 'The code is wrong or the setup token is invalid or expired') => new AppError(400, 'TWO_FACTOR_INVALID', message);

export interface SetupDone {
  user: UserRecord;
  recoveryCodes: string[];
  method: TfSetupMethod;
  /** set when the setup completed a forced-setup login: the caller opens the session */
  login: { remember: boolean; firstFactor: string } | null;
}

/**
 * POST /tf-setup/{tf_setup_token}: a code from the app (or the mailed code) proves the method works;
 * 2FA is switched on (replacing an earlier method) with ten new recovery codes. A token from a
 * signed-in setup needs that user's session (`authUserId`); one from a forced setup needs none and
 * completes the login.
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
  if (!claims || typeof claims.u !== 'number' || typeof claims.e !== 'number') throw setupInvalid();
  const method: TfSetupMethod = claims.m === 'email' ? 'email' : 'authenticator';
  if (method === 'email' ? typeof claims.k !== 'string' : typeof claims.s !== 'string') throw setupInvalid();
  const now = ctx.clock.now();
  if (claims.e * 1000 <= now.getTime()) throw setupInvalid();
  let remember = false;
  let firstFactor = 'password';
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
    firstFactor = challenge.firstFactor ?? 'password';
    try {
      await takeAttempt(ctx, challenge.id);
    } catch {
      throw setupInvalid();
    }
  }
  const user = await findUser(ctx.db, { id: claims.u });
  if (!user || !user.active || !safeEqual(user.fsUniquifier, claims.q)) throw setupInvalid();
  const typed = code.replace(/\s/g, '');
  let totp: { secret: string; step: number } | null = null;
  if (method === 'email') {
    if (!(await useEmailCode(ctx, { userId: user.id, purpose: 'setup', id: claims.k! }, typed))) throw setupInvalid('The code is wrong, used or expired');
  } else {
    const step = await totpStep(ctx, claims.s!, typed, null);
    if (step === null) throw setupInvalid('The code is wrong; check the time on your device and try the current code');
    totp = { secret: claims.s!, step };
  }

  const { codes, hashes } = newRecoveryCodes(ctx);
  const forced = claims.c;
  await ctx.db.transaction(async (tx) => {
    if (forced !== null && !(await consume(ctx, forced, tx))) throw setupInvalid();
    await tx.update(users).set({
      tfPrimaryMethod: method, tfTotpSecret: totp ? sealTotpSecret(ctx, user.id, totp.secret) : null, tfTotpLastStep: totp?.step ?? null,
      tfRecoveryCodes: hashes, updatedAt: now,
    }).where(eq(users.id, user.id));
    // Like a password change: every other session of the user (opened without this factor, perhaps
    // by someone else) ends, and so do pending logins; this client's session stays.
    await tx.update(sessions).set({ revokedAt: now, revokedReason: 'tf_enabled' }).where(and(
      eq(sessions.userId, user.id), isNull(sessions.revokedAt), authSessionId ? ne(sessions.id, authSessionId) : sql`true`,
    ));
    await tx.delete(twoFactorChallenges).where(and(eq(twoFactorChallenges.userId, user.id),
      forced !== null ? ne(twoFactorChallenges.id, forced) : sql`true`));
    await audit(ctx, { ...source, action: 'tf.enabled', targetUserId: user.id, details: { method, forced: forced !== null } }, tx);
  });
  return { user: (await findUser(ctx.db, { id: user.id }))!, recoveryCodes: codes, method, login: forced === null ? null : { remember, firstFactor } };
}

/**
 * POST /tf-disable: 2FA off, whatever its method: the TOTP secret, the email method and the recovery
 * codes go, and so do the "secondary" security keys (a key registered as a second factor would keep
 * it on; passkeys of usage "first" stay); pending 2FA logins die. A user whose role is in
 * SECURITY_TWO_FACTOR_REQUIRED_ROLES cannot switch it off: 403 FORBIDDEN (an admin's reset-access
 * still can, for a lost device).
 */
export async function disableTwoFactor(ctx: SecurityContext, user: UserRecord, source: AuditSource = NO_SOURCE): Promise<void> {
  if (twoFactorRequired(ctx, user)) {
    throw new AppError(403, 'FORBIDDEN', 'Your role requires two-factor authentication; it cannot be switched off');
  }
  const userId = user.id;
  await ctx.db.transaction(async (tx) => {
    await tx.update(users).set({ ...TWO_FACTOR_CLEARED, updatedAt: ctx.clock.now() }).where(eq(users.id, userId));
    await tx.delete(twoFactorChallenges).where(eq(twoFactorChallenges.userId, userId));
    await tx.delete(twoFactorEmailCodes).where(eq(twoFactorEmailCodes.userId, userId));
    const keysRemoved = await tx.delete(webauthnCredentials)
      .where(and(eq(webauthnCredentials.userId, userId), eq(webauthnCredentials.usage, 'secondary'))).returning({ id: webauthnCredentials.id });
    await audit(ctx, { ...source, action: 'tf.disabled', targetUserId: userId,
      details: { method: user.tfPrimaryMethod, keys_removed: keysRemoved.length } }, tx);
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

/** The first factor of a pending login (the login its second factor completes is audited under it). */
export async function pendingFirstFactor(ctx: SecurityContext, challengeId: string): Promise<string> {
  const [row] = await ctx.db.select({ f: twoFactorChallenges.firstFactor }).from(twoFactorChallenges).where(eq(twoFactorChallenges.id, challengeId)).limit(1);
  return row?.f ?? 'password';
}

/**
 * Keeps method "webauthn" (two-factor by security keys alone) in step with the keys, inside the
 * transaction that adds or removes one, after locking the user's row (lockUser): switched on by
 * the first "secondary" key of an account without a code method, off when the last one goes.
 * Returns the method change, if any.
 */
export async function syncKeyTwoFactor(tx: Tx, userId: number, now: Date): Promise<'on' | 'off' | null> {
  const [row] = await tx.select({ method: users.tfPrimaryMethod }).from(users).where(eq(users.id, userId)).for('update');
  if (!row) return null;
  const [key] = await tx.select({ id: webauthnCredentials.id }).from(webauthnCredentials)
    .where(and(eq(webauthnCredentials.userId, userId), eq(webauthnCredentials.usage, 'secondary'))).limit(1);
  if (row.method === null && key) {
    await tx.update(users).set({ tfPrimaryMethod: 'webauthn', updatedAt: now }).where(eq(users.id, userId));
    return 'on';
  }
  if (row.method === 'webauthn' && !key) {
    await tx.update(users).set({ ...TWO_FACTOR_CLEARED, updatedAt: now }).where(eq(users.id, userId));
    return 'off';
  }
  return null;
}

/** Locks the user's row for the rest of the transaction (serialises key changes with syncKeyTwoFactor). */
export async function lockUser(tx: Tx, userId: number): Promise<void> {
  await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
}

/** Consumes a pending login another factor completed; false when it was used or expired meanwhile. */
export async function consumeTwoFactorLogin(ctx: SecurityContext, challengeId: string): Promise<boolean> {
  const rows = await ctx.db.update(twoFactorChallenges).set({ usedAt: ctx.clock.now() })
    .where(and(eq(twoFactorChallenges.id, challengeId), eq(twoFactorChallenges.purpose, 'login'), isNull(twoFactorChallenges.usedAt),
      gt(twoFactorChallenges.expiresAt, ctx.clock.now())))
    .returning({ id: twoFactorChallenges.id });
  return rows.length > 0;
}
