// cache_instances: the leases of the per-instance caches (src/security/cache-protocol.ts). An instance
// may serve cached authentication state only while its row is live (expires_at in the future, not
// evicted); a state-changing request waits until every live holder has acknowledged its marker, or
// evicts a silent one and waits until that holder's lease has run out.
import { boolean, pgTable, timestamp, uuid } from 'drizzle-orm/pg-core';

export const cacheInstances = pgTable('cache_instances', {
  id: uuid('id').primaryKey(),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  // Set from the database clock (now() + lease) on every heartbeat, never from an instance's clock.
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  // A writer that waited in vain for this instance's acknowledgement: it may not renew; it empties its
  // caches and joins again under a new lease.
  evicted: boolean('evicted').notNull().default(false),
});

export type CacheInstanceRow = typeof cacheInstances.$inferSelect;
