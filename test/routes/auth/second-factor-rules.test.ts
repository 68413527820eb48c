// Issue 12's auth-route rules, over HTTP: forced 2FA holds at registration (POST /register answers
// like login: tf_required + tf_setup_required + tf_token, no credentials, no cookie; the token
// completes the login through setup); a user whose role forces 2FA cannot disable it (403
// FORBIDDEN); enabling 2FA ends the user's other sessions, so a pre-2FA token cannot turn it off;
// disabling needs a fresh session; remember-me survives a password change (the new cookie is
// persistent when the session was remembered, and only then).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { generate } from 'otplib';
import { findUser } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../../support/helper.js';

const post = (app: FastifyInstance, url: string, payload: object = {}, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload, headers });

describe('second-factor rules', () => {
  let database: TestDatabase;
  let clock: TestClock;
  let forced: TestApp; // Citizen forced into 2FA
  let t: TestApp; // no forced roles
  let t2: TestApp; // a second instance of t on the same database

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    forced = await buildTestApp(database, { SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'Citizen', SECURITY_FRESHNESS: '10m' }, clock);
    t = await buildTestApp(database, { SECURITY_FRESHNESS: '10m' }, clock);
    t2 = await buildTestApp(database, { SECURITY_FRESHNESS: '10m' }, clock);
  });
  afterAll(async () => {
    await Promise.all([forced.close(), t.close(), t2.close()]);
    await database.drop();
  });

  const code = (secret: string) => generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });

  async function enable(app: FastifyInstance, access: string) {
    const setup = await post(app, '/tf-setup', { method: 'authenticator' }, bearer(access));
    expect(setup.statusCode, setup.body).toBe(200);
    const { secret, tf_setup_token } = setup.json();
    const done = await post(app, `/tf-setup/${tf_setup_token}`, { code: await code(secret) }, bearer(access));
    expect(done.statusCode, done.body).toBe(200);
    clock.advance(30);
    return secret as string;
  }

  it('POST /register for a role forced into 2FA answers like login: tf_setup_required + tf_token, no credentials or cookie; setup completes the login', async () => {
    const email = `forced-${Date.now()}@example.com`;
    const res = await post(forced.app, '/register', { email, password: GOOD_PASSWORD });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['tf_required', 'tf_setup_required', 'tf_token']);
    expect(body).toMatchObject({ tf_required: true, tf_setup_required: true });
    expect(res.headers['set-cookie']).toBeUndefined();
    const user = (await findUser(forced.ctx.db, { email }))!;
    expect(user).not.toBeNull();
    // the tf_token stands in for a session in the forced setup, which then logs in
    const setup = await post(forced.app, '/tf-setup', { method: 'authenticator', tf_token: body.tf_token });
    expect(setup.statusCode, setup.body).toBe(200);
    const done = await post(forced.app, `/tf-setup/${setup.json().tf_setup_token}`, { code: await code(setup.json().secret) });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json().access_token).toEqual(expect.any(String));
    expect(done.json().user.tf_enabled).toBe(true);
  });

  it('a user whose role forces 2FA cannot disable it: 403 FORBIDDEN, 2FA stays on', async () => {
    const user = await makeUser(forced.ctx);
    const login = await post(forced.app, '/login', { email: user.email, password: GOOD_PASSWORD });
    const setup = await post(forced.app, '/tf-setup', { method: 'authenticator', tf_token: login.json().tf_token });
    const done = await post(forced.app, `/tf-setup/${setup.json().tf_setup_token}`, { code: await code(setup.json().secret) });
    expect(done.statusCode, done.body).toBe(200);
    const res = await forced.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(done.json().access_token) });
    expect(res.statusCode, res.body).toBe(403);
    expect(res.json().code).toBe('FORBIDDEN');
    expect((await findUser(forced.ctx.db, { id: user.id }))!.tfPrimaryMethod).not.toBeNull();
  });

  it('enabling 2FA ends the user\'s other sessions: a pre-2FA token cannot turn it off; the enabling session lives', async () => {
    const user = await makeUser(t.ctx);
    const before = (await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().access_token as string;
    const enabler = (await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().access_token as string;
    await enable(t.app, enabler);
    const stale = await t.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(before) });
    expect(stale.statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(before) })).statusCode).toBe(401);
    expect((await findUser(t.ctx.db, { id: user.id }))!.tfPrimaryMethod).not.toBeNull();
    expect((await t.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(enabler) })).statusCode).toBe(200);
  });

  it('the other sessions end on every instance at once (two instances, 5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const user = await makeUser(t.ctx);
      const other = (await post(t2.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().access_token as string;
      // instance 2 has just served the other session (and may hold it in its cache)
      expect((await t2.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(other) })).statusCode).toBe(200);
      const enabler = (await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().access_token as string;
      await enable(t.app, enabler);
      expect((await t2.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(other) })).statusCode).toBe(401);
      expect((await t2.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(enabler) })).statusCode).toBe(200);
    }
  });

  it('disabling needs a fresh session: stale → 401 REAUTH_REQUIRED; after /verify → 204', async () => {
    const user = await makeUser(t.ctx);
    const access = (await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().access_token as string;
    await enable(t.app, access);
    clock.advance(11 * 60);
    const stale = await t.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(access) });
    expect(stale.statusCode).toBe(401);
    expect(stale.json().code).toBe('REAUTH_REQUIRED');
    // replacing the factor needs the same
    expect((await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(access))).json().code).toBe('REAUTH_REQUIRED');
    expect((await post(t.app, '/verify', { password: GOOD_PASSWORD }, bearer(access))).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(access) })).statusCode).toBe(204);
  });

  for (const remember of [true, false]) {
    it(`remember-me survives a password change: remember:${remember} → the re-issued cookie is ${remember ? 'persistent' : 'a browser-session cookie'}`, async () => {
      const user = await makeUser(t.ctx);
      const login = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD, remember });
      const cookie = login.cookies.find((c) => c.name === 'session')!;
      expect(cookie.maxAge !== undefined).toBe(remember);
      const changed = await post(t.app, '/change-password', { password: GOOD_PASSWORD, new_password: 'Other-Harbor-95-Lantern' }, {
        cookie: `session=${cookie.value}`, 'x-csrf-token': login.json().csrf_token,
      });
      expect(changed.statusCode, changed.body).toBe(200);
      const reissued = changed.cookies.find((c) => c.name === 'session')!;
      expect(reissued.value).not.toBe(cookie.value);
      if (remember) expect(reissued.maxAge).toBe(t.config.SECURITY_REFRESH_TOKEN_MAX_AGE);
      else expect(reissued.maxAge).toBeUndefined();
      // and a refresh keeps it too
      const refreshed = await post(t.app, '/refresh-token', { refresh_token: changed.json().refresh_token });
      expect(refreshed.statusCode, refreshed.body).toBe(200);
      expect(refreshed.cookies.find((c) => c.name === 'session')!.maxAge !== undefined).toBe(remember);
    });
  }
});
