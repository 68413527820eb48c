// Sliding expiry is written, and the write is what other instances judge by: a session kept in use
// on one instance (its last_used_at slides in the toucher's timed batch, security/session-touch.ts)
// stays alive on another instance that never saw it in use, past the idle limit counted from the
// login; one left alone is idle there. The batch once never reached the database (a JS array where
// postgres.js writes text: db/client.ts restoreSerializers) and nothing noticed, because the instance
// that touched a session keeps its own queued time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, inArray, sql } from 'drizzle-orm';
import { sessions } from '../../src/db/schema/index.js';
import { connect } from '../../src/db/client.js';
import { SessionToucher } from '../../src/security/session-touch.js';
import { bearer, buildTestApp, sidOf, createTestDatabase, login, makeUser, TestClock, type TestApp, type TestDatabase } from '../support/helper.js';

describe('session touches reach the database', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let t: TestApp;
  let u: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    const env = { SECURITY_REFRESH_TOKEN_MAX_IDLE: '10m', SECURITY_TOKEN_MAX_AGE: '2h' };
    t = await buildTestApp(database, env, clock);
    u = await buildTestApp(database, env, clock);
  });
  afterAll(async () => {
    await Promise.all([t.close(), u.close()]);
    await database.drop();
  });

  /** Waits (real time: the batch runs every RATE_LIMIT_FLUSH_INTERVAL_MS) until every session's row shows a use at `at` or later. */
  async function persisted(ids: string[], at: Date, ms = 5000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const rows = await t.db.db.select({ id: sessions.id, lastUsedAt: sessions.lastUsedAt }).from(sessions).where(inArray(sessions.id, ids));
      const behind = rows.filter((r) => r.lastUsedAt.getTime() < at.getTime());
      if (!behind.length && rows.length === ids.length) return;
      if (Date.now() > deadline) throw new Error(`${behind.length} of ${ids.length} sessions still show an older last_used_at after ${ms} ms (${behind[0]?.lastUsedAt.toISOString()} vs ${at.toISOString()})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('40 sessions used in parallel on one instance, three times 7 minutes apart: every touch is written; the other instance finds them alive at 21 minutes, an unused one idle', async () => {
    const user = await makeUser(t.ctx);
    const used = [];
    // one after another: parallel logins of one account would take the lockout's in-flight slots
    for (let i = 0; i < 40; i++) used.push(await login(t.app, user.email));
    const unused = await login(t.app, user.email);
    const ids = used.map((s) => sidOf(s.access_token));
    for (let step = 0; step < 3; step++) {
      clock.advance(7 * 60);
      const usedFrom = clock.now(); // the test clock runs on with real time
      const answers = await Promise.all(used.map((s) => t.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(s.access_token) })));
      expect(answers.map((r) => r.statusCode)).toEqual(used.map(() => 200));
      await persisted(ids, usedFrom);
    }
    // 21 minutes since the logins, 0 since the last use: alive on the instance that never served them
    const there = await Promise.all(used.map((s) => u.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(s.access_token) })));
    expect(there.map((r) => r.statusCode)).toEqual(used.map(() => 200));
    const idle = await u.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(unused.access_token) });
    expect(idle.statusCode).toBe(401);
  });

  it('stop() waits for its last batch only its grace: a batch stuck behind a row lock does not hold a shutdown, and is written once the lock goes', async () => {
    const user = await makeUser(t.ctx);
    const id = sidOf((await login(t.app, user.email)).access_token);
    const pool = connect(database.url, { max: 2 });
    const holder = connect(database.url, { max: 1 });
    try {
      const [row] = await pool.db.select().from(sessions).where(eq(sessions.id, id));
      let release!: () => void;
      const released = new Promise<void>((r) => { release = r; });
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => { locked = r; });
      const lock = holder.db.transaction(async (tx) => {
        await tx.execute(sql`select id from sessions where id = ${id} for update`);
        locked();
        await released;
      });
      await isLocked;
      const toucher = new SessionToucher(pool.sql, clock, 60_000);
      clock.advance(61);
      toucher.touch(row!);
      const t0 = performance.now();
      await toucher.stop(300);
      const waited = performance.now() - t0;
      expect(waited).toBeGreaterThanOrEqual(250);
      expect(waited).toBeLessThan(2000);
      release();
      await lock;
      await persisted([id], row!.lastUsedAt);
    } finally {
      await Promise.all([pool.close(), holder.close()]);
    }
  });
});
