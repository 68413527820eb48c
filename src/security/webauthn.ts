// Passkeys and security keys (WebAuthn, via @simplewebauthn/server). Framework-free: the routes in
// routes/auth/passwordless.ts, the admin routes and the CLI call these.
//
// Every ceremony is two requests. The first stores a challenge row (db/schema/passwordless.ts) and
// answers the browser's options plus a `wan_state` naming the row (id + MAC, so a guessed id is
// useless). The second consumes the row before anything else (single use: a replay, right or wrong,
// finds it used), checks it is young (SECURITY_WAN_CHALLENGE_TIMEOUT on the injected clock) and bound
// to the caller (the session that asked for a registration or a re-authentication; the pending
// two-factor login a second-factor sign-in completes), then lets the library check the signature,
// origin (SECURITY_WAN_ALLOWED_ORIGINS), RP id hash (SECURITY_WAN_RP_ID), challenge, flags and sign
// count. Anything wrong is 401 WEBAUTHN_INVALID (400 at registration) and writes nothing but the
// audit row (and, for a known account, a failure towards its lockout).
//
// Policy:
// - usage "first" keys are passkeys: registered as discoverable (resident) credentials with user
//   verification required, and they sign in on their own. User verification (PIN, biometric) makes
//   such a sign-in multi-factor, so no second factor is asked for afterwards.
// - usage "secondary" keys complete a two-factor login (a tf_token); user verification preferred.
//   Any of the account's keys may serve as a second factor; only "first" keys sign in alone. A
//   "secondary" key is itself a two-factor method: the first one switches two-factor on for an
//   account without a code method (users.tf_primary_method "webauthn", security/two-factor.ts
//   syncKeyTwoFactor; other sessions and pending logins end, as when an authenticator is set up),
//   deleting the last one switches it off again (unless TOTP or email remain). A user of a role in
//   SECURITY_TWO_FACTOR_REQUIRED_ROLES cannot delete the key that is their last second factor (403).
// - Re-authentication (POST /wan-verify) accepts any of the account's keys.
// - The sign count only moves forward: a signature whose counter is not above the stored one (both
//   not zero) is refused as a possible cloned authenticator, and the update is conditional, so two
//   concurrent uses of one assertion cannot both pass.
// - Attestation "none": the server stores public keys, not device certificates.
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
  type AuthenticationResponseJSON, type AuthenticatorTransport, type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { cose, decodeCredentialPublicKey, isoBase64URL } from '@simplewebauthn/server/helpers';
import { and, asc, eq, gt, isNull, lt, ne, or, sql } from 'drizzle-orm';
import { createHmac, randomUUID } from 'node:crypto';
import {
  sessions, twoFactorChallenges, webauthnChallenges, webauthnCredentials,
  type WanPurpose, type WanUsage, type WebauthnChallengeRow, type WebauthnCredentialRow,
} from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { AppError, notFound, pgError, validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, type UserRecord } from './datastore.js';
import { requireUserInScope, type Actor } from './users.js';
import { checkSecret } from './lockout.js';
import { beginLogin, type ClientInfo, type LoginOutcome } from './login.js';
import { consumeTwoFactorLogin, lockUser, pendingFirstFactor, syncKeyTwoFactor, twoFactorRequired } from './two-factor.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { safeEqual } from './tokens.js';
import { isCanonicalDerEcdsaSignature } from './der-signature.js';
import { purposeKeyBytes, type KeyPurpose } from './keyring.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

export const webauthnInvalid = (status: 400 | 401 = 401, message = 'The passkey could not be verified') =>
  new AppError(status, 'WEBAUTHN_INVALID', message);

// ---- keys ----

const keys = (ctx: SecurityContext, purpose: KeyPurpose): Buffer[] => purposeKeyBytes(ctx.config, purpose);
const mac = (key: Buffer, value: string) => createHmac('sha256', key).update(value).digest('base64url');

/**
 * The WebAuthn user handle of an account: opaque and stable (a keyed hash of the user id), so the
 * authenticator never stores the address or the database id.
 */
export function userHandle(ctx: SecurityContext, userId: number): string {
  return createHmac('sha256', keys(ctx, 'wan-user-handle')[0]!).update(`user:${userId}`).digest().subarray(0, 16).toString('base64url');
}

// ---- wan_state: a challenge row named by a signed id ----

function stateOf(ctx: SecurityContext, row: Pick<WebauthnChallengeRow, 'id' | 'purpose'>): string {
  return `${row.id}.${mac(keys(ctx, 'wan-state')[0]!, `${row.id}.${row.purpose}`)}`;
}

const STATE_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

function stateId(ctx: SecurityContext, state: string, purpose: WanPurpose): string | null {
  const m = STATE_RE.exec(state);
  if (!m) return null;
  return keys(ctx, 'wan-state').some((k) => safeEqual(mac(k, `${m[1]}.${purpose}`), m[2]!)) ? m[1]! : null;
}

interface NewChallenge {
  purpose: WanPurpose;
  challenge: string;
  userId?: number | null;
  fsUniquifier?: string | null;
  sessionId?: string | null;
  tfChallengeId?: string | null;
  name?: string | null;
  usage?: WanUsage | null;
  remember?: boolean;
}

async function storeChallenge(ctx: SecurityContext, c: NewChallenge): Promise<string> {
  const now = ctx.clock.now();
  const row = { id: randomUUID(), purpose: c.purpose };
  await ctx.db.insert(webauthnChallenges).values({
    ...row, challenge: c.challenge, userId: c.userId ?? null, fsUniquifier: c.fsUniquifier ?? null,
    sessionId: c.sessionId ?? null, tfChallengeId: c.tfChallengeId ?? null, name: c.name ?? null, usage: c.usage ?? null,
    remember: c.remember ?? false, createdAt: now,
    expiresAt: new Date(now.getTime() + ctx.config.SECURITY_WAN_CHALLENGE_TIMEOUT * 1000),
  });
  return stateOf(ctx, row);
}

/**
 * Consumes the challenge a wan_state names: marks it used if it is genuine, of this purpose, unused
 * and unexpired, in one statement (so of two concurrent answers only one gets it). Null otherwise.
 */
async function takeChallenge(ctx: SecurityContext, state: string, purpose: WanPurpose): Promise<WebauthnChallengeRow | null> {
  const id = stateId(ctx, state, purpose);
  if (!id) return null;
  const now = ctx.clock.now();
  const [row] = await ctx.db.update(webauthnChallenges).set({ usedAt: now })
    .where(and(eq(webauthnChallenges.id, id), eq(webauthnChallenges.purpose, purpose), isNull(webauthnChallenges.usedAt),
      gt(webauthnChallenges.expiresAt, now)))
    .returning();
  return row ?? null;
}

// ---- relying party ----

function rp(ctx: SecurityContext) {
  const { SECURITY_WAN_RP_ID: id, SECURITY_WAN_RP_NAME: name, SECURITY_WAN_ALLOWED_ORIGINS: origins } = ctx.config;
  return { id, name, origins: [...origins], timeoutMs: ctx.config.SECURITY_WAN_CHALLENGE_TIMEOUT * 1000 };
}

/** fs_uniquifier of a sign-in challenge for a typed address without an account (no account has it). */
const UNKNOWN_IDENTITY = '-';

const transportsOf = (c: Pick<WebauthnCredentialRow, 'transports'>) => c.transports as AuthenticatorTransport[];

// ---- the account's credentials ----

export interface PublicCredential {
  id: string; name: string; usage: WanUsage; created_at: string; last_used_at: string | null; transports: string[];
  backed_up: boolean;
}

export function publicCredential(c: WebauthnCredentialRow): PublicCredential {
  return {
    id: c.id, name: c.name, usage: c.usage, created_at: c.createdAt.toISOString(),
    last_used_at: c.lastUsedAt ? c.lastUsedAt.toISOString() : null, transports: c.transports, backed_up: c.backedUp,
  };
}

export async function listCredentials(db: Db, userId: number): Promise<WebauthnCredentialRow[]> {
  return db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, userId))
    .orderBy(asc(webauthnCredentials.createdAt), asc(webauthnCredentials.id));
}

const nameTaken = () => new AppError(409, 'CONFLICT', 'You already have a passkey with this name', {
  fields: { name: ['You already have a passkey with this name'] },
});

function mapCredentialWriteError(err: unknown): unknown {
  const pg = pgError(err);
  if (pg?.code === '23505' && pg.constraint_name === 'webauthn_credentials_user_name_idx') return nameTaken();
  if (pg?.code === '23505' && pg.constraint_name === 'webauthn_credentials_credential_id_idx') {
    return new AppError(409, 'CONFLICT', 'This authenticator is already registered');
  }
  return err;
}

/** A credential name as stored: trimmed, 1–64 characters, no control characters. */
export function credentialName(name: string): string {
  const n = name.normalize('NFKC').trim();
  // eslint-disable-next-line no-control-regex
  if (!n || n.length > 64 || /[\u0000-\u001f\u007f-\u009f]/.test(n)) {
    throw validationError({ name: ['A name of 1 to 64 printable characters'] });
  }
  return n;
}

// ---- registration ----

export interface CeremonyStart<T> { wanState: string; options: T }
export type CreationOptions = Awaited<ReturnType<typeof generateRegistrationOptions>>;
export type RequestOptions = Awaited<ReturnType<typeof generateAuthenticationOptions>>;

/** POST /wan-register (the route checks a fresh interactive session). Nothing is stored but the challenge. */
export async function beginRegistration(ctx: SecurityContext, user: UserRecord, sessionId: string, input: { name: string; usage: WanUsage }):
Promise<CeremonyStart<CreationOptions>> {
  const name = credentialName(input.name);
  const existing = await listCredentials(ctx.db, user.id);
  if (existing.some((c) => c.name.toLowerCase() === name.toLowerCase())) throw nameTaken();
  const party = rp(ctx);
  const first = input.usage === 'first';
  const options = await generateRegistrationOptions({
    rpName: party.name, rpID: party.id,
    userName: user.email, userDisplayName: [user.firstName, user.lastName].filter(Boolean).join(' ') || user.email,
    userID: isoBase64URL.toBuffer(userHandle(ctx, user.id)),
    timeout: party.timeoutMs,
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.credentialId, transports: transportsOf(c) })),
    authenticatorSelection: first
      ? { residentKey: 'required', requireResidentKey: true, userVerification: 'required' }
      : { residentKey: 'discouraged', userVerification: 'preferred' },
    // ES256, EdDSA, RS256
    supportedAlgorithmIDs: [-7, -8, -257],
  });
  const wanState = await storeChallenge(ctx, {
    purpose: 'register', challenge: options.challenge, userId: user.id, fsUniquifier: user.fsUniquifier, sessionId, name, usage: input.usage,
  });
  return { wanState, options };
}

/**
 * POST /wan-register/{wan_state}: the browser's attestation. Only the session that started the
 * ceremony may finish it. Stores the public key; 400 WEBAUTHN_INVALID otherwise.
 */
export async function finishRegistration(ctx: SecurityContext, state: string, response: RegistrationResponseJSON,
  auth: { userId: number; sessionId: string }, source: AuditSource = NO_SOURCE): Promise<WebauthnCredentialRow> {
  const fail = async (reason: string): Promise<never> => {
    await audit(ctx, { ...source, action: 'wan.register_failed', targetUserId: auth.userId, details: { reason } });
    throw webauthnInvalid(400, 'The passkey could not be registered; start again');
  };
  const row = await takeChallenge(ctx, state, 'register');
  if (!row) return fail('challenge_invalid');
  if (row.userId !== auth.userId || row.sessionId !== auth.sessionId || !row.usage || !row.name) return fail('other_session');
  const user = await findUser(ctx.db, { id: auth.userId });
  if (!user || !user.active || !row.fsUniquifier || !safeEqual(user.fsUniquifier, row.fsUniquifier)) return fail('account_changed');
  const party = rp(ctx);
  let verified;
  try {
    verified = await verifyRegistrationResponse({
      response, expectedChallenge: row.challenge, expectedOrigin: party.origins, expectedRPID: party.id,
      requireUserVerification: row.usage === 'first', supportedAlgorithmIDs: [-7, -8, -257],
    });
  } catch {
    return fail('verification_failed');
  }
  if (!verified.verified) return fail('verification_failed');
  const info = verified.registrationInfo;
  const transports = (response.response.transports ?? info.credential.transports ?? []).filter((t) => /^[a-z-]{1,16}$/.test(t)).slice(0, 8);
  try {
    return await ctx.db.transaction(async (tx) => {
      await lockUser(tx, user.id);
      const [created] = await tx.insert(webauthnCredentials).values({
        id: randomUUID(), userId: user.id, credentialId: info.credential.id,
        publicKey: isoBase64URL.fromBuffer(info.credential.publicKey), signCount: info.credential.counter,
        transports, usage: row.usage!, name: row.name!, aaguid: info.aaguid,
        backupEligible: info.credentialDeviceType === 'multiDevice', backedUp: info.credentialBackedUp,
        createdAt: ctx.clock.now(),
      }).returning();
      await audit(ctx, { ...source, action: 'wan.registered', targetUserId: user.id,
        details: { credential: created!.id, name: created!.name, usage: created!.usage } }, tx);
      const now = ctx.clock.now();
      if ((await syncKeyTwoFactor(tx, user.id, now)) === 'on') {
        // two-factor is on from now: like setting up an authenticator, every other session and pending login ends
        await tx.update(sessions).set({ revokedAt: now, revokedReason: 'tf_enabled' })
          .where(and(eq(sessions.userId, user.id), isNull(sessions.revokedAt), ne(sessions.id, auth.sessionId)));
        await tx.delete(twoFactorChallenges).where(eq(twoFactorChallenges.userId, user.id));
        await audit(ctx, { ...source, action: 'tf.enabled', targetUserId: user.id, details: { method: 'webauthn', forced: false } }, tx);
      }
      return created!;
    });
  } catch (err) {
    throw mapCredentialWriteError(err);
  }
}

/** POST /wan-delete: by name (case-insensitive). Returns whether a credential went. */
export async function deleteCredential(ctx: SecurityContext, user: UserRecord, name: string, source: AuditSource = NO_SOURCE): Promise<void> {
  const userId = user.id;
  await ctx.db.transaction(async (tx) => {
    await lockUser(tx, userId);
    const rows = await tx.delete(webauthnCredentials)
      .where(and(eq(webauthnCredentials.userId, userId), sql`lower(${webauthnCredentials.name}) = lower(${name.normalize('NFKC').trim()})`))
      .returning();
    if (!rows.length) throw notFound('Passkey');
    await audit(ctx, { ...source, action: 'wan.deleted', targetUserId: userId, details: { credential: rows[0]!.id, name: rows[0]!.name } }, tx);
    if ((await syncKeyTwoFactor(tx, userId, ctx.clock.now())) === 'off') {
      if (twoFactorRequired(ctx, user)) {
        throw new AppError(403, 'FORBIDDEN', 'Your role requires two-factor authentication and this is your last security key; set up another method first');
      }
      await audit(ctx, { ...source, action: 'tf.disabled', targetUserId: userId, details: { method: 'webauthn', keys_removed: 1 } }, tx);
    }
  });
}

/** POST /wan-rename: a new name for the key of that name (case-insensitive). */
export async function renameCredential(ctx: SecurityContext, userId: number, name: string, newName: string, source: AuditSource = NO_SOURCE):
Promise<WebauthnCredentialRow> {
  const next = credentialName(newName);
  let rows: WebauthnCredentialRow[];
  try {
    rows = await ctx.db.update(webauthnCredentials).set({ name: next })
      .where(and(eq(webauthnCredentials.userId, userId), sql`lower(${webauthnCredentials.name}) = lower(${name.normalize('NFKC').trim()})`)).returning();
  } catch (err) {
    throw mapCredentialWriteError(err);
  }
  if (!rows.length) throw notFound('Passkey');
  await audit(ctx, { ...source, action: 'wan.renamed', targetUserId: userId, details: { credential: rows[0]!.id, name: next } });
  return rows[0]!;
}

// ---- administration (admin API and CLI): the same scope rule as every other action on a user ----

/** GET /users/{id}/passkeys, `users passkeys USER`. 404 outside the actor's scope. */
export async function listUserPasskeys(ctx: SecurityContext, actor: Actor, userId: number): Promise<WebauthnCredentialRow[]> {
  await requireUserInScope(ctx.db, actor.scope, userId);
  return listCredentials(ctx.db, userId);
}

/**
 * DELETE /users/{id}/passkeys/{credential_id}, `users remove-passkey USER ID`: the key stops working
 * at once. Audited with the actor. 404 outside the scope or for another user's credential.
 */
export async function removeUserPasskey(ctx: SecurityContext, actor: Actor, userId: number, credentialId: string): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    await requireUserInScope(tx, actor.scope, userId);
    await lockUser(tx, userId);
    const rows = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(credentialId)
      ? await tx.delete(webauthnCredentials).where(and(eq(webauthnCredentials.id, credentialId), eq(webauthnCredentials.userId, userId))).returning()
      : [];
    if (!rows.length) throw notFound('Passkey');
    await audit(ctx, { ...actor, action: 'wan.deleted', targetUserId: userId, details: { credential: credentialId, name: rows[0]!.name, by_admin: true } }, tx);
    // an admin may remove the last key of a forced role (like reset-access): the next login sets 2FA up again
    if ((await syncKeyTwoFactor(tx, userId, ctx.clock.now())) === 'off') {
      await audit(ctx, { ...actor, action: 'tf.disabled', targetUserId: userId, details: { method: 'webauthn', keys_removed: 1, by_admin: true } }, tx);
    }
  });
}

// ---- sign-in and re-authentication ----

export interface SigninStart {
  /** the typed identity (the address), when given: the key must belong to it */
  identity?: string;
  /** a pending two-factor login (the tf_token's challenge) the key completes */
  secondFactor?: { userId: number; fsUniquifier: string; challengeId: string; remember: boolean };
  remember?: boolean;
}

/**
 * POST /wan-signin. Without an identity the browser offers any discoverable credential for this RP
 * (conditional UI); with one, the answer is identical whether or not the address has an account
 * (no credential list is sent: "first" keys are discoverable), and the key must belong to it.
 * As a second factor, the account's keys are listed and the challenge is bound to the tf_token.
 */
export async function beginSignin(ctx: SecurityContext, input: SigninStart): Promise<CeremonyStart<RequestOptions>> {
  const party = rp(ctx);
  if (input.secondFactor) {
    const sf = input.secondFactor;
    const creds = await listCredentials(ctx.db, sf.userId);
    const options = await generateAuthenticationOptions({
      rpID: party.id, timeout: party.timeoutMs, userVerification: 'preferred',
      allowCredentials: creds.map((c) => ({ id: c.credentialId, transports: transportsOf(c) })),
    });
    const wanState = await storeChallenge(ctx, {
      purpose: 'signin', challenge: options.challenge, userId: sf.userId, fsUniquifier: sf.fsUniquifier,
      tfChallengeId: sf.challengeId, remember: sf.remember,
    });
    return { wanState, options };
  }
  let user: UserRecord | null = null;
  if (input.identity !== undefined) user = await findUser(ctx.db, { email: input.identity });
  const options = await generateAuthenticationOptions({ rpID: party.id, timeout: party.timeoutMs, userVerification: 'required' });
  const wanState = await storeChallenge(ctx, {
    purpose: 'signin', challenge: options.challenge, userId: user?.id ?? null, remember: input.remember ?? false,
    // a typed identity without an account: a challenge no key can answer
    ...(input.identity !== undefined && !user ? { fsUniquifier: UNKNOWN_IDENTITY } : {}),
  });
  return { wanState, options };
}

const SIGN_COUNT_RE = /counter/i;

/** An EC2 key's signature must be canonical DER (security/der-signature.ts); other kinds have one form already. */
function hasCanonicalSignature(publicKey: Parameters<typeof decodeCredentialPublicKey>[0], response: AuthenticationResponseJSON): boolean {
  let key;
  try {
    key = decodeCredentialPublicKey(publicKey);
  } catch {
    return false;
  }
  if (!cose.isCOSEPublicKeyEC2(key)) return true;
  const signature = response.response?.signature;
  return typeof signature === 'string' && isoBase64URL.isBase64URL(signature)
    && isCanonicalDerEcdsaSignature(isoBase64URL.toBuffer(signature));
}

interface Resolved { user: UserRecord; credential: WebauthnCredentialRow }

/**
 * The first half of an assertion check, before any secret is looked at: the key exists and may
 * answer this challenge (its account is the one the challenge is bound to). A failure here is not
 * counted against any account (the caller does not own the key). Audited, then 401.
 */
async function resolveAssertion(ctx: SecurityContext, row: WebauthnChallengeRow, response: AuthenticationResponseJSON,
  failedAction: string, source: AuditSource): Promise<Resolved> {
  const refuse = async (reason: string): Promise<never> => {
    await audit(ctx, { ...source, action: failedAction, targetUserId: row.userId, details: { reason, method: 'passkey' } });
    throw webauthnInvalid();
  };
  const credentialId = typeof response.id === 'string' ? response.id : '';
  const [credential] = credentialId && /^[A-Za-z0-9_-]{1,1400}$/.test(credentialId)
    ? await ctx.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.credentialId, credentialId)).limit(1)
    : [];
  if (!credential) return refuse('unknown_credential');
  if (row.fsUniquifier === UNKNOWN_IDENTITY || (row.userId !== null && row.userId !== credential.userId)) return refuse('other_users_credential');
  const user = await findUser(ctx.db, { id: credential.userId });
  if (!user) return refuse('unknown_credential');
  if (row.fsUniquifier && !safeEqual(user.fsUniquifier, row.fsUniquifier)) return refuse('account_changed');
  return { user, credential };
}

/**
 * The second half: the secret check proper (the pipeline's verify callback). Usage, user handle,
 * signature over our challenge, origin, RP id hash, flags, and the sign count moved forward by the
 * database. Returns whether the assertion is good and whether the user was verified.
 */
async function verifyAssertion(ctx: SecurityContext, row: WebauthnChallengeRow, response: AuthenticationResponseJSON, r: Resolved,
  policy: { requireUserVerification: boolean; allowUsage: readonly WanUsage[] }, source: AuditSource, failedAction: string):
Promise<{ ok: boolean; userVerified: boolean }> {
  const { user, credential } = r;
  const note = async (reason: string) => {
    await audit(ctx, { ...source, action: failedAction === 'login.failed' ? 'wan.assertion_refused' : failedAction, targetUserId: user.id,
      details: { reason, credential: credential.id, method: 'passkey' } });
    return { ok: false, userVerified: false };
  };
  if (!policy.allowUsage.includes(credential.usage)) return note('usage_not_allowed');
  const handle = response.response?.userHandle;
  if (handle && handle !== userHandle(ctx, user.id)) return note('user_handle_mismatch');
  const party = rp(ctx);
  const publicKey = isoBase64URL.toBuffer(credential.publicKey);
  if (!hasCanonicalSignature(publicKey, response)) return note('malformed_signature');
  let info;
  try {
    const verified = await verifyAuthenticationResponse({
      response, expectedChallenge: row.challenge, expectedOrigin: party.origins, expectedRPID: party.id,
      requireUserVerification: policy.requireUserVerification,
      credential: { id: credential.credentialId, publicKey, counter: credential.signCount,
        transports: transportsOf(credential) },
    });
    if (!verified.verified) return note('bad_signature');
    info = verified.authenticationInfo;
  } catch (err) {
    return note(err instanceof Error && SIGN_COUNT_RE.test(err.message) ? 'sign_count_regression' : 'verification_failed');
  }
  // forward only, decided by the database: a concurrent use of the same count loses here
  const moved = await ctx.db.update(webauthnCredentials)
    .set({ signCount: info.newCounter, lastUsedAt: ctx.clock.now(), backedUp: info.credentialBackedUp })
    .where(and(eq(webauthnCredentials.id, credential.id), or(
      lt(webauthnCredentials.signCount, info.newCounter),
      and(eq(webauthnCredentials.signCount, 0), sql`${info.newCounter} = 0`),
    )))
    .returning({ id: webauthnCredentials.id });
  if (!moved.length) return note('sign_count_regression');
  return { ok: true, userVerified: info.userVerified };
}

export interface PasskeyLoginInput { state: string; response: AuthenticationResponseJSON; client: ClientInfo; source?: AuditSource }

/**
 * POST /wan-signin/{wan_state}: the assertion, through the login pipeline (security/login.ts), so
 * the lockout, the active/confirmed rules, tracking, the session and the audit row are those of
 * every login. A "first" key with user verification is itself two factors (secondFactorDone); a key
 * answering options started with a tf_token completes that pending two-factor login.
 */
export async function passkeyLogin(ctx: SecurityContext, input: PasskeyLoginInput): Promise<LoginOutcome> {
  const source = input.source ?? NO_SOURCE;
  const row = await takeChallenge(ctx, input.state, 'signin');
  if (!row) {
    await audit(ctx, { ...source, action: 'login.failed', details: { reason: 'challenge_invalid', method: 'passkey' } });
    throw webauthnInvalid();
  }
  const secondFactor = row.tfChallengeId !== null;
  const resolved = await resolveAssertion(ctx, row, input.response, 'login.failed', source);
  // the first factor of a completed two-factor login is the one that issued the tf_token
  const method = secondFactor ? await pendingFirstFactor(ctx, row.tfChallengeId!) : 'passkey';
  let userVerified = false;
  return beginLogin(ctx, {
    identify: { user: resolved.user },
    method,
    remember: row.remember, client: input.client, source: { ...source, actorId: resolved.user.id },
    wrong: () => webauthnInvalid(),
    secondFactorDone: 'passkey',
    verify: async () => {
      const checked = await verifyAssertion(ctx, row, input.response, resolved,
        secondFactor ? { requireUserVerification: false, allowUsage: ['first', 'secondary'] } : { requireUserVerification: true, allowUsage: ['first'] },
        source, 'login.failed');
      userVerified = checked.userVerified;
      if (!checked.ok) return false;
      // the pending two-factor login is used up by this key, once
      if (secondFactor && !(await consumeTwoFactorLogin(ctx, row.tfChallengeId!))) return false;
      return secondFactor || userVerified;
    },
  });
}

/** POST /wan-verify: options for re-authenticating the current session with any of the account's keys. */
export async function beginVerify(ctx: SecurityContext, user: UserRecord, sessionId: string): Promise<CeremonyStart<RequestOptions>> {
  const party = rp(ctx);
  const creds = await listCredentials(ctx.db, user.id);
  if (!creds.length) throw new AppError(409, 'CONFLICT', 'You have no passkey; re-authenticate with your password (POST /verify)');
  const options = await generateAuthenticationOptions({
    rpID: party.id, timeout: party.timeoutMs, userVerification: 'preferred',
    allowCredentials: creds.map((c) => ({ id: c.credentialId, transports: transportsOf(c) })),
  });
  const wanState = await storeChallenge(ctx, { purpose: 'verify', challenge: options.challenge, userId: user.id, fsUniquifier: user.fsUniquifier, sessionId });
  return { wanState, options };
}

/** POST /wan-verify/{wan_state}: the assertion marks this session fresh; a counted secret check. */
export async function finishVerify(ctx: SecurityContext, state: string, response: AuthenticationResponseJSON,
  auth: { user: UserRecord; sessionId: string }, source: AuditSource = NO_SOURCE): Promise<void> {
  const row = await takeChallenge(ctx, state, 'verify');
  if (!row || row.userId !== auth.user.id || row.sessionId !== auth.sessionId) {
    await audit(ctx, { ...source, action: 'session.verify_failed', targetUserId: auth.user.id, details: { reason: 'challenge_invalid', method: 'passkey' } });
    throw webauthnInvalid();
  }
  const resolved = await resolveAssertion(ctx, row, response, 'session.verify_failed', source);
  await checkSecret(ctx, {
    email: auth.user.email, source, wrong: () => webauthnInvalid(),
    verify: async () => (await verifyAssertion(ctx, row, response, resolved, { requireUserVerification: false, allowUsage: ['first', 'secondary'] },
      source, 'session.verify_failed')).ok,
  });
  await ctx.db.update(sessions).set({ fsPaa: ctx.clock.now() })
    .where(and(eq(sessions.id, auth.sessionId), eq(sessions.userId, auth.user.id), isNull(sessions.revokedAt)));
  await audit(ctx, { ...source, action: 'session.verified', targetUserId: auth.user.id, details: { method: 'passkey', credential: resolved.credential.id } });
}
