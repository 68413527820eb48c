// An app whose mail goes to a real SMTP server captured by the test, with a synchronous delivery pass;
// and the set-up the mail-flow test files share (useMailFixture).
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { buildTestApp, createTestDatabase, type TestApp, type TestClock, type TestDatabase } from './helper.js';
import { mailEnv, SmtpCapture, smtpTransportFor } from './smtp.js';
import { lateBound } from './late-bound.js';
import { deliverPending, type DeliveryReport } from '../../src/security/outbox.js';
import type { MailTransport } from '../../src/security/mail.js';

export interface MailTestApp extends TestApp {
  transport: MailTransport;
  /** one delivery pass (what the worker does), then wait for the SMTP server to hold `expectTotal` messages */
  deliver(expectTotal?: number): Promise<DeliveryReport>;
}

export async function buildMailTestApp(database: TestDatabase, smtp: SmtpCapture, overrides: Record<string, string> = {}, clock?: TestClock): Promise<MailTestApp> {
  const t = await buildTestApp(database, mailEnv(smtp, overrides), clock);
  const transport = smtpTransportFor(t.config);
  return {
    ...t,
    transport,
    async deliver(expectTotal) {
      const report = await deliverPending(t.ctx, transport);
      if (expectTotal !== undefined) await smtp.waitFor(expectTotal);
      return report;
    },
    async close() {
      await transport.close();
      await t.close();
    },
  };
}

export interface MailFixture {
  /** the captured SMTP server, started for the block */
  smtp: SmtpCapture;
  /** the block's own database (cloned from the template) */
  database: TestDatabase;
  /** the block's mail app (with `app: true`, the default) */
  t: MailTestApp;
}

/**
 * The set-up of a describe block that tests mail flows: its own database and a captured SMTP server
 * for the block, a mail app built with `env` (unless `app: false`: the tests build their own), and
 * an empty mailbox before each test (unless `clearEach: false`: the block clears it itself). The
 * returned `database` and `t` stand for the ones beforeAll builds, so the block can name them up front.
 */
export function useMailFixture(opts: { env?: Record<string, string>; app?: boolean; clearEach?: boolean } = {}): MailFixture {
  const smtp = new SmtpCapture();
  const database = lateBound<TestDatabase>('the database');
  const app = lateBound<MailTestApp>('the mail app');
  beforeAll(async () => {
    database.set(await createTestDatabase());
    await smtp.start();
    if (opts.app ?? true) app.set(await buildMailTestApp(database.proxy, smtp, opts.env));
  });
  afterAll(async () => {
    if (app.value) await app.value.close();
    await smtp.stop();
    await database.value?.drop();
  });
  if (opts.clearEach ?? true) beforeEach(() => smtp.clear());
  return { smtp, database: database.proxy, t: app.proxy };
}
