// Links are bound to per-account state the key alone does not give (issue 13): with SECRET_KEY known,
// a confirmation link or an email-change link forged without the account's password hash and
// fs_uniquifier is refused (400 LINK_INVALID) and changes nothing; the genuine link (same key, the
// real state) works, so the state is the only difference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { users } from '../../../src/db/schema/index.js';
import { findUser } from '../../../src/security/datastore.js';
import { linkFingerprint, signLink, type LinkClaims } from '../../../src/security/links.js';
import {
  bearer, buildTestApp, createTestDatabase, GOOD_PASSWORD, login, makeUser, type TestApp, type TestDatabase,
} from '../../support/helper.js';

describe('links bound to account state', () => {
  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { SECURITY_CONFIRMABLE: 'true' });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const now = () => Math.floor(t.clock.now().getTime() / 1000);
  /** What an attacker holding SECRET_KEY can sign: the right key, guessed state. */
  const forged = (claims: Omit<LinkClaims, 'f'>, email: string) =>
    signLink(t.config, { ...claims, f: linkFingerprint(t.config, claims.p, { email, password: '', fsUniquifier: '' }) });

  it('a confirmation link forged with the key for an address the attacker does not own is refused', async () => {
    const email = `victim-${Date.now()}@example.com`;
    const reg = await t.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD } });
    expect(reg.statusCode, reg.body).toBe(201);
    const id = reg.json().user.id as number;
    const res = await t.app.inject({ method: 'GET', url: `/confirm/${forged({ p: 'confirm', u: id, t: now() }, email)}` });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('LINK_INVALID');
    expect((await findUser(t.ctx.db, { id }))!.confirmedAt).toBeNull();
    const denied = await t.app.inject({ method: 'POST', url: '/login', payload: { email, password: GOOD_PASSWORD } });
    expect(denied.json().code).toBe('CONFIRMATION_REQUIRED');
    // the genuine link (the real state) confirms: only the state differed
    const user = (await findUser(t.ctx.db, { id }))!;
    const genuine = signLink(t.config, { p: 'confirm', u: id, t: now(), f: linkFingerprint(t.config, 'confirm', user) });
    expect((await t.app.inject({ method: 'GET', url: `/confirm/${genuine}` })).statusCode).toBe(200);
  });

  it('an email-change link forged with the key (even by the signed-in owner, who knows the uniquifier from the JWT) is refused', async () => {
    const owner = await makeUser(t.ctx);
    const session = await login(t.app, owner.email);
    const target = `taken-over-${Date.now()}@example.com`;
    const uq = JSON.parse(Buffer.from(session.access_token.split('.')[1]!, 'base64url').toString()).uq as string;
    const token = signLink(t.config, {
      p: 'change_email', u: owner.id, t: now(), e: target,
      f: linkFingerprint(t.config, 'change_email', { email: owner.email, password: '', fsUniquifier: uq }),
    });
    const res = await t.app.inject({ method: 'POST', url: `/change-email/${token}`, payload: {} });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('LINK_INVALID');
    const [row] = await t.ctx.db.select({ email: users.email }).from(users).where(eq(users.id, owner.id));
    expect(row!.email).toBe(owner.email);
    expect((await t.app.inject({ method: 'GET', url: '/auth/current-user', headers: bearer(session.access_token) })).statusCode).toBe(200);
  });
});
