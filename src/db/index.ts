// Opens the application's database: DATABASE_URL when configured, else an embedded PostgreSQL
// under DATA_DIR/postgres, started here and stopped by close().
import path from 'node:path';
import postgres from 'postgres';
import type { Config } from '../config.js';
import { connect, type DbHandle } from './client.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.js';
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

export async function openDatabase(config: Config, log: (msg: string) => void = () => undefined, opts: OpenOptions = {}): Promise<OpenDatabase> {
  if (config.DATABASE_URL) {
    const handle = connect(config.DATABASE_URL, { max: config.DB_POOL_MAX });
    return { ...handle, url: config.DATABASE_URL };
  }
  const clusterDir = path.join(config.DATA_DIR, 'postgres');
  if (!opts.serve) {
    const running = await findRunningServer(config.DATA_DIR, clusterDir);
    if (running) {
      const handle = connect(running.url, { max: Math.min(config.DB_POOL_MAX, 2) });
      return { ...handle, url: running.url, attached: { port: running.port, serverPid: running.pid } };
    }
  }
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
  const handle = connect(url, { max: config.DB_POOL_MAX });
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
