// POST /register: auto-login, stored fields, the error envelope for every kind of bad input (policy,
// unknown fields, wrong types, malformed or oversized bodies), the duplicate-email race, and the
// REGISTERABLE / RETURN_GENERIC_RESPONSES / CONFIRMABLE switches.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq, sql } from 'drizzle-orm';
import { randomBytes } from 'node:crypto';
import { counties, sessions, users } from '../../../src/db/schema/index.js';
import { findUser } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, makeUser, sessionCookie,
  type TestApp, type TestDatabase,
} from '../../support/helper.js';

const uniqueEmail = (tag = 'reg') => `${tag}-${randomBytes(4).toString('hex')}@example.com`;

describe('POST /register', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const register = (payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/register', payload: payload as object, headers });
  const rawRegister = (body: string, contentType = 'application/json') =>
    t.app.inject({ method: 'POST', url: '/register', payload: body, headers: { 'content-type': contentType } });
  const userCount = async () => Number((await t.ctx.db.select({ n: sql<number>`count(*)` }).from(users))[0]!.n);

  describe('success', () => {
    it('201 with the user, the token pair and a session cookie (auto-login); the role is Citizen', async () => {
      const email = uniqueEmail();
      const res = await register({ email, password: GOOD_PASSWORD });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body.user).toMatchObject({ email, roles: ['Citizen'], active: true, confirmed_at: null, login_count: 1 });
      expect(body.user.permissions).toContain('profile:write');
      expect(body.token_type).toBe('Bearer');
      expect(body.expires_in).toBe(900);
      expect(typeof body.access_token).toBe('string');
      expect(typeof body.refresh_token).toBe('string');
      expect(typeof body.csrf_token).toBe('string');
      expect(body.refresh_expires_in).toBeGreaterThan(0);
      expect(body.user).not.toHaveProperty('password');
      expect(body.user).not.toHaveProperty('fs_uniquifier');

      const cookie = res.cookies.find((c) => c.name === 'session');
      expect(cookie).toBeDefined();
      expect(cookie!.httpOnly).toBe(true);

      // the returned credentials work, and name one live session in the database
      const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) });
      expect(me.statusCode).toBe(200);
      expect(me.json().user.id).toBe(body.user.id);
      const byCookie = await t.app.inject({ url: '/auth/current-user', headers: { cookie: sessionCookie(res) } });
      expect(byCookie.statusCode).toBe(200);
      const rows = await t.ctx.db.select().from(sessions).where(eq(sessions.userId, body.user.id));
      expect(rows).toHaveLength(1);

      const stored = await findUser(t.ctx.db, { email });
      expect(stored?.roles).toEqual(['Citizen']);
      expect(stored?.password).not.toContain(GOOD_PASSWORD);
      expect((await t.ctx.passwords.verify(GOOD_PASSWORD, stored!.password)).ok).toBe(true);
    });

    it('stores the extended fields (names, phone, address, county)', async () => {
      const [county] = await t.ctx.db.select().from(counties).limit(1);
      expect(county).toBeDefined();
      const email = uniqueEmail();
      const res = await register({
        email, password: GOOD_PASSWORD, first_name: 'Jane', last_name: 'Wanjiru',
        phone_number: '+254700000000', address: '1 Moi Avenue, Nairobi', county_id: county!.id,
      });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().user).toMatchObject({
        first_name: 'Jane', last_name: 'Wanjiru', full_name: 'Jane Wanjiru', phone_number: '+254700000000',
        address: '1 Moi Avenue, Nairobi', county_id: county!.id, department_id: null,
      });
      const stored = await findUser(t.ctx.db, { email });
      expect(stored).toMatchObject({
        firstName: 'Jane', lastName: 'Wanjiru', phoneNumber: '+254700000000', address: '1 Moi Avenue, Nairobi', countyId: county!.id,
      });
    });
  });

  describe('errors', () => {
    it('an unknown county_id → 400 VALIDATION_FAILED on field county_id, no user written', async () => {
      const email = uniqueEmail();
      const res = await register({ email, password: GOOD_PASSWORD, county_id: 999999 });
      expect(res.statusCode, res.body).toBe(400);
      const env = envelopeOf(res);
      expect(env.code).toBe('VALIDATION_FAILED');
      expect(env.fields).toEqual({ county_id: ['Unknown county'] });
      expect(await findUser(t.ctx.db, { email })).toBeNull();
    });

    it('an address already registered in another case → 409 EMAIL_TAKEN', async () => {
      const email = uniqueEmail('Taken');
      const first = await register({ email, password: GOOD_PASSWORD });
      expect(first.statusCode).toBe(201);
      const before = await userCount();
      const res = await register({ email: email.toUpperCase(), password: GOOD_PASSWORD });
      expect(res.statusCode, res.body).toBe(409);
      expect(envelopeOf(res).code).toBe('EMAIL_TAKEN');
      expect(res.cookies).toHaveLength(0);
      expect(await userCount()).toBe(before);
    });

    it('a password that breaks the policy → 400 VALIDATION_FAILED with fields.password, no user written', async () => {
      for (const [password, message] of [
        ['short', 'Password must be at least 8 characters'],
        ['password123', 'Password is too common; choose another'],
      ] as const) {
        const email = uniqueEmail();
        const res = await register({ email, password });
        expect(res.statusCode, res.body).toBe(400);
        const env = envelopeOf(res);
        expect(env.code).toBe('VALIDATION_FAILED');
        expect(env.fields?.password).toEqual([message]);
        expect(await findUser(t.ctx.db, { email })).toBeNull();
      }
      const email = uniqueEmail('lanternharbor');
      const res = await register({ email, password: `${email.split('@')[0]}-X9` });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).fields?.password).toEqual(['Password must not contain your email address']);
    });

    it('an invalid email → 400 with fields.email', async () => {
      for (const email of ['not-an-email', 'a@b', 'jane doe@example.com', 'jane@example.com\r\nBcc: x@y.z']) {
        const res = await register({ email, password: GOOD_PASSWORD });
        expect(res.statusCode, email).toBe(400);
        const env = envelopeOf(res);
        expect(env.code).toBe('VALIDATION_FAILED');
        expect(env.fields?.email, email).toBeDefined();
      }
    });

    it('missing email and password → 400 naming both fields', async () => {
      const res = await register({});
      expect(res.statusCode).toBe(400);
      const env = envelopeOf(res);
      expect(env.code).toBe('VALIDATION_FAILED');
      expect(env.fields?.email).toEqual(['This field is required']);
      expect(env.fields?.password).toEqual(['This field is required']);
    });

    describe('mass assignment: privileged fields are rejected, never written', () => {
      const privileged: Array<[string, unknown]> = [
        ['roles', ['County Admin']],
        ['active', false],
        ['id', 1],
        ['fs_uniquifier', 'attacker-chosen-uniquifier'],
        ['login_count', 99],
        ['confirmed_at', '2020-01-01T00:00:00.000Z'],
      ];
      for (const [field, value] of privileged) {
        it(`"${field}" in the body → 400 fields.${field} = ['Unknown field'] and no user row`, async () => {
          const email = uniqueEmail();
          const before = await userCount();
          const res = await register({ email, password: GOOD_PASSWORD, [field]: value });
          expect(res.statusCode, res.body).toBe(400);
          const env = envelopeOf(res);
          expect(env.code).toBe('VALIDATION_FAILED');
          expect(env.fields?.[field]).toEqual(['Unknown field']);
          expect(res.cookies).toHaveLength(0);
          expect(await findUser(t.ctx.db, { email })).toBeNull();
          expect(await userCount()).toBe(before);
        });
      }
    });

    it('malformed JSON → 400 INVALID_JSON', async () => {
      const res = await rawRegister('{"email": "a@example.com", "password": ');
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('INVALID_JSON');
      const empty = await rawRegister('');
      expect(empty.statusCode).toBe(400);
      expect(envelopeOf(empty).code).toBe('INVALID_JSON');
    });

    it('a JSON body that is not an object (array, string, number, null) → 400 VALIDATION_FAILED', async () => {
      for (const body of [`[{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}"}]`, '"hello"', '42', 'null', 'true']) {
        const res = await rawRegister(body);
        expect(res.statusCode, body).toBe(400);
        expect(envelopeOf(res).code, body).toBe('VALIDATION_FAILED');
      }
    });

    it('wrong types are not coerced: email as ["…"], password as a number, county_id as a string', async () => {
      const email = uniqueEmail();
      const a = await register({ email: [email], password: GOOD_PASSWORD });
      expect(a.statusCode).toBe(400);
      expect(envelopeOf(a).fields?.email).toBeDefined();

      const b = await register({ email, password: 12345678901 });
      expect(b.statusCode).toBe(400);
      expect(envelopeOf(b).fields?.password).toBeDefined();

      const [county] = await t.ctx.db.select().from(counties).limit(1);
      const c = await register({ email, password: GOOD_PASSWORD, county_id: String(county!.id) });
      expect(c.statusCode).toBe(400);
      expect(envelopeOf(c).fields?.county_id).toBeDefined();

      const d = await register({ email, password: GOOD_PASSWORD, first_name: 42 });
      expect(d.statusCode).toBe(400);
      expect(envelopeOf(d).fields?.first_name).toBeDefined();

      expect(await findUser(t.ctx.db, { email })).toBeNull();
    });

    it('a text/plain body → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      const res = await rawRegister(JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD }), 'text/plain');
      expect(res.statusCode).toBe(415);
      expect(envelopeOf(res).code).toBe('UNSUPPORTED_MEDIA_TYPE');
      const form = await rawRegister('email=a%40example.com&password=x', 'application/x-www-form-urlencoded');
      expect(form.statusCode).toBe(415);
      expect(envelopeOf(form).code).toBe('UNSUPPORTED_MEDIA_TYPE');
    });

    it('a body over 1 MiB → 413 PAYLOAD_TOO_LARGE', async () => {
      const body = JSON.stringify({ email: uniqueEmail(), password: GOOD_PASSWORD, first_name: 'x'.repeat(1024 * 1024) });
      expect(Buffer.byteLength(body)).toBeGreaterThan(1024 * 1024);
      const res = await rawRegister(body);
      expect(res.statusCode).toBe(413);
      expect(envelopeOf(res).code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('deeply nested JSON (10,000 and 100,000 levels) → a 4xx envelope, never a 500', async () => {
      for (const depth of [10_000, 100_000]) {
        const nested = '['.repeat(depth) + ']'.repeat(depth);
        const inUnknown = `{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}","extra":${nested}}`;
        const inKnown = `{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}","first_name":${nested}}`;
        const objects = `{"email":"${uniqueEmail()}","password":"${GOOD_PASSWORD}","extra":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
        for (const body of [inUnknown, inKnown, objects, nested]) {
          const res = await rawRegister(body);
          expect(res.statusCode, `depth ${depth}: ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
          expect(res.statusCode).toBeLessThan(500);
          expect(['VALIDATION_FAILED', 'INVALID_JSON']).toContain(envelopeOf(res).code);
        }
      }
      // the app is still healthy afterwards
      expect((await t.app.inject('/health')).statusCode).toBe(200);
    });
  });

  it('20 concurrent registrations of one address → exactly one 201, the rest 409, one row', async () => {
    const email = uniqueEmail('race');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      register({ email: i % 2 ? email.toUpperCase() : email, password: GOOD_PASSWORD })));
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    for (const r of results.filter((x) => x.statusCode === 409)) expect(envelopeOf(r).code).toBe('EMAIL_TAKEN');
    const rows = await t.ctx.db.select().from(users).where(sql`lower(${users.email}) = lower(${email})`);
    expect(rows).toHaveLength(1);
  });

  describe('configuration switches', () => {
    it('SECURITY_REGISTERABLE=false → 404 and nothing written', async () => {
      const off = await buildTestApp(database, { SECURITY_REGISTERABLE: 'false' });
      try {
        const email = uniqueEmail();
        const res = await off.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD } });
        expect(res.statusCode).toBe(404);
        expect(envelopeOf(res).code).toBe('NOT_FOUND');
        expect(await findUser(t.ctx.db, { email })).toBeNull();
      } finally {
        await off.close();
      }
    });

    it('SECURITY_RETURN_GENERIC_RESPONSES=true → 202 {message} for new and existing addresses alike, no tokens, no cookie', async () => {
      const generic = await buildTestApp(database, { SECURITY_RETURN_GENERIC_RESPONSES: 'true' });
      try {
        const existing = await makeUser(t.ctx);
        const fresh = uniqueEmail();
        const post = (email: string) => generic.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD } });
        const a = await post(fresh);
        const b = await post(existing.email);
        const c = await post(existing.email.toUpperCase());
        for (const r of [a, b, c]) {
          expect(r.statusCode, r.body).toBe(202);
          expect(Object.keys(r.json())).toEqual(['message']);
          expect(r.body).not.toMatch(/access_token|refresh_token|csrf_token|"user"/);
          expect(r.cookies).toHaveLength(0);
          expect(r.headers['set-cookie']).toBeUndefined();
        }
        expect(b.body).toBe(a.body);
        expect(c.body).toBe(a.body);
        // the new account exists, unconfirmed and without a session; the existing one is untouched
        const created = await findUser(t.ctx.db, { email: fresh });
        expect(created).not.toBeNull();
        expect(created!.confirmedAt).toBeNull();
        expect(await t.ctx.db.select().from(sessions).where(eq(sessions.userId, created!.id))).toHaveLength(0);
        const still = await findUser(t.ctx.db, { id: existing.id });
        expect(still!.password).toBe(existing.password);
      } finally {
        await generic.close();
      }
    });

    it('SECURITY_CONFIRMABLE=true → 201 {user} without tokens and without a cookie', async () => {
      const confirmable = await buildTestApp(database, { SECURITY_CONFIRMABLE: 'true' });
      try {
        const email = uniqueEmail();
        const res = await confirmable.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD } });
        expect(res.statusCode, res.body).toBe(201);
        const body = res.json();
        expect(Object.keys(body)).toEqual(['user']);
        expect(body.user).toMatchObject({ email, confirmed_at: null, roles: ['Citizen'], login_count: 0 });
        expect(res.cookies).toHaveLength(0);
        expect(res.headers['set-cookie']).toBeUndefined();
        const created = await findUser(t.ctx.db, { email });
        expect(await t.ctx.db.select().from(sessions).where(eq(sessions.userId, created!.id))).toHaveLength(0);
      } finally {
        await confirmable.close();
      }
    });
  });
});
