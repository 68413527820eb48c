// The delegation check and the write it guards are one serialisable step: a role cannot be widened
// between "the granter holds every permission of this role" and the grant's commit. Two app instances on
// one database, the grant and the widening sent in parallel, repeated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { and, eq, or } from 'drizzle-orm';
import { auditEvents } from '../../../src/db/schema/index.js';
import { createRole } from '../../../src/security/datastore.js';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { county } from '../../support/principals.js';

const ROUNDS = 40;

describe('delegation under concurrency (two instances)', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    a = await buildTestApp(database);
    b = await buildTestApp(database);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  it('a grant racing a widening of the same role never lands with permissions the granter lacks', async () => {
    const countyId = (await county(a, 'Nairobi')).id;
    await createRole(a.db.db, { name: 'Granter', permissions: ['profile:read', 'profile:write', 'users:read', 'users:write', 'roles:write'] });
    const granter = await makeUser(a.ctx, { roles: ['Department Officer', 'Granter'], countyId });
    const admin = await makeUser(a.ctx, { roles: ['County Admin'] });
    const g = bearer((await login(a.app, granter.email)).access_token);
    const ad = bearer((await login(b.app, admin.email)).access_token);
    let granted = 0;
    let refused = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const role = await createRole(a.db.db, { name: `Widening ${i}`, permissions: ['profile:read'] });
      const target = await makeUser(a.ctx, { countyId });
      const [grant, widen] = await Promise.all([
        a.app.inject({ method: 'POST', url: `/users/${target.id}/roles/${encodeURIComponent(role.name)}`, headers: g }),
        b.app.inject({ method: 'PATCH', url: `/roles/${role.id}`, headers: ad, payload: { permissions: ['profile:read', 'audit:read'] } }),
      ]);
      expect(widen.statusCode, widen.body).toBe(200);
      expect([200, 403], grant.body).toContain(grant.statusCode);
      const rows = await a.db.db.select().from(auditEvents).where(or(
        and(eq(auditEvents.action, 'user.roles_changed'), eq(auditEvents.targetUserId, target.id)),
        eq(auditEvents.action, 'role.updated'),
      ));
      const widened = rows.find((r) => r.action === 'role.updated' && (r.details as { role_id?: number }).role_id === role.id)!;
      if (grant.statusCode === 200) {
        granted++;
        // the grant committed while the role was still narrow: the widening was written after it
        const grantedRow = rows.find((r) => r.action === 'user.roles_changed' && r.targetUserId === target.id)!;
        expect(grantedRow.id).toBeLessThan(widened.id);
      } else {
        refused++;
        expect(grant.json().message).toContain('audit:read');
      }
    }
    // both orders happen; each is consistent with the rule (printed for the report, not asserted)
    console.log(`grant vs widening: ${granted} granted first, ${refused} refused after the widening, of ${ROUNDS}`);
  }, 120_000);
});
