// The audit log: security events, append-only. The application only INSERTs and SELECTs; a trigger
// (migration audit_append_only) makes UPDATE, DELETE and TRUNCATE fail in the database itself.
//
// No foreign keys on purpose: the history must outlive the users it mentions, and ON DELETE SET NULL
// would be an UPDATE that the trigger refuses.
import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const auditEvents = pgTable('audit_events', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  action: text('action').notNull(),
  // who did it (null: anonymous, or the ops CLI) and whom it concerns
  actorId: integer('actor_id'),
  targetUserId: integer('target_user_id'),
  ip: text('ip'),
  userAgent: text('user_agent'),
  requestId: text('request_id'),
  details: jsonb('details').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
}, (t) => [
  index('audit_events_created_at_idx').on(t.createdAt),
  index('audit_events_target_user_id_idx').on(t.targetUserId, t.id),
  index('audit_events_actor_id_idx').on(t.actorId, t.id),
  index('audit_events_action_idx').on(t.action, t.id),
]);

export type AuditEventRow = typeof auditEvents.$inferSelect;
