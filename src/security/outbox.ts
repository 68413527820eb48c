// The transactional outbox. A flow that sends mail writes an outbox row in the same transaction as
// the change that causes it (enqueueMail), so a committed change always has its email and a rolled
// back one never does; requests never wait for SMTP. Delivery (deliverPending) happens later, in the
// worker of any instance:
//
//   claim   one statement: due rows are selected FOR UPDATE SKIP LOCKED and leased (locked_until,
//           OUTBOX_LEASE, default 20 s), so concurrent workers never claim the same row, and a
//           crashed worker's rows come back when the lease ends (worst case lease + poll interval:
//           25 s with the defaults); a heartbeat renews the lease while the batch is being sent
//   send    outside any transaction: no database lock is held while SMTP talks
//   settle  sent → status 'sent'; failure → attempts, last_error and next_attempt_at with
//           exponential backoff, 'failed' after OUTBOX_MAX_ATTEMPTS or a permanent refusal
//
// A NOTIFY on commit wakes the workers at once; polling (OUTBOX_POLL_INTERVAL) is the fallback.
import { and, eq, gt, inArray, lt, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { outbox, type OutboxRow } from '../db/schema/index.js';
import type { Database } from '../db/client.js';
import { advisoryXactLock } from '../db/locks.js';
import type { SecurityContext } from './context.js';
import { isMailAddress, type MailLog, type MailTransport } from './mail.js';
import type { MailTemplate } from './mail-templates.js';
import { renderOutboxRow } from './account-mail.js';
import { describeDatabaseError, isDatabaseUnavailable, pgError } from '../errors.js';

type Tx = Parameters<Parameters<Database['transaction']>[0]>[0];
type Db = Database | Tx;

export const OUTBOX_CHANNEL = 'outbox';
/** At most one message of a throttled kind per address per this many seconds. */
export const MAIL_THROTTLE_SECONDS = 60;
/** Longest wait between two attempts, whatever OUTBOX_RETRY_BACKOFF says about the first one. */
const MAX_BACKOFF_SECONDS = 3600;
const BATCH_SIZE = 20;

export interface MailJob {
  template: MailTemplate;
  recipient: string;
  userId?: number | null;
  payload?: Record<string, unknown>;
}

/**
 * Queues messages inside the caller's transaction. The NOTIFY is transactional too: workers hear it
 * when (and only if) the transaction commits.
 */
export async function enqueueMail(ctx: SecurityContext, db: Db, ...jobs: MailJob[]): Promise<void> {
  if (!jobs.length) return;
  for (const j of jobs) {
    // Addresses reach here validated; a bad one is a bug, never something to hand to SMTP.
    if (!isMailAddress(j.recipient)) throw new Error(`enqueueMail(${j.template}): invalid recipient address`);
  }
  const now = ctx.clock.now();
  await db.insert(outbox).values(jobs.map((j) => ({
    id: randomUUID(),
    template: j.template,
    recipient: j.recipient,
    userId: j.userId ?? null,
    payload: j.payload ?? {},
    createdAt: now,
    nextAttemptAt: now,
  })));
  await db.execute(sql`select pg_notify(${OUTBOX_CHANNEL}, '')`);
}

/**
 * Queues a message unless one of the same template went to the same address within
 * MAIL_THROTTLE_SECONDS (resend buttons, reset requests, repeated registrations). Serialised per
 * address, so two concurrent requests still produce one message. Known and unknown addresses take
 * the same path: the row is resolved at delivery.
 */
export async function enqueueThrottled(ctx: SecurityContext, job: MailJob, beforeCommit?: (tx: Tx) => Promise<void>): Promise<boolean> {
  const now = ctx.clock.now();
  const since = new Date(now.getTime() - MAIL_THROTTLE_SECONDS * 1000);
  return ctx.db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'mailThrottle', sql`hashtext(lower(${job.recipient}))`);
    const recent = await tx.select({ id: outbox.id }).from(outbox).where(and(
      sql`lower(${outbox.recipient}) = lower(${job.recipient})`,
      eq(outbox.template, job.template),
      gt(outbox.createdAt, since),
    )).limit(1);
    if (!recent.length) await enqueueMail(ctx, tx, job);
    // e.g. the answer of an Idempotency-Key, which commits with the mail (or the decision not to send it)
    await beforeCommit?.(tx);
    return !recent.length;
  });
}

export interface DeliveryReport { claimed: number; sent: number; skipped: number; retried: number; failed: number }

export interface DeliveryOptions {
  batchSize?: number;
  /** stop between two messages (shutdown); claimed but unsent rows are released */
  signal?: AbortSignal;
  log?: MailLog;
}

/** Seconds to wait before attempt n+1 after n failed attempts: base, 2·base, 4·base, … capped. */
export function retryDelay(baseSeconds: number, attempts: number): number {
  const cap = Math.max(baseSeconds, MAX_BACKOFF_SECONDS);
  return Math.min(baseSeconds * 2 ** Math.max(0, attempts - 1), cap);
}

const workerName = `${hostname()}:${process.pid}`;

async function claim(ctx: SecurityContext, claimId: string, limit: number): Promise<OutboxRow[]> {
  // ISO strings: drizzle's postgres.js driver leaves Date serialisation to the column mappers,
  // which raw SQL does not go through
  const now = ctx.clock.now().toISOString();
  const leaseEnd = new Date(Date.parse(now) + ctx.config.OUTBOX_LEASE * 1000).toISOString();
  const claimed = await ctx.db.execute<{ id: string }>(sql`
    with due as (
      select id from outbox
      where status = 'pending' and next_attempt_at <= ${now} and (locked_until is null or locked_until <= ${now})
      order by next_attempt_at, created_at
      limit ${limit}
      for update skip locked
    )
    update outbox o set locked_until = ${leaseEnd}, locked_by = ${claimId}, attempts = o.attempts + 1
    from due where o.id = due.id
    returning o.id`);
  const ids = Array.from(claimed, (r) => r.id);
  if (!ids.length) return [];
  return ctx.db.select().from(outbox).where(inArray(outbox.id, ids)).orderBy(outbox.nextAttemptAt, outbox.createdAt);
}

/** Updates a row this claim still holds (a row whose lease passed to another worker is left alone). */
async function settle(ctx: SecurityContext, row: OutboxRow, claimId: string, values: PgUpdateSetSource<typeof outbox>) {
  await ctx.db.update(outbox).set(values).where(and(eq(outbox.id, row.id), eq(outbox.lockedBy, claimId)));
}

function describeError(err: unknown): string {
  // a database error: what the driver said, never drizzle's "Failed query: <SQL> params: …"
  if (pgError(err) || isDatabaseUnavailable(err) || (err instanceof Error && err.message.startsWith('Failed query:'))) return describeDatabaseError(err);
  const e = err as { code?: unknown; responseCode?: unknown; message?: unknown; name?: unknown };
  const code = typeof e.code === 'string' ? e.code : typeof e.name === 'string' ? e.name : 'Error';
  const status = typeof e.responseCode === 'number' ? ` ${e.responseCode}` : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  return `${code}${status}: ${message}`.replace(/\s+/g, ' ').slice(0, 500);
}

async function deliverOne(ctx: SecurityContext, transport: MailTransport, row: OutboxRow, claimId: string, report: DeliveryReport, log?: MailLog) {
  try {
    const mail = await renderOutboxRow(ctx, row);
    if (!mail) {
      // nothing to send (unknown address, already confirmed, account gone): visible, not an error
      await settle(ctx, row, claimId, { status: 'skipped', lockedUntil: null, lockedBy: null });
      report.skipped++;
      return;
    }
    await transport.send(mail);
  } catch (err) {
    const permanent = (err as { permanent?: unknown }).permanent === true;
    const lastError = describeError(err);
    if (permanent || row.attempts >= ctx.config.OUTBOX_MAX_ATTEMPTS) {
      await settle(ctx, row, claimId, { status: 'failed', lastError, lockedUntil: null, lockedBy: null });
      report.failed++;
      log?.warn(`outbox: message ${row.id} (${row.template}) failed for good after ${row.attempts} attempt(s): ${lastError}`);
    } else {
      const delay = retryDelay(ctx.config.OUTBOX_RETRY_BACKOFF, row.attempts);
      const next = new Date(ctx.clock.now().getTime() + delay * 1000);
      await settle(ctx, row, claimId, { lastError, nextAttemptAt: next, lockedUntil: null, lockedBy: null });
      report.retried++;
      log?.warn(`outbox: message ${row.id} (${row.template}) attempt ${row.attempts} failed, retrying in ${delay} s: ${lastError}`);
    }
    return;
  }
  // Sent. If this update fails (database gone), the error ends the pass and the row is sent again
  // when its lease ends: at least once, never silently dropped.
  await settle(ctx, row, claimId, { status: 'sent', sentAt: ctx.clock.now(), lockedUntil: null, lockedBy: null, lastError: null });
  report.sent++;
}

/**
 * Keeps a claim's lease alive while its batch is being sent: every third of OUTBOX_LEASE the rows
 * still held are leased again. alive() turns false when less than a third of the lease is left
 * (the heartbeats failed: the database is gone): the batch then stops before the next message, so
 * no row is sent while another worker may already have claimed it.
 */
function leaseKeeper(ctx: SecurityContext, claimId: string): { alive(): boolean; stop(): void } {
  const leaseMs = ctx.config.OUTBOX_LEASE * 1000;
  let heldUntil = ctx.clock.now().getTime() + leaseMs;
  let beating = false;
  const timer = setInterval(() => {
    if (beating) return;
    beating = true;
    const until = new Date(ctx.clock.now().getTime() + leaseMs);
    ctx.db.update(outbox).set({ lockedUntil: until }).where(and(eq(outbox.lockedBy, claimId), eq(outbox.status, 'pending')))
      .then(() => { heldUntil = until.getTime(); }, () => undefined)
      .finally(() => { beating = false; });
  }, Math.max(500, leaseMs / 3));
  timer.unref();
  return { alive: () => heldUntil - ctx.clock.now().getTime() > leaseMs / 3, stop: () => clearInterval(timer) };
}

/**
 * One delivery pass: claims due rows batch by batch and delivers them, until none are due. Safe to
 * run from several processes at once. Tests call it directly; the worker calls it in a loop.
 */
export async function deliverPending(ctx: SecurityContext, transport: MailTransport, opts: DeliveryOptions = {}): Promise<DeliveryReport> {
  const report: DeliveryReport = { claimed: 0, sent: 0, skipped: 0, retried: 0, failed: 0 };
  const batchSize = opts.batchSize ?? BATCH_SIZE;
  const seen = new Set<string>();
  for (;;) {
    if (opts.signal?.aborted) return report;
    const claimId = `${workerName}:${randomUUID()}`;
    const rows = await claim(ctx, claimId, batchSize);
    report.claimed += rows.length;
    let again = false;
    const lease = leaseKeeper(ctx, claimId);
    try {
      for (const [i, row] of rows.entries()) {
        if (opts.signal?.aborted) {
          // give the rest back: not attempted, so the attempt does not count
          const ids = rows.slice(i).map((r) => r.id);
          await ctx.db.update(outbox).set({ lockedUntil: null, lockedBy: null, attempts: sql`${outbox.attempts} - 1` })
            .where(and(inArray(outbox.id, ids), eq(outbox.lockedBy, claimId)));
          report.claimed -= ids.length;
          return report;
        }
        if (!lease.alive()) {
          // the rest come back to any worker when the lease ends
          report.claimed -= rows.length - i;
          opts.log?.warn(`outbox: lease of ${rows.length - i} claimed message(s) could not be renewed; leaving them to the next pass`);
          return report;
        }
        if (seen.has(row.id)) again = true;
        seen.add(row.id);
        await deliverOne(ctx, transport, row, claimId, report, opts.log);
      }
    } finally {
      lease.stop();
    }
    // A row seen twice means retries are due immediately (a zero backoff): leave it to the next pass.
    if (rows.length < batchSize || again) return report;
  }
}

/** Deletes delivered and skipped rows older than OUTBOX_RETENTION; failed rows stay for inspection. */
export async function purgeOutbox(ctx: SecurityContext): Promise<number> {
  const before = new Date(ctx.clock.now().getTime() - ctx.config.OUTBOX_RETENTION * 1000);
  const rows = await ctx.db.delete(outbox)
    .where(and(inArray(outbox.status, ['sent', 'skipped']), lt(outbox.createdAt, before)))
    .returning({ id: outbox.id });
  return rows.length;
}

export interface OutboxWorker {
  /** run a pass soon (after a commit that queued mail) */
  wake(): void;
  /** LISTEN again (the pool was replaced after a database outage) and run a pass */
  relisten(): void;
  /** stop: finish the message being sent, release the rest of the batch, stop listening */
  stop(): Promise<void>;
}

const PURGE_EVERY_MS = 3600_000;
/** How long stop() waits for the message in flight before giving up (its lease then expires). */
const STOP_GRACE_MS = 10_000;

/** The delivery loop of one process: LISTEN for new mail, poll as a fallback, one pass at a time. */
export function startOutboxWorker(ctx: SecurityContext, transport: MailTransport, log: MailLog): OutboxWorker {
  const abort = new AbortController();
  const pollMs = ctx.config.OUTBOX_POLL_INTERVAL * 1000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  let lastPurge = 0;
  let listener: { unlisten: () => Promise<void> } | undefined;

  const schedule = (ms: number) => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(run, ms);
    // the HTTP server keeps the process alive; a forgotten worker must not
    timer.unref();
  };

  function run() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await deliverPending(ctx, transport, { signal: abort.signal, log });
          if (Date.now() - lastPurge > PURGE_EVERY_MS) {
            lastPurge = Date.now();
            await purgeOutbox(ctx);
          }
        } catch (err) {
          // the database is down, most likely: try again at the next poll
          log.warn(`outbox: delivery pass failed: ${describeError(err)}`);
        }
      } while (again && !stopped);
    })().finally(() => {
      running = null;
      schedule(pollMs);
    });
  }

  const listen = () => ctx.sql.listen(OUTBOX_CHANNEL, () => wake())
    .then((l) => {
      if (stopped) void l.unlisten().catch(() => undefined);
      else listener = l;
    })
    .catch((err) => log.warn(`outbox: LISTEN failed (${describeError(err)}); polling every ${ctx.config.OUTBOX_POLL_INTERVAL} s`));
  void listen();

  function wake() {
    if (stopped) return;
    if (running) again = true;
    else schedule(0);
  }

  log.info(`outbox: delivering mail via ${transport.description}`);
  schedule(0);

  return {
    wake,
    relisten() {
      if (stopped) return;
      const old = listener;
      listener = undefined;
      void old?.unlisten().catch(() => undefined);
      void listen();
      wake();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      abort.abort();
      await listener?.unlisten().catch(() => undefined);
      if (running) {
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([running, new Promise<void>((r) => { grace = setTimeout(r, STOP_GRACE_MS).unref(); })]);
        clearTimeout(grace);
      }
    },
  };
}
