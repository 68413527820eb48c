// Server-side sessions: one row per login. Access tokens, the session cookie and the refresh token
// all name a session, so revoking the row kills all three at once, on every instance.
import { and, desc, eq, gt, isNull, sql } from 'drizzle-orm';
import { randomUUID } from 'node:crypto';
import { personalAccessTokens, sessions, users, type SessionRow } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { findUser, permissionNames, roleNames, type UserRecord } from './datastore.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { makeRefreshToken, parseRefreshToken, randomToken, refreshMac, safeEqual, sha256 } from './tokens.js';
import { purposeKeyBytes } from './keyring.js';

type Tx = Parameters<Parameters<SecurityContext['db']['transaction']>[0]>[0];

export interface AuthState {
  user: UserRecord;
  session: SessionRow;
}


const keysFor = (ctx: SecurityContext): Buffer[] => purposeKeyBytes(ctx.config, 'refresh-token');

export type { SessionRow };

export interface NewSession { session: SessionRow; refreshToken: string }

export interface SessionInput { userId: number; ip: string | null; userAgent: string | null; fsPaa?: Date; remember?: boolean }

/** The row of a new login session and its first refresh token (inserted by createSession or by completeLogin's statement). */
export function newSessionValues(ctx: SecurityContext, input: SessionInput): { values: typeof sessions.$inferInsert & { id: string; createdAt: Date; expiresAt: Date; fsPaa: Date }; refreshToken: string } {
  const now = ctx.clock.now();
  const id = randomUUID();
  const seed = randomToken(24);
  const refreshToken = makeRefreshToken(keysFor(ctx)[0]!, id, 0, seed);
  return {
    refreshToken,
    values: {
      id,
      userId: input.userId,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: new Date(now.getTime() + ctx.config.SECURITY_REFRESH_TOKEN_MAX_AGE * 1000),
      ip: input.ip,
      userAgent: input.userAgent?.slice(0, 512) ?? null,
      refreshTokenHash: sha256(refreshToken),
      refreshGeneration: 0,
      refreshSeed: seed,
      csrfToken: randomToken(32),
      fsPaa: input.fsPaa ?? now,
      kind: 'login',
      remember: input.remember ?? false,
    },
  };
}

export async function createSession(ctx: SecurityContext, input: SessionInput, db: SecurityContext['db'] | Tx = ctx.db): Promise<NewSession> {
  const { values, refreshToken } = newSessionValues(ctx, input);
  const [session] = await db.insert(sessions).values(values).returning();
  return { session: session!, refreshToken };
}

/** Why a session can no longer authenticate, or null when it is live. */
export function sessionProblem(ctx: SecurityContext, s: SessionRow, now: Date, idleSeconds: number): 'revoked' | 'expired' | 'idle' | null {
  if (s.revokedAt) return 'revoked';
  if (s.expiresAt.getTime() <= now.getTime()) return 'expired';
  if (s.lastUsedAt.getTime() + idleSeconds * 1000 <= now.getTime()) return 'idle';
  return null;
}

/**
 * The per-request lookup: the session and its user, with roles and permissions as they are now.
 * One round trip. Returns null when the session does not exist.
 */
export async function loadAuthState(ctx: SecurityContext, sessionId: string): Promise<AuthState | null> {
  const rows = await authStateQuery(ctx.db).execute({ sessionId });
  const row = rows[0];
  if (!row) return null;
  // A personal access token limited to some permissions gets those of them the owner still has.
  const limit = row.tokenPermissions;
  const permissions = limit ? row.permissions.filter((p) => limit.includes(p)) : row.permissions;
  return { session: row.session, user: { ...row.user, roles: row.roles, permissions } };
}

/**
 * The lookup, built once per database: building a drizzle select runs on every call otherwise, and
 * on an uncached request that was a fifth of its CPU. A named prepared statement as well (parsed
 * once per connection). It was withdrawn once, after long bench runs answered 500 with a TypeError
 * from inside postgres.js while it wrote a statement: that error was the session toucher's, handed
 * to whatever statement was in flight on the connection (db/client.ts restoreSerializers has the
 * story); prepared statements only made the pipelining that exposes it more frequent.
 */
const authStateQueries = new WeakMap<SecurityContext['db'], ReturnType<typeof buildAuthStateQuery>>();
function authStateQuery(db: SecurityContext['db']) {
  let q = authStateQueries.get(db);
  if (!q) {
    q = buildAuthStateQuery(db);
    authStateQueries.set(db, q);
  }
  return q;
}
function buildAuthStateQuery(db: SecurityContext['db']) {
  return db.select({
    session: sessions, user: users, roles: roleNames, permissions: permissionNames, tokenPermissions: personalAccessTokens.permissions,
  }).from(sessions).innerJoin(users, eq(users.id, sessions.userId))
    .leftJoin(personalAccessTokens, eq(personalAccessTokens.sessionId, sessions.id))
    .where(eq(sessions.id, sql.placeholder('sessionId'))).limit(1)
    .prepare('load_auth_state');
}

export async function revokeSession(ctx: SecurityContext, sessionId: string, reason: string): Promise<boolean> {
  const rows = await ctx.db.update(sessions).set({ revokedAt: ctx.clock.now(), revokedReason: reason })
    .where(and(eq(sessions.id, sessionId), isNull(sessions.revokedAt))).returning({ id: sessions.id });
  return rows.length > 0;
}

/** Live sessions of a user (not revoked, expired or idle past the refresh idle limit), newest first. */
export async function listSessions(ctx: SecurityContext, userId: number): Promise<SessionRow[]> {
  const now = ctx.clock.now();
  const idleCutoff = new Date(now.getTime() - ctx.config.SECURITY_REFRESH_TOKEN_MAX_IDLE * 1000);
  return ctx.db.select().from(sessions)
    .where(and(eq(sessions.userId, userId), eq(sessions.kind, 'login'), isNull(sessions.revokedAt), gt(sessions.expiresAt, now), gt(sessions.lastUsedAt, idleCutoff)))
    .orderBy(desc(sessions.createdAt));
}

/** Revokes one of the user's own sessions; someone else's session id is "not found". */
export async function revokeOwnSession(ctx: SecurityContext, userId: number, sessionId: string): Promise<boolean> {
  const rows = await ctx.db.update(sessions).set({ revokedAt: ctx.clock.now(), revokedReason: 'logout' })
    .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId), eq(sessions.kind, 'login'), isNull(sessions.revokedAt))).returning({ id: sessions.id });
  return rows.length > 0;
}

export type RefreshFailure = 'invalid' | 'expired' | 'idle' | 'revoked' | 'reused';

export function refreshError(reason: RefreshFailure): AppError {
  const messages: Record<RefreshFailure, string> = {
    invalid: 'The refresh token is invalid',
    expired: 'The session has expired; log in again',
    idle: 'The session was idle for too long; log in again',
    revoked: 'The session has been revoked; log in again',
    reused: 'The refresh token was already used; the session has been revoked',
  };
  return new AppError(401, 'REFRESH_TOKEN_INVALID', messages[reason], { extra: { reason } });
}

export interface RefreshResult { user: UserRecord; session: SessionRow; refreshToken: string; replay: boolean }

/**
 * Rotates a refresh token. The session row is locked, so parallel refreshes with one token are
 * serialised: the first rotates, the others see an identical replay inside the grace window and
 * receive the same new token. An older token outside the window is reuse: the session is revoked.
 */
export async function rotateRefreshToken(ctx: SecurityContext, presented: string, source: AuditSource = NO_SOURCE): Promise<RefreshResult> {
  const parsed = parseRefreshToken(presented);
  if (!parsed) throw refreshError('invalid');
  const now = ctx.clock.now();
  const keys = keysFor(ctx);
  const presentedHash = sha256(presented);

  // The common case, the current token of a live session, in two statements and no transaction: read
  // the state, then rotate only if the token is still the current one (the update's condition is
  // re-checked on the locked row, so of two parallel rotations exactly one matches). Anything else —
  // an older token, a race lost, a dead session — takes the locked path below, which decides it.
  const state = await loadAuthState(ctx, parsed.sessionId);
  const s0 = state?.session;
  if (state && s0 && s0.kind === 'login' && state.user.active && safeEqual(presentedHash, s0.refreshTokenHash) &&
    sessionProblem(ctx, s0, now, ctx.config.SECURITY_REFRESH_TOKEN_MAX_IDLE) === null) {
    const generation = s0.refreshGeneration + 1;
    const refreshToken = makeRefreshToken(keys[0]!, s0.id, generation, s0.refreshSeed);
    const [updated] = await ctx.db.update(sessions).set({
      refreshTokenHash: sha256(refreshToken),
      previousRefreshHash: s0.refreshTokenHash,
      refreshGeneration: generation,
      rotatedAt: now,
      lastUsedAt: now,
    }).where(and(eq(sessions.id, s0.id), eq(sessions.refreshTokenHash, presentedHash), isNull(sessions.revokedAt))).returning();
    if (updated) return { user: state.user, session: updated, refreshToken, replay: false };
  }

  const outcome = await ctx.db.transaction(async (tx) => {
    const [s] = await tx.select().from(sessions).where(eq(sessions.id, parsed.sessionId)).for('update');
    if (!s) return { error: 'invalid' as const };
    const isCurrent = safeEqual(presentedHash, s.refreshTokenHash);
    const isPrevious = !isCurrent && s.previousRefreshHash !== null && safeEqual(presentedHash, s.previousRefreshHash);
    const genuineOld = !isCurrent && !isPrevious && parsed.generation < s.refreshGeneration &&
      keys.some((k) => safeEqual(refreshMac(k, s.id, parsed.generation, s.refreshSeed), parsed.mac));
    if (!isCurrent && !isPrevious && !genuineOld) return { error: 'invalid' as const };
    if (s.revokedAt) return { error: s.revokedReason === 'reused' ? 'reused' as const : 'revoked' as const };
    if (s.expiresAt.getTime() <= now.getTime()) return { error: 'expired' as const };
    if (s.lastUsedAt.getTime() + ctx.config.SECURITY_REFRESH_TOKEN_MAX_IDLE * 1000 <= now.getTime()) return { error: 'idle' as const };

    if (isPrevious && s.rotatedAt && now.getTime() - s.rotatedAt.getTime() <= ctx.config.SECURITY_REFRESH_GRACE_PERIOD * 1000) {
      return { session: s, refreshToken: makeRefreshToken(keys[0]!, s.id, s.refreshGeneration, s.refreshSeed), replay: true };
    }
    if (!isCurrent) {
      await tx.update(sessions).set({ revokedAt: now, revokedReason: 'reused' }).where(eq(sessions.id, s.id));
      await audit(ctx, { ...source, actorId: null, action: 'refresh_token.reused', targetUserId: s.userId, details: { session_id: s.id } }, tx);
      return { error: 'reused' as const, userId: s.userId };
    }
    const generation = s.refreshGeneration + 1;
    const refreshToken = makeRefreshToken(keys[0]!, s.id, generation, s.refreshSeed);
    const [updated] = await tx.update(sessions).set({
      refreshTokenHash: sha256(refreshToken),
      previousRefreshHash: s.refreshTokenHash,
      refreshGeneration: generation,
      rotatedAt: now,
      lastUsedAt: now,
    }).where(eq(sessions.id, s.id)).returning();
    return { session: updated!, refreshToken, replay: false };
  });

  if ('error' in outcome) throw refreshError(outcome.error!);
  const user = await findUser(ctx.db, { id: outcome.session.userId });
  if (!user || !user.active) throw refreshError('revoked');
  return { user, session: outcome.session, refreshToken: outcome.refreshToken, replay: outcome.replay };
}

/**
 * Logout by refresh token: revokes the session only when the token is its current (or just-rotated) one.
 * Returns the revoked session's user id, or null when nothing was revoked.
 */
export async function revokeByRefreshToken(ctx: SecurityContext, presented: string): Promise<number | null> {
  const parsed = parseRefreshToken(presented);
  if (!parsed) return null;
  const h = sha256(presented);
  const rows = await ctx.db.update(sessions).set({ revokedAt: ctx.clock.now(), revokedReason: 'logout' })
    .where(and(eq(sessions.id, parsed.sessionId), isNull(sessions.revokedAt),
      sql`(${sessions.refreshTokenHash} = ${h} or ${sessions.previousRefreshHash} = ${h})`))
    .returning({ userId: sessions.userId });
  return rows[0]?.userId ?? null;
}
