// Secrets never reach the logs: drive login, refresh and a one-time-link-shaped URL through an app
// logging at trace level into memory, then search every line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { createTestDatabase, GOOD_PASSWORD, type TestDatabase } from '../support/helper.js';

describe('request logging', () => {
  let database: TestDatabase;
  let db: DbHandle;
  const lines: string[] = [];
  let app: Awaited<ReturnType<typeof buildApp>>;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = connect(database.url, { max: 3 });
    app = await buildApp(testConfig({ DATABASE_URL: database.url, LOG_LEVEL: 'trace' }), { db, logger: { write: (l) => lines.push(l) } });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await db.close();
    await database.drop();
  });

  it('logs each request with its request id, and never a password, token, cookie or link token', async () => {
    const reg = await app.inject({ method: 'POST', url: '/register', payload: { email: 'logs@example.com', password: GOOD_PASSWORD } });
    expect(reg.statusCode).toBe(201);
    const { access_token, refresh_token, csrf_token } = reg.json();
    const cookie = reg.cookies.find((c) => c.name === 'session')!.value;
    await app.inject({ method: 'POST', url: '/login', payload: { email: 'logs@example.com', password: GOOD_PASSWORD }, headers: { 'x-request-id': 'req-login-1' } });
    await app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token } });
    await app.inject({ url: '/auth/current-user', headers: { authorization: `Bearer ${access_token}`, cookie: `session=${cookie}`, 'x-csrf-token': csrf_token } });
    await app.inject({ url: '/reset/secret-link-token-value-123' });

    const all = lines.join('\n');
    expect(lines.length).toBeGreaterThan(5);
    expect(all).toContain('req-login-1');
    for (const secret of [GOOD_PASSWORD, access_token, refresh_token, csrf_token, cookie, 'secret-link-token-value-123']) {
      expect(all).not.toContain(secret);
    }
    expect(all).toContain('/reset/[redacted]');
  });
});
