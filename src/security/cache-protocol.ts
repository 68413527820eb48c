// The cache protocol: how per-instance caches (auth-cache.ts, page-cache.ts) stay consistent with the
// database across instances, so a change answered by one instance is visible on the NEXT request to
// any instance. The full argument is docs/consistency.md; in short:
//
// 1. Listener. Each instance keeps one dedicated connection LISTENing on cs_auth. Triggers publish an
//    invalidation in the transaction that changes the row, so it is delivered after the commit, and
//    PostgreSQL delivers notifications to each listener in commit order.
// 2. Lease. Over that connection the instance holds a row of cache_instances whose expires_at is set
//    from the DATABASE clock (now() + lease) by a heartbeat every lease/3. The instance serves cached
//    state only while its listener is connected and its lease is valid by its own monotonic clock,
//    counted from BEFORE it sent the heartbeat (so it always ends before the row's expires_at).
//    Whenever the gate closes the caches are emptied, and when it reopens nothing loaded before is
//    ever cached.
// 3. Marker. A state-changing request, after its change committed and before it answers, sends a
//    marker m:<token> and, in the same statement, reads the set of live lease holders. Each holder's
//    listener receives the marker after every invalidation committed before it, applies them (the
//    notification handler is synchronous), and acknowledges with a:<token>:<holder>. The request
//    answers when every holder acknowledged, or, for a holder silent for ack-timeout, after marking it
//    evicted (it can no longer renew) and waiting until its lease, read from the row, has run out.
//    An evicted instance empties its caches and joins again under a new lease.
//
// So when the client sees the answer, every instance that may serve cached state has dropped what
// the change invalidated; one that has not can no longer serve cached state.
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import { AUTH_CHANNEL, type AuthCache, type AuthCacheStats, type CacheGate } from './auth-cache.js';
import type { PageCache, PageCacheStats } from './page-cache.js';
import { withinGrace } from './grace.js';

export interface CacheProtocolOptions {
  /** lease length, ms (heartbeat every third of it) */
  leaseMs: number;
  /** how long a writer waits for a holder's acknowledgement before evicting it, ms */
  ackTimeoutMs?: number;
  log?: { warn: (obj: object, msg: string) => void };
}

export interface SyncOutcome {
  /** holders that acknowledged, and those evicted after the timeout (their lease was waited out) */
  acknowledged: number;
  evicted: number;
  /** the marker could not be sent: the writer waited for a whole lease instead */
  fallback: boolean;
}

export interface CacheNode {
  /** the current lease id, null while the instance holds none */
  readonly leaseId: string | null;
  readonly gate: CacheGate;
  /** Sends a marker and waits until every live lease holder has applied every change committed before it. */
  sync(sql: postgres.Sql): Promise<SyncOutcome>;
  close(): Promise<void>;
}

interface PendingSync { acked: Set<string>; onAck: () => void }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** slack for the difference between an instance's monotonic clock rate and the database clock's */
const CLOCK_MARGIN_MS = 25;

const live = new Set<{ auth: AuthCache; pages: PageCache }>();
/** The caches of every instance of this process (the bench reads them through bench/probe.ts). */
export function processCacheStats(): { auth: AuthCacheStats; pages: PageCacheStats }[] {
  return [...live].map((c) => ({ auth: c.auth.stats(), pages: c.pages.stats() }));
}

export function resetProcessCacheStats(): void {
  for (const c of live) {
    c.auth.resetStats();
    c.pages.resetStats();
  }
}

/**
 * Starts the listener and the lease for this instance's caches; reconnects with backoff. The caches
 * are served only through node.gate.
 */
export function startCacheNode(url: string, caches: { auth: AuthCache; pages: PageCache }, opts: CacheProtocolOptions): CacheNode {
  const leaseMs = opts.leaseMs;
  const heartbeatMs = Math.max(50, Math.floor(leaseMs / 3));
  const ackTimeoutMs = opts.ackTimeoutMs ?? Math.max(100, Math.floor(leaseMs / 3));
  const log = opts.log ?? { warn: () => undefined };
  let closed = false;
  let conn: postgres.Sql | undefined;
  let listening = false;
  let leaseId: string | null = null;
  /** monotonic time until which the lease is valid here; always before the row's expires_at */
  let validUntil = 0;
  let gateOpen = false;
  let retry: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let attempt = 0;
  const pending = new Map<string, PendingSync>();

  const emptyCaches = () => {
    caches.auth.clear();
    caches.pages.clear();
  };

  const gate: CacheGate = {
    get open() {
      const ok = listening && leaseId !== null && performance.now() < validUntil;
      if (ok !== gateOpen) {
        // Either way the caches start from nothing: closing forgets, reopening may follow missed changes.
        emptyCaches();
        gateOpen = ok;
      }
      return ok;
    },
  };
  caches.auth.useGate(gate);
  caches.pages.useGate(gate);

  const onNotify = (channel: string, payload: string) => {
    if (channel !== AUTH_CHANNEL) return;
    if (payload.startsWith('m:')) {
      const token = payload.slice(2);
      const mine = pending.get(token);
      if (mine) {
        if (leaseId) mine.acked.add(leaseId);
        mine.onAck();
      } else if (conn && leaseId) {
        // Everything committed before the marker has been applied above (this handler runs in order).
        void conn`select pg_notify(${AUTH_CHANNEL}, ${`a:${token}:${leaseId}`})`.catch(() => undefined);
      }
      return;
    }
    if (payload.startsWith('a:')) {
      const rest = payload.slice(2);
      const colon = rest.indexOf(':');
      const p = pending.get(rest.slice(0, colon));
      if (p) {
        p.acked.add(rest.slice(colon + 1));
        p.onAck();
      }
      return;
    }
    caches.auth.apply(payload);
    caches.pages.apply(payload);
  };

  /** One lease row per connection life; a new id after an eviction. */
  const register = async (sql: postgres.Sql) => {
    const id = randomUUID();
    const t0 = performance.now();
    await sql`insert into cache_instances (id, expires_at) values (${id}, now() + ${leaseMs} * interval '1 millisecond')`;
    emptyCaches();
    leaseId = id;
    validUntil = t0 + leaseMs - CLOCK_MARGIN_MS;
  };

  const beat = async () => {
    const sql = conn;
    if (!sql || !leaseId) return;
    const id = leaseId;
    const t0 = performance.now();
    try {
      const rows = await sql`update cache_instances set expires_at = now() + ${leaseMs} * interval '1 millisecond'
        where id = ${id} and not evicted returning id`;
      if (leaseId !== id) return;
      if (rows.length) {
        validUntil = t0 + leaseMs - CLOCK_MARGIN_MS;
      } else {
        // A writer gave up waiting for us: forget everything, join again.
        log.warn({ lease: id }, 'auth cache: this instance was evicted (a writer did not get its acknowledgement in time); caches emptied');
        leaseId = null;
        emptyCaches();
        await sql`delete from cache_instances where id = ${id}`.catch(() => undefined);
        if (conn === sql) await register(sql);
      }
    } catch {
      // the lease runs out by itself; the connection's onclose handles reconnecting
    }
  };

  const connectOnce = async () => {
    if (closed) return;
    const sql = postgres(url, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 5,
      // no array types needed here; postgres.js's type fetch on a fresh connection, lost in an
      // outage, was an unhandled rejection (ECONNREFUSED on its pg_type query) that failed the run
      fetch_types: false,
      onnotice: () => undefined,
      connection: { application_name: 'county-services-listener' },
      onclose: () => {
        if (closed || conn !== sql) return;
        lost();
        void sql.end({ timeout: 0 }).catch(() => undefined);
        schedule();
      },
      ...({ onnotify: onNotify } as object),
    });
    conn = sql;
    try {
      // LISTEN first: once the lease row is visible to writers, this connection already receives markers.
      await sql.unsafe(`listen ${AUTH_CHANNEL}`);
      if (closed) return;
      await register(sql);
      attempt = 0;
      caches.auth.setListening(true);
      caches.pages.setListening(true);
      listening = true;
      live.add(caches);
      heartbeat = setInterval(() => void beat(), heartbeatMs);
      heartbeat.unref();
    } catch {
      if (conn === sql) {
        conn = undefined;
        lost();
      }
      await sql.end({ timeout: 0 }).catch(() => undefined);
      if (!closed) {
        log.warn({}, 'auth cache: LISTEN or lease failed; the caches stay off until they succeed');
        schedule();
      }
    }
  };

  const lost = () => {
    listening = false;
    leaseId = null;
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
    live.delete(caches);
    caches.auth.setListening(false);
    caches.pages.setListening(false);
    conn = undefined;
  };

  const schedule = () => {
    if (closed || retry) return;
    const delay = Math.min(5000, 100 * 2 ** attempt++);
    retry = setTimeout(() => {
      retry = undefined;
      void connectOnce();
    }, delay);
    retry.unref();
  };

  void connectOnce();

  return {
    get leaseId() {
      return leaseId;
    },
    gate,
    async sync(sql) {
      const token = randomUUID();
      let wake: () => void = () => undefined;
      const entry: PendingSync = { acked: new Set(), onAck: () => wake() };
      pending.set(token, entry);
      try {
        let holders: string[];
        try {
          const [row] = await sql<{ holders: string[] }[]>`select pg_notify(${AUTH_CHANNEL}, ${'m:' + token}),
            array(select id::text from cache_instances where expires_at > now() and not evicted) as holders`;
          holders = row!.holders;
        } catch (err) {
          // The marker could not be sent: outlast every lease instead (a holder that cannot renew stops serving).
          log.warn({ err }, 'auth cache: marker failed; waiting out the lease');
          await sleep(leaseMs + CLOCK_MARGIN_MS);
          return { acknowledged: 0, evicted: 0, fallback: true };
        }
        const missing = () => holders.filter((h) => !entry.acked.has(h));
        if (missing().length) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, ackTimeoutMs);
            wake = () => {
              if (!missing().length) {
                clearTimeout(timer);
                resolve();
              }
            };
          });
        }
        const silent = missing();
        if (silent.length) {
          // They can no longer renew; wait until the last lease they were granted has run out.
          const rows = await sql<{ wait_ms: number }[]>`update cache_instances set evicted = true where id = any(${silent}::uuid[])
            returning greatest(0, extract(epoch from (expires_at - now())) * 1000)::float8 as wait_ms`;
          const wait = Math.max(0, ...rows.map((r) => Number(r.wait_ms)));
          log.warn({ silent: silent.length, waitMs: Math.round(wait) }, 'auth cache: lease holders did not acknowledge; evicted, waiting out their lease');
          await sleep(wait + CLOCK_MARGIN_MS);
        }
        return { acknowledged: holders.length - silent.length, evicted: silent.length, fallback: false };
      } finally {
        pending.delete(token);
      }
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      if (heartbeat) clearInterval(heartbeat);
      const c = conn;
      const id = leaseId;
      lost();
      // bounded: the listener's connection may be the silent one (its lease then runs out by itself)
      if (c && id) await withinGrace(c`delete from cache_instances where id = ${id}`, 1000);
      await c?.end({ timeout: 1 }).catch(() => undefined);
    },
  };
}
