import postgres from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import * as schema from './schema/index.js';

export type Database = PostgresJsDatabase<typeof schema>;
export type Sql = postgres.Sql;

export interface DbHandle {
  url: string;
  sql: Sql;
  db: Database;
  close: () => Promise<void>;
}

export function connect(url: string, opts: { max?: number } = {}): DbHandle {
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => undefined,
    // Fail fast when the server is unreachable so requests get a 503 instead of hanging.
    connect_timeout: 5,
    idle_timeout: 60,
    connection: { application_name: 'county-services' },
  });
  const db = drizzle(sql, { schema });
  return { url, sql, db, close: () => sql.end({ timeout: 5 }) };
}
