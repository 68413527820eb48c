// The login pipeline (src/security/login.ts): database round trips of a password login, counted with
// postgres.js's debug hook on the app's own pool (every statement sent), and completeLogin's one
// statement: tracking, session and audit row together, no session while a lock is active.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import * as schema from '../../src/db/schema/index.js';
import { auditEvents, loginAttempts, sessions } from '../../src/db/schema/index.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { securityContext, type SecurityContext } from '../../src/security/context.js';
import { completeLogin } from '../../src/security/login.js';
import { reserveAttempt } from '../../src/security/lockout.js';
import { createTestDatabase, GOOD_PASSWORD, makeUser, TestClock, type TestDatabase } from '../support/helper.js';
import type { FastifyInstance } from 'fastify';

describe('login pipeline', () => {
  let database: TestDatabase;
  let handle: DbHandle;
  let app: FastifyInstance;
  let ctx: SecurityContext;
  const statements: string[] = [];
  let counting = false;
  // the same, with the production rate limits on (PostgreSQL store)
  let limitedHandle: DbHandle;
  let limited: FastifyInstance;

  function countingHandle(url: string): DbHandle {
    return connect(url, {
      max: 5,
      debug: (_conn, query) => {
        if (counting) statements.push(query);
      },
    });
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = countingHandle(database.url);
    const config = testConfig({ DATABASE_URL: database.url });
    const clock = new TestClock();
    app = await buildApp(config, { db: handle, clock });
    await app.ready();
    ctx = securityContext(config, { db: handle, clock });
    limitedHandle = countingHandle(database.url);
    limited = await buildApp(testConfig({ DATABASE_URL: database.url, RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_STORE: 'postgres' }), { db: limitedHandle, clock });
    await limited.ready();
  });
  afterAll(async () => {
    await Promise.all([app.close(), limited.close()]);
    await Promise.all([handle.close(), limitedHandle.close()]);
    await database.drop();
  });

  it('a password login without 2FA is 3 database round trips (reserve + lookup, then one statement)', async () => {
    const user = await makeUser(ctx);
    // open every pooled connection first: postgres.js reads the array types once per new connection
    await Promise.all(Array.from({ length: 5 }, () => handle.sql`select pg_sleep(0.05)`));
    statements.length = 0;
    counting = true;
    const res = await app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } });
    counting = false;
    expect(res.statusCode, res.body).toBe(200);
    // every statement the request sent, whatever layer sent it
    expect(statements, statements.join('\n---\n')).toHaveLength(3);
    expect(statements.some((q) => /insert into login_attempts/i.test(q))).toBe(true);
    expect(statements.some((q) => /update users set/i.test(q) && /insert into sessions/i.test(q) && /insert into audit_events/i.test(q))).toBe(true);
    // the login's effects are all there
    const sid = res.json().refresh_token.split('.')[0];
    const [s] = await ctx.db.select().from(sessions).where(eq(sessions.id, sid));
    expect(s?.userId).toBe(user.id);
    const events = await ctx.db.select().from(auditEvents).where(eq(auditEvents.targetUserId, user.id));
    expect(events.map((e) => e.action)).toContain('login.succeeded');
    expect(res.json().user.login_count).toBe(1);
    const [attempt] = await ctx.db.select().from(loginAttempts).where(eq(loginAttempts.email, user.email.toLowerCase()));
    expect(attempt?.pending).toBe(0);
  });

  it('with the per-IP rate limits on (PostgreSQL store), a first login from a new client is 4 round trips: the pipeline\'s 3 and the auth class\'s exact count', async () => {
    const user = await makeUser(ctx);
    await Promise.all(Array.from({ length: 5 }, () => limitedHandle.sql`select pg_sleep(0.05)`));
    statements.length = 0;
    counting = true;
    const res = await limited.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } });
    counting = false;
    expect(res.statusCode, res.body).toBe(200);
    const limiter = statements.filter((q) => /rate_limits/.test(q));
    const pipeline = statements.filter((q) => !/rate_limits/.test(q));
    expect(pipeline, pipeline.join('\n---\n')).toHaveLength(3);
    // the global budget counts the login for its next batch: no statement of its own on a class route
    expect(limiter, limiter.join('\n---\n')).toHaveLength(1);
    expect(limiter[0]).not.toMatch(/global limit/);
    expect(statements).toHaveLength(4);
    console.log(`POST /login round trips: ${pipeline.length} (pipeline) + ${limiter.length} (rate limiter, RATE_LIMIT_STORE=postgres) = ${statements.length}`);
  });

  it('completeLogin opens no session, writes no success and updates no tracking while the address is locked', async () => {
    const user = await makeUser(ctx);
    const attempt = await reserveAttempt(ctx, user.email);
    await ctx.db.update(loginAttempts).set({ lockedUntil: new Date(ctx.clock.now().getTime() + 60_000) })
      .where(eq(loginAttempts.email, user.email.toLowerCase()));
    await expect(completeLogin(ctx, {
      user, attempt, method: 'password', remember: false, client: { ip: null, userAgent: null },
    })).rejects.toMatchObject({ statusCode: 429, code: 'ACCOUNT_LOCKED' });
    expect(await ctx.db.select().from(sessions).where(eq(sessions.userId, user.id))).toHaveLength(0);
    const events = await ctx.db.select().from(auditEvents).where(eq(auditEvents.targetUserId, user.id));
    expect(events.map((e) => e.action)).not.toContain('login.succeeded');
    const [row] = await ctx.db.select().from(schema.users).where(eq(schema.users.id, user.id));
    expect(row?.loginCount).toBe(0);
    // the lock survived the success attempt
    const [lock] = await ctx.db.select().from(loginAttempts).where(eq(loginAttempts.email, user.email.toLowerCase()));
    expect(lock?.lockedUntil?.getTime()).toBeGreaterThan(ctx.clock.now().getTime());
  });

  it('completeLogin refuses an account deactivated since it was read (no session)', async () => {
    const user = await makeUser(ctx);
    await ctx.db.update(schema.users).set({ active: false }).where(eq(schema.users.id, user.id));
    await expect(completeLogin(ctx, {
      user, attempt: null, method: 'password', remember: false, client: { ip: null, userAgent: null },
    })).rejects.toMatchObject({ statusCode: 401, code: 'INVALID_CREDENTIALS' });
    expect(await ctx.db.select().from(sessions).where(eq(sessions.userId, user.id))).toHaveLength(0);
  });
});
