// The pool registers PostgreSQL's built-in array types itself (src/db/client.ts) instead of letting
// postgres.js fetch them on every new connection: that fetch ran outside any request, and a
// connection lost during it (a database outage) was an unhandled rejection.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_ARRAY_TYPES, connect, type DbHandle } from '../../src/db/client.js';
import { createTestDatabase, type TestDatabase } from '../support/helper.js';

describe('array types of the pool', () => {
  let database: TestDatabase;
  let handle: DbHandle;
  const statements: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = connect(database.url, { max: 3, debug: (_c, query) => { statements.push(query); } });
  });
  afterAll(async () => {
    await handle.close();
    await database.drop();
  });

  it('are the server catalog\'s: every element oid maps to its pg_type.typarray', async () => {
    const rows = await handle.sql<{ oid: number; typarray: number }[]>`
      select oid::int, typarray::int from pg_catalog.pg_type where oid = any(${Object.keys(BUILTIN_ARRAY_TYPES).map(Number)}::int[])`;
    const catalog = Object.fromEntries(rows.map((r) => [r.oid, r.typarray]));
    expect(catalog).toEqual(Object.fromEntries(Object.entries(BUILTIN_ARRAY_TYPES).map(([e, a]) => [Number(e), a])));
  });

  it('parse and serialise without a type query on any connection', async () => {
    statements.length = 0;
    const results = await Promise.all([1, 2, 3].map(async (n) => {
      const [row] = await handle.sql<{ texts: string[]; ints: number[]; echo: string[] }[]>`
        select array['a', 'b,c', ${'"q"'}]::text[] as texts, array[${n}, 2]::int4[] as ints, ${handle.sql.array(['x', 'y z'])}::text[] as echo`;
      return row;
    }));
    for (const row of results) {
      expect(row?.texts).toEqual(['a', 'b,c', '"q"']);
      expect(row?.echo).toEqual(['x', 'y z']);
      expect(row?.ints[1]).toBe(2);
    }
    expect(statements.filter((q) => /pg_type/.test(q))).toEqual([]);
  });

  it('reserve() on a cold pool settles (postgres.js hangs there with fetch_types off; the pool works around it)', async () => {
    const cold = connect(database.url, { max: 2 });
    try {
      const reserved = await Promise.race([
        cold.sql.reserve(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('reserve() did not settle in 5 s')), 5000)),
      ]);
      const [row] = await reserved<{ one: number }[]>`select 1 as one`;
      reserved.release();
      expect(row?.one).toBe(1);
    } finally {
      await cold.close();
    }
  });
});
