// The Drizzle schema is the source of truth for the database; migrations/ is generated from it
// (`npm run db:generate -- --name <verb_noun>`) and never edited by hand.
import { sql } from 'drizzle-orm';
import {
  boolean, index, integer, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid,
} from 'drizzle-orm/pg-core';

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
};

export const counties = pgTable('counties', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull(),
  ...timestamps,
}, (t) => [uniqueIndex('counties_name_lower_idx').on(sql`lower(${t.name})`)]);

export const departments = pgTable('departments', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  countyId: integer('county_id').notNull().references(() => counties.id, { onDelete: 'restrict' }),
  name: text('name').notNull(),
  ...timestamps,
}, (t) => [uniqueIndex('departments_county_name_lower_idx').on(t.countyId, sql`lower(${t.name})`)]);

export const users = pgTable('users', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  email: text('email').notNull(),
  password: text('password').notNull(),
  firstName: text('first_name'),
  lastName: text('last_name'),
  phoneNumber: text('phone_number'),
  address: text('address'),
  active: boolean('active').notNull().default(true),
  confirmedAt: timestamp('confirmed_at', { withTimezone: true }),
  ...timestamps,
  fsUniquifier: text('fs_uniquifier').notNull().unique('users_fs_uniquifier_key'),
  currentLoginAt: timestamp('current_login_at', { withTimezone: true }),
  lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
  currentLoginIp: text('current_login_ip'),
  lastLoginIp: text('last_login_ip'),
  loginCount: integer('login_count').notNull().default(0),
  countyId: integer('county_id').references(() => counties.id, { onDelete: 'set null' }),
  departmentId: integer('department_id').references(() => departments.id, { onDelete: 'set null' }),
  // Two-factor authentication (src/security/two-factor.ts). tf_primary_method is set once a TOTP
  // setup has been confirmed; the secret is AES-256-GCM sealed with a key derived from SECRET_KEY;
  // tf_totp_last_step is the last accepted time step (a code works once); recovery codes are
  // stored as keyed hashes and removed when used.
  tfPrimaryMethod: text('tf_primary_method'),
  tfTotpSecret: text('tf_totp_secret'),
  tfTotpLastStep: integer('tf_totp_last_step'),
  tfRecoveryCodes: text('tf_recovery_codes').array(),
}, (t) => [
  uniqueIndex('users_email_lower_idx').on(sql`lower(${t.email})`),
  index('users_county_id_idx').on(t.countyId),
]);

export const roles = pgTable('roles', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  name: text('name').notNull().unique('roles_name_key'),
  description: text('description'),
  permissions: text('permissions').array().notNull().default(sql`'{}'::text[]`),
  ...timestamps,
});

export const rolesUsers = pgTable('roles_users', {
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  roleId: integer('role_id').notNull().references(() => roles.id, { onDelete: 'cascade' }),
}, (t) => [primaryKey({ columns: [t.userId, t.roleId] }), index('roles_users_role_id_idx').on(t.roleId)]);

export const sessions = pgTable('sessions', {
  id: uuid('id').primaryKey(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }).notNull().defaultNow(),
  // Absolute end of the session (refresh token max age); idle expiry is computed from last_used_at.
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  revokedReason: text('revoked_reason'),
  ip: text('ip'),
  userAgent: text('user_agent'),
  // SHA-256 of the current refresh token, its generation, and the previous one (reuse detection and
  // the grace window for an identical replay).
  refreshTokenHash: text('refresh_token_hash').notNull(),
  refreshGeneration: integer('refresh_generation').notNull().default(0),
  previousRefreshHash: text('previous_refresh_hash'),
  rotatedAt: timestamp('rotated_at', { withTimezone: true }),
  // Secret per-session input to the refresh-token MAC (see security/tokens.ts).
  refreshSeed: text('refresh_seed').notNull(),
  csrfToken: text('csrf_token').notNull(),
  // Time of the last primary authentication (password), for freshness checks.
  fsPaa: timestamp('fs_paa', { withTimezone: true }).notNull().defaultNow(),
  // 'login' (password login: cookie, access and refresh tokens) or 'token' (a personal access token).
  kind: text('kind').notNull().default('login'),
  // The login asked to be remembered: re-issued cookies (password change) stay persistent.
  remember: boolean('remember').notNull().default(false),
}, (t) => [
  index('sessions_user_id_idx').on(t.userId),
  uniqueIndex('sessions_refresh_token_hash_idx').on(t.refreshTokenHash),
]);

export type UserRow = typeof users.$inferSelect;
export type RoleRow = typeof roles.$inferSelect;
export type SessionRow = typeof sessions.$inferSelect;

export * from './mail.js';
export * from './tokens.js';
export * from './audit.js';
export * from './lockout.js';
export * from './two-factor.js';
export * from './idempotency.js';
export * from './passwordless.js';
export * from './cache.js';
export * from './oauth.js';
