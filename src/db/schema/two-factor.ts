// Pending two-factor logins. POST /login answers a tf_token naming one of these rows (signed, so a
// guessed id is useless); the row carries what the token is bound to (user, fs_uniquifier, purpose),
// its expiry and the server-side count of wrong codes, so every instance sees the same attempts.
import { boolean, index, integer, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { users } from './index.js';

export const TF_PURPOSES = ['login', 'setup'] as const;
export type TfPurpose = (typeof TF_PURPOSES)[number];

export const twoFactorChallenges = pgTable('two_factor_challenges', {
  id: uuid('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  // 'login': a code completes the login; 'setup': the account must set up 2FA first (required roles).
  purpose: text('purpose').$type<TfPurpose>().notNull(),
  // The account state the token is bound to: a password reset, logout-all or reset-access kills it.
  fsUniquifier: text('fs_uniquifier').notNull(),
  remember: boolean('remember').notNull().default(false),
  // the first factor that opened the pending login ('password', 'email_code', 'email_link', 'oidc',
  // 'passkey'): the login the second factor completes is audited under it (null: rows from before)
  firstFactor: text('first_factor'),
  attempts: integer('attempts').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('two_factor_challenges_user_id_idx').on(t.userId), index('two_factor_challenges_expires_at_idx').on(t.expiresAt)]);

export type TwoFactorChallengeRow = typeof twoFactorChallenges.$inferSelect;

// One-time codes mailed for the email second-factor method (src/security/two-factor.ts): at login
// (purpose "login", bound to the pending login's two_factor_challenges row) and to confirm setting the
// method up (purpose "setup", named by the sealed tf_setup_token). The code is derived from the row id
// with a key from SECRET_KEY at delivery; the row keeps a keyed hash only. Used once; dies after
// TF_MAX_ATTEMPTS wrong codes or when it expires.
export const TF_EMAIL_PURPOSES = ['login', 'setup'] as const;
export type TfEmailPurpose = (typeof TF_EMAIL_PURPOSES)[number];

export const twoFactorEmailCodes = pgTable('two_factor_email_codes', {
  id: uuid('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  purpose: text('purpose').$type<TfEmailPurpose>().notNull(),
  // the pending login (purpose "login") or forced setup the code belongs to; null for a signed-in setup
  challengeId: uuid('challenge_id').references(() => twoFactorChallenges.id, { onDelete: 'cascade' }),
  codeHash: text('code_hash').notNull(),
  attempts: integer('attempts').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [
  index('two_factor_email_codes_user_id_idx').on(t.userId),
  index('two_factor_email_codes_challenge_id_idx').on(t.challengeId),
  index('two_factor_email_codes_expires_at_idx').on(t.expiresAt),
]);

export type TwoFactorEmailCodeRow = typeof twoFactorEmailCodes.$inferSelect;
