// Personal access tokens for scripts and integrations: named, optionally expiring, optionally limited
// to a subset of the owner's permissions, shown once, stored as a SHA-256 hash. Each token is backed
// by a session row (kind 'token'), so the whole session machinery — per-request checks, the auth
// cache and its invalidation, logout-all, deactivation, reset-access — applies to tokens unchanged.
import { and, desc, eq, gt, isNull } from 'drizzle-orm';
import { randomUUID } from 'node:crypto';
import { personalAccessTokens, sessions } from '../db/schema/index.js';
import { notFound, validationError } from '../errors.js';
import type { SecurityContext } from './context.js';
import type { UserRecord } from './datastore.js';
import { randomToken, sha256 } from './tokens.js';

export const TOKEN_PREFIX = 'cspat_';
const TOKEN_RE = /^cspat_[A-Za-z0-9_-]{43}$/;
/** A token without an expiry still gets an end: ten years. */
const MAX_LIFETIME_SECONDS = 10 * 365 * 86400;

export const isPersonalToken = (value: string) => TOKEN_RE.test(value);

export interface CreatedToken {
  id: string;
  token: string;
  name: string;
  permissions: string[] | null;
  createdAt: Date;
  expiresAt: Date | null;
}

export async function createPersonalToken(ctx: SecurityContext, user: UserRecord, input: {
  name: string; expiresIn?: number; permissions?: string[]; ip: string | null; userAgent: string | null;
}): Promise<CreatedToken> {
  const permissions = input.permissions ? [...new Set(input.permissions)].sort() : null;
  const foreign = (permissions ?? []).filter((p) => !user.permissions.includes(p));
  if (foreign.length) throw validationError({ permissions: [`Not among your permissions: ${foreign.join(', ')}`] });
  const now = ctx.clock.now();
  const expiresAt = input.expiresIn ? new Date(now.getTime() + input.expiresIn * 1000) : null;
  const token = TOKEN_PREFIX + randomToken(32);
  const id = randomUUID();
  await ctx.db.transaction(async (tx) => {
    const sessionId = randomUUID();
    await tx.insert(sessions).values({
      id: sessionId,
      userId: user.id,
      kind: 'token',
      createdAt: now,
      lastUsedAt: now,
      expiresAt: expiresAt ?? new Date(now.getTime() + MAX_LIFETIME_SECONDS * 1000),
      ip: input.ip,
      userAgent: input.userAgent?.slice(0, 512) ?? null,
      // A token session has no refresh token and no CSRF use; these values are random and never issued.
      refreshTokenHash: sha256(randomToken(32)),
      refreshSeed: randomToken(24),
      csrfToken: randomToken(32),
      // Never "fresh": sensitive actions always need an interactive login.
      fsPaa: new Date(0),
    });
    await tx.insert(personalAccessTokens).values({ id, sessionId, userId: user.id, name: input.name, tokenHash: sha256(token), permissions, createdAt: now });
  });
  return { id, token, name: input.name, permissions, createdAt: now, expiresAt };
}

/** The session behind a presented token, or null. The mapping never changes, so callers may cache it. */
export async function sessionIdForToken(ctx: SecurityContext, token: string): Promise<string | null> {
  const rows = await ctx.db.select({ sessionId: personalAccessTokens.sessionId }).from(personalAccessTokens)
    .where(eq(personalAccessTokens.tokenHash, sha256(token))).limit(1);
  return rows[0]?.sessionId ?? null;
}

export interface TokenListItem {
  id: string; name: string; permissions: string[] | null; createdAt: Date; expiresAt: Date; lastUsedAt: Date;
}

/** The user's live tokens, newest first. */
export async function listPersonalTokens(ctx: SecurityContext, userId: number): Promise<TokenListItem[]> {
  return ctx.db.select({
    id: personalAccessTokens.id, name: personalAccessTokens.name, permissions: personalAccessTokens.permissions,
    createdAt: personalAccessTokens.createdAt, expiresAt: sessions.expiresAt, lastUsedAt: sessions.lastUsedAt,
  }).from(personalAccessTokens).innerJoin(sessions, eq(sessions.id, personalAccessTokens.sessionId))
    .where(and(eq(personalAccessTokens.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, ctx.clock.now())))
    .orderBy(desc(personalAccessTokens.createdAt));
}

/** Revokes one of the user's own tokens; another user's token is "not found". */
export async function revokePersonalToken(ctx: SecurityContext, userId: number, tokenId: string): Promise<void> {
  const [row] = await ctx.db.select({ sessionId: personalAccessTokens.sessionId }).from(personalAccessTokens)
    .where(and(eq(personalAccessTokens.id, tokenId), eq(personalAccessTokens.userId, userId)));
  if (!row) throw notFound('Token');
  const revoked = await ctx.db.update(sessions).set({ revokedAt: ctx.clock.now(), revokedReason: 'token_revoked' })
    .where(and(eq(sessions.id, row.sessionId), isNull(sessions.revokedAt))).returning({ id: sessions.id });
  if (!revoked.length) throw notFound('Token');
}
