// Shared TypeBox schemas. Those with an $id are registered with app.addSchema and become OpenAPI
// components; routes reference them with Type.Ref so responses serialise through one definition.
import { Type, type Static, type TSchema } from 'typebox';

export const ErrorEnvelope = Type.Object({
  statusCode: Type.Integer({ minimum: 400, maximum: 599 }),
  error: Type.String({ description: 'HTTP reason phrase' }),
  code: Type.String({ description: 'Stable machine-readable code (listed in docs/errors.md)' }),
  message: Type.String(),
  fields: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()), {
    description: 'Validation messages by field; the key "" holds form-level messages',
  })),
  reason: Type.Optional(Type.String({ description: 'Why a refresh token was refused: invalid, expired, idle, revoked, reused' })),
  reauth_required: Type.Optional(Type.Boolean()),
}, { $id: 'ErrorEnvelope', additionalProperties: false, description: 'The one error envelope of the API' });

/**
 * `T | null`. For primitive schemas this is `type: [T, "null"]` rather than anyOf: the same JSON
 * Schema meaning, but fast-json-stringify serialises it without trying each branch.
 */
export const Nullable = <T extends TSchema>(t: T) => {
  const type = (t as { type?: unknown }).type;
  return typeof type === 'string' && type !== 'object' && type !== 'array'
    ? Type.Unsafe<Static<T> | null>({ ...t, type: [type, 'null'] })
    : Type.Unsafe<Static<T> | null>(Type.Union([t, Type.Null()]));
};
export const Timestamp = Type.String({ format: 'date-time' });

export const PublicUser = Type.Object({
  id: Type.Integer(),
  email: Type.String(),
  first_name: Nullable(Type.String()),
  last_name: Nullable(Type.String()),
  full_name: Nullable(Type.String()),
  phone_number: Nullable(Type.String()),
  address: Nullable(Type.String()),
  active: Type.Boolean(),
  confirmed_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp,
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String()),
  county_id: Nullable(Type.Integer()),
  department_id: Nullable(Type.Integer()),
  tf_enabled: Type.Boolean(),
  last_login_at: Nullable(Timestamp),
  current_login_at: Nullable(Timestamp),
  last_login_ip: Nullable(Type.String()),
  current_login_ip: Nullable(Type.String()),
  login_count: Type.Integer(),
}, { $id: 'User', additionalProperties: false, description: 'The public user object (contract §4)' });

export const SHARED_SCHEMAS = [ErrorEnvelope, PublicUser];

export const UserRef = Type.Ref('User');

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input (VALIDATION_FAILED, INVALID_JSON, LINK_INVALID, …)',
  401: 'Not authenticated (AUTH_REQUIRED, TOKEN_INVALID, TOKEN_EXPIRED, INVALID_CREDENTIALS, …)',
  403: 'Not allowed (FORBIDDEN, CSRF_FAILED, ACCOUNT_DISABLED, CONFIRMATION_REQUIRED)',
  404: 'Not found',
  409: 'Conflict (EMAIL_TAKEN, CONFLICT)',
  413: 'Body over the size limit',
  414: 'A path segment over the length limit',
  415: 'Body is not application/json',
  429: 'Too many requests (RATE_LIMITED, ACCOUNT_LOCKED); see Retry-After',
  500: 'Internal error (generic body)',
  503: 'Database unavailable (SERVICE_UNAVAILABLE)',
};

export const errorResponse = (status: number): TSchema => Type.Ref('ErrorEnvelope', { description: ERROR_DESCRIPTIONS[status] ?? 'Error' });

/**
 * Error responses a route can return. The statuses every route can answer whatever its handler does
 * (429, 500, 503; 400/413/415 by what it reads) are added to every route when it is registered
 * (completeResponses in plugins/errors.ts), so listing them here is optional.
 */
export function errors(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const s of [...statuses, 429, 500, 503]) out[s] = errorResponse(s);
  return out;
}

/** Error responses of a route that takes a JSON body. */
export const bodyErrors = (...statuses: number[]) => errors(400, 413, 415, ...statuses);

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254, examples: ['jane@example.com'] });
/** Login accepts any string up to a generous cap so the length never tells anything; policy applies on set. */
export const LoginPassword = Type.String({ minLength: 1, maxLength: 1024 });
export const NewPassword = Type.String({ minLength: 1, maxLength: 1024, description: 'Checked against the password policy' });
export const ProfileText = (max: number) => Nullable(Type.String({ maxLength: max }));
export const IdParam = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 2147483647 }) }, { additionalProperties: false });
export const UuidParam = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
export const MessageResponse = Type.Object({ message: Type.String() }, { additionalProperties: false });

/** OpenAPI security of every authenticated operation: a bearer token, or the session cookie with its CSRF header. */
export const SECURED: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { cookieAuth: [], csrfHeader: [] }];
