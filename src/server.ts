// The only file that listens: config → database → app → listen, and a graceful shutdown that drains
// requests, closes the pool and stops the embedded PostgreSQL.
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openRuntime } from './runtime.js';

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

  const { database } = await openRuntime(config, boot);
  const app = await buildApp(config, { db: database });

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    try {
      await app.close(); // stops accepting, drains in-flight requests, runs onClose hooks
      await database.close(); // closes the pool, stops embedded PostgreSQL
    } finally {
      process.exit(0);
    }
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  try {
    await app.listen({ host: config.HOST, port: config.PORT });
  } catch (err) {
    app.log.error({ err }, 'could not listen');
    await app.close();
    await database.close();
    process.exit(1);
  }
}

main().catch((err) => {
  console.error('[county-services] start-up failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
