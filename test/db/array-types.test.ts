// The pool registers PostgreSQL's built-in array types itself (src/db/client.ts) instead of letting
// postgres.js fetch them on every new connection: that fetch ran outside any request, and a
// connection lost during it (a database outage) was an unhandled rejection. And every serialiser
// hands postgres.js text: drizzle replaces some (the date types, their arrays, json) with the identity,
// which made a raw statement with a timestamptz[] parameter throw inside postgres.js's Bind writer —
// pipelined behind another statement, that left the connection waiting forever (client.ts,
// restoreSerializers).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { sql as dsql } from 'drizzle-orm';
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

  /** A statement's promise, or a failure that names it after `ms` (a wedged connection never answers). */
  const within = <T>(p: Promise<T>, what: string, ms = 5000): Promise<T> => Promise.race([
    p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref()),
  ]);

  // text-element arrays: postgres.js infers nothing, the server describes the parameter as the array type
  const samples: { type: string; value: string[] }[] = [
    { type: 'text', value: ['a', 'b,c', '"q"'] }, { type: 'varchar', value: ['x'] }, { type: 'bpchar', value: ['y'] },
    { type: 'name', value: ['n'] }, { type: 'int2', value: ['1', '2'] }, { type: 'int4', value: ['3'] }, { type: 'int8', value: ['9007199254740993'] },
    { type: 'oid', value: ['26'] }, { type: 'float4', value: ['1.5'] }, { type: 'float8', value: ['2.25'] }, { type: 'numeric', value: ['1.10', '2'] },
    { type: 'date', value: ['2026-12-02'] }, { type: 'time', value: ['01:02:03'] },
    { type: 'timestamp', value: ['2026-12-02T01:02:03.456'] }, { type: 'timestamptz', value: ['2026-12-02T01:02:03.456Z', '2026-12-02T05:00:00+02:00'] },
    { type: 'interval', value: ['1 hour'] }, { type: 'uuid', value: [randomUUID()] }, { type: 'json', value: ['{"a":1}'] }, { type: 'jsonb', value: ['{"b":[2]}'] },
  ];

  it('every built-in array type as a raw parameter: described, then prepared, then pipelined on one connection, all answered right', async () => {
    const one = connect(database.url, { max: 1 });
    try {
      for (const { type, value } of samples) {
        // the server's own reading of the same literal is the expected answer
        const literal = `{${value.map((v) => `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
        const run = () => one.sql<{ same: boolean }[]>`
          select (${value}::${one.sql.unsafe(type)}[])::text = (${literal}::${one.sql.unsafe(type)}[])::text as same`;
        for (let i = 0; i < 3; i++) expect((await within(run(), `${type}[] #${i}`))[0]!.same, `${type}[]`).toBe(true);
        // pipelined: many at once on the one connection, the prepared statement reused
        const answers = await within(Promise.all(Array.from({ length: 20 }, run)), `${type}[] pipelined`);
        expect(answers.every((r) => r[0]!.same), `${type}[] pipelined`).toBe(true);
      }
    } finally {
      await one.close();
    }
  });

  it('a Date, a JS array of ISO times and a json value as raw parameters serialise (they reached postgres.js untouched before)', async () => {
    const at = new Date('2026-12-02T01:02:03.456Z');
    const [row] = await handle.sql<{ date: boolean; dates: boolean; json: boolean }[]>`
      select ${at}::timestamptz = '2026-12-02T01:02:03.456Z'::timestamptz as date,
        ${[at.toISOString()]}::timestamptz[] = array['2026-12-02T01:02:03.456Z'::timestamptz] as dates,
        ${handle.sql.json({ a: [1] })}::jsonb = '{"a":[1]}'::jsonb as json`;
    expect(row).toEqual({ date: true, dates: true, json: true });
  });

  it('the session toucher\'s batch, pipelined with reads and drizzle statements on one connection, never wedges it (200 rounds)', async () => {
    const one = connect(database.url, { max: 1 });
    try {
      for (let round = 0; round < 200; round++) {
        const ids = [randomUUID(), randomUUID()];
        const times = ids.map(() => new Date().toISOString());
        const work = [
          one.sql`select 1 as one`,
          // the shape of security/session-touch.ts's flush
          one.sql`select count(*)::int as n from unnest(${ids}::uuid[], ${times}::timestamptz[]) as v(id, at)`,
          one.db.execute(dsql`select ${ids[0]}::uuid as id`),
          one.sql`select ${times}::timestamptz[] as t`,
        ];
        const [a, b, , d] = await within(Promise.all(work), `round ${round}`);
        expect((a as unknown as { one: number }[])[0]!.one).toBe(1);
        expect((b as unknown as { n: number }[])[0]!.n).toBe(2);
        expect((d as unknown as { t: string }[])[0]!.t).toBeTruthy();
      }
    } finally {
      await one.close();
    }
  });
});
