// The database's health as the HTTP layer sees it: `app.database` (the pool's breaker, see
// db/client.ts) for /ready, requests in flight reported to the breaker's watchdog (a request that
// waits on a silent database makes the breaker look), and one log line per breaker transition.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { DbHealth, DbHealthEvent } from '../db/client.js';

declare module 'fastify' {
  interface FastifyInstance {
    database: DbHealth;
  }
  interface FastifyContextConfig {
    /** false on routes that never touch the database (/health, /docs): not watched by the breaker */
    database?: boolean;
  }
  interface FastifyRequest {
    databaseDone: (() => void) | null;
  }
}

async function databasePlugin(app: FastifyInstance, opts: { health: DbHealth }) {
  const health = opts.health;
  app.decorate('database', health);
  app.decorateRequest('databaseDone', null);

  // callback hooks: every request passes here, and an async hook costs a promise each
  app.addHook('onRequest', (request, _reply, next) => {
    if (request.routeOptions.config?.database !== false) request.databaseDone = health.requestStarted();
    next();
  });
  const finish = (request: { databaseDone: (() => void) | null }) => {
    request.databaseDone?.();
    request.databaseDone = null;
  };
  app.addHook('onResponse', (request, _reply, next) => {
    finish(request);
    next();
  });
  app.addHook('onRequestAbort', (request, next) => {
    finish(request);
    next();
  });

  const onDown = (e: DbHealthEvent) => app.log.error({ breaker: 'open', reason: e.reason }, 'database unreachable: answering 503 until it returns');
  const onUp = () => app.log.warn({ breaker: 'closed' }, 'database reachable again');
  health.on('down', onDown);
  health.on('up', onUp);
  app.addHook('onClose', async () => {
    health.off('down', onDown);
    health.off('up', onUp);
  });
}

export default fp(databasePlugin, { name: 'database' });
