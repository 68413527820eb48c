// Start-up shared by the server and the CLI: config → database (embedded or DATABASE_URL) →
// migrations → seed (development).
import type { Config } from './config.js';
import { openDatabase, type OpenDatabase } from './db/index.js';
import { runMigrations } from './db/migrate.js';
import { seed } from './security/seed.js';
import { securityContext } from './security/context.js';

export interface Runtime { database: OpenDatabase }

export async function openRuntime(config: Config, log: { info: (m: string) => void; warn: (m: string) => void }, opts: { migrate?: boolean; seed?: boolean; serve?: boolean } = {}): Promise<Runtime> {
  // PostgreSQL's own log stays quiet on a good start; a failed start reports its last lines (EmbeddedStartError).
  const database = await openDatabase(config, undefined, { serve: opts.serve });
  try {
    log.info(database.embedded ? `embedded PostgreSQL on 127.0.0.1:${database.embedded.port} (data in ${config.DATA_DIR}/postgres)` : 'using DATABASE_URL');
    if (opts.migrate ?? true) await runMigrations(database.db);
    if (opts.seed ?? config.SEED_ON_START) {
      const ctx = securityContext(config, { db: database });
      await seed(ctx, { devAdmin: config.NODE_ENV === 'development', warn: log.warn });
    }
  } catch (err) {
    await database.close();
    throw err;
  }
  return { database };
}
