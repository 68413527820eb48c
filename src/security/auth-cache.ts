// A per-instance cache of authentication state (session + user + roles + permissions), kept correct
// across instances by PostgreSQL LISTEN/NOTIFY and the lease protocol of cache-protocol.ts (the
// argument is docs/consistency.md).
//
// Triggers (migrations/*_notify_auth_*.sql) publish on channel `cs_auth` whenever a row that decides
// authentication changes, naming what changed:
//   s:<session id>      the session was revoked, its freshness/CSRF token/expiry changed, or it went
//   u:<user id>         a user column other than the tracking ones changed, a role was granted or removed
//   t:<user id>:<json>  only tracking columns changed (login time, IP, count): entries are patched, not dropped
//   r:<role name>       that role's name or permissions changed, or it was deleted
// and every instance drops exactly the entries concerned (per key, not one global version).
//
// Safety rules:
// - Entries are served only while the gate is open: the listener is connected and the instance's lease
//   is valid. When the gate closes, everything is dropped; whatever was loaded before it reopened is
//   never cached.
// - A load that overlapped an invalidation of one of ITS OWN keys (its session, its user, one of its
//   roles) is not cached: each invalidation takes a sequence number, each load remembers the number
//   current when it began, and set() refuses when a key of the loaded state was invalidated since.
//   Loads that overlapped invalidations of other keys are cached.
// - Bounded: at most `maxEntries` sessions, least recently used evicted first; entries also expire
//   after `ttlMs`. Rejections and denials are always re-decided on fresh data (plugins/authentication.ts).
import type { AuthState } from './sessions.js';

export const AUTH_CHANNEL = 'cs_auth';

interface Entry { state: AuthState; expiresAt: number }

export interface AuthCacheStats {
  hits: number;
  misses: number;
  /** hits / (hits + misses), 0 when nothing was looked up */
  hitRate: number;
  size: number;
  evictions: number;
  invalidations: number;
  /** loads not cached because one of their keys was invalidated while they ran */
  racedLoads: number;
}

/** Opens and closes the caches of one instance (cache-protocol.ts): listener up and lease valid. */
export interface CacheGate {
  /** true while cached state may be served; the first call after the lease lapsed closes the gate */
  readonly open: boolean;
}

/** Always open: a cache used on its own (unit tests). */
export const OPEN_GATE: CacheGate = { open: true };

const TRACKING_FIELDS = {
  current_login_at: 'currentLoginAt', last_login_at: 'lastLoginAt', current_login_ip: 'currentLoginIp',
  last_login_ip: 'lastLoginIp', login_count: 'loginCount', tf_totp_last_step: 'tfTotpLastStep',
} as const;
const TIME_FIELDS = new Set(['current_login_at', 'last_login_at']);

/** How many recent invalidations are remembered per key for the overlap check (older ones raise a floor). */
const MAX_REMEMBERED = 20_000;

export class AuthCache {
  /** Map order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private readonly byUser = new Map<number, Set<string>>();
  private readonly byRole = new Map<string, Set<string>>();
  /** bumped by every invalidation */
  private seq = 0;
  /** key ("s:…", "u:…", "r:…") → the sequence number of its last invalidation */
  private readonly invalidated = new Map<string, number>();
  /** loads that began before this number are never cached (forgotten invalidations, the gate closing) */
  private floor = 0;
  private listening = false;
  private counters = { hits: 0, misses: 0, evictions: 0, invalidations: 0, racedLoads: 0 };

  constructor(
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 100_000,
    private gate: CacheGate = OPEN_GATE,
  ) {}

  /** Binds the cache to its instance's gate (listener + lease). */
  useGate(gate: CacheGate): void {
    this.gate = gate;
  }

  get enabled(): boolean {
    return this.listening && this.ttlMs > 0 && this.maxEntries > 0 && this.gate.open;
  }

  /** Take before reading state from the database; pass to set(). */
  snapshot(): number {
    return this.seq;
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): AuthCacheStats {
    const { hits, misses } = this.counters;
    return { ...this.counters, hitRate: hits + misses ? hits / (hits + misses) : 0, size: this.entries.size };
  }

  resetStats(): void {
    this.counters = { hits: 0, misses: 0, evictions: 0, invalidations: 0, racedLoads: 0 };
  }

  get(sessionId: string, nowMs: number): AuthState | undefined {
    if (!this.enabled) return undefined;
    const e = this.entries.get(sessionId);
    if (!e || e.expiresAt <= nowMs) {
      if (e) this.delete(sessionId);
      this.counters.misses++;
      return undefined;
    }
    // most recently used goes last
    this.entries.delete(sessionId);
    this.entries.set(sessionId, e);
    this.counters.hits++;
    return e.state;
  }

  /** Caches a state loaded from the database by a load that began at `loadedAt` (snapshot()). */
  set(sessionId: string, state: AuthState, nowMs: number, loadedAt: number): boolean {
    if (!this.enabled) return false;
    if (loadedAt < this.floor || this.changedSince(loadedAt, sessionId, state)) {
      this.counters.racedLoads++;
      return false;
    }
    this.delete(sessionId);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.delete(oldest);
      this.counters.evictions++;
    }
    this.entries.set(sessionId, { state, expiresAt: nowMs + this.ttlMs });
    index(this.byUser, state.user.id, sessionId);
    for (const role of state.user.roles ?? []) index(this.byRole, role, sessionId);
    return true;
  }

  private changedSince(loadedAt: number, sessionId: string, state: AuthState): boolean {
    const after = (key: string) => (this.invalidated.get(key) ?? 0) > loadedAt;
    return after(`s:${sessionId}`) || after(`u:${state.user.id}`) || (state.user.roles ?? []).some((r) => after(`r:${r}`));
  }

  delete(sessionId: string): void {
    const e = this.entries.get(sessionId);
    if (!e) return;
    this.entries.delete(sessionId);
    unindex(this.byUser, e.state.user.id, sessionId);
    for (const role of e.state.user.roles ?? []) unindex(this.byRole, role, sessionId);
  }

  private dropAll(sids: Set<string> | undefined): void {
    if (!sids) return;
    for (const sid of [...sids]) this.delete(sid);
  }

  /** Everything goes, and nothing loaded before now is cached later. */
  clear(): void {
    this.seq++;
    this.floor = this.seq;
    this.invalidated.clear();
    this.entries.clear();
    this.byUser.clear();
    this.byRole.clear();
  }

  private invalidate(key: string): void {
    this.seq++;
    this.counters.invalidations++;
    this.invalidated.delete(key);
    this.invalidated.set(key, this.seq);
    if (this.invalidated.size > MAX_REMEMBERED) {
      const [oldKey, oldSeq] = this.invalidated.entries().next().value!;
      this.invalidated.delete(oldKey);
      this.floor = Math.max(this.floor, oldSeq);
    }
  }

  /** Applies one notification payload (see the header); unknown payloads drop everything. */
  apply(payload: string): void {
    const kind = payload.slice(0, 2);
    const rest = payload.slice(2);
    if (kind === 's:') {
      this.invalidate(payload);
      this.delete(rest);
    } else if (kind === 'u:') {
      this.invalidate(payload);
      this.dropAll(this.byUser.get(Number(rest)));
    } else if (kind === 'r:') {
      if (rest === '*') return this.clear();
      this.invalidate(payload);
      this.dropAll(this.byRole.get(rest));
    } else if (kind === 't:') {
      this.patchTracking(rest);
    } else if (payload !== 'p') {
      this.clear();
    }
  }

  /** "t:<user id>:<json>": the tracking columns' new values replace the cached ones (a new user object). */
  private patchTracking(rest: string): void {
    const colon = rest.indexOf(':');
    const userId = Number(rest.slice(0, colon));
    let values: Record<string, unknown>;
    try {
      values = JSON.parse(rest.slice(colon + 1)) as Record<string, unknown>;
    } catch {
      return this.clear();
    }
    // A load of this user running now may have read the old values: it must not be cached.
    this.invalidate(`u:${userId}`);
    const sids = this.byUser.get(userId);
    if (!sids) return;
    const patch: Record<string, unknown> = {};
    for (const [column, field] of Object.entries(TRACKING_FIELDS)) {
      if (!(column in values)) continue;
      const v = values[column];
      patch[field] = TIME_FIELDS.has(column) && v !== null ? new Date(Number(v)) : v;
    }
    for (const sid of sids) {
      const e = this.entries.get(sid)!;
      e.state = { ...e.state, user: { ...e.state.user, ...patch } };
    }
  }

  setListening(up: boolean): void {
    // Whatever happened while we were not listening is unknown: start from nothing either way.
    this.clear();
    this.listening = up;
  }
}

function index<K>(map: Map<K, Set<string>>, key: K, sid: string) {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(sid);
}

function unindex<K>(map: Map<K, Set<string>>, key: K, sid: string) {
  const set = map.get(key);
  if (!set) return;
  set.delete(sid);
  if (set.size === 0) map.delete(key);
}
