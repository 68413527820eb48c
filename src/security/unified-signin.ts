// Unified sign-in by email (Flask-Security's us-signin): a 6-digit one-time code and a one-time
// sign-in link, mailed together. Framework-free: the routes in routes/auth/passwordless.ts call these.
//
// Request (POST /us-signin/send-code) — the same work for every well-formed address, whether or not
// an account has it: count the request against the address's send budget (SECURITY_US_SEND_LIMIT,
// one atomic upsert in rate_limits, so parallel requests on any instance share it), insert a code row
// keyed by the address, and queue the message in the same transaction. The account is looked up
// only at delivery (security/account-mail.ts), where an unknown or disabled address is skipped.
//
// Secrets: the code and the link token are derived from the row id with keys derived from SECRET_KEY
// (the code: HMAC → 6 digits; the link: id + MAC), so neither the outbox row nor the code row holds
// anything usable; the code row keeps a keyed hash of the code to compare. Both die with the row:
// used once (either of them), SECURITY_US_TOKEN_VALIDITY, or US_MAX_ATTEMPTS wrong codes.
//
// Sign-in (POST /us-signin with the code) checks the address's lockout first and counts every wrong
// code as a failed login, like a wrong password; unknown address, wrong, used and expired codes give
// the same 401 INVALID_CREDENTIALS. The link (POST /us-signin/link) is checked by GET
// /us-signin/link/{token} without being consumed (mail scanners follow links).
import { and, desc, eq, gt, isNull, lt, sql } from 'drizzle-orm';
import { createHmac, randomUUID } from 'node:crypto';
import { users, usSigninCodes, type UsSigninCodeRow } from '../db/schema/index.js';
import type { SecurityContext } from './context.js';
import { findUser, normalizeEmail, type UserRecord } from './datastore.js';
import { countMailSend, lockoutKey } from './lockout.js';
import { beginLogin, type ClientInfo, type LoginOutcome } from './login.js';
import { enqueueMail } from './outbox.js';
import { audit, NO_SOURCE, type AuditSource } from './audit.js';
import { linkExpired, linkInvalid } from './links.js';
import { safeEqual } from './tokens.js';
import { purposeKeyBytes, type KeyPurpose } from './keyring.js';

/** Wrong codes one request's code survives. */
export const US_MAX_ATTEMPTS = 5;
/** Live codes of one address considered at sign-in (newest first). */
const LIVE_CODES = 5;

const keys = (ctx: SecurityContext, purpose: KeyPurpose): Buffer[] => purposeKeyBytes(ctx.config, purpose);
const mac = (key: Buffer, value: string) => createHmac('sha256', key).update(value).digest('base64url');

/** The 6-digit code of a row (under each key; the first is the current one). */
function codesFor(ctx: SecurityContext, id: string): string[] {
  return keys(ctx, 'us-code').map((k) => {
    const n = createHmac('sha256', k).update(id).digest().readUInt32BE(0) % 1_000_000;
    return String(n).padStart(6, '0');
  });
}
const codeHash = (ctx: SecurityContext, id: string, code: string, key = keys(ctx, 'us-code-hash')[0]!) => mac(key, `${id}:${code}`);

function linkToken(ctx: SecurityContext, id: string): string {
  return `${id}.${mac(keys(ctx, 'us-link')[0]!, id)}`;
}
const LINK_RE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;
function linkId(ctx: SecurityContext, token: string): string | null {
  const m = LINK_RE.exec(token);
  if (!m) return null;
  return keys(ctx, 'us-link').some((k) => safeEqual(mac(k, m[1]!), m[2]!)) ? m[1]! : null;
}

/** Where the sign-in link points: the template (an SPA route or an app scheme) or the API's GET check. */
export function signinLinkUrl(ctx: SecurityContext, token: string): string {
  const { config } = ctx;
  const t = encodeURIComponent(token);
  if (config.SECURITY_US_SIGNIN_URL_TEMPLATE) return config.SECURITY_US_SIGNIN_URL_TEMPLATE.split('{token}').join(t);
  return `${config.SECURITY_LINK_BASE_URL.replace(/\/+$/, '')}${config.SECURITY_URL_PREFIX}/us-signin/link/${t}`;
}

/** POST /us-signin/send-code. */
export async function requestSigninCode(ctx: SecurityContext, identity: string, source: AuditSource = NO_SOURCE): Promise<void> {
  const recipient = normalizeEmail(identity);
  const key = lockoutKey(identity);
  await countMailSend(ctx, `us-send:${key}`);
  const id = randomUUID();
  const now = ctx.clock.now();
  await ctx.db.transaction(async (tx) => {
    await tx.insert(usSigninCodes).values({
      id, email: key, codeHash: codeHash(ctx, id, codesFor(ctx, id)[0]!), attempts: 0, createdAt: now,
      expiresAt: new Date(now.getTime() + ctx.config.SECURITY_US_TOKEN_VALIDITY * 1000),
    });
    await enqueueMail(ctx, tx, { template: 'us_signin', recipient, payload: { code_id: id } });
    await audit(ctx, { ...source, action: 'us.code_requested', details: { email: key } }, tx);
  });
}

/** What the message carries, rendered at delivery; null when the row is no longer usable. */
export async function signinMailContent(ctx: SecurityContext, codeId: unknown): Promise<{ code: string; link: string } | null> {
  if (typeof codeId !== 'string' || !/^[0-9a-f-]{36}$/.test(codeId)) return null;
  const now = ctx.clock.now();
  const [row] = await ctx.db.select({ id: usSigninCodes.id }).from(usSigninCodes)
    .where(and(eq(usSigninCodes.id, codeId), isNull(usSigninCodes.usedAt), gt(usSigninCodes.expiresAt, now))).limit(1);
  if (!row) return null;
  return { code: codesFor(ctx, row.id)[0]!, link: signinLinkUrl(ctx, linkToken(ctx, row.id)) };
}

const CODE_RE = /^[0-9]{6}$/;

/**
 * The code check (the pipeline's verify callback): the same work whether or not the address has an
 * account. A right code is consumed (once, atomically); a wrong one costs every live code of the
 * address an attempt. A code reaching the mailbox proves the address: an unconfirmed account is
 * confirmed by it (as by a reset link).
 */
async function checkCode(ctx: SecurityContext, identity: string, passcode: string, user: UserRecord | null): Promise<boolean> {
  const key = lockoutKey(identity);
  const now = ctx.clock.now();
  const code = passcode.replace(/[\s-]/g, '');
  const live = await ctx.db.select().from(usSigninCodes).where(and(
    eq(usSigninCodes.email, key), isNull(usSigninCodes.usedAt), gt(usSigninCodes.expiresAt, now), lt(usSigninCodes.attempts, US_MAX_ATTEMPTS),
  )).orderBy(desc(usSigninCodes.createdAt)).limit(LIVE_CODES);
  const hashKeys = keys(ctx, 'us-code-hash');
  const match: UsSigninCodeRow | undefined = CODE_RE.test(code)
    ? live.find((r) => hashKeys.some((k) => safeEqual(codeHash(ctx, r.id, code, k), r.codeHash)))
    : undefined;
  if (match && user) {
    const used = await ctx.db.update(usSigninCodes).set({ usedAt: now })
      .where(and(eq(usSigninCodes.id, match.id), isNull(usSigninCodes.usedAt), gt(usSigninCodes.expiresAt, now))).returning({ id: usSigninCodes.id });
    if (used.length) {
      await provesAddress(ctx, user);
      return true;
    }
  }
  if (live.length) {
    await ctx.db.update(usSigninCodes).set({ attempts: sql`${usSigninCodes.attempts} + 1` })
      .where(and(eq(usSigninCodes.email, key), isNull(usSigninCodes.usedAt), gt(usSigninCodes.expiresAt, now)));
  }
  return false;
}

async function provesAddress(ctx: SecurityContext, user: UserRecord): Promise<void> {
  if (user.confirmedAt) return;
  const now = ctx.clock.now();
  await ctx.db.update(users).set({ confirmedAt: sql`coalesce(${users.confirmedAt}, ${now.toISOString()}::timestamptz)`, updatedAt: now })
    .where(eq(users.id, user.id));
  user.confirmedAt = now;
  await audit(ctx, { action: 'email.confirmed', actorId: user.id, targetUserId: user.id, details: { method: 'email_code' } });
}

export interface CodeLoginInput { identity: string; passcode: string; remember: boolean; client: ClientInfo; source?: AuditSource }

/**
 * POST /us-signin: the code, through the login pipeline (lockout first, every wrong code a counted
 * failure, active/confirmed rules, 2FA still applies, then the session). Unknown address, wrong,
 * used and expired codes: the same 401 INVALID_CREDENTIALS.
 */
export function emailCodeLogin(ctx: SecurityContext, input: CodeLoginInput): Promise<LoginOutcome> {
  return beginLogin(ctx, {
    identify: { email: input.identity }, method: 'email_code', remember: input.remember, client: input.client, source: input.source,
    verify: (user) => checkCode(ctx, input.identity, input.passcode, user),
  });
}

async function linkRow(ctx: SecurityContext, token: string): Promise<UsSigninCodeRow> {
  const id = linkId(ctx, token);
  if (!id) throw linkInvalid();
  const [row] = await ctx.db.select().from(usSigninCodes).where(eq(usSigninCodes.id, id)).limit(1);
  if (!row || row.usedAt || row.attempts >= US_MAX_ATTEMPTS) throw linkInvalid();
  if (row.expiresAt.getTime() <= ctx.clock.now().getTime()) throw linkExpired();
  return row;
}

/** GET /us-signin/link/{token}: checks the link, never consumes it. */
export async function checkSigninLink(ctx: SecurityContext, token: string): Promise<void> {
  const row = await linkRow(ctx, token);
  const user = await findUser(ctx.db, { email: row.email });
  if (!user) throw linkInvalid();
}

export interface LinkLoginInput { token: string; remember: boolean; client: ClientInfo; source?: AuditSource }

/**
 * POST /us-signin/link: consumes the link (and the code mailed with it) inside the pipeline's verify
 * step; 400 LINK_INVALID / LINK_EXPIRED before it for a link that cannot be good.
 */
export async function emailLinkLogin(ctx: SecurityContext, input: LinkLoginInput): Promise<LoginOutcome> {
  const row = await linkRow(ctx, input.token);
  return beginLogin(ctx, {
    identify: { email: row.email }, method: 'email_link', remember: input.remember, client: input.client, source: input.source,
    wrong: linkInvalid,
    verify: async (user) => {
      const now = ctx.clock.now();
      const used = await ctx.db.update(usSigninCodes).set({ usedAt: now })
        .where(and(eq(usSigninCodes.id, row.id), isNull(usSigninCodes.usedAt), gt(usSigninCodes.expiresAt, now))).returning({ id: usSigninCodes.id });
      if (!used.length || !user) return false;
      await provesAddress(ctx, user);
      return true;
    },
  });
}
