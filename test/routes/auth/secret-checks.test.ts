// Every check of a secret counts toward the account's lockout (issue 13): wrong current passwords at
// /verify, /change-password and /change-email, wrong TOTP and recovery codes at /tf-validate; they
// count together with failed logins; the locked account's live session is not killed but cannot
// verify a secret (429 ACCOUNT_LOCKED + Retry-After) until the lock ends, so it cannot become fresh
// for /tf-disable either. A parallel burst of wrong /verify over two instances passes the threshold
// no more than a login burst does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { generate } from 'otplib';
import { lockoutStatus } from '../../../src/security/lockout.js';
import {
  bearer, buildTestApp, createTestDatabase, GOOD_PASSWORD, listen, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../../support/helper.js';

const WRONG = 'Wrong-Harbor-94-Lantern';
const THRESHOLD = 3;
const LOCK_SECONDS = 15 * 60;

const post = (app: FastifyInstance, url: string, payload: object, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload, headers });

function expectLocked(res: LightMyRequestResponse) {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.json().code).toBe('ACCOUNT_LOCKED');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

describe('every secret check counts toward the lockout', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let t: TestApp;
  let u: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    const env = { SECURITY_LOCKOUT_THRESHOLD: String(THRESHOLD), SECURITY_FRESHNESS: '1h', SECURITY_TOKEN_MAX_AGE: '2h' };
    t = await buildTestApp(database, env, clock);
    u = await buildTestApp(database, env, clock);
  });
  afterAll(async () => {
    await Promise.all([t.close(), u.close()]);
    await database.drop();
  });

  async function signedIn() {
    const user = await makeUser(t.ctx);
    const res = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD });
    expect(res.statusCode, res.body).toBe(200);
    return { user, auth: bearer(res.json().access_token as string) };
  }

  const checks: { name: string; url: string; wrong: (email: string) => object; right: (email: string) => object; field: string }[] = [
    { name: '/verify', url: '/verify', wrong: () => ({ password: WRONG }), right: () => ({ password: GOOD_PASSWORD }), field: 'password' },
    {
      name: '/change-password', url: '/change-password', field: 'password',
      wrong: () => ({ password: WRONG, new_password: 'Other-Harbor-95-Lantern' }),
      right: () => ({ password: GOOD_PASSWORD, new_password: 'Other-Harbor-95-Lantern' }),
    },
    {
      name: '/change-email', url: '/change-email', field: 'password',
      wrong: (e) => ({ email: `new-${e}`, password: WRONG }), right: (e) => ({ email: `new-${e}`, password: GOOD_PASSWORD }),
    },
  ];

  for (const check of checks) {
    it(`wrong current passwords at ${check.name} lock the account; the session lives but cannot verify until the lock ends`, async () => {
      const { user, auth } = await signedIn();
      for (let i = 0; i < THRESHOLD; i++) {
        const res = await post(t.app, check.url, check.wrong(user.email), auth);
        expect(res.statusCode, res.body).toBe(400);
        expect(res.json().fields[check.field]).toBeDefined();
      }
      expect((await lockoutStatus(t.ctx, user.email)).locked).toBe(true);
      // the right password is refused while locked, on this session and at /login, on both instances
      expectLocked(await post(t.app, check.url, check.right(user.email), auth));
      expectLocked(await post(u.app, '/verify', { password: GOOD_PASSWORD }, auth));
      expectLocked(await post(u.app, '/login', { email: user.email, password: GOOD_PASSWORD }));
      // the session itself is not killed
      expect((await t.app.inject({ method: 'GET', url: '/auth/current-user', headers: auth })).statusCode).toBe(200);
      clock.advance(LOCK_SECONDS + 1);
      const after = await post(t.app, check.url, check.right(user.email), auth);
      expect(after.statusCode, after.body).toBeLessThan(300);
    });
  }

  it('failures at /verify and /login count together', async () => {
    const { user, auth } = await signedIn();
    expect((await post(t.app, '/verify', { password: WRONG }, auth)).statusCode).toBe(400);
    expect((await post(u.app, '/login', { email: user.email, password: WRONG })).statusCode).toBe(401);
    expect((await post(t.app, '/change-password', { password: WRONG, new_password: 'Other-Harbor-95-Lantern' }, auth)).statusCode).toBe(400);
    expectLocked(await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD }));
    clock.advance(LOCK_SECONDS + 1);
  });

  it('a right password at /verify clears the failures counted before it', async () => {
    const { user, auth } = await signedIn();
    expect((await post(t.app, '/verify', { password: WRONG }, auth)).statusCode).toBe(400);
    expect((await post(t.app, '/verify', { password: WRONG }, auth)).statusCode).toBe(400);
    expect((await post(t.app, '/verify', { password: GOOD_PASSWORD }, auth)).statusCode).toBe(200);
    expect((await lockoutStatus(t.ctx, user.email)).failures).toBe(0);
  });

  it('a locked account cannot make a stale session fresh, so it cannot switch 2FA off', async () => {
    const { user, auth } = await signedIn();
    const setup = await post(t.app, '/tf-setup', { method: 'authenticator' }, auth);
    const { secret, tf_setup_token } = setup.json();
    const code = await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });
    expect((await post(t.app, `/tf-setup/${tf_setup_token}`, { code }, auth)).statusCode).toBe(200);
    clock.advance(3601); // the session is no longer fresh
    const stale = await t.app.inject({ method: 'POST', url: '/tf-disable', headers: auth });
    expect(stale.statusCode).toBe(401);
    expect(stale.json().code).toBe('REAUTH_REQUIRED');
    for (let i = 0; i < THRESHOLD; i++) expect((await post(t.app, '/verify', { password: WRONG }, auth)).statusCode).toBe(400);
    expectLocked(await post(t.app, '/verify', { password: GOOD_PASSWORD }, auth));
    expect((await t.app.inject({ method: 'POST', url: '/tf-disable', headers: auth })).statusCode).toBe(401);
    expect((await lockoutStatus(t.ctx, user.email)).locked).toBe(true);
    clock.advance(LOCK_SECONDS + 1);
  });

  describe('second factor codes', () => {
    async function enrolled() {
      const { user, auth } = await signedIn();
      const setup = await post(t.app, '/tf-setup', { method: 'authenticator' }, auth);
      const { secret, tf_setup_token } = setup.json();
      const code = await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });
      const done = await post(t.app, `/tf-setup/${tf_setup_token}`, { code }, auth);
      expect(done.statusCode, done.body).toBe(200);
      clock.advance(30);
      return { user, secret: secret as string, recovery: done.json().recovery_codes as string[] };
    }
    async function tfToken(email: string) {
      const res = await post(t.app, '/login', { email, password: GOOD_PASSWORD });
      expect(res.json().tf_required, res.body).toBe(true);
      return res.json().tf_token as string;
    }

    it('wrong TOTP codes lock the account; the right code is then refused (429) until the lock ends', async () => {
      const { user, secret } = await enrolled();
      const token = await tfToken(user.email);
      for (let i = 0; i < THRESHOLD; i++) expect((await post(t.app, '/tf-validate', { tf_token: token, code: '000000' })).statusCode).toBe(401);
      const code = await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });
      expectLocked(await post(u.app, '/tf-validate', { tf_token: token, code }));
      expectLocked(await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD }));
      clock.advance(LOCK_SECONDS + 1);
    });

    it('wrong recovery codes count too', async () => {
      const { user } = await enrolled();
      const token = await tfToken(user.email);
      for (let i = 0; i < THRESHOLD; i++) {
        expect((await post(t.app, '/tf-validate', { tf_token: token, code: 'AAAA-BBBB-CCCC' })).statusCode).toBe(401);
      }
      expect((await lockoutStatus(t.ctx, user.email)).locked).toBe(true);
      clock.advance(LOCK_SECONDS + 1);
    });
  });

  it('a parallel burst of wrong /verify over two listening instances: at most THRESHOLD answered as wrong, the rest 429 (10 rounds)', async () => {
    const [baseT, baseU] = [await listen(t.app), await listen(u.app)];
    for (let round = 0; round < 10; round++) {
      const { user, auth } = await signedIn();
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => fetch(`${i % 2 ? baseU : baseT}/verify`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ password: WRONG }),
      }).then((r) => r.status)));
      expect(answers.filter((s) => s === 400), `round ${round}: ${answers.join(',')}`).toHaveLength(THRESHOLD);
      expect(answers.filter((s) => s === 429)).toHaveLength(12 - THRESHOLD);
      expect((await lockoutStatus(t.ctx, user.email)).locked).toBe(true);
      clock.advance(LOCK_SECONDS + 1);
    }
  });
});
