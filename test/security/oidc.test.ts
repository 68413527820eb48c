// The OIDC core without a browser: the `next` allow-list as a property, the provider configuration,
// account resolution rules and races, and a provider that cannot be reached.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { eq } from 'drizzle-orm';
import { ConfigError, testConfig } from '../../src/config.js';
import { oauthIdentities, oauthLoginCodes, oauthStates } from '../../src/db/schema/index.js';
import { findUser } from '../../src/security/datastore.js';
import { nextAllowed, resolveAccount, startOidc, withParams } from '../../src/security/oidc.js';
import { securityContext } from '../../src/security/context.js';
import { createTestDatabase, buildTestApp, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { freePort } from '../support/idp.js';
import { buildApp } from '../../src/app.js';
import { connect } from '../../src/db/client.js';

const ALLOWED = ['https://app.example.org/oauth/', 'https://spa.example.org', 'countyapp:'];
const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const segment = fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/).filter((x) => x !== '.' && x !== '..');

describe('nextAllowed', () => {
  it('admits every URL under an allowed prefix, origin or scheme', () => {
    fc.assert(fc.property(fc.array(segment, { maxLength: 4 }), fc.option(segment), (path, q) => {
      const tail = path.join('/') + (q ? `?x=${q}` : '');
      expect(nextAllowed(ALLOWED, `https://app.example.org/oauth/${tail}`)).toBe(true);
      expect(nextAllowed(ALLOWED, `https://spa.example.org/${tail}`)).toBe(true);
      expect(nextAllowed(ALLOWED, `countyapp://signin/${tail}`)).toBe(true);
    }), { numRuns: 300 });
  });

  it('refuses other hosts, look-alike hosts, userinfo tricks, other schemes, ports and prefix extensions', () => {
    fc.assert(fc.property(label, fc.array(segment, { maxLength: 3 }), (host, path) => {
      const tail = path.join('/');
      for (const next of [
        `https://${host}.example.net/oauth/${tail}`,
        `https://app.example.org.${host}.net/oauth/${tail}`,
        `https://app.example.org@${host}.net/oauth/${tail}`,
        `https://app.example.org:8443/oauth/${tail}`,
        `http://app.example.org/oauth/${tail}`,
        `https://app.example.org/oauthx${tail}`,
        `https://app.example.org/${host}/oauth/${tail}`,
        `https://app.example.org/oauth/../${host}`,
        `${host}app://signin/${tail}`,
        `javascript://app.example.org/oauth/%0aalert(1)`,
        `/oauth/${tail}`,
        `//${host}.example.net/${tail}`,
      ]) expect(nextAllowed(ALLOWED, next), next).toBe(false);
    }), { numRuns: 300 });
  });

  it('refuses an over-long next', () => {
    expect(nextAllowed(ALLOWED, `https://spa.example.org/${'a'.repeat(2100)}`)).toBe(false);
  });

  it('withParams keeps the existing query and drops a fragment', () => {
    expect(withParams('https://spa.example.org/cb?tab=1#x', { login_code: 'c' })).toBe('https://spa.example.org/cb?tab=1&login_code=c');
  });
});

describe('SECURITY_OAUTH_* configuration', () => {
  const p = (x: Record<string, unknown>) => JSON.stringify([{ name: 'idp', issuer: 'https://idp.example.org', client_id: 'c', ...x }]);
  it.each([
    ['not JSON', { SECURITY_OAUTH_PROVIDERS: '{nope' }, /SECURITY_OAUTH_PROVIDERS: must be a JSON array/],
    ['an unknown field', { SECURITY_OAUTH_PROVIDERS: p({ secret: 'x' }) }, /SECURITY_OAUTH_PROVIDERS/],
    ['an http issuer', { SECURITY_OAUTH_PROVIDERS: p({ issuer: 'http://idp.example.org' }) }, /must be https/],
    ['scopes without openid', { SECURITY_OAUTH_PROVIDERS: p({ scopes: ['email'] }) }, /must include openid/],
    ['a bad provider name', { SECURITY_OAUTH_PROVIDERS: p({ name: 'Bad Name' }) }, /SECURITY_OAUTH_PROVIDERS/],
    ['a duplicate name', { SECURITY_OAUTH_PROVIDERS: JSON.stringify([
      { name: 'a', issuer: 'https://x.example', client_id: 'c' }, { name: 'a', issuer: 'https://y.example', client_id: 'c' }]) }, /appears twice/],
    ['a javascript: redirect', { SECURITY_OAUTH_ALLOWED_REDIRECTS: 'javascript:' }, /not allowed/],
    ['a relative redirect', { SECURITY_OAUTH_ALLOWED_REDIRECTS: '/spa' }, /not an absolute URL/],
    ['a bad callback base', { SECURITY_OAUTH_CALLBACK_BASE_URL: 'ftp://x' }, /SECURITY_OAUTH_CALLBACK_BASE_URL/],
  ])('refuses %s with a message naming the key', (_n, env, message) => {
    expect(() => testConfig(env as Record<string, string>)).toThrow(ConfigError);
    expect(() => testConfig(env as Record<string, string>)).toThrow(message);
  });

  it('refuses http issuers in production even with the flag', () => {
    expect(() => testConfig({
      NODE_ENV: 'production', SECRET_KEY: 'x'.repeat(40), SECURITY_PASSWORD_SALT: 'y'.repeat(40), SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: 'true',
    })).toThrow(/SECURITY_OAUTH_ALLOW_HTTP_ISSUERS/);
  });

  it('parses providers with defaults', () => {
    const c = testConfig({ SECURITY_OAUTH_PROVIDERS: p({}) });
    expect(c.SECURITY_OAUTH_PROVIDERS).toEqual([{
      name: 'idp', issuer: 'https://idp.example.org', clientId: 'c', clientSecret: null, scopes: ['openid', 'email', 'profile'], displayName: 'idp', trustedMfa: false,
    }]);
  });
});

describe('account resolution and provider outages', () => {
  let db: TestDatabase;
  let t: TestApp;
  let port: number;
  beforeAll(async () => {
    db = await createTestDatabase();
    port = await freePort(); // nothing listens there: an unreachable provider
    t = await buildTestApp(db, {
      SECURITY_OAUTH_PROVIDERS: JSON.stringify([{ name: 'down', issuer: `http://127.0.0.1:${port}`, client_id: 'c' }]),
      SECURITY_OAUTH_ALLOWED_REDIRECTS: 'https://spa.example.org',
      SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: 'true',
    });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });
  const provider = () => t.config.SECURITY_OAUTH_PROVIDERS[0]!;
  const source = { actorId: null, ip: null, userAgent: null, requestId: null };

  it('an unreachable provider at the start: straight back to next with error=provider_unavailable', async () => {
    const r = await startOidc(t.ctx, { provider: 'down', next: 'https://spa.example.org/cb', mode: 'login' });
    expect(r.location).toBe('https://spa.example.org/cb?error=provider_unavailable');
    expect(r.binding).toBeUndefined();
    const res = await t.app.inject({ method: 'GET', url: `/login/oauthstart/down?next=${encodeURIComponent('https://spa.example.org/cb')}` });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('https://spa.example.org/cb?error=provider_unavailable');
  });

  it('a start sweeps rows more than an hour past their expiry (and keeps younger ones)', async () => {
    const user = await makeUser(t.ctx);
    const at = (minutesAgo: number) => new Date(t.clock.now().getTime() - minutesAgo * 60_000);
    for (const [key, ago] of [['old', 120], ['young', 30]] as const) {
      await t.db.db.insert(oauthStates).values({ stateHash: `sweep-${key}`, provider: 'down', mode: 'login', nonce: 'n', codeVerifier: 'v',
        next: 'https://spa.example.org/', bindingHash: 'b', createdAt: at(ago + 10), expiresAt: at(ago) });
      await t.db.db.insert(oauthLoginCodes).values({ codeHash: `sweep-${key}`, userId: user.id, provider: 'down', fsUniquifier: user.fsUniquifier,
        createdAt: at(ago + 1), expiresAt: at(ago) });
    }
    await startOidc(t.ctx, { provider: 'down', next: 'https://spa.example.org/cb', mode: 'login' });
    const states = await t.db.sql`select state_hash from oauth_states where state_hash like 'sweep-%'`;
    const codes = await t.db.sql`select code_hash from oauth_login_codes where code_hash like 'sweep-%'`;
    expect(states.map((r) => r.state_hash)).toEqual(['sweep-young']);
    expect(codes.map((r) => r.code_hash)).toEqual(['sweep-young']);
  });

  it('registration disabled: no account is created (error=registration_disabled)', async () => {
    const config = testConfig({ DATABASE_URL: db.url, SECURITY_REGISTERABLE: 'false',
      SECURITY_OAUTH_PROVIDERS: JSON.stringify([{ name: 'down', issuer: `http://127.0.0.1:${port}`, client_id: 'c' }]), SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: 'true' });
    const ctx = securityContext(config, { db: t.db, clock: t.clock });
    const r = await resolveAccount(ctx, provider(), { sub: 'new-sub', email: 'new-person@example.com', emailVerified: true }, source);
    expect(r).toEqual({ error: 'registration_disabled' });
    expect(await findUser(t.db.db, { email: 'new-person@example.com' })).toBeNull();
  });

  it('concurrent first sign-ins of one new person: one account, one identity, every call answers the same user', async () => {
    for (let round = 0; round < 5; round++) {
      const claims = { sub: `racer-${round}`, email: `racer-${round}@example.com`, emailVerified: true };
      const results = await Promise.all(Array.from({ length: 8 }, () => resolveAccount(t.ctx, provider(), claims, source)));
      const ids = new Set(results.map((r) => ('user' in r ? r.user.id : r.error)));
      expect(ids.size).toBe(1);
      expect([...ids][0]).toEqual(expect.any(Number));
      const rows = await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.subject, claims.sub));
      expect(rows).toHaveLength(1);
    }
  });

  it('concurrent verified-email links to one local account: one identity row', async () => {
    const local = await makeUser(t.ctx, { email: 'linker@example.com' });
    const results = await Promise.all(Array.from({ length: 8 }, () =>
      resolveAccount(t.ctx, provider(), { sub: 'linker-sub', email: 'linker@example.com', emailVerified: true }, source)));
    expect(results.every((r) => 'user' in r && r.user.id === local.id)).toBe(true);
    expect(await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, local.id))).toHaveLength(1);
  });
});

describe('logging', () => {
  it('the callback\'s code and state and the start\'s next never reach the request log in clear', async () => {
    const db = await createTestDatabase();
    const handle = connect(db.url, { max: 2 });
    const lines: string[] = [];
    const app = await buildApp(testConfig({
      DATABASE_URL: db.url, LOG_LEVEL: 'trace',
      SECURITY_OAUTH_PROVIDERS: JSON.stringify([{ name: 'idp', issuer: 'https://idp.example.org', client_id: 'c' }]),
    }), { db: handle, logger: { write: (l) => lines.push(l) } });
    try {
      await app.ready();
      const res = await app.inject({ url: '/login/oauthresponse/idp?code=SECRET-CODE-123&state=SECRET-STATE-456&iss=x' });
      expect(res.statusCode).toBe(400);
      await app.inject({ method: 'POST', url: '/login/oauth/exchange', payload: { login_code: 'SECRET-LOGIN-CODE-789' } });
      const all = lines.join('\n');
      expect(all).toContain('/login/oauthresponse/idp?code=[redacted]&state=[redacted]');
      for (const secret of ['SECRET-CODE-123', 'SECRET-STATE-456', 'SECRET-LOGIN-CODE-789']) expect(all).not.toContain(secret);
    } finally {
      await app.close();
      await handle.close();
      await db.drop();
    }
  });
});
