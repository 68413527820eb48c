import { describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { personalAccessTokens } from '../../../src/db/schema/index.js';
import { deactivateUser, resetUserAccess } from '../../../src/security/datastore.js';
import { bearer, envelopeOf, GOOD_PASSWORD, login, makeUser, useTestApp } from '../../support/helper.js';

describe('personal access tokens (/auth/tokens)', () => {
  const t = useTestApp();

  const create = (accessToken: string, payload: object) =>
    t.app.inject({ method: 'POST', url: '/auth/tokens', headers: bearer(accessToken), payload });
  const me = (token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });

  it('creates a token shown once, stored only as a hash, usable as a bearer token and listed with last use', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const res = await create(s.access_token, { name: 'nightly report', expires_in: 3600 });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.token).toMatch(/^cspat_[A-Za-z0-9_-]{43}$/);
    expect(body.permissions).toBeNull();
    expect(new Date(body.expires_at).getTime() - Date.now()).toBeGreaterThan(3500_000);

    const [row] = await t.db.db.select().from(personalAccessTokens).where(eq(personalAccessTokens.id, body.id));
    expect(row!.tokenHash).not.toContain(body.token);
    expect(JSON.stringify(row)).not.toContain(body.token.slice(6));

    const viaToken = await me(body.token);
    expect(viaToken.statusCode).toBe(200);
    expect(viaToken.json().user.email).toBe(user.email);

    const list = (await t.app.inject({ url: '/auth/tokens', headers: bearer(s.access_token) })).json();
    expect(list.tokens).toHaveLength(1);
    expect(list.tokens[0]).toMatchObject({ id: body.id, name: 'nightly report' });
    expect(JSON.stringify(list)).not.toContain(body.token);
    // token sessions are not login sessions
    const sessions = (await t.app.inject({ url: '/auth/sessions', headers: bearer(s.access_token) })).json().sessions;
    expect(sessions).toHaveLength(1);
  });

  it('limits a token to a subset of the owner permissions; a permission the owner lacks is 400', async () => {
    const officer = await makeUser(t.ctx, { roles: ['Department Officer'] });
    const s = await login(t.app, officer.email);
    const limited = (await create(s.access_token, { name: 'read-only', permissions: ['users:read'] })).json();
    expect(limited.permissions).toEqual(['users:read']);
    expect((await me(limited.token)).json().user.permissions).toEqual(['users:read']);

    const bad = await create(s.access_token, { name: 'escalate', permissions: ['users:write'] });
    expect(bad.statusCode).toBe(400);
    expect(envelopeOf(bad).fields).toHaveProperty('permissions');
  });

  it('expires: after expires_in the token is refused', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const tok = (await create(s.access_token, { name: 'short', expires_in: 60 })).json();
    expect((await me(tok.token)).statusCode).toBe(200);
    t.clock.advance(61);
    const res = await me(tok.token);
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('TOKEN_INVALID');
    expect(res.headers['www-authenticate']).toContain('invalid_token');
  });

  it('is revoked individually (404 for another user’s token), and dies with logout-all, deactivation and reset-access', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const a = (await create(s.access_token, { name: 'a' })).json();
    const b = (await create(s.access_token, { name: 'b' })).json();
    const other = await makeUser(t.ctx);
    const o = await login(t.app, other.email);
    expect((await t.app.inject({ method: 'DELETE', url: `/auth/tokens/${a.id}`, headers: bearer(o.access_token) })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: `/auth/tokens/${a.id}`, headers: bearer(s.access_token) })).statusCode).toBe(204);
    expect((await me(a.token)).statusCode).toBe(401);
    expect((await me(b.token)).statusCode).toBe(200);

    expect((await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(s.access_token) })).statusCode).toBe(204);
    expect((await me(b.token)).statusCode).toBe(401);

    const s2 = await login(t.app, user.email);
    const c = (await create(s2.access_token, { name: 'c' })).json();
    await resetUserAccess(t.ctx, user.id);
    await t.app.authSync();
    expect((await me(c.token)).statusCode).toBe(401);

    const s3 = await login(t.app, user.email);
    const d = (await create(s3.access_token, { name: 'd' })).json();
    await deactivateUser(t.ctx, user.id);
    await t.app.authSync();
    expect((await me(d.token)).statusCode).toBe(401);
  });

  it('a token cannot mint tokens, change the password, re-authenticate or pass a freshness check', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const tok = (await create(s.access_token, { name: 'automation' })).json();
    for (const [url, payload] of [
      ['/auth/tokens', { name: 'child' }],
      ['/change-password', { password: 'x', new_password: 'Another-Long-Passphrase-77' }],
      ['/verify', { password: 'x' }],
      ['/change-email', { email: 'new@example.com', password: 'x' }],
    ] as const) {
      const res = await t.app.inject({ method: 'POST', url, headers: bearer(tok.token), payload });
      expect(res.statusCode, url).toBe(403);
      expect(envelopeOf(res).code).toBe('FORBIDDEN');
    }
  });

  it('creating a token needs a fresh login; logout with a token revokes that token', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const tok = (await create(s.access_token, { name: 'x' })).json();
    expect((await t.app.inject({ method: 'POST', url: '/logout', headers: bearer(tok.token) })).statusCode).toBe(204);
    expect((await me(tok.token)).statusCode).toBe(401);
    t.clock.advance(t.config.SECURITY_FRESHNESS + 1);
    const s2 = await login(t.app, user.email);
    expect((await create(s2.access_token, { name: 'fresh' })).statusCode).toBe(201);
    // an old session is no longer fresh
    t.clock.advance(t.config.SECURITY_FRESHNESS + 1);
    const stale = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: s2.refresh_token } });
    const staleAccess = stale.json().access_token;
    const res = await create(staleAccess, { name: 'stale' });
    expect(res.statusCode).toBe(401);
    expect(envelopeOf(res).code).toBe('REAUTH_REQUIRED');
  });

  it('rejects malformed tokens, unknown tokens and bad bodies with the envelope', async () => {
    const unknown = await me('cspat_' + 'A'.repeat(43));
    expect(unknown.statusCode).toBe(401);
    expect(envelopeOf(unknown).code).toBe('TOKEN_INVALID');
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    for (const payload of [{}, { name: '' }, { name: 'x', expires_in: 5 }, { name: 'x', permissions: ['NOT A PERMISSION'] }, { name: 'x', admin: true }]) {
      const res = await create(s.access_token, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('token and account actions are audited', () => {
  const t = useTestApp();

  it('writes token.created and token.revoked without the token value', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const tok = (await t.app.inject({ method: 'POST', url: '/auth/tokens', headers: bearer(s.access_token), payload: { name: 'audited' } })).json();
    await t.app.inject({ method: 'DELETE', url: `/auth/tokens/${tok.id}`, headers: bearer(s.access_token) });
    const rows = await t.db.sql`select action, details from audit_events where target_user_id = ${user.id} and action like 'token.%' order by id`;
    expect(rows.map((r) => r.action)).toEqual(['token.created', 'token.revoked']);
    expect(rows[0]!.details).toMatchObject({ pat_id: tok.id, name: 'audited' });
    expect(JSON.stringify(rows)).not.toContain(tok.token);
  });

  it('writes session.verified and password.changed, never the passwords', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const newPassword = 'Another-Quiet-Harbor-58';
    expect((await t.app.inject({ method: 'POST', url: '/verify', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD } })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/change-password', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD, new_password: newPassword } })).statusCode).toBe(200);
    const rows = await t.db.sql`select action, actor_id, details from audit_events where target_user_id = ${user.id} and action in ('session.verified', 'password.changed') order by id`;
    expect(rows.map((r) => r.action)).toEqual(['session.verified', 'password.changed']);
    expect(rows.every((r) => r.actor_id === user.id)).toBe(true);
    expect(JSON.stringify(rows)).not.toContain(GOOD_PASSWORD);
    expect(JSON.stringify(rows)).not.toContain(newPassword);
  });
});
