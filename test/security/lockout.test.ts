// The lockout's reservation protocol (src/security/lockout.ts) step by step, on the real database: a
// success clears the failures its reservation saw and not those counted after it began; a lock
// survives a success; checks in flight hold their slots; a reservation left by a crashed process stops
// counting after 30 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { lockoutStatus, reserveAttempt, settleFailure, settleSuccess } from '../../src/security/lockout.js';
import { buildTestApp, createTestDatabase, TestClock, type TestApp, type TestDatabase } from '../support/helper.js';

const address = () => `lock-${randomBytes(4).toString('hex')}@example.com`;

describe('lockout reservations', () => {
  let database: TestDatabase;
  let t: TestApp;
  let clock: TestClock;
  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    t = await buildTestApp(database, { SECURITY_LOCKOUT_THRESHOLD: '5' }, clock);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  async function fail(email: string, n: number) {
    for (let i = 0; i < n; i++) await settleFailure(t.ctx, await reserveAttempt(t.ctx, email));
  }

  it('a success clears the failures counted before it began, not those counted while it ran', async () => {
    const email = address();
    await fail(email, 2);
    const success = await reserveAttempt(t.ctx, email); // sees 2
    await fail(email, 1); // counted while the success was being checked
    await settleSuccess(t.ctx, success);
    expect((await lockoutStatus(t.ctx, email)).failures).toBe(1);
  });

  it('a success never ends a lock that began while it ran', async () => {
    const email = address();
    const success = await reserveAttempt(t.ctx, email);
    await fail(email, 4); // 4 + the success in flight = 5 slots: full
    await expect(reserveAttempt(t.ctx, email)).rejects.toMatchObject({ code: 'ACCOUNT_LOCKED' });
    expect((await lockoutStatus(t.ctx, email)).locked).toBe(false);
    clock.advance(31); // the success is slow enough to be presumed dead: its slot is free again
    await fail(email, 1); // the 5th failure locks
    await settleSuccess(t.ctx, success); // the slow success finally settles
    const status = await lockoutStatus(t.ctx, email);
    expect(status.locked).toBe(true);
    expect(status.lockCount).toBe(1);
    expect(status.failures).toBe(0);
  });

  it('checks in flight hold their slots; a crashed one stops counting after 30 s', async () => {
    const email = address();
    for (let i = 0; i < 5; i++) await reserveAttempt(t.ctx, email); // never settled: a crash
    await expect(reserveAttempt(t.ctx, email)).rejects.toMatchObject({ statusCode: 429, code: 'ACCOUNT_LOCKED' });
    expect((await lockoutStatus(t.ctx, email)).locked).toBe(false); // full, not locked
    clock.advance(31);
    await expect(reserveAttempt(t.ctx, email)).resolves.toMatchObject({ failures: 0 });
  });
});
