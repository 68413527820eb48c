// Passwordless sign-in (src/security/webauthn.ts, src/security/unified-signin.ts).
//
// webauthn_credentials: registered passkeys and security keys. Public keys only (COSE, base64url);
// the private key never leaves the authenticator. `usage` is "first" (signs in on its own) or
// "secondary" (completes a two-factor login). `sign_count` only moves forward.
//
// webauthn_challenges: one row per ceremony the server started (registration, sign-in,
// re-authentication), named to the client by a signed `wan_state`. It carries what the ceremony is
// bound to (the session or pending two-factor login that asked, the account state), expires after
// SECURITY_WAN_CHALLENGE_TIMEOUT and is consumed by the first answer, right or wrong.
//
// us_signin_codes: one row per "email me a code" request, keyed by the address as typed (normalised)
// whether or not an account has it, so requests for known and unknown addresses do the same work.
// The code and the link token are derived from the row id with a key from SECRET_KEY at delivery;
// the row holds a keyed hash of the code only. Used once; dies after a few wrong codes.
import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { sessions, users } from './index.js';

export const WAN_USAGES = ['first', 'secondary'] as const;
export type WanUsage = (typeof WAN_USAGES)[number];
export const WAN_PURPOSES = ['register', 'signin', 'verify'] as const;
export type WanPurpose = (typeof WAN_PURPOSES)[number];

export const webauthnCredentials = pgTable('webauthn_credentials', {
  id: uuid('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  // the authenticator's credential id (base64url), globally unique
  credentialId: text('credential_id').notNull(),
  publicKey: text('public_key').notNull(),
  signCount: bigint('sign_count', { mode: 'number' }).notNull().default(0),
  transports: text('transports').array().notNull().default(sql`'{}'::text[]`),
  usage: text('usage').$type<WanUsage>().notNull(),
  name: text('name').notNull(),
  aaguid: text('aaguid'),
  backupEligible: boolean('backup_eligible').notNull().default(false),
  backedUp: boolean('backed_up').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
}, (t) => [
  uniqueIndex('webauthn_credentials_credential_id_idx').on(t.credentialId),
  uniqueIndex('webauthn_credentials_user_name_idx').on(t.userId, sql`lower(${t.name})`),
]);

export const webauthnChallenges = pgTable('webauthn_challenges', {
  id: uuid('id').primaryKey(),
  purpose: text('purpose').$type<WanPurpose>().notNull(),
  challenge: text('challenge').notNull(),
  // the account the ceremony is for: the signed-in user (register, verify), the pending two-factor
  // login's user, or the identity typed at sign-in; null for a discoverable sign-in
  userId: integer('user_id').references(() => users.id, { onDelete: 'cascade' }),
  fsUniquifier: text('fs_uniquifier'),
  // the session that asked (register, verify): only it may answer
  sessionId: uuid('session_id').references(() => sessions.id, { onDelete: 'cascade' }),
  // the pending two-factor login (two_factor_challenges.id) a second-factor sign-in completes
  tfChallengeId: uuid('tf_challenge_id'),
  // register only: the name and usage the new credential gets
  name: text('name'),
  usage: text('usage').$type<WanUsage>(),
  remember: boolean('remember').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('webauthn_challenges_expires_at_idx').on(t.expiresAt)]);

export const usSigninCodes = pgTable('us_signin_codes', {
  id: uuid('id').primaryKey(),
  // lockoutKey(identity): lower-cased, normalised
  email: text('email').notNull(),
  codeHash: text('code_hash').notNull(),
  attempts: integer('attempts').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('us_signin_codes_email_idx').on(t.email, t.expiresAt), index('us_signin_codes_expires_at_idx').on(t.expiresAt)]);

export type WebauthnCredentialRow = typeof webauthnCredentials.$inferSelect;
export type WebauthnChallengeRow = typeof webauthnChallenges.$inferSelect;
export type UsSigninCodeRow = typeof usSigninCodes.$inferSelect;
