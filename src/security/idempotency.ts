// Idempotency keys (the IETF httpapi "Idempotency-Key" header; Stripe's semantics): a client that
// did not see the answer to a POST retries it with the same key and gets the first answer instead
// of a second effect. Framework-free; plugins/idempotency.ts is the HTTP side.
//
// A key is scoped to (operation, principal, key) and remembered for IDEMPOTENCY_KEY_TTL. The first
// request claims the row (locked_by, locked_until = now + IDEMPOTENCY_LEASE_SECONDS) in one
// statement, so of any number of concurrent requests with one key exactly one executes; the others
// see it in flight (409). The answer is stored when the request ends; a 5xx releases the claim (the
// request's transaction did not commit, so retrying executes again). A claim whose instance died
// before answering is taken over once its lease has passed, by a request with the same body only.
//
// Atomic answers (POST /register, POST /users): the operation records its answer with
// `recorder.record(tx, status, body)` inside its own transaction, so the effect and the answer a
// retry will get commit together or not at all. Without that, a connection lost between the two
// commits (or after the commit, before the answer was stored) left an account whose key was
// released: the retry got 409 EMAIL_TAKEN instead of the original 201. With it, every outcome of a
// lost connection is safe: not committed → the claim is released (or its lease passes) and the
// retry executes; committed → the row holds the answer and the retry gets it (a release deletes only
// rows without an answer). Recording requires the claim to be still held (`locked_by` = ours): a
// request that outlived its lease and lost the key to a retry rolls back instead of committing a
// second effect (409 CONFLICT, retry shortly: the retry gets the other request's answer).
//
// What is stored: the status and the JSON body, minus the token fields (access and refresh tokens,
// csrf token, a forced 2FA setup's tf_token): a replay does not hand out live credentials a second time, and the table holds no
// usable secret. The request body itself is never stored: only an HMAC of it under a key derived
// from SECRET_KEY (a registration's body holds a password).
import { and, eq, isNull, lte, sql } from 'drizzle-orm';
import { createHmac, randomUUID } from 'node:crypto';
import type { Database } from '../db/client.js';
import { idempotencyKeys } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { SecurityContext } from './context.js';
import { signingKey } from './keyring.js';

/** How long a claim protects a request in flight before another may take it over. */
export const IDEMPOTENCY_LEASE_SECONDS = 30;

/** Answer fields that are credentials: not stored, not replayed. */
export const UNREPLAYED_FIELDS = ['access_token', 'refresh_token', 'csrf_token', 'token_type', 'expires_in', 'refresh_expires_in', 'tf_token'] as const;

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

/**
 * Handed to an operation by the caller that holds a claim: the operation records the answer it is
 * about to give inside its own transaction (see the header).
 */
export interface AnswerRecorder {
  record(db: Db, status: number, body: unknown): Promise<void>;
}

export interface IdempotencyScope {
  /** e.g. "POST /register" */
  operation: string;
  /** "" for anonymous operations, else who asked ("user:42") */
  principal: string;
  key: string;
}

export type IdempotencyStart =
  | { kind: 'execute'; claim: string }
  | { kind: 'replay'; status: number; body: unknown }
  | { kind: 'in_flight' }
  | { kind: 'mismatch' };

/** JSON with sorted object keys: equal bodies hash equal whatever their member order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** HMAC-SHA256 of the canonical body under the keyring's idempotency key (derived from SECRET_KEY). */
export function requestHash(ctx: SecurityContext, body: unknown): string {
  return createHmac('sha256', signingKey(ctx.config, 'idempotency-request').key).update(canonical(body)).digest('base64url');
}

const scopeOf = (s: IdempotencyScope) => and(eq(idempotencyKeys.operation, s.operation), eq(idempotencyKeys.principal, s.principal), eq(idempotencyKeys.key, s.key));

/**
 * Claims the key for this request, or says why not. `claim` is chosen by the caller so that a claim
 * whose answer was lost (the connection died after the insert committed) can still be released. One statement decides between concurrent
 * requests: the insert wins, or takes over a row that expired or whose claim was abandoned.
 */
export async function startIdempotent(ctx: SecurityContext, scope: IdempotencyScope, hash: string, claim: string = randomUUID()): Promise<IdempotencyStart> {
  const now = ctx.clock.now();
  const won = await ctx.db.insert(idempotencyKeys).values({
    ...scope,
    requestHash: hash,
    lockedBy: claim,
    lockedUntil: new Date(now.getTime() + IDEMPOTENCY_LEASE_SECONDS * 1000),
    createdAt: now,
    expiresAt: new Date(now.getTime() + ctx.config.IDEMPOTENCY_KEY_TTL * 1000),
  }).onConflictDoUpdate({
    target: [idempotencyKeys.operation, idempotencyKeys.principal, idempotencyKeys.key],
    set: {
      requestHash: sql`excluded.request_hash`, lockedBy: sql`excluded.locked_by`, lockedUntil: sql`excluded.locked_until`,
      responseStatus: null, responseBody: null, createdAt: sql`excluded.created_at`, expiresAt: sql`excluded.expires_at`,
    },
    setWhere: sql`${idempotencyKeys.expiresAt} <= excluded.created_at
      or (${idempotencyKeys.responseStatus} is null and ${idempotencyKeys.lockedUntil} <= excluded.created_at
          and ${idempotencyKeys.requestHash} = excluded.request_hash)`,
  }).returning({ lockedBy: idempotencyKeys.lockedBy });
  if (won[0]?.lockedBy === claim) return { kind: 'execute', claim };

  const [row] = await ctx.db.select().from(idempotencyKeys).where(scopeOf(scope));
  if (!row) return { kind: 'in_flight' }; // released between the two statements: the client retries
  if (row.requestHash !== hash) return { kind: 'mismatch' };
  if (row.responseStatus === null) return { kind: 'in_flight' };
  return { kind: 'replay', status: row.responseStatus, body: row.responseBody };
}

/** What is stored of an answer: the JSON body without its credential fields (UNREPLAYED_FIELDS). */
export function replayableBody(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body ?? null;
  // through JSON: what is stored is what the client was sent (dates as strings, no undefined members)
  const json = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(json).filter(([k]) => !(UNREPLAYED_FIELDS as readonly string[]).includes(k)));
}

/** Stores the answer of the request holding `claim` (a claim taken over meanwhile is left alone). */
export async function completeIdempotent(ctx: SecurityContext, scope: IdempotencyScope, claim: string, status: number, body: unknown,
  db: Db = ctx.db): Promise<boolean> {
  const rows = await db.update(idempotencyKeys)
    .set({ responseStatus: status, responseBody: replayableBody(body), lockedBy: null, lockedUntil: null })
    .where(and(scopeOf(scope), eq(idempotencyKeys.lockedBy, claim)))
    .returning({ key: idempotencyKeys.key });
  return rows.length > 0;
}

/**
 * The recorder of a held claim: `record` stores the answer in the caller's transaction, and throws
 * 409 CONFLICT when the claim was taken over (the transaction then rolls back: no second effect).
 * `recorded()` is the status recorded last (the HTTP layer then does not store the answer again).
 */
export function answerRecorder(ctx: SecurityContext, scope: IdempotencyScope, claim: string): AnswerRecorder & { recorded(): number | null } {
  let status: number | null = null;
  return {
    async record(db, answerStatus, body) {
      status = null;
      if (!await completeIdempotent(ctx, scope, claim, answerStatus, body, db)) {
        throw new AppError(409, 'CONFLICT', 'A request with this Idempotency-Key is still in progress; retry shortly', { headers: { 'retry-after': '1' } });
      }
      status = answerStatus;
    },
    recorded: () => status,
  };
}

/** Gives the key back: the request did not take effect, a retry executes it again. */
export async function releaseIdempotent(ctx: SecurityContext, scope: IdempotencyScope, claim: string): Promise<void> {
  await ctx.db.delete(idempotencyKeys).where(and(scopeOf(scope), eq(idempotencyKeys.lockedBy, claim), isNull(idempotencyKeys.responseStatus)));
}

/** Forgets keys older than IDEMPOTENCY_KEY_TTL. */
export async function purgeIdempotencyKeys(ctx: SecurityContext): Promise<number> {
  const rows = await ctx.db.delete(idempotencyKeys).where(lte(idempotencyKeys.expiresAt, ctx.clock.now())).returning({ key: idempotencyKeys.key });
  return rows.length;
}
