import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, envelopeOf, type TestApp, type TestDatabase } from '../../support/helper.js';

describe('GET /health and GET /ready', () => {
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

  it('GET /health answers 200 {status:"ok"}', async () => {
    const res = await t.app.inject('/health');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /ready answers 200 when the database answers', async () => {
    const res = await t.app.inject('/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', database: 'up' });
  });

  it('every response carries a request id and no-store', async () => {
    const res = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'abc-123' } });
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect(res.headers['cache-control']).toBe('no-store');
    const bad = await t.app.inject({ url: '/health', headers: { 'x-request-id': 'evil\u0000value with spaces' } });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('GET /ready answers 503 SERVICE_UNAVAILABLE when the pool cannot reach the database', async () => {
    const broken = await buildTestApp({ ...database, url: database.url.replace(/:(\d+)\//, ':1/') });
    try {
      const res = await broken.app.inject('/ready');
      expect(res.statusCode).toBe(503);
      expect(envelopeOf(res).code).toBe('SERVICE_UNAVAILABLE');
      expect(res.body).not.toMatch(/ECONNREFUSED|postgres/i);
    } finally {
      await broken.close();
    }
  });
});
