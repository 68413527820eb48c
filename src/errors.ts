// Typed application errors. Framework-free: security/ throws these, the root error handler
// (plugins/errors.ts) turns every error into the one envelope of the contract.

export const ERROR_CODES = [
  'VALIDATION_FAILED', 'INVALID_JSON', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE', 'AUTH_REQUIRED',
  'TOKEN_INVALID', 'TOKEN_EXPIRED', 'INVALID_CREDENTIALS', 'ACCOUNT_DISABLED', 'CONFIRMATION_REQUIRED',
  'ACCOUNT_LOCKED', 'RATE_LIMITED', 'FORBIDDEN', 'REAUTH_REQUIRED', 'CSRF_FAILED', 'EMAIL_TAKEN',
  'LINK_INVALID', 'LINK_EXPIRED', 'REFRESH_TOKEN_INVALID', 'TWO_FACTOR_INVALID', 'WEBAUTHN_INVALID', 'NOT_FOUND', 'CONFLICT',
  'SERVICE_UNAVAILABLE', 'INTERNAL', 'METHOD_NOT_ALLOWED', 'IDEMPOTENCY_KEY_REUSED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export type FieldErrors = Record<string, string[]>;

export class AppError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly fields?: FieldErrors;
  /** extra top-level members of the envelope (e.g. `reason` for refresh failures) */
  readonly extra?: Record<string, unknown>;
  readonly headers?: Record<string, string>;

  constructor(statusCode: number, code: ErrorCode, message: string, opts: {
    fields?: FieldErrors; extra?: Record<string, unknown>; headers?: Record<string, string>;
  } = {}) {
    super(message);
    this.name = 'AppError';
    this.statusCode = statusCode;
    this.code = code;
    this.fields = opts.fields;
    this.extra = opts.extra;
    this.headers = opts.headers;
  }
}

export const validationError = (fields: FieldErrors, message = 'Request body is invalid') =>
  new AppError(400, 'VALIDATION_FAILED', message, { fields });
export const notFound = (what = 'Resource') => new AppError(404, 'NOT_FOUND', `${what} not found`);
export const forbidden = (message = 'You do not have permission to perform this action') =>
  new AppError(403, 'FORBIDDEN', message);
export const authRequired = () => new AppError(401, 'AUTH_REQUIRED', 'Authentication is required');
/** The realm of every Bearer challenge (RFC 6750). */
export const BEARER_REALM = 'county-services';
/** No credentials at all: 401 AUTH_REQUIRED with the Bearer challenge (the one place it is built). */
export const authChallenge = () => new AppError(401, 'AUTH_REQUIRED', authRequired().message, {
  headers: { 'www-authenticate': `Bearer realm="${BEARER_REALM}"` },
});
export const tokenInvalid = (message = 'The access token is invalid') => new AppError(401, 'TOKEN_INVALID', message);
export const tokenExpired = () => new AppError(401, 'TOKEN_EXPIRED', 'The access token has expired');
export const emailTaken = () =>
  new AppError(409, 'EMAIL_TAKEN', 'An account with this email already exists', { fields: { email: ['Email is already registered'] } });

/** A PostgreSQL error as thrown by postgres.js (or wrapped by drizzle in `cause`). */
export function pgError(err: unknown): { code: string; constraint_name?: string } | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && 'severity' in e) return e as { code: string; constraint_name?: string };
  }
  return undefined;
}

/** Connection-level failures: the database is down or unreachable. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const pg = pgError(err);
  if (pg && (pg.code.startsWith('08') || pg.code === '57P01' || pg.code === '57P02' || pg.code === '57P03' || pg.code === '53300')) return true;
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (typeof e.code === 'string' && ['DATABASE_UNAVAILABLE', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'EPIPE', 'ENOTFOUND'].includes(e.code)) return true;
  }
  return false;
}

/**
 * PostgreSQL refused a statement for a passing reason — a statement timeout (57014: a lock held too
 * long, an overloaded server), a serialization failure or deadlock (40001, 40P01), a lock not
 * available (55P03). The request changed nothing (its transaction rolled back) and the same request
 * may succeed in a moment: 503 with Retry-After, not a 500. The database is not down: the breaker
 * ignores these.
 */
export function isDatabaseBusy(err: unknown): boolean {
  const code = pgError(err)?.code;
  return code === '57014' || code === '40001' || code === '40P01' || code === '55P03';
}

/**
 * "message (code)" of the innermost driver error: what PostgreSQL or the socket said. Never the
 * text of drizzle's wrapper ("Failed query: <SQL> params: …"), which carries the SQL and its values.
 */
export function describeDatabaseError(err: unknown): string {
  let best: { message?: unknown; code?: unknown } | undefined;
  for (let e = err as { message?: unknown; code?: unknown; cause?: unknown } | undefined, i = 0; e && typeof e === 'object' && i < 6; e = e.cause as typeof e, i++) {
    if ('severity' in e || typeof e.code === 'string') best = e;
    if ('severity' in e) break;
  }
  const e = best ?? (err as { message?: unknown; code?: unknown } | undefined);
  const message = typeof e?.message === 'string' && !e.message.startsWith('Failed query:') ? e.message : 'database error';
  return (typeof e?.code === 'string' ? `${message} (${e.code})` : message).replace(/\s+/g, ' ').slice(0, 300);
}
