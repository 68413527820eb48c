// The lockout under a race, over real HTTP: two app instances (app.listen) on one database, a burst
// of parallel wrong passwords for one address split across both, threshold 10, 20 rounds. Each round
// asserts: exactly THRESHOLD answers are bcrypt failures (401), every other one is 429 ACCOUNT_LOCKED
// with Retry-After; the right password sent while the burst is still in flight, and after it, on both
// instances, is refused until the lock ends; one lock (lock_count 1, one account.locked row); after
// the lock the right password works, and a second burst doubles the lock (lock_count 2) instead of
// restarting it. The per-round figures are printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq } from 'drizzle-orm';
import { auditEvents, loginAttempts } from '../../../src/db/schema/index.js';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, listen, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../../support/helper.js';

const WRONG = 'Wrong-Harbor-94-Lantern';
const THRESHOLD = 10;
const BURST = 30;
const ROUNDS = 20;

interface Answer { status: number; code: string | undefined; retryAfter: string | null }

async function post(base: string, email: string, password: string): Promise<Answer> {
  const res = await fetch(`${base}/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  const body = await res.json() as { code?: string };
  return { status: res.status, code: body.code, retryAfter: res.headers.get('retry-after') };
}

describe('lockout race: parallel attempts over two instances', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let a: TestApp;
  let b: TestApp;
  let bases: [string, string];

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    const env = { SECURITY_LOCKOUT_THRESHOLD: String(THRESHOLD) };
    a = await buildTestApp(database, env, clock);
    b = await buildTestApp(database, env, clock);
    bases = [await listen(a.app), await listen(b.app)];
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await database.drop();
  });

  it(`${ROUNDS} rounds of ${BURST} parallel wrong passwords: exactly ${THRESHOLD} × 401, the rest 429, the right password refused until the lock ends`, async () => {
    const figures: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const user = await makeUser(a.ctx);
      let inFlight = BURST;
      let firstRefusal!: () => void;
      const refused = new Promise<void>((resolve) => { firstRefusal = resolve; });
      const burst = Array.from({ length: BURST }, (_, i) => post(bases[i % 2]!, user.email, WRONG).then((r) => {
        inFlight -= 1;
        if (r.status === 429) firstRefusal();
        return r;
      }));
      // The right password inside the burst: once the address refuses anything, the slots are all
      // taken by wrong passwords, so from then on the right one must be refused too.
      await refused;
      const stillInFlight = inFlight;
      const inside = await Promise.all([post(bases[0], user.email, GOOD_PASSWORD), post(bases[1], user.email, GOOD_PASSWORD)]);
      const answers = await Promise.all(burst);
      const after = await Promise.all([post(bases[0], user.email, GOOD_PASSWORD), post(bases[1], user.email, GOOD_PASSWORD)]);

      const failures = answers.filter((r) => r.status === 401);
      const locked = answers.filter((r) => r.status === 429);
      figures.push(`round ${round + 1}: ${failures.length}×401 ${locked.length}×429 (right password sent with ${stillInFlight} still in flight: ${inside.map((r) => r.status).join(',')}; after: ${after.map((r) => r.status).join(',')})`);
      expect(failures.length, figures.at(-1)).toBe(THRESHOLD);
      expect(locked.length, figures.at(-1)).toBe(BURST - THRESHOLD);
      for (const r of failures) expect(r.code).toBe('INVALID_CREDENTIALS');
      for (const r of [...locked, ...inside, ...after]) {
        expect(r.status).toBe(429);
        expect(r.code).toBe('ACCOUNT_LOCKED');
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      }
      const key = user.email.toLowerCase();
      const [row] = await a.ctx.db.select().from(loginAttempts).where(eq(loginAttempts.email, key));
      expect(row?.lockCount).toBe(1);
      expect(row?.pending).toBe(0);
      const locks = await a.ctx.db.select().from(auditEvents).where(and(eq(auditEvents.action, 'account.locked'), eq(auditEvents.targetUserId, user.id)));
      expect(locks.map((l) => l.details.lock_count)).toEqual([1]);

      if (round === 0) {
        // the second burst after the lock ended: the doubling continues (lock_count 2, 30 min)
        clock.advance(15 * 60 + 1);
        const again = await Promise.all(Array.from({ length: BURST }, (_, i) => post(bases[i % 2]!, user.email, WRONG)));
        expect(again.filter((r) => r.status === 401)).toHaveLength(THRESHOLD);
        const [second] = await a.ctx.db.select().from(loginAttempts).where(eq(loginAttempts.email, key));
        expect(second?.lockCount).toBe(2);
        const refusedAfter = await post(bases[1], user.email, GOOD_PASSWORD);
        expect(refusedAfter.code).toBe('ACCOUNT_LOCKED');
        const retry = Number(refusedAfter.retryAfter);
        expect(retry).toBeGreaterThan(29 * 60);
        expect(retry).toBeLessThanOrEqual(30 * 60);
        figures.push(`round 1, second burst: ${again.filter((r) => r.status === 401).length}×401, lock_count 2, Retry-After ${retry}`);
        clock.advance(30 * 60 + 1);
      } else {
        clock.advance(15 * 60 + 1);
      }
      // the lock over, the right password works (on either instance)
      const ok = await post(bases[round % 2]!, user.email, GOOD_PASSWORD);
      expect(ok.status).toBe(200);
    }
    console.log(`lockout race (threshold ${THRESHOLD}, ${BURST} parallel wrong passwords over 2 instances):\n${figures.join('\n')}`);
  }, 180_000);
});
