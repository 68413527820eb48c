// Authentication: bearer JWTs and cookie sessions both resolve to request.auth = { user, session }.
// Every request re-checks the current state (session live, user active, uniquifier unchanged, roles
// as they are now), so revocations apply on the very next request. The state comes from a per-instance
// cache kept consistent by the protocol of security/cache-protocol.ts (docs/consistency.md) only for
// safe methods, and only to allow: a rejection (401) or a denial (403, guards.ts) is decided again on
// state read from the database, and every state-changing request authenticates on fresh state.
import fp from 'fastify-plugin';
import cookie from '@fastify/cookie';
import jwt from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { AppError, authChallenge, BEARER_REALM, tokenExpired, tokenInvalid } from '../errors.js';
import type { SecurityContext } from '../security/context.js';
import { loadAuthState, sessionProblem, type AuthState } from '../security/sessions.js';
import { AuthCache } from '../security/auth-cache.js';
import { PageCache } from '../security/page-cache.js';
import { startCacheNode, type CacheNode } from '../security/cache-protocol.js';
import { SessionToucher } from '../security/session-touch.js';
import { isPersonalToken, sessionIdForToken } from '../security/personal-tokens.js';
import { safeEqual } from '../security/tokens.js';
import { jwtSecrets, purposeKeyBytes } from '../security/keyring.js';
import type { SessionRow } from '../db/schema/index.js';
import type { UserRecord } from '../security/datastore.js';

export interface RequestAuth extends AuthState {
  /** bearer: access JWT; cookie: session cookie; token: personal access token */
  method: 'bearer' | 'cookie' | 'token';
  /** the state came from this instance's cache (a denial must be re-decided on fresh state: reauthenticate) */
  cached: boolean;
}

export interface AccessTokenClaims { sub: string; uq: string; sid: string; iat: number; exp: number; iss: string; aud: string; nbf?: number }

export interface TokenIssuer {
  /** a signed access token for this user and session, and its lifetime in seconds */
  accessToken(user: UserRecord, session: SessionRow): { token: string; expiresIn: number };
  setSessionCookie(reply: FastifyReply, session: SessionRow, remember: boolean): void;
  clearSessionCookie(reply: FastifyReply): void;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth: RequestAuth | null;
    /**
     * Set by a handler whose request changed nothing any instance's cache holds in a way that could
     * let a stale copy allow what fresh state would not (a refresh rotation): the answer does not wait
     * for the cache sync.
     */
    authUnchanged: boolean;
  }
  interface FastifyInstance {
    security: SecurityContext;
    tokens: TokenIssuer;
    /** onRequest hook: 401 unless authenticated; CSRF check for cookie-authenticated unsafe methods */
    requireAuth: onRequestAsyncHookHandler;
    /** onRequest hook: authenticates when credentials are present and valid; never throws for them */
    optionalAuth: onRequestAsyncHookHandler;
    authCache: AuthCache;
    /** GET /users page bodies (security/page-cache.ts) */
    pageCache: PageCache;
    /** the listener and lease of this instance's caches; null with the caches off */
    cacheNode: CacheNode | null;
    /**
     * Waits until every instance holding a cache lease has applied every change committed before the
     * call (security/cache-protocol.ts). Requests that change state do this automatically; call it
     * after changing state outside a request (tests, in-process jobs).
     */
    authSync: () => Promise<void>;
    /** The request's cookies, parsed on first use (the cookie plugin does not parse them on every request). */
    readCookies: (request: FastifyRequest) => Record<string, string | undefined>;
    /** Re-resolves request.auth from the database (no cache); throws 401 when the credentials died meanwhile. */
    reauthenticate: (request: FastifyRequest) => Promise<void>;
  }
  interface FastifyContextConfig {
    /** false on routes whose writes never touch authentication state (skips the cache sync) */
    authSync?: boolean;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const BEARER_RE = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|cspat_[A-Za-z0-9_-]{43})$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Tolerated clock skew for iat/nbf, seconds. */
const SKEW = 30;

function bearerError(err: AppError, realm = BEARER_REALM): AppError {
  const description = err.code === 'TOKEN_EXPIRED' ? 'The access token expired' : 'The access token is invalid';
  return new AppError(err.statusCode, err.code, err.message, {
    headers: { 'www-authenticate': `Bearer realm="${realm}", error="invalid_token", error_description="${description}"` },
  });
}

async function authenticationPlugin(app: FastifyInstance, opts: { security: SecurityContext; dbUrl: string }) {
  const ctx = opts.security;
  const { config } = ctx;
  app.decorate('security', ctx);
  app.decorateRequest('auth', null);
  app.decorateRequest('authUnchanged', false);

  // Per-instance caches, kept consistent across instances by the listener, the lease and the marker
  // protocol (security/cache-protocol.ts, docs/consistency.md).
  const cache = new AuthCache(config.AUTH_CACHE_TTL * 1000, config.AUTH_CACHE_MAX_ENTRIES);
  const pages = new PageCache(config.USERS_PAGE_CACHE_TTL * 1000);
  app.decorate('authCache', cache);
  app.decorate('pageCache', pages);
  let node: CacheNode | null = null;
  if (config.AUTH_CACHE_TTL > 0 || config.USERS_PAGE_CACHE_TTL > 0) {
    node = startCacheNode(opts.dbUrl, { auth: cache, pages }, { leaseMs: config.CACHE_LEASE_MS, log: app.log });
    const n = node;
    // The hit rate (counts since start), once a minute when the cache was used, and at shutdown.
    let lookups = 0;
    const report = () => {
      const auth = cache.stats();
      if (auth.hits + auth.misses === lookups) return;
      lookups = auth.hits + auth.misses;
      app.log.info({ authCache: auth, pageCache: pages.stats() }, 'cache statistics');
    };
    const reporter = setInterval(report, 60_000);
    reporter.unref();
    app.addHook('onClose', async () => {
      clearInterval(reporter);
      report();
      await n.close();
    });
    // A request that may have changed state answers only after every instance that may serve cached
    // state has applied the change (or can no longer serve cached state).
    app.addHook('onSend', (request, reply, payload, done) => {
      if (!UNSAFE.has(request.method) || reply.statusCode >= 500 || request.routeOptions.config?.authSync === false || request.authUnchanged) return done(null, payload);
      n.sync(ctx.sql).then(() => done(null, payload), done);
    });
  }
  app.decorate('cacheNode', node);
  app.decorate('authSync', async () => {
    await node?.sync(ctx.sql);
  });

  // last_used_at slides in batches, not with a statement per request (security/session-touch.ts).
  const toucher = new SessionToucher(ctx.sql, ctx.clock, config.RATE_LIMIT_FLUSH_INTERVAL_MS);
  app.addHook('onReady', async () => toucher.start());
  app.addHook('onClose', async () => toucher.stop());

  /**
   * The session's state, from the cache when it is live there and `useCache`; a rejection is always
   * decided on fresh data.
   */
  async function stateFor(sessionId: string, accept: (s: AuthState) => boolean, useCache: boolean): Promise<{ state: AuthState; cached: boolean } | null> {
    const nowMs = ctx.clock.now().getTime();
    if (useCache) {
      const cached = cache.get(sessionId, nowMs);
      if (cached) {
        if (accept(cached)) return { state: cached, cached: true };
        cache.delete(sessionId);
      }
    }
    const loadedAt = cache.snapshot();
    const state = await loadAuthState(ctx, sessionId);
    if (state) toucher.overlay(state.session);
    if (!state || !accept(state)) return null;
    cache.set(sessionId, state, nowMs, loadedAt);
    return { state, cached: false };
  }

  const cookieKeys = purposeKeyBytes(config, 'session-cookie').map((k) => k.toString('base64url'));
  // Cookies are parsed when something reads them (app.readCookies), not on every request: a bearer
  // request never needs them.
  await app.register(cookie, { secret: cookieKeys, parseOptions: {}, hook: false });
  app.decorate('readCookies', (request: FastifyRequest) => {
    if (!request.cookies) {
      const header = request.headers.cookie;
      request.cookies = header ? app.parseCookie(header) : {};
    }
    return request.cookies;
  });

  // One @fastify/jwt namespace per key: the `kid` header picks the verifier; the first key signs.
  const namespaceByKid = new Map<string, string>();
  for (const [i, { kid, secret }] of jwtSecrets(config).entries()) {
    if (namespaceByKid.has(kid)) continue;
    const namespace = `key${i}`;
    namespaceByKid.set(kid, namespace);
    await app.register(jwt, {
      secret,
      namespace,
      sign: { algorithm: 'HS256', kid, iss: config.JWT_ISSUER, aud: config.JWT_AUDIENCE },
      verify: {
        algorithms: ['HS256'],
        allowedIss: config.JWT_ISSUER,
        allowedAud: config.JWT_AUDIENCE,
        requiredClaims: ['sub', 'uq', 'sid', 'iat', 'exp', 'iss', 'aud'],
        // Time claims are checked below against the injected clock.
        ignoreExpiration: true,
        ignoreNotBefore: true,
        // verified tokens are remembered below, keyed by the token itself (fast-jwt's cache hashes
        // every token with SHA-256 to find it)
        cache: false,
      },
    });
  }
  const signingNamespace = namespaceByKid.get(jwtSecrets(config)[0]!.kid)!;
  const jwtByNamespace = app.jwt as unknown as Record<string, { sign: (p: object) => string; verify: (t: string) => unknown }>;

  // A token whose signature and claims verified once verifies again (the keys are fixed for the
  // process's life): its claims are remembered, bounded, oldest out first. The time claims are checked
  // on every request all the same.
  const verified = new Map<string, AccessTokenClaims>();
  const verifiedMax = Math.max(1000, config.AUTH_CACHE_MAX_ENTRIES);

  function verifyAccessToken(token: string): AccessTokenClaims {
    let claims = verified.get(token);
    if (!claims) {
      claims = verifySignature(token);
      if (verified.size >= verifiedMax) verified.delete(verified.keys().next().value!);
      verified.set(token, claims);
    }
    const now = ctx.clock.now().getTime() / 1000;
    if (claims.iat > now + SKEW) throw tokenInvalid();
    if (typeof claims.nbf === 'number' && claims.nbf > now + SKEW) throw tokenInvalid();
    if (claims.exp <= now) throw tokenExpired();
    return claims;
  }

  /** The signature, the algorithm, the key and the claims' types: what does not change with time. */
  function verifySignature(token: string): AccessTokenClaims {
    let header: { kid?: unknown; alg?: unknown };
    try {
      header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8'));
    } catch {
      throw tokenInvalid();
    }
    // JSON.parse accepts `null`, which would otherwise crash the kid lookup below (a 500).
    if (typeof header !== 'object' || header === null) throw tokenInvalid();
    const namespace = typeof header.kid === 'string' ? namespaceByKid.get(header.kid) : undefined;
    if (!namespace || header.alg !== 'HS256') throw tokenInvalid();
    let claims: AccessTokenClaims;
    try {
      claims = jwtByNamespace[namespace]!.verify(token) as AccessTokenClaims;
    } catch {
      throw tokenInvalid();
    }
    if (typeof claims.exp !== 'number' || typeof claims.iat !== 'number') throw tokenInvalid();
    if (claims.nbf !== undefined && typeof claims.nbf !== 'number') throw tokenInvalid();
    if (typeof claims.sub !== 'string' || !/^[0-9]{1,10}$/.test(claims.sub) || typeof claims.uq !== 'string' ||
      typeof claims.sid !== 'string' || !UUID_RE.test(claims.sid)) throw tokenInvalid();
    return claims;
  }

  const issuer: TokenIssuer = {
    accessToken(user, session) {
      const iat = Math.floor(ctx.clock.now().getTime() / 1000);
      const expiresIn = config.SECURITY_TOKEN_MAX_AGE;
      const token = jwtByNamespace[signingNamespace]!.sign({ sub: String(user.id), uq: user.fsUniquifier, sid: session.id, iat, exp: iat + expiresIn });
      return { token, expiresIn };
    },
    setSessionCookie(reply, session, remember) {
      reply.setCookie(config.SESSION_COOKIE_NAME, session.id, {
        signed: true,
        httpOnly: true,
        secure: config.SESSION_COOKIE_SECURE,
        sameSite: config.SESSION_COOKIE_SAMESITE.toLowerCase() as 'lax' | 'strict' | 'none',
        path: '/',
        ...(remember ? { maxAge: config.SECURITY_REFRESH_TOKEN_MAX_AGE } : {}),
      });
    },
    clearSessionCookie(reply) {
      reply.clearCookie(config.SESSION_COOKIE_NAME, {
        path: '/', httpOnly: true, secure: config.SESSION_COOKIE_SECURE,
        sameSite: config.SESSION_COOKIE_SAMESITE.toLowerCase() as 'lax' | 'strict' | 'none',
      });
    },
  };
  app.decorate('tokens', issuer);

  // Token → session id never changes, so it is remembered (bounded); the session itself is checked
  // on every request like any other.
  const tokenSessions = new Map<string, string>();
  async function resolvePersonalToken(token: string, useCache: boolean): Promise<RequestAuth> {
    let sessionId = tokenSessions.get(token);
    if (!sessionId) {
      sessionId = (await sessionIdForToken(ctx, token)) ?? undefined;
      if (!sessionId) throw tokenInvalid('The access token is invalid');
      if (tokenSessions.size >= 10_000) tokenSessions.delete(tokenSessions.keys().next().value!);
      tokenSessions.set(token, sessionId);
    }
    // Tokens for automation have no idle limit, only their expiry.
    const found = await stateFor(sessionId, (st) => st.session.kind === 'token' && st.user.active &&
      !sessionProblem(ctx, st.session, ctx.clock.now(), Number.POSITIVE_INFINITY), useCache);
    if (!found) throw tokenInvalid('The access token has been revoked or has expired');
    toucher.touch(found.state.session);
    return { ...found.state, method: 'token', cached: found.cached };
  }

  /**
   * Resolves the caller; null when no credentials were sent. Throws for bad or dead credentials.
   * State-changing requests (and `fresh`) never use the cache: what they decide is decided on the database.
   */
  async function resolve(request: FastifyRequest, fresh = false): Promise<RequestAuth | null> {
    const useCache = !fresh && !UNSAFE.has(request.method);
    const header = request.headers.authorization;
    if (header !== undefined) {
      const m = BEARER_RE.exec(header);
      if (!m) throw bearerError(tokenInvalid('The Authorization header must be "Bearer <token>"'));
      try {
        if (isPersonalToken(m[1]!)) return await resolvePersonalToken(m[1]!, useCache);
        const claims = verifyAccessToken(m[1]!);
        const found = await stateFor(claims.sid, (st) => st.session.kind === 'login' && String(st.user.id) === claims.sub &&
          safeEqual(st.user.fsUniquifier, claims.uq) && st.user.active &&
          !sessionProblem(ctx, st.session, ctx.clock.now(), config.SECURITY_REFRESH_TOKEN_MAX_IDLE), useCache);
        if (!found) throw tokenInvalid('The session has ended; log in again');
        toucher.touch(found.state.session);
        return { ...found.state, method: 'bearer', cached: found.cached };
      } catch (err) {
        throw err instanceof AppError && err.statusCode === 401 ? bearerError(err) : err;
      }
    }
    const raw = request.headers.cookie === undefined ? undefined : app.readCookies(request)[config.SESSION_COOKIE_NAME];
    if (raw === undefined) return null;
    const sessionId = cookieSession(raw);
    if (!sessionId) throw tokenInvalid('The session cookie is invalid');
    const found = await stateFor(sessionId, (st) => st.session.kind === 'login' && st.user.active &&
      !sessionProblem(ctx, st.session, ctx.clock.now(), config.PERMANENT_SESSION_LIFETIME), useCache);
    if (!found) throw tokenInvalid('The session has ended; log in again');
    toucher.touch(found.state.session);
    return { ...found.state, method: 'cookie', cached: found.cached };
  }

  // A signed cookie value that verified once verifies again (the keys are fixed for the process's
  // life): the session id it names is remembered, bounded, oldest out first. Only valid ones.
  const cookieSessions = new Map<string, string>();
  const cookieSessionsMax = Math.max(1000, config.AUTH_CACHE_MAX_ENTRIES);
  function cookieSession(raw: string): string | null {
    const known = cookieSessions.get(raw);
    if (known) return known;
    const unsigned = app.unsignCookie(raw);
    if (!unsigned.valid || !unsigned.value || !UUID_RE.test(unsigned.value)) return null;
    if (cookieSessions.size >= cookieSessionsMax) cookieSessions.delete(cookieSessions.keys().next().value!);
    cookieSessions.set(raw, unsigned.value);
    return unsigned.value;
  }

  function checkCsrf(request: FastifyRequest, auth: RequestAuth) {
    if (auth.method !== 'cookie' || !UNSAFE.has(request.method)) return;
    const sent = request.headers['x-csrf-token'];
    if (typeof sent !== 'string' || !safeEqual(sent, auth.session.csrfToken)) {
      throw new AppError(403, 'CSRF_FAILED', 'The X-CSRF-Token header is missing or wrong');
    }
  }

  app.decorate('requireAuth', async function requireAuth(request: FastifyRequest) {
    const auth = await resolve(request);
    if (!auth) {
      throw authChallenge();
    }
    checkCsrf(request, auth);
    request.auth = auth;
  });

  app.decorate('reauthenticate', async function reauthenticate(request: FastifyRequest) {
    const auth = await resolve(request, true);
    if (!auth) throw authChallenge();
    request.auth = auth;
  });

  app.decorate('optionalAuth', async function optionalAuth(request: FastifyRequest) {
    let auth: RequestAuth | null = null;
    try {
      auth = await resolve(request);
    } catch (err) {
      if (!(err instanceof AppError) || err.statusCode !== 401) throw err;
    }
    if (auth) {
      checkCsrf(request, auth);
      request.auth = auth;
    }
  });
}

export default fp(authenticationPlugin, { name: 'authentication', dependencies: ['errors'] });
