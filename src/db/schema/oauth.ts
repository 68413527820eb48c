// OpenID Connect sign-in (src/security/oidc.ts). Three short tables:
// - oauth_states: one row per started redirect. The browser carries only the random `state`; the row
//   (found by its hash) holds what must never travel: the nonce, the PKCE code_verifier, `next`, the
//   mode (login, or link for the signed-in user named by user_id + fs_uniquifier), and the hash of
//   the browser-binding cookie set at the start (a callback opened in another browser — login CSRF —
//   is refused). Single use (used_at), short-lived (expires_at).
// - oauth_identities: an external account (provider, subject) linked to a local user.
// - oauth_login_codes: the one-time login_code the browser brings back to `next`, stored hashed,
//   single use, 60 s; exchanged by POST /login/oauth/exchange for the login answer.
import { index, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { users } from './index.js';

export const OAUTH_MODES = ['login', 'link'] as const;
export type OAuthMode = (typeof OAUTH_MODES)[number];

export const oauthStates = pgTable('oauth_states', {
  stateHash: text('state_hash').primaryKey(),
  provider: text('provider').notNull(),
  mode: text('mode').$type<OAuthMode>().notNull(),
  nonce: text('nonce').notNull(),
  codeVerifier: text('code_verifier').notNull(),
  next: text('next').notNull(),
  bindingHash: text('binding_hash').notNull(),
  // link mode: the account to link to, bound to its fs_uniquifier (logout-all kills the link)
  userId: integer('user_id').references(() => users.id, { onDelete: 'cascade' }),
  fsUniquifier: text('fs_uniquifier'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('oauth_states_expires_at_idx').on(t.expiresAt)]);

export const oauthIdentities = pgTable('oauth_identities', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  provider: text('provider').notNull(),
  subject: text('subject').notNull(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  email: text('email'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
}, (t) => [
  uniqueIndex('oauth_identities_provider_subject_idx').on(t.provider, t.subject),
  // one identity per provider and user: DELETE /auth/identities/{provider} names exactly one
  uniqueIndex('oauth_identities_user_provider_idx').on(t.userId, t.provider),
]);

export const oauthLoginCodes = pgTable('oauth_login_codes', {
  codeHash: text('code_hash').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  provider: text('provider').notNull(),
  fsUniquifier: text('fs_uniquifier').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  usedAt: timestamp('used_at', { withTimezone: true }),
}, (t) => [index('oauth_login_codes_expires_at_idx').on(t.expiresAt)]);

export type OAuthStateRow = typeof oauthStates.$inferSelect;
export type OAuthIdentityRow = typeof oauthIdentities.$inferSelect;
