// The one place that reads the environment. Every key is declared once in EnvSchema, validated at
// boot, and documented in .env.example and docs/configuration.md.
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { isIP } from 'node:net';

const Bool = Type.Boolean();
const Int = (min: number, max: number) => Type.Integer({ minimum: min, maximum: max });
// Durations are seconds, or a number followed by s, m, h or d ("15m", "48h").
const Duration = Type.String({ pattern: '^[0-9]+[smhd]?$' });
// Rates are "N/duration" ("30/5m").
const Rate = Type.String({ pattern: '^[0-9]+/[0-9]+[smhd]?$' });
const List = Type.String();

export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('test'), Type.Literal('production')]),
  HOST: Type.String({ minLength: 1 }),
  PORT: Int(0, 65535),
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent'),
  ]),
  DATABASE_URL: Type.String(),
  DATA_DIR: Type.String({ minLength: 1 }),
  DB_POOL_MAX: Int(1, 200),
  SEED_ON_START: Bool,
  BODY_LIMIT: Int(1024, 64 * 1024 * 1024),
  AUTH_CACHE_TTL: Duration,
  // ---- caches and the shared global limit (issues 15 and 20; docs/consistency.md, docs/performance.md) ----
  AUTH_CACHE_MAX_ENTRIES: Int(0, 10_000_000),
  USERS_PAGE_CACHE_TTL: Duration,
  CACHE_LEASE_MS: Int(300, 60_000),
  RATE_LIMIT_FLUSH_INTERVAL_MS: Int(10, 10_000),
  // ---- end caches ----

  SECRET_KEY: Type.String(),
  SECRET_KEY_FALLBACKS: List,
  SECURITY_PASSWORD_SALT: Type.String(),
  SECURITY_PASSWORD_SALT_FALLBACKS: List,
  JWT_ISSUER: Type.String({ minLength: 1 }),
  JWT_AUDIENCE: Type.String({ minLength: 1 }),

  SECURITY_URL_PREFIX: Type.String({ pattern: '^(/[A-Za-z0-9._~-]+)*$' }),
  SECURITY_REGISTERABLE: Bool,
  SECURITY_RECOVERABLE: Bool,
  SECURITY_TRACKABLE: Bool,
  SECURITY_CHANGEABLE: Bool,
  SECURITY_CONFIRMABLE: Bool,
  SECURITY_SEND_REGISTER_EMAIL: Bool,
  SECURITY_RETURN_GENERIC_RESPONSES: Bool,
  SECURITY_PASSWORD_LENGTH_MIN: Int(6, 128),
  SECURITY_PASSWORD_COMPLEXITY_CHECKER: Type.Union([Type.Literal('none'), Type.Literal('classic'), Type.Literal('zxcvbn')]),
  SECURITY_PASSWORD_CHECK_BREACHED: Bool,
  BCRYPT_LOG_ROUNDS: Int(4, 16),

  SECURITY_TOKEN_MAX_AGE: Duration,
  SECURITY_REFRESH_TOKEN_MAX_AGE: Duration,
  SECURITY_REFRESH_TOKEN_MAX_IDLE: Duration,
  SECURITY_REFRESH_GRACE_PERIOD: Duration,
  SECURITY_FRESHNESS: Duration,
  SECURITY_RESET_PASSWORD_WITHIN: Duration,
  SECURITY_CONFIRM_EMAIL_WITHIN: Duration,
  SECURITY_TWO_FACTOR_REQUIRED_ROLES: List,
  SECURITY_LINK_BASE_URL: Type.String(),
  SECURITY_RESET_URL_TEMPLATE: Type.String(),
  SECURITY_CONFIRM_URL_TEMPLATE: Type.String(),
  SECURITY_CHANGE_EMAIL_URL_TEMPLATE: Type.String(),
  SECURITY_CHANGE_EMAIL_WITHIN: Duration,
  SECURITY_SEND_PASSWORD_CHANGE_EMAIL: Bool,
  SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL: Bool,
  SECURITY_SEND_EMAIL_CHANGE_NOTICE: Bool,

  PERMANENT_SESSION_LIFETIME: Duration,
  SESSION_COOKIE_NAME: Type.String({ pattern: '^[A-Za-z0-9_-]+$' }),
  SESSION_COOKIE_SECURE: Bool,
  SESSION_COOKIE_SAMESITE: Type.Union([Type.Literal('Lax'), Type.Literal('Strict'), Type.Literal('None')]),

  MAIL_SERVER: Type.String(),
  MAIL_PORT: Int(1, 65535),
  MAIL_USE_TLS: Bool,
  MAIL_USERNAME: Type.String(),
  MAIL_PASSWORD: Type.String(),
  MAIL_DEFAULT_SENDER: Type.String(),
  OUTBOX_WORKER_ENABLED: Bool,
  OUTBOX_POLL_INTERVAL: Duration,
  OUTBOX_MAX_ATTEMPTS: Int(1, 1000),
  OUTBOX_RETRY_BACKOFF: Duration,
  OUTBOX_LEASE: Duration,
  OUTBOX_RETENTION: Duration,

  CORS_ORIGINS: List,
  TRUST_PROXY: Type.String(),
  // Accepted because the contract (§6) lists it; nothing connects to Redis (state is in PostgreSQL),
  // and plugins/rate-limit.ts warns when it is set.
  REDIS_URL: Type.String(),

  SECURITY_LOCKOUT_ENABLED: Bool,
  SECURITY_LOCKOUT_THRESHOLD: Int(1, 1000),
  SECURITY_LOCKOUT_WINDOW: Duration,
  SECURITY_LOCKOUT_DURATION: Duration,
  SECURITY_LOCKOUT_MAX_DURATION: Duration,
  SECURITY_TWO_FACTOR_TOKEN_WITHIN: Duration,
  SECURITY_TOTP_ISSUER: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^:]+$' }),
  RATE_LIMIT_ENABLED: Bool,
  RATE_LIMIT_STORE: Type.Union([Type.Literal('postgres'), Type.Literal('memory')]),
  RATE_LIMIT_AUTH: Rate,
  RATE_LIMIT_REFRESH: Rate,
  RATE_LIMIT_TOTP: Rate,
  RATE_LIMIT_GLOBAL: Rate,

  // ---- ops (issue 17): log format ----
  /** pretty: one readable line per request (pino-pretty, development default); json: JSON lines */
  LOG_FORMAT: Type.Union([Type.Literal('json'), Type.Literal('pretty')]),
  // outage (issue 20): database timeouts and circuit breaker (ms), Idempotency-Key memory
  DB_CONNECT_TIMEOUT_MS: Int(100, 60_000),
  DB_STATEMENT_TIMEOUT_MS: Int(0, 3_600_000),
  DB_HEALTH_TIMEOUT_MS: Int(100, 60_000),
  DB_HEALTH_INTERVAL_MS: Int(50, 60_000),
  IDEMPOTENCY_KEY_TTL: Duration,
  // ---- passwordless sign-in: passkeys (WebAuthn) and unified sign-in by email (issue 18) ----
  SECURITY_WAN_ENABLED: Bool,
  SECURITY_WAN_RP_ID: Type.String({ pattern: '^[A-Za-z0-9.-]+$' }),
  SECURITY_WAN_RP_NAME: Type.String({ minLength: 1, maxLength: 64 }),
  SECURITY_WAN_ALLOWED_ORIGINS: List,
  SECURITY_WAN_CHALLENGE_TIMEOUT: Duration,
  SECURITY_UNIFIED_SIGNIN: Bool,
  SECURITY_US_TOKEN_VALIDITY: Duration,
  SECURITY_US_SIGNIN_URL_TEMPLATE: Type.String(),
  SECURITY_US_SEND_LIMIT: Rate,
  // ---- OpenID Connect sign-in (issue 19, src/security/oidc.ts) ----
  /** JSON array of {name, issuer, client_id, client_secret?, scopes?, display_name?, trusted_mfa?} */
  SECURITY_OAUTH_PROVIDERS: Type.String(),
  /** where `next` may point: origins (https://app.example.org), URL prefixes, custom schemes (countyapp:) */
  SECURITY_OAUTH_ALLOWED_REDIRECTS: List,
  /** the public base URL of this API; the provider redirects to <base>/login/oauthresponse/<name> (default SECURITY_LINK_BASE_URL) */
  SECURITY_OAUTH_CALLBACK_BASE_URL: Type.String(),
  /** how long a started redirect may take at the provider */
  SECURITY_OAUTH_STATE_WITHIN: Duration,
  /** allow http:// issuers (a loopback test provider); refused in production */
  SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: Bool,
  // ---- end OpenID Connect ----
}, { additionalProperties: false });

type Env = Static<typeof EnvSchema>;
type Profile = Env['NODE_ENV'];

const DEV_SECRET_KEY = 'dev-only-insecure-secret-key-change-me';
const DEV_PASSWORD_SALT = 'dev-only-insecure-password-salt';
const TEST_SECRET_KEY = 'test-secret-key-of-reasonable-length-0123456789';
const TEST_PASSWORD_SALT = 'test-password-salt';

// ---- credentials (cred, issue 13): production secrets ----
/**
 * Every value of SECRET_KEY / SECRET_KEY_FALLBACKS / SECURITY_PASSWORD_SALT written anywhere in the
 * repository (profile defaults, docker-compose.yml, .env.example, README, docs, bench, scripts,
 * examples). Anyone can read them, so production refuses them. test/config-secrets.test.ts greps the
 * shipped files for assignments of these keys and fails when one is missing here.
 */
export const SHIPPED_SECRET_VALUES: readonly string[] = [
  DEV_SECRET_KEY, DEV_PASSWORD_SALT, TEST_SECRET_KEY, TEST_PASSWORD_SALT,
  // docker-compose.yml before it required the values from the shell
  'compose-local-only-secret-key-change-me-0123456789', 'compose-local-only-salt-change-me',
  // .env.example placeholders
  'change-me-to-64-random-characters', 'change-me-to-32-random-characters',
  // bench/run.ts before it drew random secrets per run
  'bench-secret-key-0123456789abcdef0123456789abcdef', 'bench-password-salt-0123456789',
];
/** The production minimum for SECRET_KEY, each SECRET_KEY_FALLBACKS entry and SECURITY_PASSWORD_SALT. */
export const PRODUCTION_SECRET_MIN_LENGTH = 32;

/** Why a production secret is refused, or null when it may be used. */
export function productionSecretProblem(value: string): string | null {
  if (value.length < PRODUCTION_SECRET_MIN_LENGTH) return `must be at least ${PRODUCTION_SECRET_MIN_LENGTH} characters in production`;
  if (SHIPPED_SECRET_VALUES.some((v) => v === value.trim())) return 'is a value published in this repository; generate your own (openssl rand -hex 32)';
  return null;
}

const BASE_DEFAULTS: Omit<Env, 'NODE_ENV'> = {
  HOST: '127.0.0.1',
  PORT: 5000,
  LOG_LEVEL: 'info',
  DATABASE_URL: '',
  DATA_DIR: './data',
  DB_POOL_MAX: 10,
  SEED_ON_START: true,
  BODY_LIMIT: 1024 * 1024,
  AUTH_CACHE_TTL: '30s',
  // ---- caches and the shared global limit ----
  AUTH_CACHE_MAX_ENTRIES: 100_000,
  USERS_PAGE_CACHE_TTL: '5s',
  CACHE_LEASE_MS: 3000,
  RATE_LIMIT_FLUSH_INTERVAL_MS: 250,
  // ---- end caches ----
  SECRET_KEY: DEV_SECRET_KEY,
  SECRET_KEY_FALLBACKS: '',
  SECURITY_PASSWORD_SALT: DEV_PASSWORD_SALT,
  SECURITY_PASSWORD_SALT_FALLBACKS: '',
  JWT_ISSUER: 'county-services',
  JWT_AUDIENCE: 'county-services-api',
  SECURITY_URL_PREFIX: '',
  SECURITY_REGISTERABLE: true,
  SECURITY_RECOVERABLE: true,
  SECURITY_TRACKABLE: true,
  SECURITY_CHANGEABLE: true,
  SECURITY_CONFIRMABLE: false,
  SECURITY_SEND_REGISTER_EMAIL: false,
  SECURITY_RETURN_GENERIC_RESPONSES: false,
  SECURITY_PASSWORD_LENGTH_MIN: 8,
  SECURITY_PASSWORD_COMPLEXITY_CHECKER: 'none',
  SECURITY_PASSWORD_CHECK_BREACHED: true,
  BCRYPT_LOG_ROUNDS: 12,
  SECURITY_TOKEN_MAX_AGE: '900',
  SECURITY_REFRESH_TOKEN_MAX_AGE: '30d',
  SECURITY_REFRESH_TOKEN_MAX_IDLE: '7d',
  SECURITY_REFRESH_GRACE_PERIOD: '10s',
  SECURITY_FRESHNESS: '24h',
  SECURITY_RESET_PASSWORD_WITHIN: '1h',
  SECURITY_CONFIRM_EMAIL_WITHIN: '48h',
  SECURITY_TWO_FACTOR_REQUIRED_ROLES: '',
  SECURITY_LINK_BASE_URL: 'http://127.0.0.1:5000',
  SECURITY_RESET_URL_TEMPLATE: '',
  SECURITY_CONFIRM_URL_TEMPLATE: '',
  SECURITY_CHANGE_EMAIL_URL_TEMPLATE: '',
  SECURITY_CHANGE_EMAIL_WITHIN: '2h',
  SECURITY_SEND_PASSWORD_CHANGE_EMAIL: true,
  SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL: true,
  SECURITY_SEND_EMAIL_CHANGE_NOTICE: true,
  PERMANENT_SESSION_LIFETIME: '3600',
  SESSION_COOKIE_NAME: 'session',
  SESSION_COOKIE_SECURE: false,
  SESSION_COOKIE_SAMESITE: 'Lax',
  MAIL_SERVER: '',
  MAIL_PORT: 25,
  MAIL_USE_TLS: false,
  MAIL_USERNAME: '',
  MAIL_PASSWORD: '',
  MAIL_DEFAULT_SENDER: 'County Services <no-reply@county-services.local>',
  OUTBOX_WORKER_ENABLED: true,
  OUTBOX_POLL_INTERVAL: '5s',
  OUTBOX_MAX_ATTEMPTS: 20,
  OUTBOX_RETRY_BACKOFF: '30s',
  OUTBOX_LEASE: '20s',
  OUTBOX_RETENTION: '30d',
  CORS_ORIGINS: '',
  TRUST_PROXY: '',
  REDIS_URL: '',
  SECURITY_LOCKOUT_ENABLED: true,
  SECURITY_LOCKOUT_THRESHOLD: 10,
  SECURITY_LOCKOUT_WINDOW: '15m',
  SECURITY_LOCKOUT_DURATION: '15m',
  SECURITY_LOCKOUT_MAX_DURATION: '24h',
  SECURITY_TWO_FACTOR_TOKEN_WITHIN: '5m',
  SECURITY_TOTP_ISSUER: 'County Services',
  RATE_LIMIT_ENABLED: true,
  RATE_LIMIT_STORE: 'postgres',
  RATE_LIMIT_AUTH: '30/5m',
  RATE_LIMIT_REFRESH: '150/5m',
  RATE_LIMIT_TOTP: '15/1m',
  RATE_LIMIT_GLOBAL: '1000/1m',
  // ---- ops (issue 17) ----
  LOG_FORMAT: 'json',

  // outage (issue 20)
  DB_CONNECT_TIMEOUT_MS: 2000,
  DB_STATEMENT_TIMEOUT_MS: 5000,
  DB_HEALTH_TIMEOUT_MS: 600,
  DB_HEALTH_INTERVAL_MS: 250,
  IDEMPOTENCY_KEY_TTL: '24h',
  // passwordless (issue 18)
  SECURITY_WAN_ENABLED: true,
  SECURITY_WAN_RP_ID: 'localhost',
  SECURITY_WAN_RP_NAME: 'County Services',
  SECURITY_WAN_ALLOWED_ORIGINS: 'http://localhost:5173,http://localhost:5000',
  SECURITY_WAN_CHALLENGE_TIMEOUT: '2m',
  SECURITY_UNIFIED_SIGNIN: true,
  SECURITY_US_TOKEN_VALIDITY: '10m',
  SECURITY_US_SIGNIN_URL_TEMPLATE: '',
  SECURITY_US_SEND_LIMIT: '5/15m',
  // ---- OpenID Connect sign-in (issue 19) ----
  SECURITY_OAUTH_PROVIDERS: '[]',
  SECURITY_OAUTH_ALLOWED_REDIRECTS: '',
  SECURITY_OAUTH_CALLBACK_BASE_URL: '',
  SECURITY_OAUTH_STATE_WITHIN: '10m',
  SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: false,
  // ---- end OpenID Connect ----
};

const PROFILE_DEFAULTS: Record<Profile, Partial<Env>> = {
  development: {
    // ---- ops (issue 17) ----
    LOG_FORMAT: 'pretty',
  },
  test: {
    LOG_LEVEL: 'silent',
    BCRYPT_LOG_ROUNDS: 4,
    // Relaxed breaker timeouts on a loaded two-core CI machine; tests of the breaker itself
    // (test/db/outage.test.ts, test/db/breaker.test.ts) set the production values explicitly.
    // The parallel-burst hangs once blamed on these values (secret-checks' /verify burst,
    // two-factor-email's guesses) were a wedged pool connection, now fixed: the session toucher's
    // timestamptz[] parameter threw inside postgres.js's Bind writer, and pipelined behind another
    // statement that left the connection waiting forever (db/client.ts restoreSerializers).
    // The connect timeout: postgres.js times a connection's startup with a plain timer, which a
    // loaded machine can outlast.
    DB_CONNECT_TIMEOUT_MS: 10_000,
    DB_HEALTH_TIMEOUT_MS: 5_000,
    SEED_ON_START: false,
    SECRET_KEY: TEST_SECRET_KEY,
    SECURITY_PASSWORD_SALT: TEST_PASSWORD_SALT,
    RATE_LIMIT_ENABLED: false,
    // Tests run delivery passes themselves (deliverPending) against their own SMTP server.
    OUTBOX_WORKER_ENABLED: false,
  },
  production: {
    SECRET_KEY: '',
    SECURITY_PASSWORD_SALT: '',
    SECURITY_CONFIRMABLE: true,
    SECURITY_SEND_REGISTER_EMAIL: true,
    SESSION_COOKIE_SECURE: true,
    SECURITY_RETURN_GENERIC_RESPONSES: true,
    SECURITY_PASSWORD_COMPLEXITY_CHECKER: 'classic',
    SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'County Admin,Department Officer',
  },
};

const DURATION_KEYS = [
  'SECURITY_TOKEN_MAX_AGE', 'SECURITY_REFRESH_TOKEN_MAX_AGE', 'SECURITY_REFRESH_TOKEN_MAX_IDLE',
  'SECURITY_REFRESH_GRACE_PERIOD', 'SECURITY_FRESHNESS', 'SECURITY_RESET_PASSWORD_WITHIN',
  'SECURITY_CONFIRM_EMAIL_WITHIN', 'PERMANENT_SESSION_LIFETIME', 'SECURITY_LOCKOUT_WINDOW',
  'SECURITY_LOCKOUT_DURATION', 'AUTH_CACHE_TTL', 'SECURITY_CHANGE_EMAIL_WITHIN', 'OUTBOX_POLL_INTERVAL',
  'OUTBOX_RETRY_BACKOFF', 'OUTBOX_LEASE', 'OUTBOX_RETENTION', 'SECURITY_LOCKOUT_MAX_DURATION',
  'SECURITY_TWO_FACTOR_TOKEN_WITHIN', 'IDEMPOTENCY_KEY_TTL', 'SECURITY_WAN_CHALLENGE_TIMEOUT', 'SECURITY_US_TOKEN_VALIDITY',
  'USERS_PAGE_CACHE_TTL', 'SECURITY_OAUTH_STATE_WITHIN',
] as const;
const RATE_KEYS = ['RATE_LIMIT_AUTH', 'RATE_LIMIT_REFRESH', 'RATE_LIMIT_TOTP', 'RATE_LIMIT_GLOBAL', 'SECURITY_US_SEND_LIMIT'] as const;
const LIST_KEYS = [
  'SECRET_KEY_FALLBACKS', 'SECURITY_PASSWORD_SALT_FALLBACKS', 'SECURITY_TWO_FACTOR_REQUIRED_ROLES', 'CORS_ORIGINS',
  'SECURITY_WAN_ALLOWED_ORIGINS', 'SECURITY_OAUTH_ALLOWED_REDIRECTS',
] as const;

type DurationKey = (typeof DURATION_KEYS)[number];
type RateKey = (typeof RATE_KEYS)[number];
type ListKey = (typeof LIST_KEYS)[number];

export interface RateLimit { max: number; windowSeconds: number }

// ---- OpenID Connect sign-in (issue 19) ----
const ProviderName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$' });
export const OAuthProviderSchema = Type.Object({
  name: ProviderName,
  issuer: Type.String({ pattern: '^https?://[^\\s]+$' }),
  client_id: Type.String({ minLength: 1 }),
  client_secret: Type.Optional(Type.String()),
  scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[!#-\\[\\]-~]+$' }))),
  display_name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** the provider enforces MFA for its users: staff forced into 2FA skip the local second factor */
  trusted_mfa: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export interface OAuthProvider {
  name: string; issuer: string; clientId: string; clientSecret: string | null; scopes: readonly string[];
  displayName: string; trustedMfa: boolean;
}

function parseOAuthProviders(raw: string, allowHttp: boolean): OAuthProvider[] {
  let list: unknown;
  try {
    list = JSON.parse(raw);
  } catch {
    throw new ConfigError('SECURITY_OAUTH_PROVIDERS: must be a JSON array of providers');
  }
  const Schema = Type.Array(OAuthProviderSchema);
  if (!Value.Check(Schema, list)) {
    const first = Value.Errors(Schema, list)[0]!;
    throw new ConfigError(`SECURITY_OAUTH_PROVIDERS: ${first.instancePath || '(list)'} ${first.message}`);
  }
  const seen = new Set<string>();
  return list.map((p) => {
    if (seen.has(p.name)) throw new ConfigError(`SECURITY_OAUTH_PROVIDERS: provider name "${p.name}" appears twice`);
    seen.add(p.name);
    if (p.issuer.startsWith('http:') && !allowHttp) {
      throw new ConfigError(`SECURITY_OAUTH_PROVIDERS: issuer of "${p.name}" must be https (SECURITY_OAUTH_ALLOW_HTTP_ISSUERS is for loopback tests)`);
    }
    const scopes = p.scopes ?? ['openid', 'email', 'profile'];
    if (!scopes.includes('openid')) throw new ConfigError(`SECURITY_OAUTH_PROVIDERS: scopes of "${p.name}" must include openid`);
    return {
      name: p.name, issuer: p.issuer, clientId: p.client_id, clientSecret: p.client_secret || null, scopes,
      displayName: p.display_name ?? p.name, trustedMfa: p.trusted_mfa ?? false,
    };
  });
}

function parseAllowedRedirects(list: string[]): string[] {
  for (const entry of list) {
    let u: URL;
    try {
      u = new URL(entry);
    } catch {
      throw new ConfigError(`SECURITY_OAUTH_ALLOWED_REDIRECTS: "${entry}" is not an absolute URL, origin or scheme (countyapp:)`);
    }
    if (['javascript:', 'data:', 'file:', 'vbscript:', 'blob:'].includes(u.protocol)) {
      throw new ConfigError(`SECURITY_OAUTH_ALLOWED_REDIRECTS: scheme ${u.protocol} is not allowed`);
    }
  }
  return list;
}
// ---- end OpenID Connect ----

/** The typed configuration: durations in seconds, rates parsed, lists split. */
export type Config = Readonly<
  Omit<Env, DurationKey | RateKey | ListKey | 'TRUST_PROXY' | 'SECURITY_OAUTH_PROVIDERS'> &
  Record<DurationKey, number> &
  Record<RateKey, RateLimit> &
  Record<ListKey, readonly string[]> & {
    /** false, true, a hop count, or proxy addresses / CIDR ranges (security/client-address.ts trustProxyOption) */
    TRUST_PROXY: boolean | number | readonly string[];
    SECURITY_OAUTH_PROVIDERS: readonly OAuthProvider[];
    /** true when SECRET_KEY / SECURITY_PASSWORD_SALT are the built-in development values */
    usingDevSecrets: boolean;
  }
>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

export function parseDuration(value: string): number {
  const m = /^([0-9]+)([smhd]?)$/.exec(value);
  if (!m) throw new ConfigError(`invalid duration "${value}"`);
  return Number(m[1]) * UNIT_SECONDS[m[2] || 's']!;
}

function parseRate(value: string): RateLimit {
  const [max, window] = value.split('/') as [string, string];
  return { max: Number(max), windowSeconds: parseDuration(window) };
}

function parseList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

const NAMED_PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether an entry of TRUST_PROXY's list is an address, a CIDR range or one of proxy-addr's names. */
export function isProxyAddressEntry(entry: string): boolean {
  if (NAMED_PROXY_RANGES.has(entry)) return true;
  const [addr, prefix, extra] = entry.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (!family) return false;
  if (prefix === undefined) return true;
  if (!/^[0-9]{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * TRUST_PROXY: empty or "false" (trust no proxy), "true" (trust every hop: only behind a proxy that
 * overwrites X-Forwarded-For), a hop count N (the client is the Nth address of X-Forwarded-For from
 * the right), or a comma-separated list of proxy addresses / CIDR ranges (also loopback, linklocal,
 * uniquelocal). Anything else refuses to start.
 */
function parseTrustProxy(raw: string): boolean | number | string[] {
  const value = raw.trim();
  if (value === '' || value === 'false') return false;
  if (value === 'true') return true;
  if (/^[0-9]+$/.test(value)) {
    const hops = Number(value);
    if (hops > 32) throw new ConfigError(`TRUST_PROXY: a hop count must be 0–32 (got ${value})`);
    return hops === 0 ? false : hops;
  }
  const entries = value.split(',').map((e) => e.trim());
  const bad = entries.filter((e) => !isProxyAddressEntry(e));
  if (bad.length) {
    throw new ConfigError(`TRUST_PROXY: expected true, false, a hop count, or a comma-separated list of proxy addresses / CIDR ranges (got ${JSON.stringify(bad[0])})`);
  }
  return entries;
}

function coerce(key: string, raw: string): unknown {
  const schema = (EnvSchema.properties as unknown as Record<string, { type?: string }>)[key];
  if (!schema) return raw;
  if (schema.type === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off', ''].includes(v)) return false;
    return raw;
  }
  if (schema.type === 'integer') return /^-?[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  return raw;
}

/** Reads .env (when present) under the real environment; the real environment always wins. */
export function readEnvironment(dotenvPath = '.env'): Record<string, string | undefined> {
  const fromFile = existsSync(dotenvPath) ? parseDotenv(readFileSync(dotenvPath)) : {};
  return { ...fromFile, ...process.env };
}

/**
 * Builds the typed Config. Only keys the schema declares are read from `env`; a value that is set
 * always wins over the profile default. Throws ConfigError naming the first bad key.
 */
export function loadConfig(env: Record<string, string | undefined> = readEnvironment()): Config {
  const profile = (env.NODE_ENV ?? 'development') as Profile;
  if (!['development', 'test', 'production'].includes(profile)) {
    throw new ConfigError(`NODE_ENV: must be one of development, test, production (got "${profile}")`);
  }
  const merged: Record<string, unknown> = { ...BASE_DEFAULTS, ...PROFILE_DEFAULTS[profile], NODE_ENV: profile };
  for (const key of Object.keys(EnvSchema.properties)) {
    const raw = env[key];
    if (raw !== undefined && key !== 'NODE_ENV') merged[key] = coerce(key, raw);
  }
  if (!Value.Check(EnvSchema, merged)) {
    const first = Value.Errors(EnvSchema, merged)[0]!;
    const key = first.instancePath.replace(/^\//, '') || '(config)';
    throw new ConfigError(`${key}: ${first.message} (got ${JSON.stringify(merged[key])})`);
  }
  const e = merged as Env;
  if (profile === 'production') {
    if (!e.SECRET_KEY) throw new ConfigError('SECRET_KEY: required in production (32 or more random characters)');
    if (!e.SECURITY_PASSWORD_SALT) throw new ConfigError('SECURITY_PASSWORD_SALT: required in production (32 or more random characters)');
    const secrets: [string, string][] = [
      ['SECRET_KEY', e.SECRET_KEY],
      ...parseList(e.SECRET_KEY_FALLBACKS).map((v, i): [string, string] => [`SECRET_KEY_FALLBACKS (entry ${i + 1})`, v]),
      ['SECURITY_PASSWORD_SALT', e.SECURITY_PASSWORD_SALT],
    ];
    for (const [key, value] of secrets) {
      const problem = productionSecretProblem(value);
      if (problem) throw new ConfigError(`${key}: ${problem}`);
    }
  }
  if (e.SECRET_KEY.length < 16) throw new ConfigError('SECRET_KEY: must be at least 16 characters');
  if (e.SECURITY_PASSWORD_SALT.length < 8) throw new ConfigError('SECURITY_PASSWORD_SALT: must be at least 8 characters');
  if (e.SESSION_COOKIE_SAMESITE === 'None' && !e.SESSION_COOKIE_SECURE) {
    throw new ConfigError('SESSION_COOKIE_SAMESITE: None requires SESSION_COOKIE_SECURE=true');
  }
  for (const key of ['SECURITY_RESET_URL_TEMPLATE', 'SECURITY_CONFIRM_URL_TEMPLATE', 'SECURITY_CHANGE_EMAIL_URL_TEMPLATE'] as const) {
    if (e[key] && !e[key].includes('{token}')) throw new ConfigError(`${key}: must contain the {token} placeholder`);
  }
  if (!/^https?:\/\/[^\s/?#]+/.test(e.SECURITY_LINK_BASE_URL)) throw new ConfigError('SECURITY_LINK_BASE_URL: must be an http(s) URL');
  if (parseDuration(e.OUTBOX_POLL_INTERVAL) < 1 || parseDuration(e.OUTBOX_LEASE) < 3) {
    throw new ConfigError('OUTBOX_POLL_INTERVAL / OUTBOX_LEASE: at least 1 s / 3 s');
  }
  if (parseDuration(e.IDEMPOTENCY_KEY_TTL) < 60) throw new ConfigError('IDEMPOTENCY_KEY_TTL: at least 60 s');
  if (parseDuration(e.SECURITY_LOCKOUT_MAX_DURATION) < parseDuration(e.SECURITY_LOCKOUT_DURATION)) {
    throw new ConfigError('SECURITY_LOCKOUT_MAX_DURATION: must be at least SECURITY_LOCKOUT_DURATION');
  }
  const tfWithin = parseDuration(e.SECURITY_TWO_FACTOR_TOKEN_WITHIN);
  if (tfWithin < 30 || tfWithin > 3600) throw new ConfigError('SECURITY_TWO_FACTOR_TOKEN_WITHIN: between 30 s and 1 h');
  for (const k of RATE_KEYS) {
    const r = parseRate(e[k]);
    if (r.max < 1 || r.windowSeconds < 1) throw new ConfigError(`${k}: needs at least 1 request per at least 1 s`);
  }
  // passwordless (issue 18)
  if (e.SECURITY_US_SIGNIN_URL_TEMPLATE && !e.SECURITY_US_SIGNIN_URL_TEMPLATE.includes('{token}')) {
    throw new ConfigError('SECURITY_US_SIGNIN_URL_TEMPLATE: must contain the {token} placeholder');
  }
  const wanTimeout = parseDuration(e.SECURITY_WAN_CHALLENGE_TIMEOUT);
  if (wanTimeout < 10 || wanTimeout > 600) throw new ConfigError('SECURITY_WAN_CHALLENGE_TIMEOUT: between 10 s and 10 min');
  const usValidity = parseDuration(e.SECURITY_US_TOKEN_VALIDITY);
  if (usValidity < 60 || usValidity > 3600) throw new ConfigError('SECURITY_US_TOKEN_VALIDITY: between 1 min and 1 h');
  for (const origin of parseList(e.SECURITY_WAN_ALLOWED_ORIGINS)) {
    let url: URL | null = null;
    try {
      url = new URL(origin);
    } catch {
      url = null;
    }
    if (!url || url.origin !== origin || !(url.protocol === 'https:' || (url.protocol === 'http:' && /^(localhost|127\.0\.0\.1)$/.test(url.hostname)))) {
      throw new ConfigError(`SECURITY_WAN_ALLOWED_ORIGINS: "${origin}" must be an origin (scheme://host[:port]), https except on localhost`);
    }
    if (url.hostname !== e.SECURITY_WAN_RP_ID && !url.hostname.endsWith(`.${e.SECURITY_WAN_RP_ID}`)) {
      throw new ConfigError(`SECURITY_WAN_ALLOWED_ORIGINS: "${origin}" is not on SECURITY_WAN_RP_ID (${e.SECURITY_WAN_RP_ID}) or a subdomain of it`);
    }
  }
  const corsOrigins = parseList(e.CORS_ORIGINS);
  if (corsOrigins.includes('*')) throw new ConfigError('CORS_ORIGINS: "*" is not allowed with credentialed CORS; list the origins');

  const out: Record<string, unknown> = { ...e };
  for (const k of DURATION_KEYS) out[k] = parseDuration(e[k]);
  for (const k of RATE_KEYS) out[k] = parseRate(e[k]);
  for (const k of LIST_KEYS) out[k] = parseList(e[k]);
  out.TRUST_PROXY = parseTrustProxy(e.TRUST_PROXY);
  if (profile === 'production' && e.SECURITY_OAUTH_ALLOW_HTTP_ISSUERS) throw new ConfigError('SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: not allowed in production');
  out.SECURITY_OAUTH_PROVIDERS = parseOAuthProviders(e.SECURITY_OAUTH_PROVIDERS, e.SECURITY_OAUTH_ALLOW_HTTP_ISSUERS);
  out.SECURITY_OAUTH_ALLOWED_REDIRECTS = parseAllowedRedirects(parseList(e.SECURITY_OAUTH_ALLOWED_REDIRECTS));
  if (e.SECURITY_OAUTH_CALLBACK_BASE_URL && !/^https?:\/\/[^\s/?#]+/.test(e.SECURITY_OAUTH_CALLBACK_BASE_URL)) {
    throw new ConfigError('SECURITY_OAUTH_CALLBACK_BASE_URL: must be an http(s) URL');
  }
  out.usingDevSecrets = e.SECRET_KEY === DEV_SECRET_KEY || e.SECURITY_PASSWORD_SALT === DEV_PASSWORD_SALT;
  return Object.freeze(out) as unknown as Config;
}

/** A test/dev convenience: loadConfig over a given env with NODE_ENV=test unless stated. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ NODE_ENV: 'test', ...overrides });
}
