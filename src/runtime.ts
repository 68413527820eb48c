// Start-up shared by the server and the CLI: config → database (embedded or DATABASE_URL) →
// migrations → seed (development), the last two under the start-up lock (db/migrate.ts), so any
// number of instances may start together on an empty database.
import type { Config } from './config.js';
import { openDatabase, type OpenDatabase } from './db/index.js';
import { runMigrations, withStartupLock } from './db/migrate.js';
import { seed } from './security/seed.js';
import { securityContext } from './security/context.js';

export interface Runtime { database: OpenDatabase }

export async function openRuntime(config: Config, log: { info: (m: string) => void; warn: (m: string) => void }, opts: { migrate?: boolean; seed?: boolean; serve?: boolean } = {}): Promise<Runtime> {
  // PostgreSQL's own log stays quiet on a good start; a failed start reports its last lines (EmbeddedStartError).
  const database = await openDatabase(config, undefined, { serve: opts.serve });
  try {
    log.info(database.embedded ? `embedded PostgreSQL on 127.0.0.1:${database.embedded.port} (data in ${config.DATA_DIR}/postgres)` : 'using DATABASE_URL');
    const migrate = opts.migrate ?? true;
    const seeding = opts.seed ?? config.SEED_ON_START;
    if (migrate || seeding) {
      await withStartupLock(database.url, async (locked) => {
        if (migrate) await runMigrations(locked, { locked: true });
        if (seeding) {
          const ctx = securityContext(config, { db: database });
          await seed(ctx, { devAdmin: config.NODE_ENV === 'development', warn: log.warn });
        }
      });
    }
  } catch (err) {
    await database.close();
    throw err;
  }
  return { database };
}
