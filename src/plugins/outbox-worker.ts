// The outbox worker of this process: started when the app is ready, stopped when it closes (SIGTERM:
// the message in flight finishes, the rest of the batch is released for the next start or another
// instance). Delivery itself lives in security/outbox.ts.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { createMailTransport, type MailLog } from '../security/mail.js';
import { startOutboxWorker, type OutboxWorker } from '../security/outbox.js';

async function outboxWorkerPlugin(app: FastifyInstance) {
  const ctx = app.security;
  const { config } = ctx;
  if (!config.OUTBOX_WORKER_ENABLED) return;
  const log: MailLog = { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m) };
  const transport = createMailTransport(config, log);
  if (!transport) {
    app.log.warn('MAIL_SERVER is not set: emails are kept in the outbox table and sent once it is configured');
    return;
  }
  let worker: OutboxWorker | undefined;
  // after an outage the pool (and its LISTEN connection) is new: listen again, deliver what waited
  const recovered = () => worker?.relisten();
  app.addHook('onReady', async () => {
    worker = startOutboxWorker(ctx, transport, log);
    app.database.on('up', recovered);
  });
  app.addHook('onClose', async () => {
    app.database.off('up', recovered);
    await worker?.stop();
    await transport.close();
  });
}

export default fp(outboxWorkerPlugin, { name: 'outbox-worker', dependencies: ['authentication', 'database'] });
