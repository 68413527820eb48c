import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit, listAuditEvents, NO_SOURCE } from '../../src/security/audit.js';
import { buildTestApp, createTestDatabase, type TestApp, type TestDatabase } from '../support/helper.js';

describe('security/audit', () => {
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

  it('audit() appends one row with the source, the injected clock and the details', async () => {
    t.clock.advance(3600);
    await audit(t.ctx, { action: 'test.event', actorId: 7, targetUserId: 8, ip: '10.0.0.1', userAgent: 'ua', requestId: 'r-1', details: { why: 'because' } });
    const [row] = await t.db.sql`select * from audit_events where action = 'test.event'`;
    expect(row).toMatchObject({ actor_id: 7, target_user_id: 8, ip: '10.0.0.1', user_agent: 'ua', request_id: 'r-1', details: { why: 'because' } });
    const at = new Date(row!.created_at as string | Date).getTime();
    expect(Math.abs(at - t.clock.now().getTime())).toBeLessThan(5000);
    expect(at).toBeGreaterThan(Date.now() + 3000 * 1000);
  });

  it('credential-looking keys are dropped from details, at any depth; long strings are cut', async () => {
    await audit(t.ctx, {
      ...NO_SOURCE, action: 'test.scrub',
      details: {
        email: 'a@example.com', password: 'hunter2', new_password: 'x', refresh_token: 'rt', nested: { access_token: 'at', csrf_token: 'c', ok: 1 },
        list: [{ secret: 's', keep: true }], fs_uniquifier: 'u', password_hash: 'h', code: '123456', long: 'y'.repeat(2000),
      },
    });
    const [row] = await t.db.sql`select details from audit_events where action = 'test.scrub'`;
    const details = row!.details as Record<string, unknown>;
    expect(details).toMatchObject({ email: 'a@example.com', nested: { ok: 1 }, list: [{ keep: true }] });
    expect(JSON.stringify(details)).not.toMatch(/hunter2|"rt"|"at"|"s"|"u"|"h"|123456|password|token|secret|uniquifier/);
    expect((details.long as string).length).toBeLessThan(600);
  });

  it('the database refuses UPDATE, DELETE and TRUNCATE of audit rows (trigger), whoever asks', async () => {
    await expect(t.db.sql`update audit_events set action = 'forged'`).rejects.toMatchObject({ code: '42501' });
    await expect(t.db.sql`delete from audit_events`).rejects.toMatchObject({ code: '42501' });
    await expect(t.db.sql`truncate audit_events`).rejects.toMatchObject({ code: '42501' });
    const [row] = await t.db.sql`select count(*)::int as n from audit_events where action = 'forged'`;
    expect(row!.n).toBe(0);
    expect((await t.db.sql`select count(*)::int as n from audit_events`)[0]!.n).toBeGreaterThanOrEqual(2);
  });

  it('a rolled-back transaction leaves no audit row', async () => {
    await expect(t.db.db.transaction(async (tx) => {
      await audit(t.ctx, { action: 'test.rolled_back' }, tx);
      throw new Error('abort');
    })).rejects.toThrow('abort');
    expect((await t.db.sql`select count(*)::int as n from audit_events where action = 'test.rolled_back'`)[0]!.n).toBe(0);
  });

  it('listAuditEvents pages both ways with opaque cursors', async () => {
    for (let i = 0; i < 5; i++) await audit(t.ctx, { action: 'test.page', details: { i } });
    const desc1 = await listAuditEvents(t.ctx, { action: 'test.page', limit: 3 });
    expect(desc1.events.map((e) => e.details.i)).toEqual([4, 3, 2]);
    expect(desc1.nextCursor).not.toMatch(/^[0-9]+$/);
    const desc2 = await listAuditEvents(t.ctx, { action: 'test.page', limit: 3, cursor: desc1.nextCursor! });
    expect(desc2.events.map((e) => e.details.i)).toEqual([1, 0]);
    expect(desc2.nextCursor).toBeNull();
    const asc = await listAuditEvents(t.ctx, { action: 'test.page', limit: 2, order: 'asc' });
    expect(asc.events.map((e) => e.details.i)).toEqual([0, 1]);
    const asc2 = await listAuditEvents(t.ctx, { action: 'test.page', limit: 10, order: 'asc', cursor: asc.nextCursor! });
    expect(asc2.events.map((e) => e.details.i)).toEqual([2, 3, 4]);
    await expect(listAuditEvents(t.ctx, { limit: 1, cursor: 'nope' })).rejects.toMatchObject({ statusCode: 400, fields: { cursor: ['Invalid cursor'] } });
  });
});
