// Every request the database plugin reports to the breaker's watchdog ends (plugins/database.ts):
// answered through inject or over HTTP, and a client that disconnects after sending its whole request
// while the handler still runs. A request left reported forever would keep the watchdog probing the
// database every few hundred milliseconds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestAppWith, createTestDatabase, listen, TestClock, type TestApp, type TestDatabase } from '../support/helper.js';

describe('requests in flight', () => {
  let database: TestDatabase;
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestAppWith(database, {}, new TestClock(), (app) => {
      app.get('/slow-db', { schema: { hide: true } }, async () => {
        await new Promise((r) => setTimeout(r, 200));
        await app.security.sql`select 1`;
        return { ok: true };
      });
    });
    base = await listen(t.app);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const settled = async () => {
    for (let i = 0; i < 50 && t.db.health.requestsInFlight > 0; i++) await new Promise((r) => setTimeout(r, 20));
    return t.db.health.requestsInFlight;
  };

  it('none left after answered requests (inject and HTTP, 200s and errors)', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => t.app.inject({ method: 'GET', url: i % 2 ? '/slow-db' : '/auth/current-user' })));
    await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${base}${i % 2 ? '/slow-db' : '/nowhere'}`).then((r) => r.arrayBuffer())));
    expect(await settled()).toBe(0);
  });

  it('none left after 30 clients that gave up while their handlers ran', async () => {
    const gaveUp = await Promise.all(Array.from({ length: 30 }, () =>
      fetch(`${base}/slow-db`, { signal: AbortSignal.timeout(50) }).then(() => 'answered', () => 'gave up')));
    expect(gaveUp.every((g) => g === 'gave up')).toBe(true);
    await new Promise((r) => setTimeout(r, 400)); // the handlers finish
    expect(await settled()).toBe(0);
  });
});
