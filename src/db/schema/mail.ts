// The transactional outbox: one row per email, written in the same transaction as the change that
// causes it and delivered later by the outbox worker (src/security/outbox.ts). A row holds what to
// send, never a secret: one-time links are signed when the message is rendered for delivery.
import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { users } from './index.js';

export const OUTBOX_STATUSES = ['pending', 'sent', 'skipped', 'failed'] as const;
export type OutboxStatus = (typeof OUTBOX_STATUSES)[number];

export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey(),
  // What to render (src/security/account-mail.ts); the payload carries its parameters.
  template: text('template').notNull(),
  recipient: text('recipient').notNull(),
  userId: integer('user_id').references(() => users.id, { onDelete: 'set null' }),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  status: text('status').$type<OutboxStatus>().notNull().default('pending'),
  attempts: integer('attempts').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
  // The lease of the worker delivering the row: no other worker claims it before locked_until.
  lockedUntil: timestamp('locked_until', { withTimezone: true }),
  lockedBy: text('locked_by'),
  lastError: text('last_error'),
  sentAt: timestamp('sent_at', { withTimezone: true }),
}, (t) => [
  index('outbox_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'pending'`),
  index('outbox_recipient_idx').on(sql`lower(${t.recipient})`, t.template, t.createdAt),
  index('outbox_user_id_idx').on(t.userId),
  check('outbox_status_check', sql`${t.status} in ('pending', 'sent', 'skipped', 'failed')`),
]);

export type OutboxRow = typeof outbox.$inferSelect;
