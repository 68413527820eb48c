// The breaker (src/db/client.ts) tells a live database whose connections wait on a lock from a
// silent one. Statements queued on one row lock receive no bytes while PostgreSQL is alive, so the
// probe is the only witness; a probe whose deadline passes while this process is starved (CPU load,
// here a synchronous busy loop) must not read as a black hole and tear the pool down mid-request.
// A black-holed path still trips it. Production values of the breaker (DEFAULT_DB_TIMEOUTS).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/helper.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { connect, DEFAULT_DB_TIMEOUTS, probeDeadline, type DbHandle, type DbHealthEvent, type DbProbeEvent } from '../../src/db/client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** This process does nothing else for `ms`: what a loaded machine does to it, deterministically. */
const starve = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
};

describe('the breaker under lock contention (production breaker values)', () => {
  let database: TestDatabase;
  let pool: DbHandle;
  let holder: DbHandle;
  beforeAll(async () => {
    database = await createTestDatabase();
    pool = connect(database.url, { max: 10, timeouts: DEFAULT_DB_TIMEOUTS });
    holder = connect(database.url, { max: 1, timeouts: DEFAULT_DB_TIMEOUTS });
    await pool.sql`create table lock_probe (id int primary key, n int not null)`;
    await pool.sql`insert into lock_probe values (1, 0)`;
  });
  afterAll(async () => {
    await pool.close();
    await holder.close();
    await database.drop();
  });

  it('40 statements queued on one row lock while the probe\'s deadline passes (event loop starved 700–1300 ms): the breaker stays up, every statement completes after the lock is released', async () => {
    const downs: DbHealthEvent[] = [];
    const probes: DbProbeEvent[] = [];
    pool.health.on('down', (e: DbHealthEvent) => downs.push(e));
    pool.health.on('probe', (p: DbProbeEvent) => probes.push(p));
    const N = 40;
    const done: number[] = [];
    for (const [round, starvedMs] of [700, 1000, 1300].entries()) {
      // another connection holds the row lock
      let release!: () => void;
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => { locked = r; });
      const held = holder.sql.begin(async (tx) => {
        await tx`select n from lock_probe where id = 1 for update`;
        locked();
        await new Promise<void>((r) => { release = r; });
      });
      await isLocked;
      const before = (await pool.sql<{ n: number }[]>`select n from lock_probe where id = 1`)[0]!.n;
      // N statements wait on it: 10 inside PostgreSQL (the pool's connections), the rest queued in the pool
      const queued = Array.from({ length: N }, () => pool.sql<{ n: number }[]>`update lock_probe set n = n + 1 where id = 1 returning n`.then((r) => r[0]!.n));
      await sleep(400); // the waiting connections have made the watchdog start probes: the live database answered
      const probesBefore = probes.length;
      // a probe whose deadline passes (in wall time) while this process cannot run
      const verdict = pool.health.check();
      starve(starvedMs);
      expect(await verdict, `round ${round}: the probe`).toBe(true);
      const judged = probes.slice(probesBefore);
      expect(judged.some((p) => p.ms >= DEFAULT_DB_TIMEOUTS.healthTimeoutMs), `round ${round}: a probe outlived its deadline in wall time`).toBe(true);
      expect(judged.every((p) => p.outcome === 'up'), `round ${round}: ${JSON.stringify(judged)}`).toBe(true);
      expect(pool.health.up).toBe(true);
      await sleep(300);
      release();
      await held;
      const results = await Promise.all(queued);
      // every statement ran, once, in lock order
      expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => before + i + 1));
      done.push(results.length);
    }
    expect(downs, 'the breaker never tripped').toEqual([]);
    console.log(`[breaker] lock contention: ${done.length} rounds × ${N} queued statements completed; probes ${JSON.stringify(probes.map((p) => `${p.outcome}:${p.ms}ms`))}`);
  }, 30_000);

  it('the probe\'s deadline counts only time this process could run, and is judged after its sockets were read', async () => {
    // not starved: it passes after its budget
    const t0 = performance.now();
    const d1 = probeDeadline(100);
    expect(await d1.timeout).toBe('timeout');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    // starved for 3× the budget: the budget is still (almost) whole afterwards
    const d2 = probeDeadline(200);
    starve(600);
    const after = performance.now();
    expect(await d2.timeout).toBe('timeout');
    expect(performance.now() - after, 'budget left after the starvation').toBeGreaterThanOrEqual(100);
    // an answer that arrived during the starvation wins over the deadline that passed meanwhile
    const answered = pool.sql`select pg_sleep(0.05)`.then(() => 'ok' as const);
    await sleep(5); // sent (postgres.js writes from setImmediate); its answer comes in ~50 ms, while this process is busy
    const d3 = probeDeadline(50);
    starve(300);
    expect(await Promise.race([answered, d3.timeout])).toBe('ok');
    d3.cancel();
  });

  it('a black-holed path still trips it: the probe on the silent connection misses its deadline with no byte anywhere', async () => {
    const u = new URL(database.url);
    const proxy = await new TcpProxy(u.hostname, Number(u.port)).start();
    const through = connect(proxy.url(database.url), { max: 4, timeouts: DEFAULT_DB_TIMEOUTS });
    try {
      await through.sql`select 1`;
      await sleep(50); // the probe's connection is warm (opened beside the first pool connection)
      const downs: DbHealthEvent[] = [];
      through.health.on('down', (e: DbHealthEvent) => downs.push(e));
      proxy.blackhole();
      const stuck = through.sql`select 1`.then(() => 'answered', (err: { code?: string }) => err.code ?? 'failed');
      expect(await through.health.check()).toBe(false);
      expect(through.health.up).toBe(false);
      expect(downs.map((d) => d.reason).join()).toMatch(/timed out/);
      expect(await stuck, 'the query on the silent connection fails instead of hanging').not.toBe('answered');
      await proxy.restore();
      expect(await through.health.waitUp(5000), 'recovers').toBe(true);
    } finally {
      await through.close();
      await proxy.stop();
    }
  });
});
