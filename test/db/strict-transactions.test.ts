// The test pools refuse a statement on the pool from inside a transaction's callback (client.ts,
// strictTransactions): it would wait for a second connection, and a burst of such requests holding
// every connection of a pool would wait for each other forever. Every test app runs with it on, so
// the whole suite is the search for such code; this file shows the guard itself works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { connect, NestedPoolQueryError, type DbHandle } from '../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from '../support/helper.js';

describe('strict transactions (test pools)', () => {
  let database: TestDatabase;
  let strict: DbHandle;
  let lax: DbHandle;

  beforeAll(async () => {
    database = await createTestDatabase();
    strict = connect(database.url, { max: 2, strictTransactions: true });
    lax = connect(database.url, { max: 2 });
  });
  afterAll(async () => {
    await Promise.all([strict.close(), lax.close()]);
    await database.drop();
  });

  it('inside a transaction, the pool (drizzle, raw, a nested transaction) is refused and the transaction rolls back; the transaction itself works', async () => {
    const attempts: [string, (db: DbHandle) => Promise<unknown>][] = [
      ['drizzle', (h) => h.db.execute(sql`select 1`)],
      ['raw', (h) => h.sql`select 1`.then((r) => r)],
      ['nested transaction', (h) => h.db.transaction(async () => undefined)],
    ];
    for (const [name, nested] of attempts) {
      const outcome = strict.db.transaction(async (tx) => {
        expect((await tx.execute(sql`select 2 as two`))[0]).toEqual({ two: 2 });
        await nested(strict);
      });
      const err = await outcome.then(() => null, (e: unknown) => e as Error & { cause?: unknown });
      // drizzle wraps a driver error in its own (the cause)
      expect(err instanceof NestedPoolQueryError || err?.cause instanceof NestedPoolQueryError, `${name}: ${String(err)}`).toBe(true);
    }
    // after the callback, and beside it, the pool is fine
    expect((await strict.db.execute(sql`select 3 as three`))[0]).toEqual({ three: 3 });
    const [inside, beside] = await Promise.all([
      strict.db.transaction(async (tx) => (await tx.execute(sql`select 4 as n`))[0]),
      strict.db.execute(sql`select 5 as n`).then((r) => r[0]),
    ]);
    expect([inside, beside]).toEqual([{ n: 4 }, { n: 5 }]);
  });

  it('without the option (production) the pool statement runs (on a second connection)', async () => {
    const answer = await lax.db.transaction(async () => (await lax.db.execute(sql`select 6 as n`))[0]);
    expect(answer).toEqual({ n: 6 });
  });
});
