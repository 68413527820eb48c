// kill -9 of a real server process in the middle of a delivery batch: the mail it had claimed goes
// out from another instance once its lease ends, each message once. The test runs a short lease
// (OUTBOX_LEASE=5s, OUTBOX_POLL_INTERVAL=1s); the default is 20 s (worst case lease + poll = 25 s).
// And the heartbeat: a batch that takes longer than the lease keeps its rows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { buildTestApp, createTestDatabase, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { quietLog, SmtpCapture, smtpTransportFor } from '../support/smtp.js';
import { outbox } from '../../src/db/schema/index.js';
import { deliverPending, enqueueMail } from '../../src/security/outbox.js';
import { connect } from '../../src/db/client.js';
import { securityContext } from '../../src/security/context.js';
import { testConfig } from '../../src/config.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('outbox recovery after a crash', () => {
  let database: TestDatabase;
  let t: TestApp;
  const smtp = new SmtpCapture();
  const children: ChildProcess[] = [];
  let dataDir: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    await smtp.start();
    dataDir = await mkdtemp(path.join(tmpdir(), 'cs-crash-'));
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await t.close();
    await smtp.stop();
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  function server(name: string): { child: ChildProcess; output: () => string } {
    let out = '';
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: {
        ...process.env, NODE_ENV: 'test', DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info',
        DATA_DIR: path.join(dataDir, name), OUTBOX_WORKER_ENABLED: 'true', MAIL_SERVER: '127.0.0.1', MAIL_PORT: String(smtp.port),
        OUTBOX_LEASE: '5s', OUTBOX_POLL_INTERVAL: '1s',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    return { child, output: () => out };
  }

  it('kill -9 during a batch: every claimed message goes out within 30 s of the kill, each Message-ID exactly once', async () => {
    const user = await makeUser(t.ctx);
    const n = 30;
    await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, ...Array.from({ length: n }, () => ({ template: 'welcome' as const, recipient: user.email, userId: user.id }))));
    smtp.clear();
    smtp.rcptDelayMs = 150;
    // kill A while it waits on the 4th recipient: three messages are in, the 4th was not recorded
    let rcpts = 0;
    let killAt = 0;
    const a = server('a');
    const killed = new Promise<void>((resolve) => {
      smtp.onRcpt = () => {
        if (++rcpts === 4 && !killAt) {
          killAt = Date.now();
          a.child.kill('SIGKILL');
          resolve();
        }
      };
    });
    await Promise.race([killed, sleep(60_000)]);
    expect(killAt, a.output()).toBeGreaterThan(0);
    smtp.onRcpt = undefined;
    smtp.rcptDelayMs = 0;
    const claimedByA = await t.db.db.select({ n: sql<number>`count(*)::int` }).from(outbox).where(sql`status = 'pending' and locked_by is not null`);
    expect(claimedByA[0]!.n, 'the dead instance held claimed rows').toBeGreaterThan(0);

    const b = server('b');
    let deliveredAt = 0;
    while (!deliveredAt && Date.now() - killAt < 60_000) {
      const [left] = await t.db.db.select({ n: sql<number>`count(*)::int` }).from(outbox).where(eq(outbox.status, 'pending'));
      if (left!.n === 0 && smtp.messages.length >= n) deliveredAt = Date.now();
      else await sleep(100);
    }
    const crashToDelivery = deliveredAt - killAt;
    console.log(`[outbox-crash] claimed by the killed instance: ${claimedByA[0]!.n}; crash → all delivered: ${crashToDelivery} ms (OUTBOX_LEASE=5s, OUTBOX_POLL_INTERVAL=1s)`);
    expect(deliveredAt, 'all delivered').toBeGreaterThan(0);
    expect(crashToDelivery).toBeLessThan(30_000);
    const ids = smtp.messages.map((m) => m.messageId);
    expect(ids.length).toBe(n);
    expect(new Set(ids).size).toBe(n);
    const rows = await t.db.db.select().from(outbox).where(eq(outbox.userId, user.id));
    expect(rows.every((r) => r.status === 'sent')).toBe(true);
    b.child.kill('SIGTERM');
    await new Promise((resolve) => b.child.once('exit', resolve));
  }, 90_000);

  it('heartbeat: a batch slower than the lease keeps its rows; a second worker claims none of them meanwhile', async () => {
    await deliverPending(t.ctx, smtpTransportFor(testConfig({ MAIL_SERVER: '127.0.0.1', MAIL_PORT: String(smtp.port) })));
    smtp.clear();
    const user = await makeUser(t.ctx);
    const n = 8;
    await t.ctx.db.transaction((tx) => enqueueMail(t.ctx, tx, ...Array.from({ length: n }, () => ({ template: 'welcome' as const, recipient: user.email, userId: user.id }))));
    const config = testConfig({ DATABASE_URL: database.url, MAIL_SERVER: '127.0.0.1', MAIL_PORT: String(smtp.port), OUTBOX_LEASE: '3s' });
    const pools = [connect(database.url, { max: 2 }), connect(database.url, { max: 2 })];
    const ctxs = pools.map((db) => securityContext(config, { db }));
    const transports = [smtpTransportFor(config), smtpTransportFor(config)];
    smtp.rcptDelayMs = 700; // 8 × 0.7 s ≈ 5.6 s: nearly twice the lease
    try {
      const first = deliverPending(ctxs[0]!, transports[0]!, { log: quietLog });
      await sleep(300);
      // the second worker polls all along; without the heartbeat it would take rows after 3 s
      let stolen = 0;
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        const r = await deliverPending(ctxs[1]!, transports[1]!, { log: quietLog });
        stolen += r.claimed;
        await sleep(250);
      }
      const report = await first;
      expect(stolen).toBe(0);
      expect(report.sent).toBe(n);
      expect(new Set(smtp.to(user.email).map((m) => m.messageId)).size).toBe(n);
      expect(smtp.to(user.email).length).toBe(n);
    } finally {
      smtp.rcptDelayMs = 0;
      await Promise.all(transports.map((x) => x.close()));
      await Promise.all(pools.map((p) => p.close()));
    }
  }, 60_000);
});
