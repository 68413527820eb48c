// Personal access tokens. Each one is backed by a session row (kind 'token'), so every mechanism
// that ends sessions — revocation, logout-all, deactivation, reset-access — ends tokens too.
import { index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { sessions, users } from './index.js';

export const personalAccessTokens = pgTable('personal_access_tokens', {
  id: uuid('id').primaryKey(),
  sessionId: uuid('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  // SHA-256 of the token; the token itself is shown once and never stored.
  tokenHash: text('token_hash').notNull(),
  // null: the owner's permissions; else a subset of them (intersected with the owner's at each request)
  permissions: text('permissions').array(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('personal_access_tokens_token_hash_idx').on(t.tokenHash),
  uniqueIndex('personal_access_tokens_session_id_idx').on(t.sessionId),
  index('personal_access_tokens_user_id_idx').on(t.userId),
]);

export type PersonalAccessTokenRow = typeof personalAccessTokens.$inferSelect;
