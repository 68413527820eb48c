// refresh_expires_in counts from the session's expiry without losing a second: right after login it is
// the configured lifetime exactly (30 days = 2592000), however many milliseconds the request took.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';

describe('refresh_expires_in', () => {
  let database: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('a fresh login answers the configured lifetime exactly, every time', async () => {
    expect(t.config.SECURITY_REFRESH_TOKEN_MAX_AGE).toBe(2592000);
    const u = await makeUser(t.ctx);
    // bcrypt and the session insert take milliseconds between opening the session and answering
    for (let i = 0; i < 5; i++) {
      const res = await t.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: GOOD_PASSWORD } });
      expect(res.statusCode).toBe(200);
      expect(res.json().refresh_expires_in).toBe(2592000);
    }
  });

  it('a configured lifetime is answered as configured', async () => {
    const other = await buildTestApp(database, { SECURITY_REFRESH_TOKEN_MAX_AGE: '3600' });
    try {
      const u = await makeUser(other.ctx);
      const res = await other.app.inject({ method: 'POST', url: '/login', payload: { email: u.email, password: GOOD_PASSWORD } });
      expect(res.json().refresh_expires_in).toBe(3600);
      // half an hour later (injected clock), the refresh answer counts down from the same expiry
      other.clock.advance(1800);
      const refreshed = await other.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: res.json().refresh_token } });
      expect(refreshed.statusCode).toBe(200);
      expect(refreshed.json().refresh_expires_in).toBe(1800);
    } finally {
      await other.close();
    }
  });
});
