// A statement PostgreSQL cancels for a passing reason (here its statement timeout, while another
// connection holds the row's lock) is a 503 SERVICE_UNAVAILABLE with Retry-After, nothing written —
// not a 500. The breaker stays closed: the database answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { users } from '../../src/db/schema/index.js';
import { securityContext, type SecurityContext } from '../../src/security/context.js';
import { bearer, createTestDatabase, envelopeOf, login, makeUser, type TestDatabase } from '../support/helper.js';

describe('a statement cancelled by PostgreSQL', () => {
  let database: TestDatabase;
  let handle: DbHandle;
  let app: FastifyInstance;
  let ctx: SecurityContext;
  beforeAll(async () => {
    database = await createTestDatabase();
    const config = testConfig({ DATABASE_URL: database.url });
    handle = connect(database.url, { max: 4, timeouts: { statementTimeoutMs: 300, healthTimeoutMs: 5000, connectTimeoutMs: 10_000 } });
    app = await buildApp(config, { db: handle });
    await app.ready();
    ctx = securityContext(config, { db: handle });
  });
  afterAll(async () => {
    await app.close();
    await handle.close();
    await database.drop();
  });

  it('a profile write waiting on a row lock past the statement timeout: 503 with Retry-After, the profile unchanged, the database still up', async () => {
    const user = await makeUser(ctx);
    const s = await login(app, user.email);
    const holder = await handle.sql.reserve();
    let res;
    try {
      await holder`begin`;
      await holder`select id from users where id = ${user.id} for update`;
      res = await app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(s.access_token), payload: { first_name: 'Changed' } });
    } finally {
      await holder`rollback`;
      holder.release();
    }
    expect(res.statusCode, res.body).toBe(503);
    expect(envelopeOf(res).code).toBe('SERVICE_UNAVAILABLE');
    expect(res.headers['retry-after']).toBe('1');
    const [row] = await ctx.db.select().from(users).where(eq(users.id, user.id));
    expect(row!.firstName).not.toBe('Changed');
    expect(app.database.up).toBe(true);
    const again = await app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(s.access_token), payload: { first_name: 'Changed' } });
    expect(again.statusCode, again.body).toBe(200);
  });
});
