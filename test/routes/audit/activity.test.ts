// GET /auth/activity shows what others did to your account with an actor label, never their id, IP or
// User-Agent (issue 12: a citizen saw the admin's actor id, IP and browser).
import { describe, expect, it } from 'vitest';
import { NO_SOURCE } from '../../../src/security/audit.js';
import { resetAccountAccess, systemActor } from '../../../src/security/users.js';
import { bearer, login, makeUser, useTestApp } from '../../support/helper.js';

interface Activity { action: string; actor: string; actor_id: number | null; ip: string | null; user_agent: string | null; request_id: string | null }

describe('GET /auth/activity: actor labels', () => {
  const t = useTestApp();

  it("an admin's edit shows as 'administrator' without the admin's id, IP or User-Agent; the user's own events keep theirs", async () => {
    const admin = await makeUser(t.ctx, { roles: ['County Admin'] });
    const citizen = await makeUser(t.ctx);
    const a = await login(t.app, admin.email);
    const staff = { ...bearer(a.access_token), 'user-agent': 'StaffConsole/7.1 (records-desk)' };
    const edit = await t.app.inject({ method: 'PATCH', url: `/users/${citizen.id}`, headers: staff, remoteAddress: '10.77.1.9', payload: { first_name: 'Edited' } });
    expect(edit.statusCode, edit.body).toBe(200);

    const own = await t.app.inject({ method: 'POST', url: '/login', headers: { 'user-agent': 'CitizenPhone/2.0' }, remoteAddress: '192.0.2.44', payload: { email: citizen.email, password: 'Quiet-Harbor-93-Lantern' } });
    const res = await t.app.inject({ url: '/auth/activity', headers: bearer(own.json().access_token) });
    expect(res.statusCode, res.body).toBe(200);
    const events = res.json().events as Activity[];
    const updated = events.find((e) => e.action === 'user.updated')!;
    expect(updated).toMatchObject({ actor: 'administrator', actor_id: null, ip: null, user_agent: null, request_id: null });
    expect(res.body).not.toContain('10.77.1.9');
    expect(res.body).not.toContain('StaffConsole');
    expect(events.every((e) => e.actor_id === null || e.actor_id === citizen.id)).toBe(true);
    const loginEvent = events.find((e) => e.action === 'login.succeeded')!;
    expect(loginEvent).toMatchObject({ actor: 'self', actor_id: citizen.id, ip: '192.0.2.44', user_agent: 'CitizenPhone/2.0' });
    // the auditor's view keeps everything
    const audit = (await t.app.inject({ url: `/audit?user_id=${citizen.id}&action=user.updated`, headers: bearer(a.access_token) })).json().events;
    expect(audit[0]).toMatchObject({ actor_id: admin.id, ip: '10.77.1.9', user_agent: 'StaffConsole/7.1 (records-desk)' });
  });

  it("the ops CLI's actions show as 'system', without the operator's user agent", async () => {
    const citizen = await makeUser(t.ctx);
    await resetAccountAccess(t.ctx, systemActor({ ...NO_SOURCE, userAgent: 'county-services-cli (os user ops)' }), citizen.id);
    const s = await login(t.app, citizen.email);
    const res = await t.app.inject({ url: '/auth/activity', headers: bearer(s.access_token) });
    const reset = (res.json().events as Activity[]).find((e) => e.action === 'user.access_reset')!;
    expect(reset).toMatchObject({ actor: 'system', actor_id: null, user_agent: null });
    expect(res.body).not.toContain('os user ops');
  });

  it("a failed login by someone unauthenticated shows as 'anonymous' with its address (the user should see where it came from)", async () => {
    const citizen = await makeUser(t.ctx);
    await t.app.inject({ method: 'POST', url: '/login', remoteAddress: '198.51.100.7', payload: { email: citizen.email, password: 'wrong-password-1' } });
    const s = await login(t.app, citizen.email);
    const events = (await t.app.inject({ url: '/auth/activity', headers: bearer(s.access_token) })).json().events as Activity[];
    expect(events.find((e) => e.action === 'login.failed')).toMatchObject({ actor: 'anonymous', ip: '198.51.100.7' });
  });
});
