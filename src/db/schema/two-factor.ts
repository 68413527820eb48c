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
  attempts: integer('attempts').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('two_factor_challenges_user_id_idx').on(t.userId), index('two_factor_challenges_expires_at_idx').on(t.expiresAt)]);

export type TwoFactorChallengeRow = typeof twoFactorChallenges.$inferSelect;
