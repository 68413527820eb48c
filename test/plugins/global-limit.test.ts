// The global limit as deployed (RATE_LIMIT_GLOBAL 1000/1m, PostgreSQL store, batched counts;
// security/shared-budget.ts): N instances on one database, one client hammering all of them at once
// over real HTTP. How far past the limit does it get? The stated tolerance is about
// 2 × quota × N (quota = 10 for 1000/1m): at most 60 extra with three instances.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, createTestDatabase, listen, TestClock, type TestApp, type TestDatabase } from '../support/helper.js';

const N = 3;
const LIMIT = 1000;
const TOLERANCE = 2 * 10 * N;

describe(`global limit ${LIMIT}/1m across ${N} instances, one client`, () => {
  let database: TestDatabase;
  let apps: TestApp[];
  let bases: string[];
  const clock = new TestClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    apps = await Promise.all(Array.from({ length: N }, () => buildTestApp(database, {
      RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_STORE: 'postgres', RATE_LIMIT_GLOBAL: `${LIMIT}/1m`,
    }, clock)));
    bases = await Promise.all(apps.map((t) => listen(t.app)));
  });
  afterAll(async () => {
    await Promise.all(apps.map((t) => t.close()));
    await database.drop();
  });

  /** `concurrency` connections, round robin over the instances, until `total` requests were answered. */
  async function hammer(total: number, concurrency: number, targets = bases) {
    let sent = 0;
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
      while (sent < total) {
        const i = sent++;
        const res = await fetch(`${targets[(i + w) % targets.length]}/health`);
        await res.arrayBuffer();
        statuses.push(res.status);
      }
    }));
    return { ok: statuses.filter((s) => s === 200).length, limited: statuses.filter((s) => s === 429).length, other: statuses.filter((s) => s !== 200 && s !== 429).length };
  }

  it('a burst from 24 connections over 3 instances: admitted between the limit and the limit + tolerance; then refused everywhere', async () => {
    const r = await hammer(LIMIT + 400, 24);
    console.log(`global limit: ${r.ok} admitted of ${LIMIT + 400} (limit ${LIMIT}, ${N} instances, 24 connections): ` +
      `${r.ok - LIMIT} past the limit (stated tolerance ${TOLERANCE}); fast-path ${apps.map((t) => t.app.globalBudget!.stats().fast).join('/')}, ` +
      `exact ${apps.map((t) => t.app.globalBudget!.stats().exact).join('/')}`);
    expect(r.other).toBe(0);
    expect(r.ok).toBeGreaterThanOrEqual(LIMIT);
    expect(r.ok).toBeLessThanOrEqual(LIMIT + TOLERANCE);
    // nothing more for this client on any instance until the window ends
    for (const base of bases) expect((await fetch(`${base}/health`)).status).toBe(429);
  });

  it('a paced client (one request at a time, every instance in turn) is held within the same tolerance', async () => {
    clock.advance(61);
    const r = await hammer(LIMIT + 60, 1);
    console.log(`global limit, paced: ${r.ok} admitted of ${LIMIT + 60}: ${r.ok - LIMIT} past the limit`);
    expect(r.other).toBe(0);
    expect(r.ok).toBeGreaterThanOrEqual(LIMIT);
    expect(r.ok).toBeLessThanOrEqual(LIMIT + TOLERANCE);
  });

  it('the worst case for batching, a stale view: A learned the client at 1, B and C take it to the limit, then a burst on A', async () => {
    clock.advance(61);
    expect((await fetch(`${bases[0]}/health`)).status).toBe(200);
    const bc = await hammer(LIMIT + 100, 16, bases.slice(1));
    const onA = await hammer(200, 16, bases.slice(0, 1));
    const admitted = 1 + bc.ok + onA.ok;
    console.log(`global limit, stale view: ${admitted} admitted (B+C ${bc.ok}, then A ${onA.ok} of 200): ${admitted - LIMIT} past the limit`);
    expect(admitted).toBeGreaterThanOrEqual(LIMIT);
    expect(admitted).toBeLessThanOrEqual(LIMIT + TOLERANCE);
  });

  it('a client within its budget\'s pace costs no statement per request: nearly all requests take the fast path', async () => {
    clock.advance(61);
    const before = apps.map((t) => t.app.globalBudget!.stats());
    // ~50 requests/s over three instances: more than the 1000/1m average, well inside the per-interval quota
    for (let i = 0; i < 150; i++) {
      expect((await fetch(`${bases[i % N]}/health`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = apps.map((t) => t.app.globalBudget!.stats());
    const fast = after.reduce((n, s, i) => n + s.fast - before[i]!.fast, 0);
    const exact = after.reduce((n, s, i) => n + s.exact - before[i]!.exact, 0);
    console.log(`global limit, within pace: ${fast} fast-path, ${exact} exact (a statement each)`);
    expect(fast + exact).toBe(150);
    expect(fast).toBeGreaterThan(exact * 4);
  });

  it('requests on a class route (login) count towards the global budget through the batch, with no statement of the global limit', async () => {
    clock.advance(61);
    const before = apps.map((t) => t.app.globalBudget!.stats().exact);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${bases[i % N]}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `nobody${i}@example.com`, password: 'x' }),
    }).then(async (r) => { await r.arrayBuffer(); return r.status; })));
    expect(answers.every((st) => st === 401 || st === 429)).toBe(true);
    expect(apps.map((t) => t.app.globalBudget!.stats().exact)).toEqual(before);
    await Promise.all(apps.map((t) => t.app.globalBudget!.flush()));
    const [row] = await apps[0]!.db.sql<{ hits: number }[]>`select hits from rate_limits where key like 'global:%' order by expires_at desc limit 1`;
    expect(row!.hits).toBeGreaterThanOrEqual(20);
  });
});
