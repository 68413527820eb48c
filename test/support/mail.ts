// An app whose mail goes to a real SMTP server captured by the test, with a synchronous delivery pass.
import { buildTestApp, type TestApp, type TestClock, type TestDatabase } from './helper.js';
import { mailEnv, smtpTransportFor, type SmtpCapture } from './smtp.js';
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
