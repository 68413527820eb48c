// Refresh rotation under concurrency on two instances: the common case rotates in one conditional
// UPDATE outside a transaction (security/sessions.ts), the rest takes the locked path. Whatever the
// interleaving, one token yields exactly one next token, every answer carries it, the generation
// moves by one, and the token before it is reuse once the grace window is over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { sessions } from '../../../src/db/schema/index.js';
import { buildTestApp, createTestDatabase, login, makeUser, TestClock, type TestApp, type TestDatabase } from '../../support/helper.js';

describe('refresh rotation raced over two instances', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    const clock = new TestClock();
    a = await buildTestApp(database, {}, clock);
    b = await buildTestApp(database, {}, clock);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  const refresh = (t: TestApp, token: string) => t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: token } });

  it('100 rounds of 6 parallel refreshes of one token (3 per instance): one next token for all, generation + 1', async () => {
    const user = await makeUser(a.ctx);
    let token = (await login(a.app, user.email)).refresh_token;
    let generation = 0;
    for (let round = 0; round < 100; round++) {
      const answers = await Promise.all([a, b, a, b, a, b].map((t) => refresh(t, token)));
      for (const res of answers) expect(res.statusCode, `round ${round}: ${res.body}`).toBe(200);
      const next = new Set(answers.map((r) => r.json().refresh_token as string));
      expect(next.size, `round ${round}`).toBe(1);
      const [only] = [...next];
      expect(only).not.toBe(token);
      token = only!;
      generation++;
    }
    const rows = await a.ctx.db.select().from(sessions).where(eq(sessions.userId, user.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.refreshGeneration).toBe(generation);
    expect(rows[0]!.revokedAt).toBeNull();
  }, 120_000);

  it('a token two rotations old is reuse: the session is revoked, on either instance', async () => {
    const user = await makeUser(a.ctx);
    const first = (await login(a.app, user.email)).refresh_token;
    const second = (await refresh(a, first)).json().refresh_token as string;
    expect((await refresh(b, second)).statusCode).toBe(200);
    a.clock.advance(a.config.SECURITY_REFRESH_GRACE_PERIOD + 1);
    const reused = await refresh(b, first);
    expect(reused.statusCode).toBe(401);
    expect(reused.json().reason).toBe('reused');
    const [row] = await a.ctx.db.select().from(sessions).where(eq(sessions.userId, user.id));
    expect(row!.revokedReason).toBe('reused');
  });

  it('a rotation that read the state before two others committed does not write it back: its update finds the token gone', async () => {
    const user = await makeUser(a.ctx);
    const token = (await login(a.app, user.email)).refresh_token;
    const [before] = await a.ctx.db.select().from(sessions).where(eq(sessions.userId, user.id));
    const holder = await a.db.sql.reserve();
    try {
      await holder`begin`;
      await holder`select id from sessions where id = ${before!.id} for update`;
      // the refresh reads the state (no lock), then waits on the row for its conditional update
      const pending = refresh(b, token);
      for (let i = 0; i < 200; i++) {
        const [w] = await a.db.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity
          where wait_event_type = 'Lock' and query ilike 'update "sessions"%'`;
        if (w!.n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      // meanwhile two rotations happen (as another client's would)
      await holder`update sessions set previous_refresh_hash = 'x', refresh_token_hash = 'y',
        refresh_generation = refresh_generation + 2, rotated_at = now() where id = ${before!.id}`;
      await holder`commit`;
      const res = await pending;
      expect(res.statusCode, res.body).toBe(401);
    } finally {
      holder.release();
    }
    const [after] = await a.ctx.db.select().from(sessions).where(eq(sessions.userId, user.id));
    expect(after!.refreshGeneration).toBe(before!.refreshGeneration + 2);
    expect(after!.refreshTokenHash).toBe('y');
  });
});
