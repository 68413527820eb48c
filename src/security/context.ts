import type { Config } from '../config.js';
import type { Database, DbHandle, Sql } from '../db/client.js';
import { createPasswordHasher, type PasswordHasher } from './passwords.js';

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

/** The one way to build a context: the server, the CLI, the tests and the bench all call this. */
export function securityContext(config: Config, deps: { db: DbHandle; clock?: Clock }): SecurityContext {
  return {
    config,
    db: deps.db.db,
    sql: deps.db.sql,
    clock: deps.clock ?? systemClock,
    passwords: createPasswordHasher({
      pepper: config.SECURITY_PASSWORD_SALT,
      pepperFallbacks: config.SECURITY_PASSWORD_SALT_FALLBACKS,
      rounds: config.BCRYPT_LOG_ROUNDS,
      minLength: config.SECURITY_PASSWORD_LENGTH_MIN,
      checker: config.SECURITY_PASSWORD_COMPLEXITY_CHECKER,
      checkBreached: config.SECURITY_PASSWORD_CHECK_BREACHED,
    }),
  };
}
