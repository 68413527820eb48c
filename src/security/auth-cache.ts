// A per-instance cache of authentication state (session + user + roles + permissions), kept correct
// across instances by PostgreSQL LISTEN/NOTIFY.
//
// Triggers (migrations/*_notify_auth_changes.sql) publish on channel `cs_auth` whenever a row that
// decides authentication changes: a session is revoked or its freshness/CSRF token changes ("s:<id>"),
// a user row changes ("u:<id>"), a role is granted or removed ("u:<id>"), a role's permissions change
// ("r:*"). Every instance listens and drops the affected entries. Because the triggers fire for every
// writer (this API, the CLI, another instance, psql), no code path can forget to invalidate.
//
// Safety rules:
// - The cache is used only while the listener connection is up. When it drops, the cache is emptied
//   and bypassed until LISTEN succeeds again (notifications may have been missed meanwhile).
// - An instance that changed state waits, before answering, until its own listener has seen a
//   marker notification sent after the change (`sync`). PostgreSQL delivers notifications to every
//   listener in commit order, so by then the invalidation has been dispatched to all instances.
// - Entries also expire after a short TTL, and any entry that would reject a request is re-read
//   from the database before the rejection is decided.
//
// The same listener keeps a second, smaller cache correct: whole response bodies of user listings
// (GET /users pages, keyed by the caller's scope and the query). Any user or role notification
// ("u:", "r:", and user inserts since migration notify_user_inserts) drops all of them; session
// notifications do not concern them. Same rules: only while listening, versioned loads, TTL.
import postgres from 'postgres';
import { randomUUID } from 'node:crypto';
import type { AuthState } from './sessions.js';

export const AUTH_CHANNEL = 'cs_auth';

interface Entry { state: AuthState; expiresAt: number }
interface PageEntry { body: string; expiresAt: number }

export class AuthCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byUser = new Map<number, Set<string>>();
  private listening = false;
  /** bumped by every invalidation: a load that began before one must not be cached */
  private version = 0;
  private readonly pendingSyncs = new Map<string, () => void>();
  private readonly pages = new Map<string, PageEntry>();

  constructor(private readonly ttlMs = 30_000, private readonly maxEntries = 100_000, private readonly maxPages = 1_000) {}

  get enabled(): boolean {
    return this.listening;
  }

  /** Take before reading state from the database; pass to set(). */
  snapshot(): number {
    return this.version;
  }

  get size(): number {
    return this.entries.size;
  }

  get(sessionId: string, nowMs: number): AuthState | undefined {
    if (!this.listening) return undefined;
    const e = this.entries.get(sessionId);
    if (!e) return undefined;
    if (e.expiresAt <= nowMs) {
      this.delete(sessionId);
      return undefined;
    }
    return e.state;
  }

  set(sessionId: string, state: AuthState, nowMs: number, loadedAtVersion: number): void {
    // An invalidation arrived while this state was being read: it may already be stale.
    if (!this.listening || loadedAtVersion !== this.version) return;
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: drop the oldest entry.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.delete(oldest);
    }
    this.entries.set(sessionId, { state, expiresAt: nowMs + this.ttlMs });
    let sids = this.byUser.get(state.user.id);
    if (!sids) this.byUser.set(state.user.id, (sids = new Set()));
    sids.add(sessionId);
  }

  /** A cached listing body (see the header), while it is live. */
  getPage(key: string, nowMs: number): string | undefined {
    if (!this.listening) return undefined;
    const e = this.pages.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= nowMs) {
      this.pages.delete(key);
      return undefined;
    }
    return e.body;
  }

  setPage(key: string, body: string, nowMs: number, loadedAtVersion: number): void {
    if (!this.listening || loadedAtVersion !== this.version) return;
    if (this.pages.size >= this.maxPages) {
      const oldest = this.pages.keys().next().value;
      if (oldest !== undefined) this.pages.delete(oldest);
    }
    this.pages.set(key, { body, expiresAt: nowMs + this.ttlMs });
  }

  get pageCount(): number {
    return this.pages.size;
  }

  delete(sessionId: string): void {
    const e = this.entries.get(sessionId);
    if (!e) return;
    this.entries.delete(sessionId);
    const sids = this.byUser.get(e.state.user.id);
    sids?.delete(sessionId);
    if (sids && sids.size === 0) this.byUser.delete(e.state.user.id);
  }

  deleteUser(userId: number): void {
    const sids = this.byUser.get(userId);
    if (!sids) return;
    for (const sid of sids) this.entries.delete(sid);
    this.byUser.delete(userId);
  }

  clear(): void {
    this.version++;
    this.entries.clear();
    this.byUser.clear();
    this.pages.clear();
  }

  /** Applies one notification payload. */
  apply(payload: string): void {
    if (payload.startsWith('sync:')) {
      this.pendingSyncs.get(payload.slice(5))?.();
      return;
    }
    this.version++;
    const kind = payload.slice(0, 2);
    const rest = payload.slice(2);
    if (kind === 's:') this.delete(rest);
    else if (kind === 'u:') {
      this.deleteUser(Number(rest));
      this.pages.clear();
    } else this.clear(); // "r:*" and anything unknown: be safe
  }

  setListening(up: boolean): void {
    // Whatever happened while we were not listening is unknown: start from nothing either way.
    this.clear();
    this.listening = up;
  }

  /** Registers a marker and returns a promise resolved when the listener sees it (or on timeout). */
  expectSync(timeoutMs: number, token: string = randomUUID()): { token: string; seen: Promise<boolean> } {
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingSyncs.delete(token);
        resolve(false);
      }, timeoutMs);
      this.pendingSyncs.set(token, () => {
        clearTimeout(timer);
        this.pendingSyncs.delete(token);
        resolve(true);
      });
    });
    return { token, seen };
  }
}

/**
 * The caches of every listener of this process that is up, by database. Several instances can share a process
 * (tests, embedded setups); a marker reaches all of them, so a sync waits for each one, not only its
 * own: each then has applied every invalidation committed before the marker.
 */
const liveCaches = new Map<string, Set<AuthCache>>();
const peers = (url: string) => {
  let set = liveCaches.get(url);
  if (!set) liveCaches.set(url, (set = new Set()));
  return set;
};

export interface AuthListener {
  /** sends a marker through PostgreSQL and waits until this instance's listener receives it */
  sync(sql: postgres.Sql): Promise<void>;
  close(): Promise<void>;
}

/**
 * Keeps one dedicated connection LISTENing on cs_auth, reconnecting with backoff. The cache is
 * enabled only while that connection is up.
 */
export function startAuthListener(url: string, cache: AuthCache, log: { warn: (msg: string) => void } = { warn: () => undefined }): AuthListener {
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let attempt = 0;
  let conn: postgres.Sql | undefined;

  const connectOnce = async () => {
    if (closed) return;
    const sql = postgres(url, {
      max: 1,
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: 5,
      onnotice: () => undefined,
      connection: { application_name: 'county-services-listener' },
      onclose: () => {
        if (closed || conn !== sql) return;
        peers(url).delete(cache);
        cache.setListening(false);
        conn = undefined;
        void sql.end({ timeout: 0 }).catch(() => undefined);
        schedule();
      },
      ...({ onnotify: (channel: string, payload: string) => channel === AUTH_CHANNEL && cache.apply(payload) } as object),
    });
    conn = sql;
    try {
      await sql.unsafe(`listen ${AUTH_CHANNEL}`);
      if (closed) return;
      attempt = 0;
      cache.setListening(true);
      peers(url).add(cache);
    } catch {
      if (conn === sql) conn = undefined;
      await sql.end({ timeout: 0 }).catch(() => undefined);
      if (!closed) {
        log.warn('auth cache: LISTEN failed; the cache stays off until it succeeds');
        schedule();
      }
    }
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
    async sync(sql) {
      if (!cache.enabled) return;
      const { token, seen } = cache.expectSync(500);
      const others = [...peers(url)].filter((c) => c !== cache && c.enabled).map((c) => ({ c, seen: c.expectSync(500, token).seen }));
      try {
        await sql`select pg_notify(${AUTH_CHANNEL}, ${'sync:' + token})`;
      } catch {
        return;
      }
      if (!(await seen)) {
        // Our own marker did not come back in time: something is wrong with the listener, so trust nothing cached.
        cache.clear();
      }
      for (const o of others) if (!(await o.seen)) o.c.clear();
      // Let the rest of this I/O round run first: other listeners in this process (another instance
      // in the same process, as in tests) may have received the invalidation in the same batch.
      await new Promise((resolve) => setImmediate(resolve));
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      peers(url).delete(cache);
      cache.setListening(false);
      const c = conn;
      conn = undefined;
      await c?.end({ timeout: 1 }).catch(() => undefined);
    },
  };
}
