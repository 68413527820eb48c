// A per-instance cache of whole GET /users page bodies (keyed by the caller's scope and the query),
// kept correct by the same listener and lease as the authentication cache (cache-protocol.ts), on its
// own, narrower signal: any user insert, delete or change of a non-tracking column ("u:", "p"), any
// role grant or removal ("u:"), any role rename or permission change ("r:"). Session changes and login
// tracking ("s:", "t:") leave the pages alone, so the tracking columns of a listing (last login, login
// count) may lag by up to the page TTL (USERS_PAGE_CACHE_TTL); everything else is current.
//
// Any page signal drops every page (a change to one user can move it onto or off any page), and a
// load that overlapped one is not cached. Bounded, least recently used evicted first.
import { OPEN_GATE, type CacheGate } from './auth-cache.js';

interface PageEntry { body: string; expiresAt: number }

export interface PageCacheStats { hits: number; misses: number; hitRate: number; size: number }

export class PageCache {
  private readonly pages = new Map<string, PageEntry>();
  private version = 0;
  private listening = false;
  private hits = 0;
  private misses = 0;

  constructor(private readonly ttlMs = 5_000, private readonly maxPages = 1_000, private gate: CacheGate = OPEN_GATE) {}

  useGate(gate: CacheGate): void {
    this.gate = gate;
  }

  get enabled(): boolean {
    return this.listening && this.ttlMs > 0 && this.maxPages > 0 && this.gate.open;
  }

  /** Take before building a page; pass to set(). */
  snapshot(): number {
    return this.version;
  }

  get(key: string, nowMs: number): string | undefined {
    if (!this.enabled) return undefined;
    const e = this.pages.get(key);
    if (!e || e.expiresAt <= nowMs) {
      if (e) this.pages.delete(key);
      this.misses++;
      return undefined;
    }
    this.pages.delete(key);
    this.pages.set(key, e);
    this.hits++;
    return e.body;
  }

  set(key: string, body: string, nowMs: number, loadedAt: number): void {
    if (!this.enabled || loadedAt !== this.version) return;
    this.pages.delete(key);
    while (this.pages.size >= this.maxPages) {
      const oldest = this.pages.keys().next().value;
      if (oldest === undefined) break;
      this.pages.delete(oldest);
    }
    this.pages.set(key, { body, expiresAt: nowMs + this.ttlMs });
  }

  get size(): number {
    return this.pages.size;
  }

  stats(): PageCacheStats {
    return { hits: this.hits, misses: this.misses, hitRate: this.hits + this.misses ? this.hits / (this.hits + this.misses) : 0, size: this.pages.size };
  }

  resetStats(): void {
    this.hits = 0;
    this.misses = 0;
  }

  clear(): void {
    this.version++;
    this.pages.clear();
  }

  /** Applies one notification payload of channel cs_auth (see auth-cache.ts for the vocabulary). */
  apply(payload: string): void {
    const kind = payload.slice(0, 2);
    if (kind === 's:' || kind === 't:') return;
    this.clear(); // "u:", "r:", "p" and anything unknown
  }

  setListening(up: boolean): void {
    this.clear();
    this.listening = up;
  }
}
