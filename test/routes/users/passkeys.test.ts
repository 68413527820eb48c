// The admin API on a user's passkeys: the same guards and scope as every other action on a user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { auditEvents } from '../../../src/db/schema/index.js';
import { buildTestApp, createTestDatabase, envelopeOf, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { makeCast, type Cast } from '../../support/principals.js';
import { passkeySignin, PASSKEY_ENV, registerPasskey } from '../../support/passkeys.js';

describe('GET/DELETE /users/{id}/passkeys', () => {
  let database: TestDatabase;
  let t: TestApp;
  let cast: Cast;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, PASSKEY_ENV);
    cast = await makeCast(t);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('who may list and remove: admin anywhere, an officer only in their county (reads), citizens and strangers never', async () => {
    const owner = await makeUser(t.ctx, { countyId: cast.countyA.id });
    const { key, credential } = await registerPasskey(t.app, (await login(t.app, owner.email)).access_token, 'Phone');
    const list = (who: keyof Cast['as']) => t.app.inject({ url: `/users/${owner.id}/passkeys`, headers: cast.as[who].headers });
    expect((await list('anonymous')).statusCode).toBe(401);
    expect((await list('citizen')).statusCode).toBe(403);
    expect((await list('officerB')).statusCode).toBe(404);
    const seen = await list('officerA');
    expect(seen.statusCode).toBe(200);
    expect(seen.json().credentials).toEqual([expect.objectContaining({ id: credential.id, name: 'Phone', usage: 'first' })]);
    expect(seen.body).not.toContain('public_key');
    expect((await list('admin')).statusCode).toBe(200);

    const remove = (who: keyof Cast['as'], id = credential.id) =>
      t.app.inject({ method: 'DELETE', url: `/users/${owner.id}/passkeys/${id}`, headers: cast.as[who].headers });
    expect((await remove('citizen')).statusCode).toBe(403);
    expect((await remove('officerA')).statusCode).toBe(403);
    expect((await passkeySignin(t.app, key)).statusCode).toBe(200);
    expect(envelopeOf(await remove('admin', '00000000-0000-4000-8000-000000000000')).code).toBe('NOT_FOUND');
    expect((await remove('admin')).statusCode).toBe(204);
    expect((await remove('admin')).statusCode).toBe(404);
    expect((await passkeySignin(t.app, key)).statusCode).toBe(401);
    const [event] = await t.db.db.select().from(auditEvents).where(eq(auditEvents.action, 'wan.deleted'));
    expect(event).toMatchObject({ actorId: cast.as.admin.user!.id, targetUserId: owner.id });
  });

  it('another user\'s credential id under this user is 404', async () => {
    const a = await makeUser(t.ctx);
    const b = await makeUser(t.ctx);
    const { credential } = await registerPasskey(t.app, (await login(t.app, b.email)).access_token, 'Key');
    const res = await t.app.inject({ method: 'DELETE', url: `/users/${a.id}/passkeys/${credential.id}`, headers: cast.as.admin.headers });
    expect(res.statusCode).toBe(404);
    const still = await t.app.inject({ url: `/users/${b.id}/passkeys`, headers: cast.as.admin.headers });
    expect(still.json().credentials).toHaveLength(1);
  });
});
