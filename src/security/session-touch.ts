// Sliding session expiry without a statement on the request path: a request that finds its session's
// last_used_at more than a minute old moves it forward in the (cached) row at once and queues the
// write; the queue goes to the database in one statement every `flushMs`. Idle limits are minutes to
// days, so a write that lands a fraction of a second later changes no decision. The column is not
// one that notifies (migrations/0002): touching never drops a cached session.
import type postgres from 'postgres';
import type { SessionRow } from '../db/schema/index.js';
import type { Clock } from './context.js';
import { STOP_GRACE_MS, withinGrace } from './grace.js';

/** last_used_at is written at most this often per session. */
export const TOUCH_INTERVAL_MS = 60_000;

export class SessionToucher {
  private queue = new Map<string, Date>();
  /** the batch being written */
  private sending = new Map<string, Date>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly sql: postgres.Sql, private readonly clock: Clock, private readonly flushMs = 250, private readonly maxQueued = 100_000) {}

  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /**
   * Stops the timer and writes what is queued, waiting at most `graceMs`: a shutdown never hangs on
   * this last, advisory write (a statement stuck behind a lock or on a silent connection; a touch
   * not written costs at most a minute of sliding).
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await withinGrace((async () => {
      await this.flushing;
      await this.flush();
    })(), graceMs);
  }

  /** Slides last_used_at (at most once a minute per session); the write is queued. */
  touch(s: SessionRow): void {
    const now = this.clock.now();
    if (now.getTime() - s.lastUsedAt.getTime() < TOUCH_INTERVAL_MS) return;
    s.lastUsedAt = now;
    this.queue.set(s.id, now);
    if (this.queue.size >= this.maxQueued) void this.flush();
  }

  /**
   * A row read from the database may predate a touch that is still queued here: the queued time
   * wins, so this instance never judges a session idle that it saw in use.
   */
  overlay(s: SessionRow): void {
    const at = this.queue.get(s.id) ?? this.sending.get(s.id);
    if (at && at.getTime() > s.lastUsedAt.getTime()) s.lastUsedAt = at;
  }

  get queued(): number {
    return this.queue.size;
  }

  flush(): Promise<void> {
    if (this.flushing || !this.queue.size) return this.flushing ?? Promise.resolve();
    const batch = this.queue;
    this.queue = new Map();
    this.sending = batch;
    const ids = [...batch.keys()];
    const times = [...batch.values()].map((d) => d.toISOString());
    this.flushing = this.sql`
      /* session touch: batch */
      update sessions s set last_used_at = v.at
      from unnest(${ids}::uuid[], ${times}::timestamptz[]) as v(id, at)
      where s.id = v.id and s.revoked_at is null and s.last_used_at < v.at`
      .then(() => undefined, () => {
        // the next flush tries again (newer touches win)
        for (const [id, at] of batch) if (!this.queue.has(id)) this.queue.set(id, at);
      })
      .finally(() => {
        this.flushing = undefined;
        this.sending = new Map();
      });
    return this.flushing;
  }
}
