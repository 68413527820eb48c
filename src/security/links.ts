// One-time email links (confirm, reset, change email). Stateless and never stored:
//
//   token = base64url(JSON claims) "." base64url(HMAC-SHA256(key(purpose), base64url(JSON claims)))
//
// The key is derived from SECRET_KEY per purpose, so a token of one purpose never passes as another
// (SECRET_KEY_FALLBACKS still verify). The claims name the user, the purpose, the issue time and a
// fingerprint of the account state the link is bound to (email, password hash, fs_uniquifier): using the link
// changes that state, and so does any password change, which kills the link. Hence single-use
// without a table of used tokens. Expiry is checked against the injected clock.
import { createHmac } from 'node:crypto';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { UserRow } from '../db/schema/index.js';
import { safeEqual } from './tokens.js';
import { purposeKeyBytes } from './keyring.js';

export const LINK_PURPOSES = ['confirm', 'reset', 'change_email'] as const;
export type LinkPurpose = (typeof LINK_PURPOSES)[number];

export interface LinkClaims {
  /** purpose */
  p: LinkPurpose;
  /** user id */
  u: number;
  /** issued at, seconds since the epoch */
  t: number;
  /** fingerprint of the account state the link is bound to */
  f: string;
  /** the new address (change_email only) */
  e?: string;
}

/** Tolerated clock skew for links issued by another instance, seconds. */
const SKEW = 60;

export const linkInvalid = () => new AppError(400, 'LINK_INVALID', 'The link is invalid or has already been used');
export const linkExpired = () => new AppError(400, 'LINK_EXPIRED', 'The link has expired; ask for a new one');

/** The signing key first, then the keys of SECRET_KEY_FALLBACKS (verification only). */
const keysFor = (config: Config, purpose: LinkPurpose): Buffer[] => purposeKeyBytes(config, `link/${purpose}`);

/**
 * The state a link of this purpose is bound to: when any of it changes, the link dies. Keyed like
 * the MAC (the signing key; on verification any key of the rotation), so it reveals nothing. Every
 * purpose includes per-account state the key alone does not give (the password hash and the
 * fs_uniquifier, neither ever sent to a client), so a leaked SECRET_KEY does not let anyone confirm
 * an address, or move an account to one, without that state.
 */
export function linkFingerprint(config: Config, purpose: LinkPurpose, user: Pick<UserRow, 'email' | 'password' | 'fsUniquifier'>,
  key: Buffer = keysFor(config, purpose)[0]!): string {
  const parts = purpose === 'confirm'
    // confirming is idempotent; the link dies when the address changes, or with logout-all / reset-access
    ? [user.email.toLowerCase(), user.password, user.fsUniquifier]
    : purpose === 'reset'
      ? [user.email.toLowerCase(), user.password]
      // a pending address change also dies with logout-all / reset-access (a new fs_uniquifier)
      : [user.email.toLowerCase(), user.password, user.fsUniquifier];
  return createHmac('sha256', key).update(`fp\0${parts.join('\0')}`).digest('base64url').slice(0, 22);
}

export function linkClaims(config: Config, purpose: LinkPurpose, user: UserRow, issuedAt: Date, extra: { newEmail?: string } = {}): LinkClaims {
  const claims: LinkClaims = { p: purpose, u: user.id, t: Math.floor(issuedAt.getTime() / 1000), f: linkFingerprint(config, purpose, user) };
  if (extra.newEmail !== undefined) claims.e = extra.newEmail;
  return claims;
}

export function signLink(config: Config, claims: LinkClaims): string {
  const body = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
  const mac = createHmac('sha256', keysFor(config, claims.p)[0]!).update(body).digest('base64url');
  return `${body}.${mac}`;
}

const TOKEN_RE = /^([A-Za-z0-9_-]{16,1000})\.([A-Za-z0-9_-]{43})$/;

/**
 * Checks signature, purpose and age. The caller then loads the user and compares the fingerprint
 * (checkFingerprint), inside the transaction that consumes the link when it consumes it.
 */
export function verifyLink(config: Config, purpose: LinkPurpose, token: string, now: Date, withinSeconds: number): LinkClaims {
  const m = TOKEN_RE.exec(token);
  if (!m) throw linkInvalid();
  const [, body, mac] = m as unknown as [string, string, string];
  const ok = keysFor(config, purpose).some((k) => safeEqual(createHmac('sha256', k).update(body).digest('base64url'), mac));
  if (!ok) throw linkInvalid();
  let claims: LinkClaims;
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as LinkClaims;
  } catch {
    throw linkInvalid();
  }
  if (!claims || claims.p !== purpose || !Number.isSafeInteger(claims.u) || claims.u < 1 || !Number.isSafeInteger(claims.t) ||
    typeof claims.f !== 'string' || (purpose === 'change_email' ? typeof claims.e !== 'string' : claims.e !== undefined)) {
    throw linkInvalid();
  }
  const nowSeconds = now.getTime() / 1000;
  if (claims.t > nowSeconds + SKEW) throw linkInvalid();
  if (nowSeconds - claims.t > withinSeconds) throw linkExpired();
  return claims;
}

export function fingerprintMatches(config: Config, claims: LinkClaims, user: UserRow): boolean {
  if (user.id !== claims.u || typeof claims.f !== 'string') return false;
  return keysFor(config, claims.p).some((k) => safeEqual(linkFingerprint(config, claims.p, user, k), claims.f));
}

const LINK_PATHS: Record<LinkPurpose, string> = { confirm: 'confirm', reset: 'reset', change_email: 'change-email' };

/**
 * The URL a person opens: the per-link template when configured (an SPA route or an app scheme),
 * else SECURITY_LINK_BASE_URL + the API path. Never derived from a request's Host header.
 */
export function linkUrl(config: Config, purpose: LinkPurpose, token: string): string {
  const template = {
    confirm: config.SECURITY_CONFIRM_URL_TEMPLATE,
    reset: config.SECURITY_RESET_URL_TEMPLATE,
    change_email: config.SECURITY_CHANGE_EMAIL_URL_TEMPLATE,
  }[purpose];
  const t = encodeURIComponent(token);
  if (template) return template.split('{token}').join(t);
  return `${config.SECURITY_LINK_BASE_URL.replace(/\/+$/, '')}${config.SECURITY_URL_PREFIX}/${LINK_PATHS[purpose]}/${t}`;
}

/** True when `url` is one linkUrl (or the sign-in link) can produce: under the link base, or a configured template's shape. */
export function isConfiguredLink(config: Config, url: string): boolean {
  const templates = [config.SECURITY_CONFIRM_URL_TEMPLATE, config.SECURITY_RESET_URL_TEMPLATE, config.SECURITY_CHANGE_EMAIL_URL_TEMPLATE,
    config.SECURITY_US_SIGNIN_URL_TEMPLATE]
    .filter((t): t is string => typeof t === 'string' && t.includes('{token}'));
  const TOKEN = '[A-Za-z0-9%._~-]+';
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const t of templates) {
    if (new RegExp(`^${t.split('{token}').map(escape).join(TOKEN)}$`).test(url)) return true;
  }
  const base = `${config.SECURITY_LINK_BASE_URL.replace(/\/+$/, '')}${config.SECURITY_URL_PREFIX}/`;
  // the sign-in link of unified sign-in (security/unified-signin.ts signinLinkUrl) sits beside them
  const paths = [...Object.values(LINK_PATHS), 'us-signin/link'];
  return url.startsWith(base) && new RegExp(`^(${paths.join('|')})/${TOKEN}$`).test(url.slice(base.length));
}

export function linkLifetime(config: Config, purpose: LinkPurpose): number {
  return purpose === 'confirm' ? config.SECURITY_CONFIRM_EMAIL_WITHIN
    : purpose === 'reset' ? config.SECURITY_RESET_PASSWORD_WITHIN
      : config.SECURITY_CHANGE_EMAIL_WITHIN;
}
