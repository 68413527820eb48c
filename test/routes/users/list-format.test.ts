// GET /users is built as JSON text by PostgreSQL (security/users.listUsersJson), whose json output has
// " : " between keys and values and a line break between array elements. The API answers compact JSON
// everywhere: the listing's bytes are those of JSON.stringify of its own value, like GET /users/{id}.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';

describe('GET /users body format', () => {
  let database: TestDatabase;
  let t: TestApp;
  let admin: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    const a = await makeUser(t.ctx, { roles: ['County Admin'], firstName: 'Ada', lastName: 'Admin' });
    for (let i = 0; i < 3; i++) await makeUser(t.ctx, { firstName: `User ${i}` });
    admin = bearer((await login(t.app, a.email)).access_token);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('is compact JSON, as every other endpoint, both uncached and cached', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await t.app.inject({ url: '/users?per_page=10', headers: admin });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.json().users.length).toBeGreaterThanOrEqual(4);
      expect(res.body).toBe(JSON.stringify(res.json()));
      expect(res.body).not.toMatch(/\n| : /);
    }
    const one = await t.app.inject({ url: '/users/1', headers: admin });
    expect(one.body).toBe(JSON.stringify(one.json()));
  });
});
