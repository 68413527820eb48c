// POST /login: the response and cookie, case-insensitive email, indistinguishable failures, the
// disabled / unconfirmed rules (and generic mode), trackable fields, proxy handling, rehash on login,
// and input validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import { findUser } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, makeUser, TestClock,
  type TestApp, type TestDatabase,
} from '../../support/helper.js';
import type { FastifyInstance } from 'fastify';

const WRONG_PASSWORD = 'Wrong-Harbor-94-Lantern';
const uniqueEmail = (tag = 'login') => `${tag}-${randomBytes(4).toString('hex')}@example.com`;
const bcryptRounds = (stored: string) => bcrypt.getRounds(stored.slice('$cs1$'.length + 9));

const postLogin = (app: FastifyInstance, payload: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url: '/login', payload: payload as object, headers });

describe('POST /login', () => {
  let database: TestDatabase;
  let t: TestApp;
  let clock: TestClock;
  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    t = await buildTestApp(database, {}, clock);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  describe('success', () => {
    it('200 with user, access_token, token_type Bearer, expires_in 900, refresh_token, refresh_expires_in, csrf_token', async () => {
      const user = await makeUser(t.ctx, { firstName: 'Amina', lastName: 'Odhiambo' });
      const res = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(
        ['access_token', 'csrf_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'user'],
      );
      expect(body.user).toMatchObject({ id: user.id, email: user.email, full_name: 'Amina Odhiambo', roles: ['Citizen'] });
      expect(body.token_type).toBe('Bearer');
      expect(body.expires_in).toBe(900);
      expect(body.access_token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(typeof body.refresh_token).toBe('string');
      expect(body.refresh_token.length).toBeGreaterThanOrEqual(32);
      expect(typeof body.csrf_token).toBe('string');
      expect(body.csrf_token.length).toBeGreaterThanOrEqual(16);
      // SECURITY_REFRESH_TOKEN_MAX_AGE defaults to 30 days
      expect(body.refresh_expires_in).toBeGreaterThan(30 * 86400 - 60);
      expect(body.refresh_expires_in).toBeLessThanOrEqual(30 * 86400);

      const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) });
      expect(me.statusCode).toBe(200);
      expect(me.json().user.id).toBe(user.id);
    });

    it('sets an HttpOnly, SameSite=Lax, Path=/ session cookie (not Secure outside production, no Max-Age without remember)', async () => {
      const user = await makeUser(t.ctx);
      const res = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      expect(res.statusCode).toBe(200);
      const cookie = res.cookies.find((c) => c.name === 'session');
      expect(cookie).toBeDefined();
      expect(cookie!.httpOnly).toBe(true);
      expect(cookie!.sameSite).toBe('Lax');
      expect(cookie!.path).toBe('/');
      expect(cookie!.secure).toBeFalsy();
      expect(cookie!.maxAge).toBeUndefined();
      const raw = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]).find((c) => c.startsWith('session='))!;
      expect(raw).toMatch(/;\s*HttpOnly/i);
      expect(raw).toMatch(/;\s*SameSite=Lax/i);
      expect(raw).toMatch(/;\s*Path=\//);
      // the cookie authenticates on its own
      const me = await t.app.inject({ url: '/auth/current-user', headers: { cookie: `session=${cookie!.value}` } });
      expect(me.statusCode).toBe(200);
      expect(me.json().user.id).toBe(user.id);
    });

    it('with remember:true the cookie persists (Max-Age set)', async () => {
      const user = await makeUser(t.ctx);
      const res = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD, remember: true });
      expect(res.statusCode).toBe(200);
      expect(res.cookies.find((c) => c.name === 'session')!.maxAge).toBeGreaterThan(0);
    });

    it('matches the email case-insensitively', async () => {
      const email = `Mixed.Case-${randomBytes(3).toString('hex')}@Example.COM`;
      const user = await makeUser(t.ctx, { email });
      for (const variant of [email, email.toLowerCase(), email.toUpperCase()]) {
        const res = await postLogin(t.app, { email: variant, password: GOOD_PASSWORD });
        expect(res.statusCode, variant).toBe(200);
        expect(res.json().user.id).toBe(user.id);
      }
    });
  });

  describe('failures', () => {
    it('unknown email and wrong password → identical 401 INVALID_CREDENTIALS bodies', async () => {
      const user = await makeUser(t.ctx);
      const wrong = await postLogin(t.app, { email: user.email, password: WRONG_PASSWORD });
      const unknown = await postLogin(t.app, { email: uniqueEmail('nobody'), password: WRONG_PASSWORD });
      expect(wrong.statusCode).toBe(401);
      expect(unknown.statusCode).toBe(401);
      expect(envelopeOf(wrong).code).toBe('INVALID_CREDENTIALS');
      expect(wrong.body).toBe(unknown.body);
      expect(wrong.headers['content-type']).toBe(unknown.headers['content-type']);
      expect(wrong.headers['www-authenticate']).toBe(unknown.headers['www-authenticate']);
      expect(wrong.cookies).toHaveLength(0);
      expect(unknown.cookies).toHaveLength(0);
      // a failed attempt is not a login
      expect((await findUser(t.ctx.db, { id: user.id }))!.loginCount).toBe(0);
    });

    it('a disabled account → 403 ACCOUNT_DISABLED only with the correct password; a wrong one is still 401', async () => {
      const user = await makeUser(t.ctx, { active: false });
      const wrong = await postLogin(t.app, { email: user.email, password: WRONG_PASSWORD });
      expect(wrong.statusCode).toBe(401);
      expect(envelopeOf(wrong).code).toBe('INVALID_CREDENTIALS');
      const right = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      expect(right.statusCode).toBe(403);
      expect(envelopeOf(right).code).toBe('ACCOUNT_DISABLED');
      expect(right.cookies).toHaveLength(0);
      expect(right.body).not.toMatch(/access_token/);
    });

    it('an unconfirmed account logs in when SECURITY_CONFIRMABLE is off', async () => {
      const user = await makeUser(t.ctx, { confirmedAt: null });
      const res = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      expect(res.statusCode, res.body).toBe(200);
    });

    it('missing fields → 400 VALIDATION_FAILED naming them', async () => {
      const none = await postLogin(t.app, {});
      expect(none.statusCode).toBe(400);
      const env = envelopeOf(none);
      expect(env.code).toBe('VALIDATION_FAILED');
      expect(env.fields).toEqual({ email: ['This field is required'], password: ['This field is required'] });

      const noPassword = await postLogin(t.app, { email: uniqueEmail() });
      expect(noPassword.statusCode).toBe(400);
      expect(envelopeOf(noPassword).fields).toEqual({ password: ['This field is required'] });

      const emptyPassword = await postLogin(t.app, { email: uniqueEmail(), password: '' });
      expect(emptyPassword.statusCode).toBe(400);
      expect(envelopeOf(emptyPassword).fields?.password).toBeDefined();
    });

    it('wrong types and unknown fields → 400, no coercion', async () => {
      const user = await makeUser(t.ctx);
      const arr = await postLogin(t.app, { email: [user.email], password: GOOD_PASSWORD });
      expect(arr.statusCode).toBe(400);
      expect(envelopeOf(arr).fields?.email).toBeDefined();
      const remember = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD, remember: 'true' });
      expect(remember.statusCode).toBe(400);
      expect(envelopeOf(remember).fields?.remember).toBeDefined();
      const extra = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD, role: 'County Admin' });
      expect(extra.statusCode).toBe(400);
      expect(envelopeOf(extra).fields).toEqual({ role: ['Unknown field'] });
    });
  });

  describe('trackable', () => {
    it('login_count increments; last_login_at/ip take the previous current values', async () => {
      const user = await makeUser(t.ctx);
      expect(user.loginCount).toBe(0);

      const first = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      expect(first.statusCode).toBe(200);
      const u1 = first.json().user;
      expect(u1.login_count).toBe(1);
      expect(u1.current_login_ip).toBe('127.0.0.1');
      expect(u1.current_login_at).not.toBeNull();
      expect(u1.last_login_at).toBeNull();
      expect(u1.last_login_ip).toBeNull();

      clock.advance(120);
      const second = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD });
      const u2 = second.json().user;
      expect(u2.login_count).toBe(2);
      expect(u2.last_login_at).toBe(u1.current_login_at);
      expect(u2.last_login_ip).toBe(u1.current_login_ip);
      expect(Date.parse(u2.current_login_at) - Date.parse(u1.current_login_at)).toBeGreaterThanOrEqual(120_000);

      const stored = await findUser(t.ctx.db, { id: user.id });
      expect(stored!.loginCount).toBe(2);
      expect(stored!.lastLoginAt!.toISOString()).toBe(u1.current_login_at);
      expect(stored!.currentLoginAt!.toISOString()).toBe(u2.current_login_at);
    });

    it('the previous ip moves to last_login_ip when the address changes', async () => {
      const user = await makeUser(t.ctx);
      const inject = (remoteAddress: string) => t.app.inject({
        method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD }, remoteAddress,
      });
      expect((await inject('198.51.100.10')).json().user.current_login_ip).toBe('198.51.100.10');
      const u = (await inject('198.51.100.20')).json().user;
      expect(u.current_login_ip).toBe('198.51.100.20');
      expect(u.last_login_ip).toBe('198.51.100.10');
    });

    it('X-Forwarded-For is ignored by default: current_login_ip stays the socket address', async () => {
      const user = await makeUser(t.ctx);
      const res = await postLogin(t.app, { email: user.email, password: GOOD_PASSWORD }, { 'x-forwarded-for': '203.0.113.7' });
      expect(res.statusCode).toBe(200);
      expect(res.json().user.current_login_ip).toBe('127.0.0.1');
      expect((await findUser(t.ctx.db, { id: user.id }))!.currentLoginIp).toBe('127.0.0.1');
    });

    it('X-Forwarded-For is honoured with TRUST_PROXY=true', async () => {
      const proxied = await buildTestApp(database, { TRUST_PROXY: 'true' });
      try {
        const user = await makeUser(t.ctx);
        const res = await postLogin(proxied.app, { email: user.email, password: GOOD_PASSWORD }, { 'x-forwarded-for': '203.0.113.7' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().user.current_login_ip).toBe('203.0.113.7');
        expect((await findUser(t.ctx.db, { id: user.id }))!.currentLoginIp).toBe('203.0.113.7');
      } finally {
        await proxied.close();
      }
    });

    it('with SECURITY_TRACKABLE=false nothing is recorded', async () => {
      const untracked = await buildTestApp(database, { SECURITY_TRACKABLE: 'false' });
      try {
        const user = await makeUser(t.ctx);
        const res = await postLogin(untracked.app, { email: user.email, password: GOOD_PASSWORD });
        expect(res.statusCode).toBe(200);
        const stored = await findUser(t.ctx.db, { id: user.id });
        expect(stored!.loginCount).toBe(0);
        expect(stored!.currentLoginAt).toBeNull();
      } finally {
        await untracked.close();
      }
    });
  });

  describe('rehash on login', () => {
    it('when BCRYPT_LOG_ROUNDS changed, a successful login stores a new hash at the new cost that still verifies', async () => {
      const user = await makeUser(t.ctx); // created at the test default cost (4)
      const before = (await findUser(t.ctx.db, { id: user.id }))!.password;
      expect(bcryptRounds(before)).toBe(4);

      const stronger = await buildTestApp(database, { BCRYPT_LOG_ROUNDS: '5' });
      try {
        // a wrong password changes nothing
        expect((await postLogin(stronger.app, { email: user.email, password: WRONG_PASSWORD })).statusCode).toBe(401);
        expect((await findUser(t.ctx.db, { id: user.id }))!.password).toBe(before);

        const res = await postLogin(stronger.app, { email: user.email, password: GOOD_PASSWORD });
        expect(res.statusCode, res.body).toBe(200);
        const after = (await findUser(t.ctx.db, { id: user.id }))!.password;
        expect(after).not.toBe(before);
        expect(bcryptRounds(after)).toBe(5);
        expect(await stronger.ctx.passwords.verify(GOOD_PASSWORD, after)).toEqual({ ok: true, needsRehash: false });

        // and logging in again does not rehash once more
        expect((await postLogin(stronger.app, { email: user.email, password: GOOD_PASSWORD })).statusCode).toBe(200);
        expect((await findUser(t.ctx.db, { id: user.id }))!.password).toBe(after);
      } finally {
        await stronger.close();
      }
    });

    it('when the pepper rotated (old one in SECURITY_PASSWORD_SALT_FALLBACKS), login upgrades the hash to the new pepper', async () => {
      const user = await makeUser(t.ctx);
      const before = (await findUser(t.ctx.db, { id: user.id }))!.password;
      const rotated = await buildTestApp(database, {
        SECURITY_PASSWORD_SALT: 'rotated-test-password-salt',
        SECURITY_PASSWORD_SALT_FALLBACKS: t.config.SECURITY_PASSWORD_SALT,
      });
      try {
        const res = await postLogin(rotated.app, { email: user.email, password: GOOD_PASSWORD });
        expect(res.statusCode, res.body).toBe(200);
        const after = (await findUser(t.ctx.db, { id: user.id }))!.password;
        expect(after).not.toBe(before);
        expect(await rotated.ctx.passwords.verify(GOOD_PASSWORD, after)).toEqual({ ok: true, needsRehash: false });
        // the upgraded hash no longer depends on the old pepper
        expect((await t.ctx.passwords.verify(GOOD_PASSWORD, after)).ok).toBe(false);
      } finally {
        await rotated.close();
      }
    });
  });

  describe('SECURITY_CONFIRMABLE and SECURITY_RETURN_GENERIC_RESPONSES', () => {
    it('CONFIRMABLE: an unconfirmed account → 403 CONFIRMATION_REQUIRED only after a correct password', async () => {
      const confirmable = await buildTestApp(database, { SECURITY_CONFIRMABLE: 'true' });
      try {
        const user = await makeUser(t.ctx, { confirmedAt: null });
        const wrong = await postLogin(confirmable.app, { email: user.email, password: WRONG_PASSWORD });
        expect(wrong.statusCode).toBe(401);
        expect(envelopeOf(wrong).code).toBe('INVALID_CREDENTIALS');
        const right = await postLogin(confirmable.app, { email: user.email, password: GOOD_PASSWORD });
        expect(right.statusCode).toBe(403);
        expect(envelopeOf(right).code).toBe('CONFIRMATION_REQUIRED');
        expect(right.cookies).toHaveLength(0);
        // a confirmed account logs in normally
        const confirmed = await makeUser(t.ctx);
        expect((await postLogin(confirmable.app, { email: confirmed.email, password: GOOD_PASSWORD })).statusCode).toBe(200);
      } finally {
        await confirmable.close();
      }
    });

    it('generic mode: disabled and unconfirmed accounts get the same 401 INVALID_CREDENTIALS as a wrong password', async () => {
      const generic = await buildTestApp(database, { SECURITY_CONFIRMABLE: 'true', SECURITY_RETURN_GENERIC_RESPONSES: 'true' });
      try {
        const disabled = await makeUser(t.ctx, { active: false });
        const unconfirmed = await makeUser(t.ctx, { confirmedAt: null });
        const wrong = await postLogin(generic.app, { email: disabled.email, password: WRONG_PASSWORD });
        const a = await postLogin(generic.app, { email: disabled.email, password: GOOD_PASSWORD });
        const b = await postLogin(generic.app, { email: unconfirmed.email, password: GOOD_PASSWORD });
        const unknown = await postLogin(generic.app, { email: uniqueEmail(), password: GOOD_PASSWORD });
        for (const r of [wrong, a, b, unknown]) {
          expect(r.statusCode).toBe(401);
          expect(envelopeOf(r).code).toBe('INVALID_CREDENTIALS');
          expect(r.body).toBe(wrong.body);
          expect(r.cookies).toHaveLength(0);
        }
      } finally {
        await generic.close();
      }
    });
  });
});
