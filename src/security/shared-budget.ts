// A per-client request budget shared by every instance through PostgreSQL without a database write per
// request: the global rate limit (RATE_LIMIT_GLOBAL). The secret-guarding classes (auth, refresh,
// totp) stay exact, one upsert per request (plugins/rate-limit.ts); this is for the budget every
// request pays.
//
// Each instance counts locally and flushes its counts for all clients in ONE statement every
// `flushMs` (rate_limits rows, the same fixed windows as the exact store); the flush returns the merged
// totals, which become this instance's view of what the other instances admitted. The first request
// of a client on an instance takes the exact path (below) to learn the total. After that a request is
// admitted without touching the database (the fast path) only when
//   - the view plus what this instance admitted since leaves at least `slack` requests of budget
//     (10 % of the limit; budgets up to 100 are always exact), and
//   - this instance admitted fewer than `quota` (slack / 10, 1 % of the limit) fast-path requests for
//     this client in the current flush interval.
// Otherwise the request takes the exact path: one upsert that adds everything not yet flushed plus
// itself and decides on the merged total. A client refused by its current view (the view only grows
// inside a window) is refused without the database.
//
// Tolerance: what no decision can see is what instances admitted on their fast paths and have not yet
// flushed, or admitted on a view older than their last flush: at most `quota` per instance per interval,
// and an instance that admits anything refreshes its view at its next flush, so past the limit a client
// gets at most about 2 × quota × instances extra requests: 60 with three instances at the default
// 1000/1m (measured in test/plugins/global-limit.test.ts). A client far from its limit costs no
// statement per request.
import type postgres from 'postgres';
import type { Clock } from './context.js';
import { STOP_GRACE_MS, withinGrace } from './grace.js';

export interface BudgetDecision { allowed: boolean; limit: number; remaining: number; resetSeconds: number }

interface KeyState {
  windowEnd: number;
  /** the merged total at the last flush or exact check (includes what this instance flushed) */
  shared: number;
  /** admitted here, not yet sent */
  pending: number;
  /** sent, not yet answered */
  inflight: number;
  tick: number;
  fast: number;
}

export interface BudgetStats { fast: number; exact: number; refusedLocally: number; flushes: number }

export class SharedBudget {
  private readonly keys = new Map<string, KeyState>();
  private readonly dirty = new Set<string>();
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  readonly slack: number;
  readonly quota: number;
  private counters: BudgetStats = { fast: 0, exact: 0, refusedLocally: 0, flushes: 0 };

  constructor(
    private readonly sql: postgres.Sql,
    private readonly clock: Clock,
    private readonly limit: { max: number; windowMs: number },
    private readonly flushMs = 250,
    private readonly maxKeys = 50_000,
  ) {
    this.slack = limit.max <= 100 ? limit.max : Math.ceil(limit.max * 0.1);
    this.quota = Math.max(1, Math.floor(this.slack / 10));
  }

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /** Stops the timer and sends the counts not yet sent, waiting at most `graceMs` (shutdown never hangs on it). */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await withinGrace(this.flush(), graceMs);
  }

  stats(): BudgetStats {
    return { ...this.counters };
  }

  /** Admits or refuses one request of `key`; a database error admits (the limiter never takes the API down). */
  take(key: string): Promise<BudgetDecision> {
    return Promise.resolve(this.takeLocal(key) ?? this.exact(key, this.keys.get(key), this.clock.now().getTime()));
  }

  /**
   * The decision this instance can take alone (the fast path, or a refusal by its current view), with
   * no statement and no promise; null when the request must take the exact path (`take`).
   */
  takeLocal(key: string): BudgetDecision | null {
    const now = this.clock.now().getTime();
    const st = this.keys.get(key);
    if (!st) return null;
    if (st.windowEnd <= now) {
      // The next window starts from nothing here; what other instances admit in it arrives with the
      // flushes (the same tolerance applies).
      Object.assign(st, { windowEnd: now + this.limit.windowMs, shared: 0, pending: 0, fast: 0 });
    }
    // least recently used first
    this.keys.delete(key);
    this.keys.set(key, st);
    const estimate = st.shared + st.pending + st.inflight + 1;
    if (estimate > this.limit.max) {
      this.counters.refusedLocally++;
      return this.decision(false, 0, st.windowEnd, now);
    }
    if (st.tick !== this.tick) {
      st.tick = this.tick;
      st.fast = 0;
    }
    if (this.limit.max - estimate >= this.slack && st.fast < this.quota) {
      st.fast++;
      st.pending++;
      this.dirty.add(key);
      this.counters.fast++;
      return this.decision(true, this.limit.max - estimate, st.windowEnd, now);
    }
    return null;
  }

  /**
   * For a request that a stricter exact limit counts as well (the auth, refresh and totp classes):
   * decided on this instance's view alone. It is refused when the view is past the limit, else
   * admitted and counted with the next flush, even for a client this instance has not seen. Those
   * classes allow far fewer requests than the global budget (30/5m per route by default), so the
   * global budget never binds first there, and the exact statement would only cost the login a round
   * trip.
   */
  takeCounted(key: string): BudgetDecision {
    const local = this.takeLocal(key);
    if (local) return local;
    const now = this.clock.now().getTime();
    let st = this.keys.get(key);
    if (!st) {
      st = { windowEnd: now + this.limit.windowMs, shared: 0, pending: 0, inflight: 0, tick: this.tick, fast: 0 };
      this.remember(key, st);
    }
    st.pending++;
    this.dirty.add(key);
    this.counters.fast++;
    return this.decision(true, this.limit.max - (st.shared + st.pending + st.inflight), st.windowEnd, now);
  }

  private remember(key: string, st: KeyState) {
    while (this.keys.size >= this.maxKeys) {
      const oldest = this.keys.keys().next().value!;
      this.keys.delete(oldest);
      this.dirty.delete(oldest);
    }
    this.keys.set(key, st);
  }

  private async exact(key: string, known: KeyState | undefined, now: number): Promise<BudgetDecision> {
    this.counters.exact++;
    let st = known;
    if (!st) {
      st = { windowEnd: now + this.limit.windowMs, shared: 0, pending: 0, inflight: 0, tick: this.tick, fast: 0 };
      this.remember(key, st);
    }
    const inc = st.pending + 1;
    st.pending = 0;
    this.dirty.delete(key);
    st.inflight += inc;
    let rows: { key: string; hits: number; end_ms: string }[];
    try {
      rows = await this.upsert([key], [inc], now);
    } catch {
      st.inflight -= inc;
      st.pending += inc - 1;
      if (st.pending) this.dirty.add(key);
      return this.decision(true, 0, st.windowEnd, now);
    }
    st.inflight -= inc;
    const hits = this.merge(st, rows[0]!);
    return hits <= this.limit.max
      ? this.decision(true, this.limit.max - hits, st.windowEnd, now)
      : this.decision(false, 0, st.windowEnd, now);
  }

  /** Sends every count not yet sent, in one statement, and takes the merged totals as the new view. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.tick++;
    if (!this.dirty.size) return Promise.resolve();
    const now = this.clock.now().getTime();
    const batch: { key: string; st: KeyState; n: number }[] = [];
    for (const key of this.dirty) {
      const st = this.keys.get(key);
      if (!st || st.pending === 0 || st.windowEnd <= now) continue;
      batch.push({ key, st, n: st.pending });
      st.inflight += st.pending;
      st.pending = 0;
    }
    this.dirty.clear();
    if (!batch.length) return Promise.resolve();
    this.counters.flushes++;
    this.flushing = this.upsert(batch.map((b) => b.key), batch.map((b) => b.n), now, true).then((rows) => {
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const b of batch) {
        b.st.inflight -= b.n;
        const row = byKey.get(b.key);
        if (row) this.merge(b.st, row);
      }
    }, () => {
      // put the counts back; the next flush tries again
      for (const b of batch) {
        b.st.inflight -= b.n;
        b.st.pending += b.n;
        this.dirty.add(b.key);
      }
    }).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private merge(st: KeyState, row: { hits: number; end_ms: string }): number {
    const hits = Number(row.hits);
    const end = Number(row.end_ms);
    if (end !== st.windowEnd) {
      st.windowEnd = end;
      st.shared = hits;
    } else {
      st.shared = Math.max(st.shared, hits);
    }
    return hits;
  }

  private upsert(keys: string[], counts: number[], now: number, batch = false) {
    const nowIso = new Date(now).toISOString();
    const end = new Date(now + this.limit.windowMs).toISOString();
    // The same fixed windows as the exact store: a row whose window ended starts again from these counts.
    // The batch is named in the statement (visible in pg_stat_activity and the statement-count test).
    return this.sql<{ key: string; hits: number; end_ms: string }[]>`
      ${batch ? this.sql.unsafe('/* global limit: batch */') : this.sql.unsafe('/* global limit: exact */')}
      insert into rate_limits as r (key, hits, expires_at)
      select k, n, ${end}::timestamptz from unnest(${keys}::text[], ${counts}::int[]) as v(k, n)
      on conflict (key) do update set
        hits = case when r.expires_at <= ${nowIso}::timestamptz then excluded.hits else r.hits + excluded.hits end,
        expires_at = case when r.expires_at <= ${nowIso}::timestamptz then excluded.expires_at else r.expires_at end
      returning key, hits, (extract(epoch from expires_at) * 1000)::bigint::text as end_ms`;
  }

  private decision(allowed: boolean, remaining: number, windowEnd: number, now: number): BudgetDecision {
    return { allowed, limit: this.limit.max, remaining: Math.max(0, remaining), resetSeconds: Math.max(0, Math.ceil((windowEnd - now) / 1000)) };
  }
}
