// Personal access tokens act with the intersection of their permissions and their owner's, and never
// manage the account (issue 12: a ["profile:read"] token could PATCH the profile, log the owner out
// everywhere and delete the owner's other tokens).
import { describe, expect, it } from 'vitest';
import { bearer, envelopeOf, login, makeUser, useTestApp } from '../../support/helper.js';

describe('personal access tokens: scopes and account management', () => {
  const t = useTestApp();

  const mint = async (session: string, name: string, permissions?: string[]) => {
    const res = await t.app.inject({ method: 'POST', url: '/auth/tokens', headers: bearer(session), payload: { name, ...(permissions ? { permissions } : {}) } });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; token: string };
  };
  const me = (token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });

  it('a ["profile:read"] token is refused PATCH /auth/current-user, logout-all and deleting the other tokens; nothing changes', async () => {
    const user = await makeUser(t.ctx, { firstName: 'Original' });
    const s = await login(t.app, user.email);
    const readOnly = await mint(s.access_token, 'reader', ['profile:read']);
    const other = await mint(s.access_token, 'other');

    const patch = await t.app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(readOnly.token), payload: { first_name: 'Changed' } });
    expect(patch.statusCode).toBe(403);
    expect(envelopeOf(patch).code).toBe('FORBIDDEN');
    const logoutAll = await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(readOnly.token) });
    expect(logoutAll.statusCode).toBe(403);
    const del = await t.app.inject({ method: 'DELETE', url: `/auth/tokens/${other.id}`, headers: bearer(readOnly.token) });
    expect(del.statusCode).toBe(403);

    // the owner's password session, the other token and the profile are as they were
    expect((await me(s.access_token)).json().user.first_name).toBe('Original');
    expect((await me(other.token)).statusCode).toBe(200);
    expect((await me(readOnly.token)).statusCode).toBe(200);
  });

  it('every account-management route refuses any token with 403 (not 401 REAUTH_REQUIRED), even an unlimited one', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const full = await mint(s.access_token, 'full');
    const sibling = await mint(s.access_token, 'sibling');
    const sessionId = (await t.app.inject({ url: '/auth/sessions', headers: bearer(s.access_token) })).json().sessions[0].id as string;
    for (const [method, url, payload] of [
      ['POST', '/auth/logout-all', undefined],
      ['GET', '/auth/sessions', undefined],
      ['DELETE', `/auth/sessions/${sessionId}`, undefined],
      ['GET', '/auth/tokens', undefined],
      ['POST', '/auth/tokens', { name: 'child' }],
      ['DELETE', `/auth/tokens/${sibling.id}`, undefined],
      ['POST', '/change-password', { password: 'x', new_password: 'Another-Long-Passphrase-77' }],
      ['POST', '/change-email', { email: 'new@example.com', password: 'x' }],
      ['POST', '/verify', { password: 'x' }],
      ['POST', '/tf-setup', { method: 'authenticator' }],
      ['POST', '/tf-disable', undefined],
      ['POST', '/mf-recovery-codes', undefined],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: bearer(full.token), ...(payload ? { payload } : {}) });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(403);
      expect(envelopeOf(res).code).toBe('FORBIDDEN');
    }
    expect((await me(s.access_token)).statusCode).toBe(200);
    expect((await me(sibling.token)).statusCode).toBe(200);
  });

  it('a token with profile:write edits the profile; the same call with a password session needs profile:write too', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const writer = await mint(s.access_token, 'writer', ['profile:write']);
    const res = await t.app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(writer.token), payload: { first_name: 'Script' } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.first_name).toBe('Script');
    // an account without any role has no profile:write
    const bare = await makeUser(t.ctx, { roles: [] });
    const b = await login(t.app, bare.email);
    expect((await t.app.inject({ method: 'PATCH', url: '/auth/current-user', headers: bearer(b.access_token), payload: { first_name: 'X' } })).statusCode).toBe(403);
  });

  it('the intersection holds on admin routes: an admin token limited to users:read lists users but cannot write', async () => {
    const adminUser = await makeUser(t.ctx, { roles: ['County Admin'] });
    const s = await login(t.app, adminUser.email);
    const reader = await mint(s.access_token, 'reader', ['users:read']);
    const citizen = await makeUser(t.ctx);
    expect((await t.app.inject({ url: '/users', headers: bearer(reader.token) })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: `/users/${citizen.id}/deactivate`, headers: bearer(reader.token) })).statusCode).toBe(403);
    expect((await t.app.inject({ url: '/roles', headers: bearer(reader.token) })).statusCode).toBe(403);
    expect((await t.app.inject({ url: '/audit', headers: bearer(reader.token) })).statusCode).toBe(403);
  });

  it("GET /dashboard: an admin's token without users:read gets the citizen view, not the staff overview", async () => {
    const adminUser = await makeUser(t.ctx, { roles: ['County Admin'] });
    const s = await login(t.app, adminUser.email);
    const profileOnly = await mint(s.access_token, 'profile', ['profile:read']);
    const viaToken = (await t.app.inject({ url: '/dashboard', headers: bearer(profileOnly.token) })).json().data;
    expect(viaToken).not.toHaveProperty('users_by_role');
    expect(viaToken).toHaveProperty('profile');
    expect((await t.app.inject({ url: '/dashboard', headers: bearer(s.access_token) })).json().data).toHaveProperty('users_by_role');
  });
});
