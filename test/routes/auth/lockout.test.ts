// Account lockout over real HTTP, with two instances on one database (failures made through either
// count together): the threshold, 429 ACCOUNT_LOCKED with Retry-After even for the right password,
// a correct login resetting the count, the window, expiry and doubling on the TestClock, an unknown
// address locking identically, the owner's email, and unlockEmail / lockoutStatus.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { outbox } from '../../../src/db/schema/index.js';
import { eq } from 'drizzle-orm';
import { renderOutboxRow } from '../../../src/security/account-mail.js';
import { lockDuration, lockoutStatus, unlockEmail } from '../../../src/security/lockout.js';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, TestClock, type TestApp, type TestDatabase, listen,
} from '../../support/helper.js';

const WRONG = 'Wrong-Harbor-94-Lantern';

async function login(base: string, email: string, password: string) {
  const res = await fetch(`${base}/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) as Record<string, unknown> };
}

describe('account lockout (two instances, one database)', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let a: TestApp;
  let b: TestApp;
  let baseA: string;
  let baseB: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    a = await buildTestApp(database, {}, clock);
    b = await buildTestApp(database, {}, clock);
    [baseA, baseB] = await Promise.all([listen(a.app), listen(b.app)]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await database.drop();
  });

  const base = (i: number) => (i % 2 ? baseB : baseA);

  /** n failures, alternating between the instances; each must be a plain 401. */
  async function fail(email: string, n: number) {
    for (let i = 0; i < n; i++) {
      const r = await login(base(i), email, WRONG);
      expect(r.status, r.text).toBe(401);
      expect(r.json.code).toBe('INVALID_CREDENTIALS');
    }
  }

  it('10 failures within 15 min (default threshold) → 429 ACCOUNT_LOCKED with Retry-After on both instances, even with the right password', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 10);
    for (const url of [baseA, baseB]) {
      const r = await login(url, user.email, GOOD_PASSWORD);
      expect(r.status).toBe(429);
      expect(r.json).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'ACCOUNT_LOCKED' });
      const retry = Number(r.headers.get('retry-after'));
      expect(retry).toBeGreaterThan(890);
      expect(retry).toBeLessThanOrEqual(900);
      expect(r.headers.get('set-cookie')).toBeNull();
    }
    // a differently-cased address is the same address
    expect((await login(baseA, user.email.toUpperCase(), GOOD_PASSWORD)).status).toBe(429);
  });

  it('an unknown address locks the same way: identical statuses, bodies and headers', async () => {
    const user = await makeUser(a.ctx);
    const ghost = `ghost-${randomBytes(4).toString('hex')}@example.com`;
    for (let i = 0; i < 10; i++) {
      const known = await login(base(i), user.email, WRONG);
      const unknown = await login(base(i), ghost, WRONG);
      expect(unknown.status).toBe(known.status);
      expect(unknown.text).toBe(known.text);
    }
    const known = await login(baseA, user.email, GOOD_PASSWORD);
    const unknown = await login(baseA, ghost, GOOD_PASSWORD);
    expect(known.status).toBe(429);
    expect(unknown.status).toBe(429);
    expect(unknown.text).toBe(known.text);
    const names = (h: Headers) => [...h.keys()].filter((k) => !['date', 'x-request-id'].includes(k)).sort();
    expect(names(unknown.headers)).toEqual(names(known.headers));
    expect(Math.abs(Number(unknown.headers.get('retry-after')) - Number(known.headers.get('retry-after')))).toBeLessThanOrEqual(1);
  });

  it('a correct login resets the count', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 9);
    expect((await login(baseB, user.email, GOOD_PASSWORD)).status).toBe(200);
    await fail(user.email, 9);
    expect((await login(baseA, user.email, GOOD_PASSWORD)).status).toBe(200);
    expect((await lockoutStatus(a.ctx, user.email)).failures).toBe(0);
  });

  it('failures older than the window do not add up', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 9);
    clock.advance(15 * 60 + 1);
    await fail(user.email, 9);
    expect((await login(baseA, user.email, GOOD_PASSWORD)).status).toBe(200);
  });

  it('the lock ends after 15 min; the next lock lasts twice as long', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 10);
    expect((await login(baseA, user.email, GOOD_PASSWORD)).status).toBe(429);
    clock.advance(15 * 60 + 1);
    // open again: ten more failures lock it for 30 min
    await fail(user.email, 10);
    const second = await login(baseB, user.email, GOOD_PASSWORD);
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(29 * 60);
    const status = await lockoutStatus(a.ctx, user.email);
    expect(status).toMatchObject({ locked: true, lockCount: 2 });
    clock.advance(30 * 60 + 1);
    expect((await login(baseA, user.email, GOOD_PASSWORD)).status).toBe(200);
  });

  it('durations double and stop at SECURITY_LOCKOUT_MAX_DURATION (24 h)', () => {
    expect([0, 1, 2, 3].map((n) => lockDuration(a.ctx, n))).toEqual([900, 1800, 3600, 7200]);
    expect(lockDuration(a.ctx, 7)).toBe(86400);
    expect(lockDuration(a.ctx, 500)).toBe(86400);
  });

  it('unlockEmail ends the lock at once; lockoutStatus reports it', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 10);
    const status = await lockoutStatus(a.ctx, user.email);
    expect(status.locked).toBe(true);
    expect(status.retryAfter).toBeGreaterThan(0);
    expect(await unlockEmail(a.ctx, user.email.toUpperCase())).toBe(true);
    expect((await lockoutStatus(a.ctx, user.email)).locked).toBe(false);
    expect((await login(baseB, user.email, GOOD_PASSWORD)).status).toBe(200);
    expect(await unlockEmail(a.ctx, user.email)).toBe(false);
  });

  it('the lock is audited once, against the account when there is one', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 10);
    await login(baseA, user.email, WRONG);
    const rows = await a.db.sql<{ target_user_id: number | null; details: Record<string, unknown>; ip: string | null }[]>`
      select target_user_id, details, ip from audit_events where action = 'account.locked' and details->>'email' = ${user.email.toLowerCase()}`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.target_user_id).toBe(user.id);
    expect(rows[0]!.details).toMatchObject({ lock_count: 1 });
    expect(typeof rows[0]!.details.locked_until).toBe('string');
    expect(rows[0]!.ip).toBe('127.0.0.1');
    const [refused] = await a.db.sql<{ n: number }[]>`
      select count(*)::int as n from audit_events where action = 'login.failed' and details->>'email' = ${user.email} and details->>'reason' = 'locked'`;
    expect(refused!.n).toBe(1);

    const ghost = `ghost-${randomBytes(4).toString('hex')}@example.com`;
    await fail(ghost, 10);
    const [g] = await a.db.sql<{ target_user_id: number | null }[]>`
      select target_user_id from audit_events where action = 'account.locked' and details->>'email' = ${ghost}`;
    expect(g!.target_user_id).toBeNull();
  });

  it('the owner is emailed when the lock starts (once); an unknown address gets nothing at delivery', async () => {
    const user = await makeUser(a.ctx);
    await fail(user.email, 10);
    await login(baseA, user.email, WRONG); // while locked: refused, not counted, no second mail
    const rows = await a.ctx.db.select().from(outbox).where(eq(outbox.recipient, user.email.toLowerCase()));
    const locked = rows.filter((r) => r.template === 'account_locked');
    expect(locked).toHaveLength(1);
    const mail = await renderOutboxRow(a.ctx, locked[0]!);
    expect(mail!.to.address).toBe(user.email);
    expect(mail!.subject).toMatch(/paused/);
    expect(mail!.text).toContain('/reset/');

    const ghost = `ghost-${randomBytes(4).toString('hex')}@example.com`;
    await fail(ghost, 10);
    const [ghostRow] = await a.ctx.db.select().from(outbox).where(eq(outbox.recipient, ghost));
    expect(ghostRow!.template).toBe('account_locked');
    expect(await renderOutboxRow(a.ctx, ghostRow!)).toBeNull();
  });
});

describe('lockout switched off (SECURITY_LOCKOUT_ENABLED=false)', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { SECURITY_LOCKOUT_ENABLED: 'false', SECURITY_LOCKOUT_THRESHOLD: '2' });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('failures are not counted', async () => {
    const user = await makeUser(t.ctx);
    for (let i = 0; i < 4; i++) {
      expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: WRONG } })).statusCode).toBe(401);
    }
    expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } })).statusCode).toBe(200);
  });
});
