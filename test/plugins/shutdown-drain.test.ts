// Closing the app drains, within a bound (src/app.ts SHUTDOWN_DRAIN_MS): a request in flight still
// gets its answer, and a connection Node counts as busy (here: a request whose headers never finish)
// is closed after the drain window instead of holding app.close() until Node's own timeouts (60 s
// and more). server.ts exits after 15 s whatever happens; the bound keeps a shutdown orderly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { SHUTDOWN_DRAIN_MS } from '../../src/app.js';
import { buildTestAppWith, createTestDatabase, listen, TestClock, type TestDatabase } from '../support/helper.js';

describe('shutdown drain', () => {
  let database: TestDatabase;
  beforeAll(async () => { database = await createTestDatabase(); });
  afterAll(async () => { await database.drop(); });

  it('a request in flight is answered; a connection left busy is closed after the drain window, not after Node\'s timeouts', async () => {
    const t = await buildTestAppWith(database, {}, new TestClock(), (app) => {
      app.get('/slow', { config: { database: false }, schema: { hide: true } }, async () => {
        await new Promise((r) => setTimeout(r, 300));
        return { ok: true };
      });
    });
    const base = await listen(t.app);
    const { port } = new URL(base);
    // a connection Node counts as busy: the request line and one header, never the blank line
    const stuck = net.connect(Number(port), '127.0.0.1');
    await new Promise((r) => stuck.once('connect', r));
    stuck.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    const stuckClosed = new Promise<number>((r) => stuck.once('close', () => r(performance.now())));
    const inFlight = fetch(`${base}/slow`);
    await new Promise((r) => setTimeout(r, 50)); // the slow request has started
    const t0 = performance.now();
    const closed = t.close().then(() => performance.now());
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    const [closedAt, stuckAt] = await Promise.all([closed, stuckClosed]);
    // the busy connection lasted the drain window, and no longer
    expect(stuckAt - t0).toBeGreaterThanOrEqual(SHUTDOWN_DRAIN_MS - 100);
    expect(closedAt - t0).toBeLessThan(SHUTDOWN_DRAIN_MS + 3000);
  }, 20_000);
});
