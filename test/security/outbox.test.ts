import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { and, eq, inArray } from 'drizzle-orm';
import { buildTestApp, GOOD_PASSWORD, makeUser } from '../support/helper.js';
import { linkToken, mailEnv, quietLog, SmtpCapture, smtpTransportFor } from '../support/smtp.js';
import { buildMailTestApp, useMailFixture } from '../support/mail.js';
import { outbox, users } from '../../src/db/schema/index.js';
import { connect } from '../../src/db/client.js';
import { securityContext } from '../../src/security/context.js';
import { deliverPending, enqueueMail, purgeOutbox, retryDelay, startOutboxWorker } from '../../src/security/outbox.js';
import type { UserRecord } from '../../src/security/datastore.js';

describe('the transactional outbox', () => {
  const { smtp, database, t } = useMailFixture({ env: { SECURITY_CONFIRMABLE: 'true', OUTBOX_MAX_ATTEMPTS: '3' }, clearEach: false });
  let user: UserRecord;
  beforeAll(async () => {
    user = await makeUser(t.ctx, { email: 'outbox-user@example.com' });
  });
  beforeEach(async () => {
    // each test starts with nothing due and an empty mailbox
    await t.deliver();
    smtp.clear();
    smtp.acceptDelayMs = 0;
  });

  const rowsFor = (recipient: string) => t.db.db.select().from(outbox).where(eq(outbox.recipient, recipient));

  it('SMTP down during registration: the request succeeds, nothing is lost, the mail goes out when SMTP returns', async () => {
    await smtp.stop();
    try {
      const res = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'during-outage@example.com', password: GOOD_PASSWORD } });
      expect(res.statusCode).toBe(201);

      const first = await t.deliver();
      expect(first).toMatchObject({ claimed: 1, sent: 0, retried: 1 });
      const [row] = await rowsFor('during-outage@example.com');
      expect(row).toMatchObject({ status: 'pending', attempts: 1, lockedUntil: null, lockedBy: null });
      expect(row!.lastError).toMatch(/ECONNREFUSED|ECONNECTION|connect/i);
      expect(row!.nextAttemptAt.getTime() - t.clock.now().getTime()).toBeGreaterThan(25_000);

      // backing off: not retried before next_attempt_at
      expect(await t.deliver()).toMatchObject({ claimed: 0 });
      t.clock.advance(31);
      expect(await t.deliver()).toMatchObject({ claimed: 1, retried: 1 });
      const [second] = await rowsFor('during-outage@example.com');
      expect(second!.attempts).toBe(2);
      // the second wait is twice the first
      expect(second!.nextAttemptAt.getTime() - t.clock.now().getTime()).toBeGreaterThan(55_000);
    } finally {
      await smtp.start();
    }
    t.clock.advance(61);
    expect(await t.deliver(1)).toMatchObject({ sent: 1 });
    const [sent] = await rowsFor('during-outage@example.com');
    expect(sent).toMatchObject({ status: 'sent', attempts: 3, lastError: null });
    expect(sent!.sentAt).not.toBeNull();
    const token = linkToken(smtp.single('during-outage@example.com'), 'confirm');
    expect((await t.app.inject(`/confirm/${token}`)).statusCode).toBe(200);
    const [account] = await t.db.db.select().from(users).where(eq(users.email, 'during-outage@example.com'));
    expect(account!.confirmedAt).not.toBeNull();
  });

  it('two workers on separate connection pools deliver concurrently: every message exactly once', async () => {
    const n = 30;
    await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, ...Array.from({ length: n }, () => ({ template: 'welcome' as const, recipient: user.email, userId: user.id }))));
    const pools = [connect(database.url, { max: 3 }), connect(database.url, { max: 3 })];
    const transports = [smtpTransportFor(t.config), smtpTransportFor(t.config)];
    smtp.acceptDelayMs = 5;
    try {
      const reports = await Promise.all(pools.map((db, i) =>
        deliverPending(securityContext(t.config, { db, clock: t.clock }), transports[i]!, { batchSize: 3 })));
      expect(reports[0]!.sent + reports[1]!.sent).toBe(n);
      // both did part of the work
      expect(reports[0]!.sent).toBeGreaterThan(0);
      expect(reports[1]!.sent).toBeGreaterThan(0);
    } finally {
      await Promise.all(transports.map((tr) => tr.close()));
      await Promise.all(pools.map((p) => p.close()));
    }
    await smtp.waitFor(n);
    expect(smtp.messages).toHaveLength(n);
    expect(new Set(smtp.messages.map((m) => m.messageId)).size).toBe(n);
    const rows = await rowsFor(user.email);
    expect(rows.filter((r) => r.template === 'welcome' && r.status === 'sent' && r.attempts === 1)).toHaveLength(n);
  });

  it('a leased row is left alone until its lease ends (a crashed worker\'s rows come back)', async () => {
    await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, { template: 'welcome', recipient: user.email, userId: user.id }));
    const leaseEnd = new Date(t.clock.now().getTime() + t.config.OUTBOX_LEASE * 1000);
    await t.db.db.update(outbox).set({ lockedUntil: leaseEnd, lockedBy: 'crashed-worker', attempts: 1 })
      .where(and(eq(outbox.status, 'pending'), eq(outbox.recipient, user.email)));
    expect(await t.deliver()).toMatchObject({ claimed: 0 });
    t.clock.advance(t.config.OUTBOX_LEASE + 1);
    expect(await t.deliver(1)).toMatchObject({ claimed: 1, sent: 1 });
  });

  it('gives up after OUTBOX_MAX_ATTEMPTS and keeps the failure visible', async () => {
    const down = new SmtpCapture();
    await down.start();
    await down.stop(); // a port nobody listens on
    const dead = await buildMailTestApp(database, down, { OUTBOX_MAX_ATTEMPTS: '2' }, t.clock);
    try {
      const target = await makeUser(dead.ctx, { email: 'never-delivered@example.com' });
      await dead.ctx.db.transaction((tx) => enqueueMail(dead.ctx, tx, { template: 'password_changed', recipient: target.email, userId: target.id }));
      expect(await dead.deliver()).toMatchObject({ retried: 1 });
      t.clock.advance(31);
      expect(await dead.deliver()).toMatchObject({ failed: 1 });
      const [row] = await rowsFor(target.email);
      expect(row).toMatchObject({ status: 'failed', attempts: 2, lockedUntil: null });
      expect(row!.lastError).toBeTruthy();
      t.clock.advance(86400);
      expect(await dead.deliver()).toMatchObject({ claimed: 0 });
    } finally {
      await dead.close();
    }
  });

  it('a recipient the server refuses for good (5xx) fails at once, without retries', async () => {
    const bounce = await makeUser(t.ctx, { email: 'bounce@example.com' });
    smtp.refuse.add('bounce@example.com');
    try {
      await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, { template: 'welcome', recipient: bounce.email, userId: bounce.id }));
      expect(await t.deliver()).toMatchObject({ failed: 1 });
      const [row] = await rowsFor('bounce@example.com');
      expect(row).toMatchObject({ status: 'failed', attempts: 1 });
      expect(row!.lastError).toMatch(/550/);
      expect(smtp.messages).toHaveLength(0);
    } finally {
      smtp.refuse.clear();
    }
  });

  it('a rolled back change leaves no email; a failed registration queues none', async () => {
    await expect(t.ctx.db.transaction(async (tx) => {
      await enqueueMail(t.ctx, tx, { template: 'welcome', recipient: 'rolled-back@example.com' });
      throw new Error('the change failed');
    })).rejects.toThrow('the change failed');
    expect(await rowsFor('rolled-back@example.com')).toHaveLength(0);

    const dup = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'OUTBOX-USER@example.com', password: GOOD_PASSWORD } });
    expect(dup.statusCode).toBe(409);
    expect(await t.deliver()).toMatchObject({ claimed: 0 });
  });

  it('refuses to queue a malformed recipient; a bad row written by someone else fails without reaching SMTP', async () => {
    for (const recipient of ['a@example.com\r\nBcc: x@evil.test', 'a@example.com, b@evil.test', 'Eve <a@example.com>']) {
      await expect(enqueueMail(t.ctx, t.db.db, { template: 'welcome', recipient, userId: user.id })).rejects.toThrow(/invalid recipient/);
    }
    await t.db.db.insert(outbox).values({
      id: '00000000-0000-4000-8000-000000000001', template: 'password_changed', recipient: 'x@example.com\r\nBcc: y@evil.test',
      userId: user.id, createdAt: t.clock.now(), nextAttemptAt: t.clock.now(),
    });
    expect(await t.deliver()).toMatchObject({ failed: 1 });
    const [row] = await t.db.db.select().from(outbox).where(eq(outbox.id, '00000000-0000-4000-8000-000000000001'));
    expect(row).toMatchObject({ status: 'failed' });
    expect(row!.lastError).toMatch(/invalid recipient/);
    expect(smtp.messages).toHaveLength(0);
  });

  it('purges delivered and skipped rows after OUTBOX_RETENTION; failed rows stay', async () => {
    await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, { template: 'welcome', recipient: user.email, userId: user.id }));
    await t.deliver(1);
    const failed = await t.db.db.select({ id: outbox.id }).from(outbox).where(eq(outbox.status, 'failed'));
    expect(failed.length).toBeGreaterThan(0);
    t.clock.advance(t.config.OUTBOX_RETENTION + 60);
    expect(await purgeOutbox(t.ctx)).toBeGreaterThan(0);
    const left = await t.db.db.select().from(outbox);
    expect(left.every((r) => r.status === 'failed' || r.status === 'pending')).toBe(true);
    expect(await t.db.db.select().from(outbox).where(inArray(outbox.id, failed.map((f) => f.id)))).toHaveLength(failed.length);
  });

  it('backoff doubles from OUTBOX_RETRY_BACKOFF and is capped at an hour', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 20].map((a) => retryDelay(30, a))).toEqual([30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    expect(retryDelay(7200, 3)).toBe(7200);
  });
});

describe('the outbox worker', () => {
  const { smtp, database } = useMailFixture({ app: false, clearEach: false });
  beforeEach(() => {
    smtp.clear();
    smtp.acceptDelayMs = 0;
  });

  it('runs inside the app (OUTBOX_WORKER_ENABLED): a commit wakes it, no polling wait; closing the app stops it', async () => {
    // a long poll interval: only the NOTIFY of the commit can make this quick
    const t = await buildTestApp(database, mailEnv(smtp, { OUTBOX_WORKER_ENABLED: 'true', OUTBOX_POLL_INTERVAL: '1h', SECURITY_SEND_REGISTER_EMAIL: 'true' }));
    try {
      // the first pass and the LISTEN start when the app is ready; give them a moment
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      const res = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'worker@example.com', password: GOOD_PASSWORD } });
      expect(res.statusCode).toBe(201);
      await smtp.waitFor(1, 10_000);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(smtp.single('worker@example.com').subject).toBe('Welcome to County Services');
    } finally {
      await t.close();
    }
  });

  it('stop() drains: the message in flight completes, the rest of the batch is released for later', async () => {
    const t = await buildTestApp(database, mailEnv(smtp));
    const transport = smtpTransportFor(t.config);
    try {
      const target = await makeUser(t.ctx, { email: 'drain@example.com' });
      await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, ...Array.from({ length: 5 }, () => ({ template: 'welcome' as const, recipient: target.email, userId: target.id }))));
      smtp.acceptDelayMs = 300;
      const worker = startOutboxWorker(t.ctx, transport, quietLog);
      await smtp.waitFor(1, 5000); // the first message is being accepted
      await worker.stop();
      const rows = await t.db.db.select().from(outbox).where(eq(outbox.recipient, target.email));
      const sent = rows.filter((r) => r.status === 'sent');
      const pending = rows.filter((r) => r.status === 'pending');
      expect(sent.length).toBeGreaterThanOrEqual(1);
      expect(sent.length + pending.length).toBe(5);
      expect(pending.length).toBeGreaterThan(0);
      for (const r of pending) expect(r).toMatchObject({ lockedUntil: null, lockedBy: null, attempts: 0 });

      smtp.acceptDelayMs = 0;
      expect(await deliverPending(t.ctx, transport)).toMatchObject({ sent: pending.length });
      await smtp.waitFor(5);
      expect(new Set(smtp.messages.map((m) => m.messageId)).size).toBe(5);
      expect(smtp.messages).toHaveLength(5);
    } finally {
      await transport.close();
      await t.close();
    }
  });
});
