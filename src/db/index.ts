// Opens the application's database: DATABASE_URL when configured, else an embedded PostgreSQL
// under DATA_DIR/postgres, started here and stopped by close().
import path from 'node:path';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { connect, type DbHandle, type DbTimeouts } from './client.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';

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

/** The pool's timeouts and breaker settings from the configuration. */
export function dbTimeouts(config: Config): DbTimeouts {
  return {
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    healthTimeoutMs: config.DB_HEALTH_TIMEOUT_MS,
    healthIntervalMs: config.DB_HEALTH_INTERVAL_MS,
  };
}

export async function openDatabase(config: Config, log: (msg: string) => void = () => undefined): Promise<OpenDatabase> {
  if (config.DATABASE_URL) {
    const handle = connect(config.DATABASE_URL, { max: config.DB_POOL_MAX, timeouts: dbTimeouts(config) });
    return { ...handle, url: config.DATABASE_URL };
  }
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(config.DATA_DIR, 'postgres'), log });
  try {
    await ensureDatabase(embedded.url(), EMBEDDED_DB_NAME);
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  const url = embedded.url(EMBEDDED_DB_NAME);
  const handle = connect(url, { max: config.DB_POOL_MAX, timeouts: dbTimeouts(config) });
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
