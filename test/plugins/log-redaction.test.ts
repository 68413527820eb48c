// Log redaction by key: one-time codes and secrets are hidden, error codes are not (a 503 warning
// says ECONNREFUSED / DATABASE_UNAVAILABLE, not "[redacted]"); the outbox never logs its SQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { securityContext } from '../../src/security/context.js';
import { startOutboxWorker } from '../../src/security/outbox.js';
import { SmtpCapture, smtpTransportFor } from '../support/smtp.js';
import { createTestDatabase, type TestDatabase } from '../support/helper.js';

describe('log redaction', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
  });
  afterAll(async () => {
    await smtp.stop();
    await database.drop();
  });

  it('a 503 warning carries the driver code; body codes, passcodes and secrets are redacted', async () => {
    const lines: string[] = [];
    const db: DbHandle = connect(database.url.replace(/:(\d+)\//, ':1/'), { max: 1 });
    const app = await buildApp(testConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'trace' }), { db, logger: { write: (l) => lines.push(l) } });
    try {
      const res = await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever-pass' } });
      expect(res.statusCode).toBe(503);
      app.log.info({ body: { code: '123456', passcode: '654321', login_code: 'lc-secret', email: 'x@example.com' } }, 'a body');
      const all = lines.join('\n');
      const warning = lines.find((l) => l.includes('request failed: SERVICE_UNAVAILABLE'));
      expect(warning).toBeDefined();
      expect(warning).not.toContain('[redacted]');
      // what server.ts logs for a connection lost outside a request, and any driver error code
      app.log.warn({ err: { code: 'ECONNREFUSED' } }, 'database connection lost outside a request');
      const lost = lines.find((l) => l.includes('connection lost outside'));
      expect(JSON.parse(lost!).err.code).toBe('ECONNREFUSED');
      for (const secret of ['123456', '654321', 'lc-secret']) expect(all).not.toContain(secret);
      expect(all).toContain('x@example.com');
    } finally {
      await app.close();
      await db.close();
    }
  });

  it('"outbox: delivery pass failed" names the cause, not the claim SQL and its parameters', async () => {
    const db = connect(database.url, { max: 2 });
    await db.sql`drop table outbox`;
    const config = testConfig({ DATABASE_URL: database.url, MAIL_SERVER: '127.0.0.1', MAIL_PORT: String(smtp.port) });
    const warnings: string[] = [];
    const worker = startOutboxWorker(securityContext(config, { db }), smtpTransportFor(config), { info: () => undefined, warn: (m) => warnings.push(m) });
    try {
      for (let i = 0; i < 100 && !warnings.some((w) => w.includes('delivery pass failed')); i++) await new Promise((r) => setTimeout(r, 50));
      const line = warnings.find((w) => w.includes('delivery pass failed'));
      expect(line).toBe('outbox: delivery pass failed: relation "outbox" does not exist (42P01)');
    } finally {
      await worker.stop();
      await db.close();
    }
  });
});
