// Passkeys (WebAuthn) end to end against a software authenticator (test/support/authenticator.ts):
// real ES256 signatures over real RP-id hashes and client data. Registration behind a fresh
// interactive session; sign-in as the first factor (discoverable and with an identity) and as the
// second factor completing a tf_token; re-authentication; rename/delete; the admin's deactivation
// and reset-access revoking keys. Every listed attack is 401 WEBAUTHN_INVALID (400 at registration)
// and writes no session and no sign count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { generate } from 'otplib';
import { auditEvents, sessions, webauthnChallenges, webauthnCredentials } from '../../../src/db/schema/index.js';
import { deactivateUser, resetUserAccess } from '../../../src/security/datastore.js';
import { removeUserPasskey } from '../../../src/security/webauthn.js';
import { systemActor } from '../../../src/security/users.js';
import { NO_SOURCE } from '../../../src/security/audit.js';
import { SoftwareAuthenticator, FLAG_UV } from '../../support/authenticator.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, login, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../../support/helper.js';

const ORIGIN = 'http://localhost:5173';
const RP_ID = 'localhost';

const post = (app: FastifyInstance, url: string, payload: object = {}, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload, headers });

describe('passkeys (WebAuthn)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let clock: TestClock;

  beforeAll(async () => {
    database = await createTestDatabase();
    clock = new TestClock();
    t = await buildTestApp(database, {
      SECURITY_WAN_RP_ID: RP_ID, SECURITY_WAN_ALLOWED_ORIGINS: ORIGIN, SECURITY_FRESHNESS: '600', SECURITY_LOCKOUT_THRESHOLD: '6',
    }, clock);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  async function startRegistration(access: string, name: string, usage: 'first' | 'secondary' = 'first') {
    const res = await post(t.app, '/wan-register', { name, usage }, bearer(access));
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { wan_state: string; credential_options: Record<string, unknown> & { challenge: string } };
  }

  /** A signed-in user with one registered key. */
  async function withKey(usage: 'first' | 'secondary' = 'first', input: Parameters<typeof makeUser>[1] = {}) {
    const user = await makeUser(t.ctx, input);
    const session = await login(t.app, user.email);
    const key = new SoftwareAuthenticator(ORIGIN, RP_ID);
    const start = await startRegistration(session.access_token, `key ${usage}`, usage);
    const done = await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never) }, bearer(session.access_token));
    expect(done.statusCode, done.body).toBe(201);
    return { user, key, access: session.access_token, credential: done.json().credential as { id: string; name: string } };
  }

  async function signinOptions(body: object = {}) {
    const res = await post(t.app, '/wan-signin', body);
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { wan_state: string; credential_options: { challenge: string; rpId: string; allowCredentials?: Array<{ id: string }> } };
  }

  const liveSessions = async (userId: number) =>
    (await t.db.db.select({ n: sql<number>`count(*)::int` }).from(sessions).where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt))))[0]!.n;
  const storedCount = async (credentialId: string) =>
    (await t.db.db.select({ c: webauthnCredentials.signCount }).from(webauthnCredentials).where(eq(webauthnCredentials.id, credentialId)))[0]?.c;

  it('registers a passkey (public key only, attestation none) and signs in with it with no identity typed', async () => {
    const { user, key, credential } = await withKey('first', { firstName: 'Pia' });
    expect(credential).toEqual({
      id: expect.any(String), name: 'key first', usage: 'first', created_at: expect.any(String), last_used_at: null,
      transports: ['internal'], backed_up: false,
    });
    const [row] = await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.id, credential.id));
    expect(row!.credentialId).toBe(key.id);
    expect(row!.publicKey.length).toBeGreaterThan(60);

    const opts = await signinOptions();
    expect(opts.credential_options.rpId).toBe(RP_ID);
    expect(opts.credential_options.allowCredentials ?? []).toEqual([]);
    const res = await post(t.app, `/wan-signin/${opts.wan_state}`, { credential: key.get(opts.credential_options) });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(body.user.email).toBe(user.email);
    expect(body.access_token).toEqual(expect.any(String));
    expect(res.cookies.some((c) => c.name === 'session')).toBe(true);
    const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) });
    expect(me.statusCode).toBe(200);
    expect(await storedCount(credential.id)).toBe(1);
    const actions = (await t.db.db.select().from(auditEvents).where(eq(auditEvents.targetUserId, user.id))).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['wan.registered', 'login.succeeded']));
  });

  it('with an identity: the key must be that account\'s; an unknown address gets the same options and fails alike', async () => {
    const a = await withKey();
    const b = await makeUser(t.ctx);
    const own = await signinOptions({ identity: a.user.email.toUpperCase() });
    expect((await post(t.app, `/wan-signin/${own.wan_state}`, { credential: a.key.get(own.credential_options) })).statusCode).toBe(200);

    const other = await signinOptions({ identity: b.email });
    const unknown = await signinOptions({ identity: 'nobody-here@example.com' });
    expect(Object.keys(other.credential_options).sort()).toEqual(Object.keys(unknown.credential_options).sort());
    for (const o of [other, unknown]) {
      const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: a.key.get(o.credential_options) });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
    }
  });

  describe('every attack is 401 WEBAUTHN_INVALID and writes nothing', () => {
    const attacks: Array<[string, (k: SoftwareAuthenticator, o: { challenge: string }) => object, ((clock: TestClock) => void)?]> = [
      ['wrong origin', (k, o) => k.get(o, { origin: 'https://evil.example' })],
      ['wrong RP id', (k, o) => k.get(o, { rpId: 'evil.example' })],
      ['a signature over another challenge', (k, o) => k.get(o, { challenge: Buffer.from('not the challenge').toString('base64url') })],
      // a reserved flag bit: nothing but the signature notices
      ['tampered authenticator data (after signing)', (k, o) => k.get(o, { tamperAfterSigning: (d) => { const c = Buffer.from(d); c[32] = c[32]! ^ 0x02; return c; } })],
      ['tampered sign count (after signing)', (k, o) => k.get(o, { tamperAfterSigning: (d) => { const c = Buffer.from(d); c[36] = (c[36]! + 7) & 0xff; return c; } })],
      ['no user verification for a first-factor sign-in', (k, o) => k.get(o, { uv: false })],
      ['sign-count regression (a cloned authenticator)', (k, o) => k.get(o, { signCount: 1 })],
      ['an expired challenge', (k, o) => k.get(o), (c) => c.advance(121)],
    ];
    for (const [name, forge, before] of attacks) {
      it(name, async () => {
        const { user, key, credential } = await withKey();
        // two good sign-ins first, so the stored count is 2 and a regression to 1 is one
        for (let i = 0; i < 2; i++) {
          const o = await signinOptions();
          expect((await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) })).statusCode).toBe(200);
        }
        const sessionsBefore = await liveSessions(user.id);
        const o = await signinOptions();
        before?.(clock);
        const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: forge(key, o.credential_options) });
        expect(res.statusCode, res.body).toBe(401);
        expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
        expect(res.cookies.some((c) => c.name === 'session')).toBe(false);
        expect(await liveSessions(user.id)).toBe(sessionsBefore);
        expect(await storedCount(credential.id)).toBe(2);
      });
    }

    it('a replayed challenge: the same wan_state answered twice (even with a fresh, valid signature) fails the second time', async () => {
      const { user, key } = await withKey();
      const o = await signinOptions();
      expect((await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) })).statusCode).toBe(200);
      const before = await liveSessions(user.id);
      const again = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) });
      expect(again.statusCode).toBe(401);
      expect(envelopeOf(again).code).toBe('WEBAUTHN_INVALID');
      expect(await liveSessions(user.id)).toBe(before);
    });

    it('a replayed assertion under a new challenge fails (the signature covers the old challenge)', async () => {
      const { key } = await withKey();
      const o1 = await signinOptions();
      const assertion = key.get(o1.credential_options);
      expect((await post(t.app, `/wan-signin/${o1.wan_state}`, { credential: assertion })).statusCode).toBe(200);
      const o2 = await signinOptions();
      const res = await post(t.app, `/wan-signin/${o2.wan_state}`, { credential: assertion });
      expect(res.statusCode).toBe(401);
    });

    it('another user\'s credential cannot complete a user\'s two-factor login', async () => {
      const victim = await enrolledTotp();
      // the attacker's own key, registered as a passkey on their own account
      const attacker = await withKey('first');
      const tf = await passwordTfToken(victim.user.email);
      const o = await signinOptions({ tf_token: tf });
      const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: attacker.key.get(o.credential_options, { uv: false }) });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
      expect(await liveSessions(victim.user.id)).toBe(1);
    });

    it('an unknown credential and a forged wan_state', async () => {
      const stranger = new SoftwareAuthenticator(ORIGIN, RP_ID);
      const o = await signinOptions();
      expect((await post(t.app, `/wan-signin/${o.wan_state}`, { credential: stranger.get(o.credential_options) })).statusCode).toBe(401);
      const forged = `${o.wan_state.split('.')[0]}.${'A'.repeat(43)}`;
      const res = await post(t.app, `/wan-signin/${forged}`, { credential: stranger.get(o.credential_options) });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
    });
  });

  it('one challenge, many parallel answers: exactly one signs in (repeated)', async () => {
    const { user, key } = await withKey();
    for (let round = 0; round < 10; round++) {
      const o = await signinOptions();
      const before = await liveSessions(user.id);
      const assertion = key.get(o.credential_options);
      const results = await Promise.all(Array.from({ length: 6 }, () => post(t.app, `/wan-signin/${o.wan_state}`, { credential: assertion })));
      expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
      expect(results.filter((r) => r.statusCode === 401)).toHaveLength(5);
      expect(await liveSessions(user.id)).toBe(before + 1);
    }
  });

  describe('registration', () => {
    it('needs a fresh session, refuses personal access tokens, and a taken name is 409', async () => {
      const user = await makeUser(t.ctx);
      const session = await login(t.app, user.email);
      const token = await post(t.app, '/auth/tokens', { name: 'script' }, bearer(session.access_token));
      expect(token.statusCode, token.body).toBe(201);
      const byToken = await post(t.app, '/wan-register', { name: 'x', usage: 'first' }, bearer(token.json().token));
      expect(byToken.statusCode).toBe(403);
      expect((await t.app.inject({ url: '/wan-register', headers: bearer(token.json().token) })).statusCode).toBe(403);

      const key = new SoftwareAuthenticator(ORIGIN, RP_ID);
      const start = await startRegistration(session.access_token, 'Laptop');
      expect((await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never) }, bearer(session.access_token))).statusCode).toBe(201);
      const dup = await post(t.app, '/wan-register', { name: 'LAPTOP', usage: 'first' }, bearer(session.access_token));
      expect(dup.statusCode).toBe(409);
      expect(envelopeOf(dup).fields).toEqual({ name: [expect.any(String)] });

      clock.advance(601);
      const stale = await post(t.app, '/wan-register', { name: 'Phone', usage: 'first' }, bearer(session.access_token));
      expect(stale.statusCode).toBe(401);
      expect(envelopeOf(stale).code).toBe('REAUTH_REQUIRED');
      // re-authenticate with the passkey: the session is fresh again
      const v = await post(t.app, '/wan-verify', {}, bearer(session.access_token));
      expect(v.statusCode, v.body).toBe(200);
      const verified = await post(t.app, `/wan-verify/${v.json().wan_state}`, { credential: key.get(v.json().credential_options) }, bearer(session.access_token));
      expect(verified.statusCode, verified.body).toBe(200);
      expect((await post(t.app, '/wan-register', { name: 'Phone', usage: 'first' }, bearer(session.access_token))).statusCode).toBe(200);
    });

    const regAttacks: Array<[string, (k: SoftwareAuthenticator, o: never) => object]> = [
      ['wrong origin', (k, o) => k.create(o, { origin: 'https://evil.example' })],
      ['wrong RP id', (k, o) => k.create(o, { rpId: 'evil.example' })],
      ['another challenge', (k, o) => k.create(o, { challenge: Buffer.from('other').toString('base64url') })],
      ['no user verification for a passkey', (k, o) => k.create(o, { uv: false })],
      ['an authenticator data RP id hash that is not ours', (k, o) => k.create(o, { tamperAfterSigning: (d) => { const c = Buffer.from(d); c[0] = c[0]! ^ 1; return c; } })],
    ];
    for (const [name, forge] of regAttacks) {
      it(`refuses ${name} with 400 WEBAUTHN_INVALID and stores nothing`, async () => {
        const user = await makeUser(t.ctx);
        const session = await login(t.app, user.email);
        const start = await startRegistration(session.access_token, 'k');
        const res = await post(t.app, `/wan-register/${start.wan_state}`, { credential: forge(new SoftwareAuthenticator(ORIGIN, RP_ID), start.credential_options as never) }, bearer(session.access_token));
        expect(res.statusCode, res.body).toBe(400);
        expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
        expect(await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, user.id))).toEqual([]);
      });
    }

    it('a challenge answers only the session that asked, once, within the timeout', async () => {
      const user = await makeUser(t.ctx);
      const s1 = await login(t.app, user.email);
      const s2 = await login(t.app, user.email);
      const key = new SoftwareAuthenticator(ORIGIN, RP_ID);
      const start = await startRegistration(s1.access_token, 'k1');
      const other = await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never) }, bearer(s2.access_token));
      expect(other.statusCode).toBe(400);
      // the failed answer consumed it: the right session is too late now
      const late = await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never) }, bearer(s1.access_token));
      expect(late.statusCode).toBe(400);
      const start2 = await startRegistration(s1.access_token, 'k2');
      clock.advance(121);
      const expired = await post(t.app, `/wan-register/${start2.wan_state}`, { credential: key.create(start2.credential_options as never) }, bearer(s1.access_token));
      expect(expired.statusCode).toBe(400);
      expect(await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, user.id))).toEqual([]);
    });

    it('bad input is 400 VALIDATION_FAILED (unknown fields, bad usage, empty name)', async () => {
      const user = await makeUser(t.ctx);
      const s = await login(t.app, user.email);
      for (const body of [{ name: 'k', usage: 'both' }, { name: '', usage: 'first' }, { name: 'k', usage: 'first', extra: 1 }]) {
        const res = await post(t.app, '/wan-register', body, bearer(s.access_token));
        expect(res.statusCode).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
      const start = await startRegistration(s.access_token, 'k');
      const res = await post(t.app, `/wan-register/${start.wan_state}`, { credential: { id: 'x' } }, bearer(s.access_token));
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    });
  });

  it('rename and delete (fresh): a deleted key signs in no more', async () => {
    const { key, access, credential } = await withKey();
    const renamed = await post(t.app, '/wan-rename', { name: credential.name.toUpperCase(), new_name: 'Renamed' }, bearer(access));
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json().credential.name).toBe('Renamed');
    const list = await t.app.inject({ url: '/wan-register', headers: bearer(access) });
    expect(list.json().credentials.map((c: { name: string }) => c.name)).toEqual(['Renamed']);
    expect((await post(t.app, '/wan-delete', { name: 'nope' }, bearer(access))).statusCode).toBe(404);
    const del = await post(t.app, '/wan-delete', { name: 'renamed' }, bearer(access));
    expect(del.statusCode).toBe(204);
    const o = await signinOptions();
    const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) });
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('WEBAUTHN_INVALID');
    // another account's key of that name is not yours to rename
    const other = await makeUser(t.ctx);
    const otherAccess = (await login(t.app, other.email)).access_token;
    await withKey();
    const foreign = await post(t.app, '/wan-rename', { name: 'key first', new_name: 'mine' }, bearer(otherAccess));
    expect(foreign.statusCode).toBe(404);
  });

  async function enrolledTotp() {
    const user = await makeUser(t.ctx);
    const session = await login(t.app, user.email);
    const setup = await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(session.access_token));
    expect(setup.statusCode, setup.body).toBe(200);
    const code = await generate({ secret: setup.json().secret, epoch: Math.floor(clock.now().getTime() / 1000) });
    const done = await post(t.app, `/tf-setup/${setup.json().tf_setup_token}`, { code }, bearer(session.access_token));
    expect(done.statusCode, done.body).toBe(200);
    return { user, access: session.access_token };
  }

  async function passwordTfToken(email: string): Promise<string> {
    const res = await post(t.app, '/login', { email, password: GOOD_PASSWORD });
    expect(res.json().tf_required, res.body).toBe(true);
    return res.json().tf_token as string;
  }

  const methodOf = async (userId: number) =>
    (await t.db.sql`select tf_primary_method as m from users where id = ${userId}` as unknown as [{ m: string | null }])[0].m;

  /** Finishes a registration the test started: the attestation of a new software key. */
  async function finishRegistration(access: string, start: { wan_state: string; credential_options: object }, key = new SoftwareAuthenticator(ORIGIN, RP_ID)) {
    const res = await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never, { uv: false }) }, bearer(access));
    return { res, key };
  }

  it('a security key alone switches two-factor on: password login answers tf_required (method webauthn), the key completes it', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const other = await login(t.app, user.email);
    const { res: reg, key } = await finishRegistration(s.access_token, await startRegistration(s.access_token, 'Yubikey', 'secondary'));
    expect(reg.statusCode, reg.body).toBe(201);
    expect(await methodOf(user.id)).toBe('webauthn');
    const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) });
    expect(me.json().user?.tf_enabled ?? me.json().tf_enabled).toBe(true);
    // like setting up an authenticator: the other session (opened without the key) ended, this one stays
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(other.access_token) })).statusCode).toBe(401);

    const first = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ tf_required: true, tf_token: expect.any(String), tf_method: 'webauthn', tf_methods: ['webauthn'] });
    // no code method: a 6-digit code cannot complete it (and counts as a wrong second factor)
    const wrong = await post(t.app, '/tf-validate', { tf_token: first.json().tf_token, code: '123456' });
    expect(wrong.statusCode).toBe(401);
    const o = await signinOptions({ tf_token: first.json().tf_token });
    const done = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options, { uv: false }) });
    expect(done.statusCode, done.body).toBe(200);
    expect(done.json().user.email).toBe(user.email);
    const [event] = await t.db.db.select().from(auditEvents)
      .where(and(eq(auditEvents.targetUserId, user.id), eq(auditEvents.action, 'login.succeeded'))).orderBy(sql`id desc`).limit(1);
    expect(event!.details).toMatchObject({ second_factor: 'passkey' });
    expect(event!.details).not.toHaveProperty('method'); // the first factor was the password (not named)
  });

  it('deleting the last second-factor key switches two-factor off again; with TOTP left it stays on', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    expect((await finishRegistration(s.access_token, await startRegistration(s.access_token, 'A', 'secondary'))).res.statusCode).toBe(201);
    expect((await finishRegistration(s.access_token, await startRegistration(s.access_token, 'B', 'secondary'))).res.statusCode).toBe(201);
    expect((await post(t.app, '/wan-delete', { name: 'A' }, bearer(s.access_token))).statusCode).toBe(204);
    expect(await methodOf(user.id)).toBe('webauthn');
    expect((await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json().tf_required).toBe(true);
    expect((await post(t.app, '/wan-delete', { name: 'B' }, bearer(s.access_token))).statusCode).toBe(204);
    expect(await methodOf(user.id)).toBeNull();
    const plain = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD });
    expect(plain.json().access_token).toEqual(expect.any(String));

    // TOTP and a key: deleting the key leaves TOTP on
    const totp = await enrolledTotp();
    expect((await finishRegistration(totp.access, await startRegistration(totp.access, 'C', 'secondary'))).res.statusCode).toBe(201);
    const tf = await post(t.app, '/login', { email: totp.user.email, password: GOOD_PASSWORD });
    expect(tf.json()).toMatchObject({ tf_method: 'authenticator', tf_methods: ['authenticator', 'webauthn'] });
    expect((await post(t.app, '/wan-delete', { name: 'C' }, bearer(totp.access))).statusCode).toBe(204);
    expect(await methodOf(totp.user.id)).toBe('authenticator');
  });

  it('the login answer is a rule of the account\'s methods: every combination of code method × second-factor key × passkey', async () => {
    const codeMethods = [null, 'authenticator', 'email'] as const;
    for (const codeMethod of codeMethods) {
      for (const secondary of [false, true]) {
        for (const passkey of [false, true]) {
          const user = await makeUser(t.ctx);
          const s = await login(t.app, user.email);
          if (passkey) {
            const start = await startRegistration(s.access_token, 'Passkey', 'first');
            const done = await post(t.app, `/wan-register/${start.wan_state}`, { credential: new SoftwareAuthenticator(ORIGIN, RP_ID).create(start.credential_options as never) }, bearer(s.access_token));
            expect(done.statusCode, done.body).toBe(201);
          }
          if (secondary) expect((await finishRegistration(s.access_token, await startRegistration(s.access_token, 'Key', 'secondary'))).res.statusCode).toBe(201);
          if (codeMethod) {
            await t.db.sql`update users set tf_primary_method = ${codeMethod},
              tf_totp_secret = ${codeMethod === 'authenticator' ? 'sealed-secret-never-opened-at-login' : null} where id = ${user.id}`;
          }
          const res = await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD });
          const label = `code method ${codeMethod}, secondary key ${secondary}, passkey ${passkey}: ${res.body}`;
          expect(res.statusCode, label).toBe(200);
          if (codeMethod === null && !secondary) {
            expect(res.json().access_token, label).toEqual(expect.any(String));
            continue;
          }
          expect(res.json(), label).toEqual({
            tf_required: true, tf_token: expect.any(String), tf_method: codeMethod ?? 'webauthn',
            tf_methods: [...(codeMethod ? [codeMethod] : []), ...(secondary || passkey ? ['webauthn'] : [])],
          });
        }
      }
    }
  });

  it('concurrent: deleting the last key while another registers never leaves two-factor off with a key, or on with none (20 rounds)', async () => {
    for (let round = 0; round < 20; round++) {
      const user = await makeUser(t.ctx);
      const s = await login(t.app, user.email);
      expect((await finishRegistration(s.access_token, await startRegistration(s.access_token, 'old', 'secondary'))).res.statusCode).toBe(201);
      const start = await startRegistration(s.access_token, 'new', 'secondary');
      const [del, reg] = await Promise.all([
        post(t.app, '/wan-delete', { name: 'old' }, bearer(s.access_token)),
        finishRegistration(s.access_token, start).then((r) => r.res),
      ]);
      expect([del.statusCode, reg.statusCode]).toEqual([204, 201]);
      expect(await methodOf(user.id)).toBe('webauthn');
      // and two parallel deletions of the last two keys: off, exactly
      expect((await finishRegistration(s.access_token, await startRegistration(s.access_token, 'third', 'secondary'))).res.statusCode).toBe(201);
      const both = await Promise.all(['new', 'third'].map((name) => post(t.app, '/wan-delete', { name }, bearer(s.access_token))));
      expect(both.map((r) => r.statusCode)).toEqual([204, 204]);
      expect(await methodOf(user.id)).toBeNull();
    }
  });

  it('forced roles accept a security key as the method; the last one cannot be deleted by its owner (403), an admin can', async () => {
    const forced = await buildTestApp(database, {
      SECURITY_WAN_RP_ID: RP_ID, SECURITY_WAN_ALLOWED_ORIGINS: ORIGIN, SECURITY_FRESHNESS: '600', SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'Citizen',
    }, clock);
    try {
      const user = await makeUser(t.ctx);
      const s = await login(t.app, user.email); // the unforced instance: a session to register with
      const { key } = await finishRegistration(s.access_token, await startRegistration(s.access_token, 'Only', 'secondary'));
      const res = await post(forced.app, '/login', { email: user.email, password: GOOD_PASSWORD });
      expect(res.json()).toEqual({ tf_required: true, tf_token: expect.any(String), tf_method: 'webauthn', tf_methods: ['webauthn'] });
      const o = await post(forced.app, '/wan-signin', { tf_token: res.json().tf_token });
      const done = await post(forced.app, `/wan-signin/${o.json().wan_state}`, { credential: key.get(o.json().credential_options, { uv: false }) });
      expect(done.statusCode, done.body).toBe(200);
      const del = await post(forced.app, '/wan-delete', { name: 'Only' }, bearer(done.json().access_token));
      expect(del.statusCode).toBe(403);
      expect(envelopeOf(del).code).toBe('FORBIDDEN');
      expect(await methodOf(user.id)).toBe('webauthn');
      const rows = await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, user.id));
      expect(rows).toHaveLength(1);
      // the operator (the CLI's system actor, as the admin API) may: two-factor goes off, the next login sets it up again
      await removeUserPasskey(forced.ctx, systemActor(NO_SOURCE), user.id, rows[0]!.id);
      expect(await methodOf(user.id)).toBeNull();
      expect((await post(forced.app, '/login', { email: user.email, password: GOOD_PASSWORD })).json()).toMatchObject({ tf_setup_required: true });
    } finally {
      await forced.close();
    }
  });

  it('a secondary key completes a two-factor login (tf_token), once; the tf_token is used up', async () => {
    const { user, access } = await enrolledTotp();
    const key = new SoftwareAuthenticator(ORIGIN, RP_ID);
    const start = await startRegistration(access, 'Yubikey', 'secondary');
    expect((await post(t.app, `/wan-register/${start.wan_state}`, { credential: key.create(start.credential_options as never, { uv: false }) }, bearer(access))).statusCode).toBe(201);

    // a secondary key does not sign in alone
    const alone = await signinOptions();
    expect((await post(t.app, `/wan-signin/${alone.wan_state}`, { credential: key.get(alone.credential_options) })).statusCode).toBe(401);

    const tf = await passwordTfToken(user.email);
    const o = await signinOptions({ tf_token: tf });
    expect(o.credential_options.allowCredentials).toEqual([expect.objectContaining({ id: key.id })]);
    const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options, { uv: false }) });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.email).toBe(user.email);
    // the tf_token is spent
    const again = await post(t.app, '/wan-signin', { tf_token: tf });
    expect(again.statusCode).toBe(401);
    expect(envelopeOf(again).code).toBe('TWO_FACTOR_INVALID');
  });

  it('an email code or password login with 2FA on is not completed by a first-factor passkey flow without user verification', async () => {
    const { key } = await withKey();
    const o = await signinOptions();
    const noUv = key.get(o.credential_options, { uv: false });
    expect((await post(t.app, `/wan-signin/${o.wan_state}`, { credential: noUv })).statusCode).toBe(401);
    // and the UV flag really is what the server read
    expect(Buffer.from((noUv as { response: { authenticatorData: string } }).response.authenticatorData, 'base64url')[32]! & FLAG_UV).toBe(0);
  });

  it('failed assertions on a known account count towards its lockout; a locked account cannot sign in with its passkey', async () => {
    const { key, user } = await withKey();
    for (let i = 0; i < 6; i++) {
      const o = await signinOptions({ identity: user.email });
      const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options, { origin: 'https://evil.example' }) });
      expect(res.statusCode).toBe(401);
    }
    const o = await signinOptions();
    const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) });
    expect(res.statusCode).toBe(429);
    expect(envelopeOf(res).code).toBe('ACCOUNT_LOCKED');
  });

  it('deactivation and reset-access revoke the keys; logout-all keeps them', async () => {
    const a = await withKey();
    await deactivateUser(t.ctx, a.user.id);
    expect(await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, a.user.id))).toEqual([]);
    const b = await withKey();
    await resetUserAccess(t.ctx, b.user.id, 'logout_all');
    expect(await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, b.user.id))).toHaveLength(1);
    await resetUserAccess(t.ctx, b.user.id);
    expect(await t.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, b.user.id))).toEqual([]);
    expect(await t.db.db.select().from(webauthnChallenges).where(eq(webauthnChallenges.userId, b.user.id))).toEqual([]);
    const o = await signinOptions();
    expect((await post(t.app, `/wan-signin/${o.wan_state}`, { credential: b.key.get(o.credential_options) })).statusCode).toBe(401);
  });

  it('an inactive account is refused after a good assertion', async () => {
    const { user, key } = await withKey();
    // deactivate without the revocation path (e.g. a row changed by hand): the sign-in still stops
    await t.db.db.execute(sql`update users set active = false where id = ${user.id}`);
    const o = await signinOptions();
    const res = await post(t.app, `/wan-signin/${o.wan_state}`, { credential: key.get(o.credential_options) });
    expect(res.statusCode).toBe(403);
    expect(envelopeOf(res).code).toBe('ACCOUNT_DISABLED');
  });
});
