// OpenID Connect sign-in ("Sign in with Google / Entra ID / the county IdP"), framework-free.
//
// The relying party is openid-client (v6, OpenID certified): discovery, the authorization code flow
// with PKCE S256, and every ID-token check (issuer, audience, signature against the provider's JWKS,
// exp/iat, nonce, and the `iss` authorization-response parameter when sent). This module only adds
// what is ours:
//
//   start    startOidc: a random `state` goes to the browser; its SHA-256 names an oauth_states row
//            holding the nonce, the PKCE code_verifier, `next` (already checked against
//            SECURITY_OAUTH_ALLOWED_REDIRECTS) and the mode (login, or link for a signed-in user).
//            A second random value goes into an HttpOnly cookie scoped to the callback path (the
//            browser binding, its hash in the row): a callback URL opened in another browser — an
//            attacker's own code and state pushed to a victim (login CSRF) — is refused.
//   return   finishOidc: the row is consumed atomically (UPDATE … WHERE used_at IS NULL RETURNING),
//            so a state works once; openid-client redeems the code with the verifier and validates
//            the ID token; the account is resolved (resolveAccount); a one-time login_code (60 s,
//            stored hashed) is minted and the browser goes back to `next?login_code=…`. Every failure
//            after the state is known is a redirect to `next?error=<code>` (OIDC_ERRORS), never a 500
//            and never a token in a URL.
//   exchange exchangeLoginCode: the code is consumed (single use) and the login continues in the one
//            login pipeline (security/login.ts beginLogin): deactivation and confirmation rules,
//            forced 2FA (skipped only for a provider marked trusted_mfa), tracking, audit, session.
//
// Key rotation: openid-client caches a provider's JWKS and refetches it for an unknown `kid` only
// when the cached copy is a minute old. A provider that rotates and signs with a new key at once
// would fail every sign-in for that minute, and a redeemed code cannot be redeemed again; so the
// token response is kept (customFetch) and, on a key-selection failure, validated once more against
// a freshly discovered Configuration (fresh JWKS) without a second call to the token endpoint.
import * as oidc from 'openid-client';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { OAuthProvider } from '../config.js';
import { oauthIdentities, oauthLoginCodes, oauthStates, users, webauthnCredentials, type OAuthMode } from '../db/schema/index.js';
import { AppError, notFound, validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { createUser, findUser, type UserRecord } from './datastore.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { beginLogin, type ClientInfo, type LoginOutcome } from './login.js';
import { ROLE_CITIZEN } from './role-names.js';
import { randomToken, safeEqual, sha256 } from './tokens.js';

/** The login_code's lifetime (contract: 60 s). */
export const LOGIN_CODE_SECONDS = 60;
const MAX_NEXT_LENGTH = 2048;
/** Stored in users.password for accounts created by a provider: never verifies (not a $cs1$ hash). */
export const UNUSABLE_PASSWORD_PREFIX = '!oidc$';
const USABLE_PASSWORD_PREFIX = '$cs1$';

/**
 * The `error` values a browser can find on `next`. Only these codes travel, never the provider's
 * error_description (text an attacker could choose).
 */
export const OIDC_ERRORS = {
  access_denied: 'The user cancelled or the provider refused the sign-in',
  browser_mismatch: 'The sign-in was started in another browser (the binding cookie is missing or wrong)',
  provider_error: 'The provider answered with an error',
  provider_unavailable: 'The provider could not be reached (discovery or token endpoint)',
  state_expired: 'The sign-in took longer than SECURITY_OAUTH_STATE_WITHIN; start again',
  id_token_invalid: 'The ID token failed validation (issuer, audience, signature, expiry or nonce)',
  email_required: 'The provider asserted no email address, so no account could be found or created',
  email_unverified: 'The provider does not assert the address as verified; no account is created or linked',
  account_exists: 'An account with this address exists but cannot be linked automatically (the provider does not assert the address as verified, or the local account is unconfirmed): sign in and link from the account page',
  registration_disabled: 'No account matches and registration is disabled',
  identity_in_use: 'Link mode: this provider account is already linked to another user',
  already_linked: 'Link mode: the user already has an identity at this provider',
  link_expired: 'Link mode: the account changed (logout-all, reset, deactivation) while the link was under way',
} as const;
export type OidcError = keyof typeof OIDC_ERRORS;

export const loginCodeInvalid = () => new AppError(400, 'LINK_INVALID', 'The login code is invalid, expired or already used');
export const stateInvalid = () => new AppError(400, 'LINK_INVALID', 'The sign-in state is invalid or already used; start the sign-in again');

// ---- providers and discovery ----

type Discovered = oidc.Configuration;
/** One discovery per provider and configuration (a Config object is one app). */
const discoveries = new WeakMap<object, Map<string, Promise<Discovered>>>();

export function findProvider(ctx: SecurityContext, name: string): OAuthProvider {
  const p = ctx.config.SECURITY_OAUTH_PROVIDERS.find((x) => x.name === name);
  if (!p) throw notFound('Provider');
  return p;
}

export function callbackUrl(ctx: SecurityContext, provider: OAuthProvider): string {
  const base = (ctx.config.SECURITY_OAUTH_CALLBACK_BASE_URL || ctx.config.SECURITY_LINK_BASE_URL).replace(/\/+$/, '');
  return `${base}${ctx.config.SECURITY_URL_PREFIX}/login/oauthresponse/${provider.name}`;
}

function discoverFresh(ctx: SecurityContext, provider: OAuthProvider, fetchImpl?: oidc.CustomFetch): Promise<Discovered> {
  // enableNonRepudiationChecks: verify the ID token's signature against the JWKS even though it came
  // straight from the token endpoint (OIDC Core 3.1.3.7 lets a client rely on TLS alone; we do not)
  const execute = [oidc.enableNonRepudiationChecks, ...(ctx.config.SECURITY_OAUTH_ALLOW_HTTP_ISSUERS ? [oidc.allowInsecureRequests] : [])];
  const auth = provider.clientSecret ? oidc.ClientSecretBasic(provider.clientSecret) : oidc.None();
  return oidc.discovery(new URL(provider.issuer), provider.clientId, undefined, auth, {
    execute, timeout: 10, ...(fetchImpl ? { [oidc.customFetch]: fetchImpl } : {}),
  });
}

/** The provider's Configuration, discovered once and cached; a failed discovery is retried next time. */
export function discover(ctx: SecurityContext, provider: OAuthProvider): Promise<Discovered> {
  let byName = discoveries.get(ctx.config);
  if (!byName) discoveries.set(ctx.config, (byName = new Map()));
  let found = byName.get(provider.name);
  if (!found) {
    found = discoverFresh(ctx, provider);
    byName.set(provider.name, found);
    found.catch(() => byName.delete(provider.name));
  }
  return found;
}

// ---- next ----

/** `next` must start with an allow-listed origin, URL prefix or custom scheme; no credentials in it. */
export function nextAllowed(allowed: readonly string[], next: string): boolean {
  if (next.length > MAX_NEXT_LENGTH) return false;
  let u: URL;
  try {
    u = new URL(next);
  } catch {
    return false;
  }
  if (u.username || u.password) return false;
  for (const entry of allowed) {
    const a = new URL(entry);
    if (a.protocol !== u.protocol) continue;
    // a bare custom scheme ("countyapp:") admits every URL of that scheme (the app owns it)
    if (!['http:', 'https:'].includes(a.protocol) && a.host === '' && a.pathname === '') return true;
    if (a.host !== u.host) continue;
    const base = a.pathname;
    if (base === '' || base === '/') return true;
    const prefix = base.endsWith('/') ? base : `${base}/`;
    if (u.pathname === base.replace(/\/$/, '') || u.pathname.startsWith(prefix)) return true;
  }
  return false;
}

/** `next` with the given parameters added (existing query kept; a fragment dropped). */
export function withParams(next: string, params: Record<string, string>): string {
  const u = new URL(next);
  u.hash = '';
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

// ---- start ----

/** Dead rows go a little at a time with each start (bounded, indexed by expires_at): no sweeper process. */
async function sweepExpired(ctx: SecurityContext): Promise<void> {
  const cutoff = new Date(ctx.clock.now().getTime() - 3600 * 1000).toISOString();
  await ctx.db.execute(sql`
    with s as (delete from oauth_states where ctid in (select ctid from oauth_states where expires_at < ${cutoff}::timestamptz limit 100)),
         c as (delete from oauth_login_codes where ctid in (select ctid from oauth_login_codes where expires_at < ${cutoff}::timestamptz limit 100))
    select 1`);
}

export interface StartInput {
  provider: string;
  next: string;
  mode: OAuthMode;
  /** link mode: the signed-in user */
  user?: UserRecord;
}

export interface BindingCookie { name: string; value: string; path: string; maxAge: number }
export interface StartOutcome { location: string; binding?: BindingCookie }

/** The browser-binding cookie's name for a state (one per flow, so two tabs do not collide). */
export const bindingCookieName = (stateHash: string) => `oidc_${stateHash.replace(/[^A-Za-z0-9]/g, '').slice(0, 16)}`;

/** The provider's authorization URL (302 target) and the binding cookie, or a redirect to next with an error when the provider is down. */
export async function startOidc(ctx: SecurityContext, input: StartInput): Promise<StartOutcome> {
  const provider = findProvider(ctx, input.provider);
  if (!nextAllowed(ctx.config.SECURITY_OAUTH_ALLOWED_REDIRECTS, input.next)) {
    throw validationError({ next: ['Not an allowed redirect (SECURITY_OAUTH_ALLOWED_REDIRECTS)'] }, 'next is not an allowed redirect');
  }
  await sweepExpired(ctx);
  let config: Discovered;
  try {
    config = await discover(ctx, provider);
  } catch {
    return { location: withParams(input.next, { error: 'provider_unavailable' }) };
  }
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const binding = randomToken(24);
  const stateHash = sha256(state);
  const now = ctx.clock.now();
  await ctx.db.insert(oauthStates).values({
    stateHash, provider: provider.name, mode: input.mode, nonce, codeVerifier, next: input.next, bindingHash: sha256(binding),
    userId: input.user?.id ?? null, fsUniquifier: input.user?.fsUniquifier ?? null,
    createdAt: now, expiresAt: new Date(now.getTime() + ctx.config.SECURITY_OAUTH_STATE_WITHIN * 1000),
  });
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: callbackUrl(ctx, provider),
    scope: provider.scopes.join(' '),
    response_type: 'code',
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return {
    location: url.toString(),
    binding: {
      name: bindingCookieName(stateHash), value: binding, maxAge: ctx.config.SECURITY_OAUTH_STATE_WITHIN,
      path: `${ctx.config.SECURITY_URL_PREFIX}/login/oauthresponse/${provider.name}`,
    },
  };
}

// ---- return ----

export interface OidcClaims { sub: string; email: string | null; emailVerified: boolean }

export interface FinishInput {
  provider: string;
  /** the callback's query string as received (code, state, iss, error, …) */
  query: Record<string, string | undefined>;
  /** the request's cookies (the binding cookie is read by name) */
  cookies: Record<string, string | undefined>;
  source?: AuditSource;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  if (typeof e?.code === 'string') return e.code;
  return undefined;
}

/** Redeems the code with the verifier; the ID token is validated by openid-client. See the header on rotation. */
async function redeem(ctx: SecurityContext, provider: OAuthProvider, currentUrl: URL,
  checks: { codeVerifier: string; state: string; nonce: string }): Promise<OidcClaims> {
  const grantChecks = { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true };
  const config = await discover(ctx, provider);
  let tokenResponse: { url: string; status: number; headers: Headers; body: string } | null = null;
  const capturing: oidc.CustomFetch = async (url, options) => {
    const res = await fetch(url, options as RequestInit);
    if (options.method === 'POST' && url === config.serverMetadata().token_endpoint) {
      const body = await res.text();
      tokenResponse = { url, status: res.status, headers: res.headers, body };
      return new Response(body, { status: res.status, headers: res.headers });
    }
    return res;
  };
  // a copy of the cached Configuration that records the token response (the cache stays untouched)
  const recording = new oidc.Configuration(config.serverMetadata(), config.clientMetadata().client_id,
    config.clientMetadata(), provider.clientSecret ? oidc.ClientSecretBasic(provider.clientSecret) : oidc.None());
  oidc.enableNonRepudiationChecks(recording);
  if (ctx.config.SECURITY_OAUTH_ALLOW_HTTP_ISSUERS) oidc.allowInsecureRequests(recording);
  const cache = oidc.getJwksCache(config);
  if (cache) oidc.setJwksCache(recording, cache);
  recording[oidc.customFetch] = capturing;
  // fail fast: a provider that hangs at the token endpoint ends as error=provider_unavailable
  recording.timeout = 10;
  // the JWKS the last sign-in fetched (shared through the cached Configuration; a per-request copy
  // alone would download the JWKS on every sign-in)
  const keepJwks = (from: oidc.Configuration) => {
    const fetched = oidc.getJwksCache(from);
    if (fetched) oidc.setJwksCache(config, fetched);
  };
  let tokens;
  try {
    tokens = await oidc.authorizationCodeGrant(recording, currentUrl, grantChecks);
    keepJwks(recording);
  } catch (err) {
    const saved = tokenResponse as { url: string; status: number; headers: Headers; body: string } | null;
    if (errorCode(err) !== 'OAUTH_KEY_SELECTION_FAILED' || !saved) throw err;
    // the provider rotated its keys: fresh discovery (fresh JWKS), the same token response replayed
    // locally; the authorization code is not sent again
    const fresh = await discoverFresh(ctx, provider, async (url, options) => {
      if (options.method === 'POST' && url === saved.url) return new Response(saved.body, { status: saved.status, headers: saved.headers });
      return fetch(url, options as RequestInit);
    });
    tokens = await oidc.authorizationCodeGrant(fresh, currentUrl, grantChecks);
    keepJwks(fresh);
  }
  const claims = tokens.claims();
  if (!claims) throw new AppError(400, 'VALIDATION_FAILED', 'no ID token');
  const email = typeof claims.email === 'string' && claims.email.length <= 254 && /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u.test(claims.email) ? claims.email : null;
  return { sub: claims.sub, email, emailVerified: claims.email_verified === true };
}

type Resolved = { user: UserRecord } | { error: OidcError };

/**
 * Account resolution: (provider, subject) first; else link by email only when the provider asserts
 * email_verified and the local account is confirmed; else a new confirmed Citizen without a usable
 * password (SECURITY_REGISTERABLE).
 */
export async function resolveAccount(ctx: SecurityContext, provider: OAuthProvider, claims: OidcClaims, source: AuditSource): Promise<Resolved> {
  const now = ctx.clock.now();
  const [known] = await ctx.db.update(oauthIdentities).set({ lastUsedAt: now, ...(claims.email ? { email: claims.email } : {}) })
    .where(and(eq(oauthIdentities.provider, provider.name), eq(oauthIdentities.subject, claims.sub)))
    .returning({ userId: oauthIdentities.userId });
  if (known) {
    const user = await findUser(ctx.db, { id: known.userId });
    if (user) return { user };
  }
  if (!claims.email) return { error: 'email_required' };
  const local = await findUser(ctx.db, { email: claims.email });
  if (local) {
    if (!claims.emailVerified || !local.confirmedAt) return { error: 'account_exists' };
    const linked = await insertIdentity(ctx, local.id, provider, claims);
    if (linked !== true) return { error: linked };
    await audit(ctx, { ...source, actorId: local.id, action: 'identity.linked', targetUserId: local.id,
      details: { provider: provider.name, how: 'verified_email' } });
    return { user: local };
  }
  if (!claims.emailVerified) return { error: 'email_unverified' };
  if (!ctx.config.SECURITY_REGISTERABLE) return { error: 'registration_disabled' };
  try {
    const user = await ctx.db.transaction(async (tx) => {
      const created = await createUser(ctx, {
        email: claims.email!, password: '', passwordHash: UNUSABLE_PASSWORD_PREFIX + randomToken(24),
        roles: [ROLE_CITIZEN], confirmedAt: now,
      }, tx);
      await tx.insert(oauthIdentities).values({ provider: provider.name, subject: claims.sub, userId: created.id, email: claims.email, createdAt: now, lastUsedAt: now });
      return created;
    });
    await audit(ctx, { ...source, actorId: user.id, action: 'user.registered', targetUserId: user.id, details: { provider: provider.name, method: 'oidc' } });
    return { user };
  } catch (err) {
    const taken = (err instanceof AppError && err.code === 'EMAIL_TAKEN') || (err as { code?: string }).code === '23505';
    if (!taken) throw err;
    // a concurrent first sign-in of the same person created the account and identity: use it
    const [winner] = await ctx.db.select({ userId: oauthIdentities.userId }).from(oauthIdentities)
      .where(and(eq(oauthIdentities.provider, provider.name), eq(oauthIdentities.subject, claims.sub)));
    const user = winner ? await findUser(ctx.db, { id: winner.userId }) : null;
    return user ? { user } : { error: 'account_exists' };
  }
}

/** true, or why the identity could not be linked (unique violations, not check-then-insert). */
async function insertIdentity(ctx: SecurityContext, userId: number, provider: OAuthProvider, claims: OidcClaims): Promise<true | OidcError> {
  const now = ctx.clock.now();
  const rows = await ctx.db.execute<{ id: number }>(sql`
    insert into oauth_identities (provider, subject, user_id, email, created_at, last_used_at)
    values (${provider.name}, ${claims.sub}, ${userId}, ${claims.email}, ${now.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz)
    on conflict do nothing returning id`);
  if (rows.length) return true;
  const [bySubject] = await ctx.db.select({ userId: oauthIdentities.userId }).from(oauthIdentities)
    .where(and(eq(oauthIdentities.provider, provider.name), eq(oauthIdentities.subject, claims.sub)));
  if (bySubject && bySubject.userId !== userId) return 'identity_in_use';
  if (bySubject) return true;
  return 'already_linked';
}

export interface FinishOutcome { location: string; clearCookie?: { name: string; path: string } }

/**
 * The provider's redirect back. Unknown provider → 404; a missing, unknown or used state → 400 (no
 * `next` is known to send the browser to); everything else → a redirect to the state's `next`.
 */
export async function finishOidc(ctx: SecurityContext, input: FinishInput): Promise<FinishOutcome> {
  const provider = findProvider(ctx, input.provider);
  const source = input.source ?? NO_SOURCE;
  const state = input.query.state;
  if (!state || state.length > 512) throw stateInvalid();
  const now = ctx.clock.now();
  const [row] = await ctx.db.update(oauthStates).set({ usedAt: now })
    .where(and(eq(oauthStates.stateHash, sha256(state)), isNull(oauthStates.usedAt)))
    .returning();
  if (!row || row.provider !== provider.name) throw stateInvalid();
  const clearCookie = { name: bindingCookieName(row.stateHash), path: `${ctx.config.SECURITY_URL_PREFIX}/login/oauthresponse/${provider.name}` };
  const fail = async (error: OidcError, reason: string): Promise<FinishOutcome> => {
    await audit(ctx, { ...source, actorId: row.userId, action: row.mode === 'link' ? 'identity.link_failed' : 'login.failed', targetUserId: row.userId,
      details: { method: 'oidc', provider: provider.name, reason: reason.slice(0, 80) } });
    return { location: withParams(row.next, { error }), clearCookie };
  };
  const binding = input.cookies[clearCookie.name];
  if (!binding || !safeEqual(sha256(binding), row.bindingHash)) return fail('browser_mismatch', 'browser_mismatch');
  if (row.expiresAt.getTime() <= now.getTime()) return fail('state_expired', 'state_expired');
  if (input.query.error !== undefined) {
    return fail(input.query.error === 'access_denied' ? 'access_denied' : 'provider_error', `provider:${String(input.query.error).replace(/[^a-z_]/g, '')}`);
  }
  const current = new URL(callbackUrl(ctx, provider));
  for (const [k, v] of Object.entries(input.query)) if (typeof v === 'string') current.searchParams.set(k, v);
  let claims: OidcClaims;
  try {
    claims = await redeem(ctx, provider, current, { codeVerifier: row.codeVerifier, state, nonce: row.nonce });
  } catch (err) {
    const code = errorCode(err) ?? 'unknown';
    const unreachable = err instanceof TypeError || code === 'OAUTH_RESPONSE_IS_NOT_JSON' || /ECONNREFUSED|timeout|abort/i.test(String((err as Error)?.message));
    const byProvider = code === 'OAUTH_RESPONSE_BODY_ERROR' || code === 'OAUTH_AUTHORIZATION_RESPONSE_ERROR' || !input.query.code;
    return fail(unreachable ? 'provider_unavailable' : byProvider ? 'provider_error' : 'id_token_invalid', code);
  }

  if (row.mode === 'link') {
    const user = row.userId === null ? null : await findUser(ctx.db, { id: row.userId });
    if (!user || !user.active || user.fsUniquifier !== row.fsUniquifier) return fail('link_expired', 'link_expired');
    const linked = await insertIdentity(ctx, user.id, provider, claims);
    if (linked !== true) return fail(linked, linked);
    await audit(ctx, { ...source, actorId: user.id, action: 'identity.linked', targetUserId: user.id, details: { provider: provider.name, how: 'account_page' } });
    return { location: withParams(row.next, { linked: provider.name }), clearCookie };
  }

  const resolved = await resolveAccount(ctx, provider, claims, source);
  if ('error' in resolved) return fail(resolved.error, resolved.error);
  const code = randomToken(32);
  await ctx.db.insert(oauthLoginCodes).values({
    codeHash: sha256(code), userId: resolved.user.id, provider: provider.name, fsUniquifier: resolved.user.fsUniquifier,
    createdAt: now, expiresAt: new Date(now.getTime() + LOGIN_CODE_SECONDS * 1000),
  });
  return { location: withParams(row.next, { login_code: code }), clearCookie };
}

// ---- exchange ----

/**
 * POST /login/oauth/exchange: the login_code (single use, 60 s) continues in the login pipeline.
 * The answer is the login's: a session, or the two-factor step.
 */
export async function exchangeLoginCode(ctx: SecurityContext, input: { loginCode: string; remember?: boolean; client: ClientInfo; source?: AuditSource }): Promise<LoginOutcome> {
  const now = ctx.clock.now();
  const [row] = await ctx.db.update(oauthLoginCodes).set({ usedAt: now })
    .where(and(eq(oauthLoginCodes.codeHash, sha256(input.loginCode)), isNull(oauthLoginCodes.usedAt)))
    .returning();
  if (!row || row.expiresAt.getTime() <= now.getTime()) throw loginCodeInvalid();
  const provider = ctx.config.SECURITY_OAUTH_PROVIDERS.find((p) => p.name === row.provider);
  if (!provider) throw loginCodeInvalid();
  return beginLogin(ctx, {
    identify: { userId: row.userId },
    method: 'oidc',
    remember: input.remember ?? false,
    client: input.client,
    source: input.source,
    countsTowardLockout: false,
    wrong: loginCodeInvalid,
    // the code is bound to the account state it was minted for: logout-all or reset-access in the
    // meantime kills it
    verify: async (user) => user !== null && user.fsUniquifier === row.fsUniquifier,
    secondFactorDone: provider.trustedMfa ? `oidc:${provider.name}` : undefined,
  });
}

// ---- the account page ----

export interface IdentityView { provider: string; display_name: string; email: string | null; created_at: string; last_used_at: string | null }

export async function listIdentities(ctx: SecurityContext, userId: number): Promise<IdentityView[]> {
  const rows = await ctx.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, userId)).orderBy(oauthIdentities.createdAt);
  return rows.map((r) => ({
    provider: r.provider,
    display_name: ctx.config.SECURITY_OAUTH_PROVIDERS.find((p) => p.name === r.provider)?.displayName ?? r.provider,
    email: r.email, created_at: r.createdAt.toISOString(), last_used_at: r.lastUsedAt?.toISOString() ?? null,
  }));
}

export const hasUsablePassword = (user: Pick<UserRecord, 'password'>) => user.password.startsWith(USABLE_PASSWORD_PREFIX);

/**
 * Unlinks the user's identity at `provider`. Refused (409) when it is the last way to sign in: no
 * usable password, no other identity and no passkey that signs in by itself. The user row is locked so two concurrent unlinks of the
 * last two identities cannot both pass.
 */
export async function unlinkIdentity(ctx: SecurityContext, userId: number, providerName: string, source: AuditSource = NO_SOURCE): Promise<void> {
  await ctx.db.transaction(async (tx) => {
    const [u] = await tx.select({ password: users.password }).from(users).where(eq(users.id, userId)).for('update');
    if (!u) throw notFound('Identity');
    const mine = await tx.select({ provider: oauthIdentities.provider }).from(oauthIdentities).where(eq(oauthIdentities.userId, userId));
    if (!mine.some((r) => r.provider === providerName)) throw notFound('Identity');
    // a passkey that signs in by itself is a way in too
    const [passkey] = await tx.select({ id: webauthnCredentials.id }).from(webauthnCredentials)
      .where(and(eq(webauthnCredentials.userId, userId), eq(webauthnCredentials.usage, 'first'))).limit(1);
    if (!hasUsablePassword(u) && mine.length < 2 && !passkey) {
      throw new AppError(409, 'CONFLICT', 'This is your last way to sign in: set a password (POST /reset), add a passkey or link another provider first');
    }
    await tx.delete(oauthIdentities).where(and(eq(oauthIdentities.userId, userId), eq(oauthIdentities.provider, providerName)));
    await audit(ctx, { ...source, action: 'identity.unlinked', targetUserId: userId, details: { provider: providerName } }, tx);
  });
}

