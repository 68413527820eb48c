import type { Config } from '../config.js';
import type { Database, Sql } from '../db/client.js';
import type { PasswordHasher } from './passwords.js';

export interface Clock { now(): Date }
export const systemClock: Clock = { now: () => new Date() };

/** Everything the framework-free security core needs; built once by the server, the CLI or a test. */
export interface SecurityContext {
  config: Config;
  db: Database;
  sql: Sql;
  clock: Clock;
  passwords: PasswordHasher;
}
