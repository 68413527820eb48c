// GET and PATCH /auth/current-user: the public user object (exact key set of contract §4, never a
// secret), authentication required, and a profile PATCH that accepts only the four profile fields.
import { describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { users } from '../../../src/db/schema/index.js';
import { findUser, type UserRecord } from '../../../src/security/datastore.js';
import { bearer, envelopeOf, login, makeUser, type LoginResult, useTestApp } from '../../support/helper.js';

/** Contract §4, exactly. */
const PUBLIC_USER_KEYS = [
  'id', 'email', 'first_name', 'last_name', 'full_name', 'phone_number', 'address', 'active', 'confirmed_at',
  'created_at', 'updated_at', 'roles', 'permissions', 'county_id', 'department_id', 'tf_enabled',
  'last_login_at', 'current_login_at', 'last_login_ip', 'current_login_ip', 'login_count',
].sort();

describe('/auth/current-user', () => {
  const t = useTestApp();

  const get = (headers: Record<string, string> = {}) => t.app.inject({ url: '/auth/current-user', headers });
  const patch = (payload: unknown, headers: Record<string, string>) =>
    t.app.inject({ method: 'PATCH', url: '/auth/current-user', payload: payload as object, headers });
  const row = async (id: number) => (await t.ctx.db.select().from(users).where(eq(users.id, id)))[0]!;

  async function loggedIn(input: Parameters<typeof makeUser>[1] = {}): Promise<{ user: UserRecord; session: LoginResult }> {
    const user = await makeUser(t.ctx, input);
    return { user, session: await login(t.app, user.email) };
  }

  describe('GET', () => {
    it('with a bearer token → 200 {user, status:"success"} with exactly the public keys', async () => {
      const { user, session } = await loggedIn({ firstName: 'Otieno', lastName: 'Kamau', phoneNumber: '+254711111111' });
      const res = await get(bearer(session.access_token));
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body).sort()).toEqual(['status', 'user']);
      expect(body.status).toBe('success');
      expect(Object.keys(body.user).sort()).toEqual(PUBLIC_USER_KEYS);
      expect(body.user).toMatchObject({
        id: user.id, email: user.email, first_name: 'Otieno', last_name: 'Kamau', full_name: 'Otieno Kamau',
        phone_number: '+254711111111', address: null, active: true, roles: ['Citizen'], tf_enabled: false,
        login_count: 1, current_login_ip: '127.0.0.1',
      });
      expect(body.user.permissions).toEqual(user.permissions);
      expect(Date.parse(body.user.created_at)).not.toBeNaN();
    });

    it('never carries the password hash, fs_uniquifier or any hash, by key or by value', async () => {
      const { user, session } = await loggedIn();
      const stored = await row(user.id);
      for (const res of [await get(bearer(session.access_token)), await get({ cookie: session.cookie })]) {
        expect(res.statusCode).toBe(200);
        expect(res.body).not.toContain(stored.password);
        expect(res.body).not.toContain(stored.password.slice(-31)); // the bcrypt digest alone
        expect(res.body).not.toContain(stored.fsUniquifier);
        expect(res.body).not.toMatch(/"(password|fs_uniquifier|fsUniquifier|password_hash|tf_secret|refresh_token_hash|recovery_codes)"/);
        expect(res.body).not.toMatch(/\$2[aby]\$|\$cs1\$/);
      }
    });

    it('works with the session cookie too (same user)', async () => {
      const { user, session } = await loggedIn();
      const res = await get({ cookie: session.cookie });
      expect(res.statusCode).toBe(200);
      expect(res.json().user.id).toBe(user.id);
    });

    it('without credentials → 401 AUTH_REQUIRED with WWW-Authenticate: Bearer', async () => {
      const res = await get();
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
      expect(res.headers['www-authenticate']).not.toMatch(/invalid_token/);
    });

    it('with a garbage bearer token → 401 TOKEN_INVALID with error="invalid_token"', async () => {
      const res = await get({ authorization: 'Bearer not.a.jwt' });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
      expect(res.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    });
  });

  describe('PATCH', () => {
    it('updates first_name, last_name, phone_number and address → 200 {user}; stored', async () => {
      const { user, session } = await loggedIn();
      const res = await patch({
        first_name: 'Wanjiku', last_name: 'Mwangi', phone_number: '+254722000000', address: 'P.O. Box 1, Nyeri',
      }, bearer(session.access_token));
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(Object.keys(body)).toEqual(['user']);
      expect(Object.keys(body.user).sort()).toEqual(PUBLIC_USER_KEYS);
      expect(body.user).toMatchObject({
        id: user.id, first_name: 'Wanjiku', last_name: 'Mwangi', full_name: 'Wanjiku Mwangi',
        phone_number: '+254722000000', address: 'P.O. Box 1, Nyeri',
      });
      const stored = await row(user.id);
      expect(stored).toMatchObject({ firstName: 'Wanjiku', lastName: 'Mwangi', phoneNumber: '+254722000000', address: 'P.O. Box 1, Nyeri' });
      expect(stored.updatedAt.getTime()).toBeGreaterThanOrEqual(user.updatedAt.getTime());
      // GET sees the change
      expect((await get(bearer(session.access_token))).json().user.first_name).toBe('Wanjiku');
    });

    it('a partial PATCH leaves other fields alone; null clears a field', async () => {
      const { user, session } = await loggedIn({ firstName: 'Achieng', lastName: 'Otieno', phoneNumber: '+254733000000', address: 'Kisumu' });
      const a = await patch({ phone_number: null }, bearer(session.access_token));
      expect(a.statusCode, a.body).toBe(200);
      expect(a.json().user).toMatchObject({ first_name: 'Achieng', last_name: 'Otieno', phone_number: null, address: 'Kisumu' });
      const b = await patch({ first_name: null, address: null }, bearer(session.access_token));
      expect(b.statusCode).toBe(200);
      expect(b.json().user).toMatchObject({ first_name: null, last_name: 'Otieno', full_name: 'Otieno', phone_number: null, address: null });
      expect(await row(user.id)).toMatchObject({ firstName: null, lastName: 'Otieno', phoneNumber: null, address: null });
    });

    it('by cookie it needs the X-CSRF-Token header', async () => {
      const { user, session } = await loggedIn();
      const without = await patch({ first_name: 'Nope' }, { cookie: session.cookie });
      expect(without.statusCode).toBe(403);
      expect(envelopeOf(without).code).toBe('CSRF_FAILED');
      expect((await row(user.id)).firstName).toBeNull();
      const withToken = await patch({ first_name: 'Yes' }, { cookie: session.cookie, 'x-csrf-token': session.csrf_token });
      expect(withToken.statusCode).toBe(200);
      expect((await row(user.id)).firstName).toBe('Yes');
    });

    const forbidden: Array<[string, unknown]> = [
      ['roles', ['County Admin']],
      ['active', false],
      ['id', 1],
      ['fs_uniquifier', 'attacker-chosen-uniquifier'],
      ['login_count', 1000],
      ['confirmed_at', '2020-01-01T00:00:00.000Z'],
      ['email', 'someone-else@example.com'],
      ['county_id', 1],
      ['password', 'Another-Harbor-94-Lantern'],
    ];
    for (const [field, value] of forbidden) {
      it(`"${field}" (even beside a valid field) → 400 fields.${field} = ['Unknown field'] and nothing written`, async () => {
        const { user, session } = await loggedIn({ firstName: 'Original' });
        const before = await row(user.id);
        const res = await patch({ first_name: 'Changed', [field]: value }, bearer(session.access_token));
        expect(res.statusCode, res.body).toBe(400);
        const env = envelopeOf(res);
        expect(env.code).toBe('VALIDATION_FAILED');
        expect(env.fields).toEqual({ [field]: ['Unknown field'] });
        expect(await row(user.id)).toEqual(before);
        expect((await findUser(t.ctx.db, { id: user.id }))!.roles).toEqual(['Citizen']);
        // the token still works: nothing security-relevant changed
        expect((await get(bearer(session.access_token))).statusCode).toBe(200);
      });
    }

    it('an empty body {} → 400 VALIDATION_FAILED', async () => {
      const { user, session } = await loggedIn();
      const before = await row(user.id);
      const res = await patch({}, bearer(session.access_token));
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      expect(await row(user.id)).toEqual(before);
    });

    it('wrong types and over-long values → 400 with the field named', async () => {
      const { session } = await loggedIn();
      const num = await patch({ phone_number: 254700000000 }, bearer(session.access_token));
      expect(num.statusCode).toBe(400);
      expect(envelopeOf(num).fields?.phone_number).toBeDefined();
      const long = await patch({ first_name: 'x'.repeat(101) }, bearer(session.access_token));
      expect(long.statusCode).toBe(400);
      expect(envelopeOf(long).fields?.first_name).toContain('Must be at most 100 characters');
    });

    it('without credentials → 401 AUTH_REQUIRED', async () => {
      const res = await t.app.inject({ method: 'PATCH', url: '/auth/current-user', payload: { first_name: 'X' } });
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
    });
  });
});
