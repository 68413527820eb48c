// Idempotency-Key memory (src/security/idempotency.ts): one row per key, operation and principal,
// remembered for IDEMPOTENCY_KEY_TTL. request_hash is a keyed hash of the request body (the body of
// a registration holds a password: never stored, never hashed without the server's key).
// locked_by/locked_until mark a request still in flight; response_* is the answer to replay.
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const idempotencyKeys = pgTable('idempotency_keys', {
  operation: text('operation').notNull(),
  principal: text('principal').notNull(),
  key: text('key').notNull(),
  requestHash: text('request_hash').notNull(),
  lockedBy: uuid('locked_by'),
  lockedUntil: timestamp('locked_until', { withTimezone: true }),
  responseStatus: integer('response_status'),
  responseBody: jsonb('response_body'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
}, (t) => [
  primaryKey({ columns: [t.operation, t.principal, t.key] }),
  index('idempotency_keys_expires_at_idx').on(t.expiresAt),
]);

export type IdempotencyKeyRow = typeof idempotencyKeys.$inferSelect;
