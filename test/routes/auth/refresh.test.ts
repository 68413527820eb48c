// POST /refresh-token: rotation, reuse detection with a grace window for identical replays,
// serialised parallel refreshes, absolute and idle expiry, and input validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq, isNull } from 'drizzle-orm';
import type { LightMyRequestResponse } from 'fastify';
import { sessions } from '../../../src/db/schema/index.js';
import { deactivateUser, resetUserAccess } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, login, makeUser, type TestApp, type TestDatabase,
} from '../../support/helper.js';

const DAY = 86400;

describe('POST /refresh-token', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    // Every test logs in afresh at the clock's current time, so advancing the shared clock is safe.
    t = await buildTestApp(database);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const refresh = (refresh_token: unknown) => t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token } });
  const me = (token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });
  const sidOf = (accessToken: string): string =>
    JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')).sid;
  const sessionRow = async (id: string) => (await t.ctx.db.select().from(sessions).where(eq(sessions.id, id)))[0]!;
  const liveSessions = (userId: number) =>
    t.ctx.db.select().from(sessions).where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt)));

  function expectRefused(res: LightMyRequestResponse, reason: string) {
    expect(res.statusCode, res.body).toBe(401);
    const body = envelopeOf(res);
    expect(body.code).toBe('REFRESH_TOKEN_INVALID');
    expect(body.reason).toBe(reason);
  }

  async function fresh() {
    const user = await makeUser(t.ctx);
    return { user, ...(await login(t.app, user.email)) };
  }

  describe('rotation', () => {
    it('returns a new pair; the new refresh token differs; old and new access tokens both work', async () => {
      const s = await fresh();
      const res = await refresh(s.refresh_token);
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(body).toMatchObject({ token_type: 'Bearer', expires_in: t.config.SECURITY_TOKEN_MAX_AGE, csrf_token: s.csrf_token });
      expect(body.user.id).toBe(s.user.id);
      expect(body.user).not.toHaveProperty('password');
      expect(body.refresh_token).toEqual(expect.any(String));
      expect(body.refresh_token).not.toBe(s.refresh_token);
      expect(sidOf(body.access_token)).toBe(sidOf(s.access_token));
      expect((await me(body.access_token)).statusCode).toBe(200);
      // The old access token names the same live session: it still works until it expires.
      expect((await me(s.access_token)).statusCode).toBe(200);
    });

    it('only a hash of the refresh token is stored', async () => {
      const s = await fresh();
      const row = await sessionRow(sidOf(s.access_token));
      expect(JSON.stringify(row)).not.toContain(s.refresh_token);
      expect(JSON.stringify(row)).not.toContain(s.refresh_token.split('.')[2]);
    });

    it('the refresh token never travels in a cookie', async () => {
      const s = await fresh();
      const res = await refresh(s.refresh_token);
      const cookieText = JSON.stringify(res.cookies);
      expect(cookieText).not.toContain(res.json().refresh_token);
      expect(cookieText).not.toContain(s.refresh_token);
    });

    it('a chain of rotations keeps working; each token is new', async () => {
      const s = await fresh();
      const seen = new Set([s.refresh_token]);
      let current = s.refresh_token;
      for (let i = 0; i < 4; i++) {
        const res = await refresh(current);
        expect(res.statusCode, res.body).toBe(200);
        current = res.json().refresh_token;
        expect(seen.has(current)).toBe(false);
        seen.add(current);
      }
      expect((await sessionRow(sidOf(s.access_token))).refreshGeneration).toBe(4);
    });

    it('rotation never extends the absolute lifetime: 4 × 6 d of refreshes, then expired at 30 d', async () => {
      const s = await fresh();
      let current = s.refresh_token;
      for (let i = 0; i < 4; i++) {
        t.clock.advance(6 * DAY);
        const res = await refresh(current);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().refresh_expires_in).toBeLessThanOrEqual(30 * DAY - 6 * DAY * (i + 1));
        current = res.json().refresh_token;
      }
      t.clock.advance(6 * DAY + 1);
      expectRefused(await refresh(current), 'expired');
    });
  });

  describe('reuse detection', () => {
    it('replaying the rotated token after the grace window → reused, and the whole session dies', async () => {
      const s = await fresh();
      const first = await refresh(s.refresh_token);
      expect(first.statusCode).toBe(200);
      const next = first.json();
      t.clock.advance(t.config.SECURITY_REFRESH_GRACE_PERIOD + 1);

      expectRefused(await refresh(s.refresh_token), 'reused');

      const row = await sessionRow(sidOf(s.access_token));
      expect(row.revokedAt).not.toBeNull();
      expect(row.revokedReason).toBe('reused');
      // The legitimate client's new refresh token dies with it…
      expectRefused(await refresh(next.refresh_token), 'reused');
      // …and so does every access token and the cookie of that session.
      for (const token of [s.access_token, next.access_token]) {
        const res = await me(token);
        expect(res.statusCode).toBe(401);
        expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
      }
      const byCookie = await t.app.inject({ url: '/auth/current-user', headers: { cookie: s.cookie } });
      expect(byCookie.statusCode).toBe(401);
    });

    it('an identical replay inside the grace window → 200 with the SAME new refresh token', async () => {
      const s = await fresh();
      const first = await refresh(s.refresh_token);
      expect(first.statusCode).toBe(200);
      t.clock.advance(t.config.SECURITY_REFRESH_GRACE_PERIOD - 2);
      const replay = await refresh(s.refresh_token);
      expect(replay.statusCode, replay.body).toBe(200);
      expect(replay.json().refresh_token).toBe(first.json().refresh_token);
      expect((await me(replay.json().access_token)).statusCode).toBe(200);
      // the session is intact: the (shared) new token rotates normally afterwards
      const after = await refresh(first.json().refresh_token);
      expect(after.statusCode).toBe(200);
      expect(after.json().refresh_token).not.toBe(first.json().refresh_token);
      expect((await sessionRow(sidOf(s.access_token))).revokedAt).toBeNull();
    });

    it('a token two generations old is reuse even inside the grace window', async () => {
      const s = await fresh();
      const r1 = (await refresh(s.refresh_token)).json();
      const r2 = await refresh(r1.refresh_token);
      expect(r2.statusCode).toBe(200);
      expectRefused(await refresh(s.refresh_token), 'reused');
      expectRefused(await refresh(r2.json().refresh_token), 'reused');
    });

    it('20 parallel refreshes with one token → all 200, one identical new token, one live session', async () => {
      const s = await fresh();
      const results = await Promise.all(Array.from({ length: 20 }, () => refresh(s.refresh_token)));
      for (const res of results) expect(res.statusCode, res.body).toBe(200);
      const tokens = new Set(results.map((r) => r.json().refresh_token as string));
      expect(tokens.size).toBe(1);
      const [shared] = [...tokens];
      expect(shared).not.toBe(s.refresh_token);
      const live = await liveSessions(s.user.id);
      expect(live).toHaveLength(1);
      expect(live[0]!.id).toBe(sidOf(s.access_token));
      expect(live[0]!.refreshGeneration).toBe(1);
      for (const res of results) expect((await me(res.json().access_token)).statusCode).toBe(200);
      expect((await refresh(shared)).statusCode).toBe(200);
    });
  });

  describe('dead sessions', () => {
    it('after the absolute lifetime (> 30 d) → expired', async () => {
      const s = await fresh();
      t.clock.advance(t.config.SECURITY_REFRESH_TOKEN_MAX_AGE + 1);
      expectRefused(await refresh(s.refresh_token), 'expired');
    });

    it('idle longer than SECURITY_REFRESH_TOKEN_MAX_IDLE (> 7 d) → idle', async () => {
      const s = await fresh();
      t.clock.advance(t.config.SECURITY_REFRESH_TOKEN_MAX_IDLE + 1);
      expectRefused(await refresh(s.refresh_token), 'idle');
    });

    it('idle expiry slides with use: 6 d, refresh, 6 d, refresh → still fine', async () => {
      const s = await fresh();
      t.clock.advance(6 * DAY);
      const r1 = await refresh(s.refresh_token);
      expect(r1.statusCode, r1.body).toBe(200);
      t.clock.advance(6 * DAY);
      const r2 = await refresh(r1.json().refresh_token);
      expect(r2.statusCode, r2.body).toBe(200);
    });

    it('after logout → revoked', async () => {
      const s = await fresh();
      const out = await t.app.inject({ method: 'POST', url: '/logout', headers: bearer(s.access_token) });
      expect(out.statusCode).toBe(204);
      expectRefused(await refresh(s.refresh_token), 'revoked');
    });

    it('after logout-all, reset-access or deactivation → revoked', async () => {
      const a = await fresh();
      expect((await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(a.access_token) })).statusCode).toBe(204);
      expectRefused(await refresh(a.refresh_token), 'revoked');

      const b = await fresh();
      await resetUserAccess(t.ctx, b.user.id);
      expectRefused(await refresh(b.refresh_token), 'revoked');

      const c = await fresh();
      await deactivateUser(t.ctx, c.user.id);
      expectRefused(await refresh(c.refresh_token), 'revoked');
    });
  });

  describe('bad tokens', () => {
    it.each([
      ['garbage', 'garbage'],
      ['an access token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'],
      ['a uuid alone', '0d4a4f3e-3f0a-4b7e-9d1e-6f6c7a8b9c0d'],
      ['an unknown session', `0d4a4f3e-3f0a-4b7e-9d1e-6f6c7a8b9c0d.0.${'A'.repeat(43)}`],
      ['trailing whitespace', `0d4a4f3e-3f0a-4b7e-9d1e-6f6c7a8b9c0d.0.${'A'.repeat(43)} `],
    ])('%s → invalid', async (_name, token) => {
      expectRefused(await refresh(token), 'invalid');
    });

    it('a forged mac for a real session → invalid, and the session survives', async () => {
      const s = await fresh();
      const [sid, gen] = s.refresh_token.split('.');
      const forged = `${sid}.${gen}.${'A'.repeat(43)}`;
      expect(forged).not.toBe(s.refresh_token);
      expectRefused(await refresh(forged), 'invalid');
      expect((await me(s.access_token)).statusCode).toBe(200);
      expect((await refresh(s.refresh_token)).statusCode).toBe(200);
    });

    it('a forged mac claiming an old generation is not mistaken for reuse (no revocation by session id alone)', async () => {
      const s = await fresh();
      const r1 = await refresh(s.refresh_token);
      expect(r1.statusCode).toBe(200);
      t.clock.advance(t.config.SECURITY_REFRESH_GRACE_PERIOD + 1);
      const sid = sidOf(s.access_token);
      expectRefused(await refresh(`${sid}.0.${'B'.repeat(43)}`), 'invalid');
      expect((await sessionRow(sid)).revokedAt).toBeNull();
      expect((await refresh(r1.json().refresh_token)).statusCode).toBe(200);
    });

    it('another user\'s session id with my mac → invalid', async () => {
      const mine = await fresh();
      const theirs = await fresh();
      const [, gen, mac] = mine.refresh_token.split('.');
      expectRefused(await refresh(`${sidOf(theirs.access_token)}.${gen}.${mac}`), 'invalid');
      expect((await me(theirs.access_token)).statusCode).toBe(200);
    });
  });

  describe('input validation', () => {
    it('extra body fields → 400 VALIDATION_FAILED naming the field, and no rotation happens', async () => {
      const s = await fresh();
      const res = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s.refresh_token, user_id: 1 } });
      expect(res.statusCode).toBe(400);
      const body = envelopeOf(res);
      expect(body.code).toBe('VALIDATION_FAILED');
      expect(body.fields).toHaveProperty('user_id');
      expect((await sessionRow(sidOf(s.access_token))).refreshGeneration).toBe(0);
      expect((await refresh(s.refresh_token)).statusCode).toBe(200);
    });

    it('missing, empty, non-string or oversized refresh_token → 400', async () => {
      const cases: unknown[] = [undefined, '', 123, ['x'], null, 'x'.repeat(513)];
      for (const value of cases) {
        const res = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: value === undefined ? {} : { refresh_token: value } });
        expect(res.statusCode, JSON.stringify(value)).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
    });

    it('a non-JSON body → 415', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: 'refresh_token=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expect(res.statusCode).toBe(415);
      expect(envelopeOf(res).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    });
  });
});
