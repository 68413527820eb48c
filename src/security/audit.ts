// The audit log: one helper, audit(ctx, event), for every security event, whether it comes from a
// route, a security/ function or the ops CLI. Rows are only ever inserted and read; the database
// refuses UPDATE/DELETE/TRUNCATE on audit_events (migration audit_append_only).
import { and, asc, desc, eq, gt, gte, lt, or, type SQL } from 'drizzle-orm';
import { auditEvents, type AuditEventRow } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { validationError } from '../errors.js';
import type { SecurityContext } from './context.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

/**
 * The actions written today (the README's audit table lists them); any `noun.verb` string is accepted.
 * A change the delegation rule refuses is recorded as the change's action + `.denied`
 * (security/delegation.ts, docs/authorization.md).
 */
export const AUDIT_ACTIONS = [
  'login.succeeded', 'login.failed', 'logout', 'logout_all', 'session.revoked', 'refresh_token.reused',
  'user.registered', 'profile.updated',
  'user.created', 'user.updated', 'user.activated', 'user.deactivated', 'user.unlocked', 'user.access_reset',
  'user.roles_changed', 'user.password_set',
  'role.created', 'role.updated', 'role.deleted',
  'county.created', 'department.created',
  'password.reset_requested', 'password.reset', 'password.changed', 'email.confirmed', 'email.change_requested',
  'email.changed', 'session.verified', 'token.created', 'token.revoked',
  'account.locked', 'login.second_factor_required', 'login.second_factor_setup_required',
  'tf.enabled', 'tf.disabled', 'tf.recovery_codes_regenerated', 'tf.recovery_code_used', 'secret_check.failed',
  'user.created.denied', 'user.updated.denied', 'user.activated.denied', 'user.deactivated.denied', 'user.unlocked.denied',
  'user.access_reset.denied', 'user.roles_changed.denied', 'user.password_set.denied',
  'role.created.denied', 'role.updated.denied', 'role.deleted.denied',
  'session.verify_failed', 'us.code_requested',
  'wan.registered', 'wan.register_failed', 'wan.renamed', 'wan.deleted', 'wan.assertion_refused',
  'identity.linked', 'identity.unlinked', 'identity.link_failed',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number] | (string & {});

/** Who did it and from where. Routes fill it from the request; the CLI has no actor and no IP. */
export interface AuditSource {
  actorId: number | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

export const NO_SOURCE: AuditSource = { actorId: null, ip: null, userAgent: null, requestId: null };

export interface AuditEvent extends Partial<AuditSource> {
  action: AuditAction;
  targetUserId?: number | null;
  /** context for humans: reasons, changed field names, role names. Never a secret (scrubbed anyway). */
  details?: Record<string, unknown>;
}

// Keys that could carry a credential are dropped from details whatever the caller passed, so a careless
// `details: request.body` can never write a password or token into the log.
const SECRET_KEY_RE = /pass(word)?|token|secret|hash|uniquifier|cookie|authorization|otp|recovery|csrf|^code$/i;
const MAX_STRING = 500;

function scrub(value: unknown, depth = 0): unknown {
  if (depth > 4) return '[truncated]';
  if (typeof value === 'string') return value.length > MAX_STRING ? value.slice(0, MAX_STRING) + '…' : value;
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => scrub(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (!SECRET_KEY_RE.test(k) && v !== undefined) out[k] = scrub(v, depth + 1);
    }
    return out;
  }
  return value;
}

/** An event's details as they are stored (credential-like keys dropped, long strings cut). */
export const scrubDetails = (details: Record<string, unknown> | undefined): Record<string, unknown> =>
  scrub(details ?? {}) as Record<string, unknown>;

/**
 * Appends one event. Pass the transaction as `db` when the event belongs to a change, so the change and
 * its record commit (or roll back) together.
 */
export async function audit(ctx: Pick<SecurityContext, 'db' | 'clock'>, event: AuditEvent, db: Db = ctx.db): Promise<void> {
  await db.insert(auditEvents).values({
    createdAt: ctx.clock.now(),
    action: event.action,
    actorId: event.actorId ?? null,
    targetUserId: event.targetUserId ?? null,
    ip: event.ip ?? null,
    userAgent: event.userAgent?.slice(0, 512) ?? null,
    requestId: event.requestId ?? null,
    details: scrub(event.details ?? {}) as Record<string, unknown>,
  });
}

export interface AuditQuery {
  /** events where the user is the actor or the target */
  userId?: number;
  action?: string;
  /** inclusive */
  from?: Date;
  /** exclusive */
  to?: Date;
  cursor?: string;
  limit: number;
  /** newest first (the API) or oldest first (exports) */
  order?: 'desc' | 'asc';
}

export interface AuditPage { events: AuditEventRow[]; nextCursor: string | null }

// Cursors are opaque to clients: the id of the last event of the page, versioned.
const encodeCursor = (id: number) => Buffer.from(`v1:${id}`).toString('base64url');

function decodeCursor(cursor: string): number {
  const m = /^v1:([0-9]{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const id = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(id)) throw validationError({ cursor: ['Invalid cursor'] }, 'Query parameters are invalid');
  return id;
}

/** A page of events, keyset-paginated on the id (the insertion order). */
export async function listAuditEvents(ctx: Pick<SecurityContext, 'db'>, q: AuditQuery): Promise<AuditPage> {
  const order = q.order ?? 'desc';
  const where: SQL[] = [];
  if (q.userId !== undefined) where.push(or(eq(auditEvents.actorId, q.userId), eq(auditEvents.targetUserId, q.userId))!);
  if (q.action !== undefined) where.push(eq(auditEvents.action, q.action));
  if (q.from) where.push(gte(auditEvents.createdAt, q.from));
  if (q.to) where.push(lt(auditEvents.createdAt, q.to));
  if (q.cursor !== undefined) {
    const after = decodeCursor(q.cursor);
    where.push(order === 'desc' ? lt(auditEvents.id, after) : gt(auditEvents.id, after));
  }
  const rows = await ctx.db.select().from(auditEvents).where(and(...where))
    .orderBy(order === 'desc' ? desc(auditEvents.id) : asc(auditEvents.id)).limit(q.limit + 1);
  const events = rows.slice(0, q.limit);
  const nextCursor = rows.length > q.limit ? encodeCursor(events[events.length - 1]!.id) : null;
  return { events, nextCursor };
}

