// The error log never prints a statement's parameters or a driver's message (issue 14: a NUL in a
// name made the 500 line print the user's bcrypt hash and fs_uniquifier). Every kind of failing
// write is fed through the one error handler — by the API where it can still fail, and by a test
// route that writes rows carrying secrets — and the captured log is searched for them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { users } from '../../src/db/schema/index.js';
import { serializeError, statementKind } from '../../src/plugins/errors.js';
import { securityContext } from '../../src/security/context.js';
import { createTestDatabase, GOOD_PASSWORD, login, makeUser, TestClock, type TestDatabase } from '../support/helper.js';

const HASH = '$2b$04$abcdefghijklmnopqrstuuJ8a3bq6yq2m3n4o5p6q7r8s9t0u1v2w';
const UNIQUIFIER = 'uq-secret-7f3a9c1e5b2d4f6a8c0e';
const TOKEN = 'tok-secret-Zm9vYmFyYmF6cXV4';

describe('the error log serializer', () => {
  let database: TestDatabase;
  let db: DbHandle;
  const lines: string[] = [];
  let app: Awaited<ReturnType<typeof buildApp>>;
  let ctx: ReturnType<typeof securityContext>;

  // Each write fails in PostgreSQL with the secrets among its parameters.
  const row = (over: Record<string, unknown>) => ({ email: `w${Math.random()}@example.com`, password: HASH, fsUniquifier: UNIQUIFIER, ...over });
  const failingWrites: Record<string, (d: DbHandle) => Promise<unknown>> = {
    'NUL in text (22021)': (d) => d.db.insert(users).values(row({ firstName: 'a\u0000b' })),
    'integer out of range (22003)': (d) => d.db.insert(users).values(row({ loginCount: 2 ** 40 })),
    'date out of range (22008)': (d) => d.db.execute(sql`insert into users (email, password, fs_uniquifier, confirmed_at) values (${'x@example.com'}, ${HASH}, ${UNIQUIFIER}, ${'0000-01-01T00:00:00Z'})`),
    'unique violation (23505)': async (d) => {
      await d.db.insert(users).values(row({ fsUniquifier: `${UNIQUIFIER}-dup` }));
      await d.db.insert(users).values(row({ fsUniquifier: `${UNIQUIFIER}-dup` }));
    },
    'foreign key violation (23503)': (d) => d.db.insert(users).values(row({ countyId: 987654 })),
    'not-null violation (23502)': (d) => d.db.execute(sql`insert into users (email, password, fs_uniquifier) values (${null}, ${HASH}, ${UNIQUIFIER})`),
    'invalid text representation (22P02)': (d) => d.db.execute(sql`select * from sessions where id = ${TOKEN}::uuid`),
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    db = connect(database.url, { max: 3 });
    const config = testConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'trace' });
    const clock = new TestClock();
    app = await buildApp(config, { db, clock, logger: { write: (l) => { lines.push(l); } } });
    app.get('/test/failing-write/:kind', async (request) => {
      await failingWrites[(request.params as { kind: string }).kind]!(db);
      return { ok: true };
    });
    await app.ready();
    ctx = securityContext(config, { db, clock });
  });
  afterAll(async () => {
    await app.close();
    await db.close();
    await database.drop();
  });

  it('every kind of failing write: the log names the statement kind, the code and the request id, never a value', async () => {
    for (const kind of Object.keys(failingWrites)) {
      const before = lines.length;
      const res = await app.inject({ url: `/test/failing-write/${encodeURIComponent(kind)}`, headers: { 'x-request-id': `req-${kind.length}` } });
      expect(res.statusCode, kind).toBeGreaterThanOrEqual(400);
      expect(res.body).not.toContain(HASH);
      expect(res.body).not.toContain(UNIQUIFIER);
      const logged = lines.slice(before).join('\n');
      const code = /\((\w{5})\)/.exec(kind)![1]!;
      expect(logged, kind).toContain(`req-${kind.length}`);
      // 409 (unique) and 400 (foreign key) are the caller's; a value PostgreSQL refused (class 22)
      // or a 500 is logged, by kind and code
      if (res.statusCode >= 500 || code.startsWith('22')) {
        expect(logged, kind).toContain(`"sqlstate":"${code}"`);
        if (code !== '22P02') expect(logged, kind).toMatch(/"statement":"insert into users"/);
      } else {
        expect(res.statusCode, kind).toBe(code === '23505' ? 409 : 400);
      }
    }
    const all = lines.join('\n');
    for (const secret of [HASH, '$2b$', UNIQUIFIER, TOKEN, 'a\\u0000b']) expect(all, secret).not.toContain(secret);
  });

  it('the API\'s own failing writes (conflicts, bad references) log no secrets either', async () => {
    const admin = await makeUser(ctx, { roles: ['County Admin'] });
    const s = await login(app, admin.email);
    const h = { authorization: `Bearer ${s.access_token}` };
    await app.inject({ method: 'POST', url: '/users', headers: h, payload: { email: admin.email, password: GOOD_PASSWORD } });
    await app.inject({ method: 'POST', url: '/users', headers: h, payload: { email: 'fk@example.com', password: GOOD_PASSWORD, county_id: 987654 } });
    await app.inject({ method: 'PATCH', url: `/users/${admin.id}`, headers: h, payload: { department_id: 987654 } });
    await app.inject({ method: 'POST', url: '/roles', headers: h, payload: { name: 'Citizen' } });
    await app.inject({ method: 'POST', url: '/counties', headers: h, payload: { name: 'Nairobi' } });
    await app.inject({ method: 'GET', url: '/audit?from=0000-01-01T00:00:00Z', headers: h });
    const [u] = await db.db.select().from(users).where(sql`id = ${admin.id}`);
    const all = lines.join('\n');
    for (const secret of [u!.password, u!.fsUniquifier, GOOD_PASSWORD, s.access_token, s.refresh_token]) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/\$2[aby]\$/);
  });

  it('serializeError keeps the class, the code and the frames; drops messages and parameters', () => {
    const e = Object.assign(new Error(`Failed query: insert into "users" ... params: ${HASH},${UNIQUIFIER}`), {
      query: 'insert into "users" ("email") values ($1)', params: [HASH],
      cause: Object.assign(new Error(`invalid byte sequence for encoding "UTF8": 0x00 ${UNIQUIFIER}`), { code: '22021', severity: 'ERROR', query: 'insert into "users" values ($1)', parameters: [HASH] }),
    });
    const out = serializeError(e);
    expect(JSON.stringify(out)).not.toContain(HASH);
    expect(JSON.stringify(out)).not.toContain(UNIQUIFIER);
    expect(out).toMatchObject({ code: '22021', sqlstate: '22021', statement: 'insert into users' });
    expect(statementKind('update "sessions" set "revoked_at" = $1 where "id" = $2')).toBe('update sessions');
    expect(statementKind('select "id" from "users" where "email" = $1')).toBe('select');
    expect(statementKind('delete from "sessions" where "id" = $1')).toBe('delete from sessions');
  });
});
