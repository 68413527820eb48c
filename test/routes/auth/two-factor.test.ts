// Two-factor authentication end to end: setup with codes computed here from the returned secret
// (otplib), login in two steps, one use per code, 5 wrong codes kill a tf_token, single-use recovery
// codes, disable / regenerate behind freshness (TestClock), the required-roles flow, password reset
// never bypassing 2FA, admin reset-access revoking it, the secret sealed at rest, and lockout on the
// second step. One flow runs over real HTTP without cookies (a mobile client).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { generate } from 'otplib';
import { findUser, resetUserAccess, type UserRecord } from '../../../src/security/datastore.js';
import { linkClaims, signLink } from '../../../src/security/links.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, makeUser, TestClock,
  type TestApp, type TestDatabase,
} from '../../support/helper.js';

const post = (app: FastifyInstance, url: string, payload: object = {}, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload, headers });

describe('two-factor authentication (TOTP)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let clock: TestClock;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    t = await buildTestApp(database, { SECURITY_FRESHNESS: '60', SECURITY_LOCKOUT_THRESHOLD: '8' }, clock);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const epoch = (offsetSteps = 0) => Math.floor(clock.now().getTime() / 1000) + offsetSteps * 30;
  const codeFor = (secret: string, offsetSteps = 0) => generate({ secret, epoch: epoch(offsetSteps) });

  async function passwordLogin(email: string, password = GOOD_PASSWORD) {
    const res = await post(t.app, '/login', { email, password });
    expect(res.statusCode, res.body).toBe(200);
    return res;
  }

  /** A signed-in user with 2FA switched on; returns the secret and recovery codes. */
  async function enrolled(input: Parameters<typeof makeUser>[1] = {}) {
    const user = await makeUser(t.ctx, input);
    const access = (await passwordLogin(user.email)).json().access_token as string;
    const setup = await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(access));
    expect(setup.statusCode, setup.body).toBe(200);
    const { secret, tf_setup_token } = setup.json();
    const done = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await codeFor(secret) }, bearer(access));
    expect(done.statusCode, done.body).toBe(200);
    // the setup code's time step is used up; later logins use the next step's code
    clock.advance(30);
    return { user, secret: secret as string, recovery: done.json().recovery_codes as string[], access };
  }

  async function tfToken(email: string): Promise<string> {
    const res = await passwordLogin(email);
    const body = res.json();
    expect(body.tf_required).toBe(true);
    return body.tf_token;
  }

  describe('setup', () => {
    it('POST /tf-setup → secret, otpauth URI, PNG QR code, tf_setup_token; nothing stored yet', async () => {
      const user = await makeUser(t.ctx);
      const { access_token } = (await passwordLogin(user.email)).json();
      const res = await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(access_token));
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['expires_in', 'method', 'otpauth_uri', 'qr_code', 'secret', 'tf_setup_token']);
      expect(body.method).toBe('authenticator');
      expect(body.secret).toMatch(/^[A-Z2-7]{32}$/);
      expect(body.otpauth_uri).toMatch(/^otpauth:\/\/totp\/County%20Services:/);
      expect(body.otpauth_uri).toContain(`secret=${body.secret}`);
      expect(body.qr_code).toMatch(/^data:image\/png;base64,/);
      expect(Buffer.from(body.qr_code.split(',')[1], 'base64').subarray(1, 4).toString()).toBe('PNG');
      // the setup token does not show the secret
      expect(body.tf_setup_token).not.toContain(body.secret);
      expect((await findUser(t.ctx.db, { id: user.id }))!.tfPrimaryMethod).toBeNull();
    });

    it('a wrong code is 400 TWO_FACTOR_INVALID; the right one switches 2FA on with 10 distinct recovery codes', async () => {
      const user = await makeUser(t.ctx);
      const { access_token } = (await passwordLogin(user.email)).json();
      const { secret, tf_setup_token } = (await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(access_token))).json();
      const wrong = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: '000000' === (await codeFor(secret)) ? '111111' : '000000' }, bearer(access_token));
      expect(wrong.statusCode).toBe(400);
      expect(envelopeOf(wrong).code).toBe('TWO_FACTOR_INVALID');
      const ok = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await codeFor(secret) }, bearer(access_token));
      expect(ok.statusCode, ok.body).toBe(200);
      const codes = ok.json().recovery_codes as string[];
      expect(Object.keys(ok.json())).toEqual(['recovery_codes']);
      expect(codes).toHaveLength(10);
      expect(new Set(codes).size).toBe(10);
      for (const c of codes) expect(c).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}$/);
      const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(access_token) });
      expect(me.json().user.tf_enabled).toBe(true);
    });

    it('the secret is sealed at rest and recovery codes are stored hashed', async () => {
      const { user, secret, recovery } = await enrolled();
      const [row] = await t.db.sql`select tf_primary_method, tf_totp_secret, tf_recovery_codes from users where id = ${user.id}`;
      expect(row!.tf_primary_method).toBe('authenticator');
      expect(row!.tf_totp_secret).toMatch(/^v1\./);
      expect(row!.tf_totp_secret).not.toContain(secret);
      const stored = (row!.tf_recovery_codes as string[]).join(' ');
      for (const c of recovery) {
        expect(stored).not.toContain(c);
        expect(stored).not.toContain(c.replace(/-/g, ''));
      }
      // the public user never shows any of it
      const me = (await t.app.inject({ url: '/auth/current-user', headers: bearer((await enrolledLogin(user, secret)).access_token) })).body;
      expect(me).not.toContain(secret);
      expect(me).not.toContain('tf_totp_secret');
    });

    it('needs a session (401 AUTH_REQUIRED) and a fresh one (401 REAUTH_REQUIRED); another user cannot confirm the token', async () => {
      const anon = await post(t.app, '/tf-setup', { method: 'authenticator' });
      expect(anon.statusCode).toBe(401);
      expect(envelopeOf(anon).code).toBe('AUTH_REQUIRED');

      const user = await makeUser(t.ctx);
      const { access_token } = (await passwordLogin(user.email)).json();
      const { secret, tf_setup_token } = (await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(access_token))).json();
      const noAuth = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await codeFor(secret) });
      expect(noAuth.statusCode).toBe(401);

      const other = await makeUser(t.ctx);
      const otherAccess = (await passwordLogin(other.email)).json().access_token;
      const stolen = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await codeFor(secret) }, bearer(otherAccess));
      expect(stolen.statusCode).toBe(400);

      clock.advance(61);
      const stale = await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(otherAccess));
      expect(stale.statusCode).toBe(401);
      expect(envelopeOf(stale).code).toBe('REAUTH_REQUIRED');
    });

    it('rejects unknown methods and fields (400)', async () => {
      const user = await makeUser(t.ctx);
      const { access_token } = (await passwordLogin(user.email)).json();
      expect((await post(t.app, '/tf-setup', { method: 'sms' }, bearer(access_token))).statusCode).toBe(400);
      expect((await post(t.app, '/tf-setup', { method: 'authenticator', extra: 1 }, bearer(access_token))).statusCode).toBe(400);
    });
  });

  async function enrolledLogin(user: UserRecord, secret: string) {
    const token = await tfToken(user.email);
    const res = await post(t.app, '/tf-validate', { tf_token: token, code: await codeFor(secret) });
    expect(res.statusCode, res.body).toBe(200);
    clock.advance(30);
    return res.json() as { access_token: string; refresh_token: string; csrf_token: string };
  }

  describe('login', () => {
    it('POST /login answers {tf_required, tf_token, tf_method, tf_methods} and nothing else: no session, no cookie', async () => {
      const { user } = await enrolled();
      const res = await passwordLogin(user.email);
      expect(Object.keys(res.json()).sort()).toEqual(['tf_method', 'tf_methods', 'tf_required', 'tf_token']);
      expect(res.json().tf_method).toBe('authenticator');
      expect(res.json().tf_methods).toEqual(['authenticator']);
      expect(res.headers['set-cookie']).toBeUndefined();
      const [{ n }] = await t.db.sql`select count(*)::int as n from sessions where user_id = ${user.id} and revoked_at is null` as unknown as [{ n: number }];
      // only the session the enrolment used
      expect(n).toBe(1);
    });

    it('POST /tf-validate with the current code → the login answer (token pair + cookie); login_count counts once', async () => {
      const { user, secret } = await enrolled();
      const token = await tfToken(user.email);
      const res = await post(t.app, '/tf-validate', { tf_token: token, code: await codeFor(secret) });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['access_token', 'csrf_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'user']);
      expect(body.user.tf_enabled).toBe(true);
      expect(res.cookies.find((c) => c.name === 'session')).toBeDefined();
      const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) });
      expect(me.statusCode).toBe(200);
      // the tf_token is used up
      const again = await post(t.app, '/tf-validate', { tf_token: token, code: await codeFor(secret, 1) });
      expect(again.statusCode).toBe(401);
      expect(envelopeOf(again).code).toBe('TWO_FACTOR_INVALID');
    });

    it('accepts the previous and next time step (±1) but not two steps away', async () => {
      const { user, secret } = await enrolled();
      const far = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: await codeFor(secret, -3) });
      expect(far.statusCode).toBe(401);
      const prev = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: await codeFor(secret, -1) });
      // the previous step may be at or before the enrolment's step; then it is a reuse and refused
      expect([200, 401]).toContain(prev.statusCode);
      clock.advance(60);
      const next = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: await codeFor(secret, 1) });
      expect(next.statusCode, next.body).toBe(200);
    });

    it('a code works once: the same code on a new tf_token is refused; the next step\'s code works', async () => {
      const { user, secret } = await enrolled();
      const code = await codeFor(secret);
      expect((await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code })).statusCode).toBe(200);
      const replay = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code });
      expect(replay.statusCode).toBe(401);
      expect(envelopeOf(replay).code).toBe('TWO_FACTOR_INVALID');
      clock.advance(30);
      expect((await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: await codeFor(secret) })).statusCode).toBe(200);
    });

    it('5 wrong codes kill the tf_token: the right code is refused after them', async () => {
      const { user, secret } = await enrolled();
      const token = await tfToken(user.email);
      const right = await codeFor(secret);
      const wrong = right === '123456' ? '654321' : '123456';
      for (let i = 0; i < 5; i++) {
        const res = await post(t.app, '/tf-validate', { tf_token: token, code: wrong });
        expect(res.statusCode).toBe(401);
        expect(envelopeOf(res).code).toBe('TWO_FACTOR_INVALID');
      }
      const dead = await post(t.app, '/tf-validate', { tf_token: token, code: right });
      expect(dead.statusCode).toBe(401);
      // a new login gets a new token that works (5 failures stay under the lockout threshold of 8)
      expect((await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: right })).statusCode).toBe(200);
    });

    it('a tampered, unknown or expired tf_token is 401 TWO_FACTOR_INVALID', async () => {
      const { user, secret } = await enrolled();
      const token = await tfToken(user.email);
      const code = await codeFor(secret);
      const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
      expect((await post(t.app, '/tf-validate', { tf_token: tampered, code })).statusCode).toBe(401);
      expect((await post(t.app, '/tf-validate', { tf_token: 'garbage', code })).statusCode).toBe(401);
      clock.advance(t.config.SECURITY_TWO_FACTOR_TOKEN_WITHIN + 1);
      expect((await post(t.app, '/tf-validate', { tf_token: token, code: await codeFor(secret) })).statusCode).toBe(401);
    });

    it('the tf_token is bound to fs_uniquifier: logout-all (another device) kills pending tokens', async () => {
      const { user, secret } = await enrolled();
      const token = await tfToken(user.email);
      await resetUserAccess(t.ctx, user.id, 'logout_all');
      expect((await post(t.app, '/tf-validate', { tf_token: token, code: await codeFor(secret) })).statusCode).toBe(401);
      // logout-all does not switch 2FA off
      expect((await findUser(t.ctx.db, { id: user.id }))!.tfPrimaryMethod).toBe('authenticator');
    });

    it('recovery codes work once each (any case, with or without dashes)', async () => {
      const { user, recovery } = await enrolled();
      const first = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: recovery[0]!.toLowerCase() });
      expect(first.statusCode, first.body).toBe(200);
      const again = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: recovery[0]! });
      expect(again.statusCode).toBe(401);
      const second = await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: recovery[1]!.replace(/-/g, '') });
      expect(second.statusCode).toBe(200);
    });

    it('wrong codes count towards the address lockout; a locked address gets 429 on both steps', async () => {
      const { user, secret } = await enrolled();
      const right = await codeFor(secret);
      const wrong = right === '222222' ? '333333' : '222222';
      // threshold 8: two tf_tokens' worth of wrong codes (5 + 3)
      let token = await tfToken(user.email);
      for (let i = 0; i < 5; i++) await post(t.app, '/tf-validate', { tf_token: token, code: wrong });
      token = await tfToken(user.email);
      for (let i = 0; i < 3; i++) await post(t.app, '/tf-validate', { tf_token: token, code: wrong });
      const locked = await post(t.app, '/tf-validate', { tf_token: token, code: right });
      expect(locked.statusCode).toBe(429);
      expect(envelopeOf(locked).code).toBe('ACCOUNT_LOCKED');
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
      const login = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD });
      expect(login.statusCode).toBe(429);
    });
  });

  describe('disable and recovery codes need a fresh session', () => {
    it('POST /tf-disable → 401 REAUTH_REQUIRED when stale, 204 after POST /verify; login is one step again', async () => {
      const { user, secret } = await enrolled();
      const s = await enrolledLogin(user, secret);
      clock.advance(61);
      const stale = await post(t.app, '/tf-disable', {}, bearer(s.access_token));
      expect(stale.statusCode).toBe(401);
      expect(envelopeOf(stale).code).toBe('REAUTH_REQUIRED');
      expect((await post(t.app, '/verify', { password: GOOD_PASSWORD }, bearer(s.access_token))).statusCode).toBe(200);
      const off = await post(t.app, '/tf-disable', {}, bearer(s.access_token));
      expect(off.statusCode, off.body).toBe(204);
      const login = await passwordLogin(user.email);
      expect(login.json().access_token).toBeDefined();
      expect(login.json().user.tf_enabled).toBe(false);
    });

    it('POST /mf-recovery-codes → new codes, the old ones die; stale → 401 REAUTH_REQUIRED; 409 when 2FA is off', async () => {
      const { user, secret, recovery } = await enrolled();
      const s = await enrolledLogin(user, secret);
      clock.advance(61);
      expect((await post(t.app, '/mf-recovery-codes', {}, bearer(s.access_token))).statusCode).toBe(401);
      await post(t.app, '/verify', { password: GOOD_PASSWORD }, bearer(s.access_token));
      const res = await post(t.app, '/mf-recovery-codes', {}, bearer(s.access_token));
      expect(res.statusCode, res.body).toBe(200);
      const fresh = res.json().recovery_codes as string[];
      expect(fresh).toHaveLength(10);
      expect(fresh.some((c) => recovery.includes(c))).toBe(false);
      expect((await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: recovery[2]! })).statusCode).toBe(401);
      expect((await post(t.app, '/tf-validate', { tf_token: await tfToken(user.email), code: fresh[0]! })).statusCode).toBe(200);

      const plain = await makeUser(t.ctx);
      const p = (await passwordLogin(plain.email)).json();
      const conflict = await post(t.app, '/mf-recovery-codes', {}, bearer(p.access_token));
      expect(conflict.statusCode).toBe(409);
    });

    it('both need a session at all (401 AUTH_REQUIRED)', async () => {
      expect(envelopeOf(await post(t.app, '/tf-disable')).code).toBe('AUTH_REQUIRED');
      expect(envelopeOf(await post(t.app, '/mf-recovery-codes')).code).toBe('AUTH_REQUIRED');
    });
  });

  describe('account recovery paths', () => {
    it('a password reset never bypasses 2FA: the next login still asks for the code', async () => {
      const { user } = await enrolled();
      const fresh = (await findUser(t.ctx.db, { id: user.id }))!;
      const link = signLink(t.config, linkClaims(t.config, 'reset', fresh, clock.now()));
      const reset = await post(t.app, `/reset/${link}`, { password: 'Amber-Meadow-41-Compass' });
      expect(reset.statusCode, reset.body).toBe(200);
      const login = await passwordLogin(user.email, 'Amber-Meadow-41-Compass');
      expect(login.json()).toMatchObject({ tf_required: true, tf_method: 'authenticator' });
    });

    it('admin reset-access (resetUserAccess) switches 2FA off: the next login is one step, tf_enabled false', async () => {
      const { user } = await enrolled();
      await resetUserAccess(t.ctx, user.id);
      const after = (await findUser(t.ctx.db, { id: user.id }))!;
      expect(after.tfPrimaryMethod).toBeNull();
      expect(after.tfTotpSecret).toBeNull();
      expect(after.tfRecoveryCodes).toBeNull();
      const login = await passwordLogin(user.email);
      expect(login.json().access_token).toBeDefined();
      expect(login.json().user.tf_enabled).toBe(false);
    });
  });

  describe('audit log', () => {
    const actions = async (userId: number) =>
      (await t.db.sql<{ action: string; details: Record<string, unknown> }[]>`
        select action, details from audit_events where target_user_id = ${userId} order by id`).map((r) => ({ action: r.action, details: r.details }));

    it('records enabling, the challenge, a wrong code, a recovery code, success with its factor, regeneration and disabling — never a code', async () => {
      const { user, secret, recovery } = await enrolled();
      const token = await tfToken(user.email);
      const right = await codeFor(secret);
      const wrong = right === '222222' ? '333333' : '222222';
      expect((await post(t.app, '/tf-validate', { tf_token: token, code: wrong })).statusCode).toBe(401);
      const s = (await post(t.app, '/tf-validate', { tf_token: token, code: recovery[0]! })).json();
      await post(t.app, '/mf-recovery-codes', {}, bearer(s.access_token));
      await post(t.app, '/tf-disable', {}, bearer(s.access_token));

      const log = await actions(user.id);
      expect(log.map((e) => e.action)).toEqual([
        'login.succeeded', 'tf.enabled', 'login.second_factor_required', 'login.failed', 'tf.recovery_code_used',
        'login.succeeded', 'tf.recovery_codes_regenerated', 'tf.disabled',
      ]);
      expect(log[1]!.details).toEqual({ method: 'authenticator', forced: false });
      expect(log[3]!.details).toMatchObject({ reason: 'bad_second_factor' });
      expect(log[4]!.details).toEqual({ remaining: 9 });
      expect(log[5]!.details).toMatchObject({ second_factor: 'recovery' });
      const text = JSON.stringify(log);
      for (const c of [wrong, recovery[0]!, secret]) expect(text).not.toContain(c);
    });

    it('admin reset-access says whether it switched 2FA off', async () => {
      const { user } = await enrolled();
      const { twoFactorRevoked } = await resetUserAccess(t.ctx, user.id);
      expect(twoFactorRevoked).toBe(true);
      expect((await resetUserAccess(t.ctx, user.id)).twoFactorRevoked).toBe(false);
    });
  });

  describe('over real HTTP without cookies (mobile client)', () => {
    it('login → tf-validate with only the tf_token → bearer works', async () => {
      const { user, secret } = await enrolled();
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
      const json = { 'content-type': 'application/json' };
      const login = await fetch(`${base}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: user.email, password: GOOD_PASSWORD }) });
      expect(login.status).toBe(200);
      expect(login.headers.getSetCookie()).toEqual([]);
      const { tf_token } = await login.json() as { tf_token: string };
      const done = await fetch(`${base}/tf-validate`, { method: 'POST', headers: json, body: JSON.stringify({ tf_token, code: await codeFor(secret) }) });
      expect(done.status).toBe(200);
      expect(done.headers.get('cache-control')).toBe('no-store');
      const { access_token } = await done.json() as { access_token: string };
      const me = await fetch(`${base}/auth/current-user`, { headers: { authorization: `Bearer ${access_token}` } });
      expect(me.status).toBe(200);
    });
  });
});

describe('two-factor required by role (SECURITY_TWO_FACTOR_REQUIRED_ROLES)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let clock: TestClock;
  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    t = await buildTestApp(database, { SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'County Admin' }, clock);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });
  const code = (secret: string) => generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });

  it('login → {tf_required, tf_setup_required, tf_token}; setup with the token completes the login; next login asks for a code', async () => {
    const admin = await makeUser(t.ctx, { roles: ['County Admin'] });
    const login = await post(t.app, '/login', { email: admin.email, password: GOOD_PASSWORD });
    expect(login.statusCode).toBe(200);
    expect(Object.keys(login.json()).sort()).toEqual(['tf_required', 'tf_setup_required', 'tf_token']);
    expect(login.headers['set-cookie']).toBeUndefined();
    const { tf_token } = login.json();

    // the setup token is no login token
    expect((await post(t.app, '/tf-validate', { tf_token, code: '123456' })).statusCode).toBe(401);
    // and allows nothing but setup
    expect((await t.app.inject({ url: '/auth/current-user', headers: { authorization: `Bearer ${tf_token}` } })).statusCode).toBe(401);

    const setup = await post(t.app, '/tf-setup', { method: 'authenticator', tf_token });
    expect(setup.statusCode, setup.body).toBe(200);
    const { secret, tf_setup_token } = setup.json();
    const done = await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await code(secret) });
    expect(done.statusCode, done.body).toBe(200);
    const body = done.json();
    expect(body.recovery_codes).toHaveLength(10);
    expect(body.access_token).toBeDefined();
    expect(body.user.tf_enabled).toBe(true);
    expect(done.cookies.find((c) => c.name === 'session')).toBeDefined();
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) })).statusCode).toBe(200);

    // the setup token was used up with it
    expect((await post(t.app, `/tf-setup/${tf_setup_token}`, { code: await code(secret) })).statusCode).toBe(400);

    clock.advance(30);
    const next = await post(t.app, '/login', { email: admin.email, password: GOOD_PASSWORD });
    expect(next.json()).toMatchObject({ tf_required: true, tf_method: 'authenticator' });
    const ok = await post(t.app, '/tf-validate', { tf_token: next.json().tf_token, code: await code(secret) });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it('roles not listed log in in one step', async () => {
    const citizen = await makeUser(t.ctx);
    const login = await post(t.app, '/login', { email: citizen.email, password: GOOD_PASSWORD });
    expect(login.json().access_token).toBeDefined();
  });

  it('a setup-purpose token dies after 5 wrong setup codes', async () => {
    const admin = await makeUser(t.ctx, { roles: ['County Admin'] });
    const { tf_token } = (await post(t.app, '/login', { email: admin.email, password: GOOD_PASSWORD })).json();
    const { secret, tf_setup_token } = (await post(t.app, '/tf-setup', { method: 'authenticator', tf_token })).json();
    const right = await code(secret);
    const wrong = right === '999999' ? '888888' : '999999';
    for (let i = 0; i < 5; i++) expect((await post(t.app, `/tf-setup/${tf_setup_token}`, { code: wrong })).statusCode).toBe(400);
    expect((await post(t.app, `/tf-setup/${tf_setup_token}`, { code: right })).statusCode).toBe(400);
    expect((await findUser(t.ctx.db, { id: admin.id }))!.tfPrimaryMethod).toBeNull();
  });
});
