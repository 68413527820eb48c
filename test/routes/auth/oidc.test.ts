// OpenID Connect sign-in against a real provider (test/support/idp.ts: oidc-provider on loopback),
// over real HTTP: the app listens, the "browser" follows every redirect with a cookie jar and posts
// the provider's login and consent forms, then the SPA's part (POST /login/oauth/exchange) runs.
// Each attack of issue 19 is refused by a test of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generate } from 'otplib';
import { and, desc, eq } from 'drizzle-orm';
import { buildTestApp, createTestDatabase, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { cookieHeader, freePort, startIdp, type CookieJar, type TestIdp } from '../../support/idp.js';
import { auditEvents, oauthIdentities, oauthStates, users } from '../../../src/db/schema/index.js';
import { deactivateUser, findUser } from '../../../src/security/datastore.js';

const NEXT = 'https://app.example.test/oauth/done';
const SPA = 'https://app.example.test/';
const CLIENT = { client_id: 'county-services', client_secret: 'test-client-secret-0123456789' };

let db: TestDatabase;
let t: TestApp;
let idp: TestIdp;
let api: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  idp = await startIdp({
    clients: [{ ...CLIENT, redirect_uris: [`${api}/login/oauthresponse/test`, `${api}/login/oauthresponse/trusted`] }],
    accounts: {
      'carol-sub': { email: 'carol@example.com', email_verified: true },
      'dave-sub': { email: 'dave@example.com', email_verified: true },
      'erin-sub': { email: 'erin@example.com', email_verified: false },
      'fay-sub': { email: 'fay@example.com', email_verified: true },
      'gus-sub': { email: 'gus-unverified@example.com', email_verified: false },
      'hal-sub': { email: 'hal@example.com', email_verified: true },
      'ida-sub': { email: 'ida@example.com', email_verified: true },
      'jo-sub': { email: 'jo@example.com', email_verified: true },
      'kim-sub': { email: 'kim-at-idp@example.com', email_verified: true },
      'lee-sub': { email: 'lee@example.com', email_verified: true },
      'max-sub': { email: 'max@example.com', email_verified: true },
      'nia-sub': { email: 'nia@example.com', email_verified: true },
      'noemail-sub': {},
    },
  });
  const provider = (name: string, extra: Record<string, unknown> = {}) => ({
    name, issuer: idp.issuer, ...CLIENT, display_name: `Test ${name}`, ...extra,
  });
  t = await buildTestApp(db, {
    SECURITY_OAUTH_PROVIDERS: JSON.stringify([provider('test'), provider('trusted', { trusted_mfa: true })]),
    SECURITY_OAUTH_ALLOWED_REDIRECTS: 'https://app.example.test/oauth/,countyapp:',
    SECURITY_OAUTH_CALLBACK_BASE_URL: api,
    SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: 'true',
    SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'County Admin',
  });
  await t.app.listen({ port, host: '127.0.0.1' });
}, 60_000);

afterAll(async () => {
  await t?.close();
  await idp?.close();
  await db?.drop();
});

const startUrl = (provider = 'test', next = NEXT) => `${api}/login/oauthstart/${provider}?next=${encodeURIComponent(next)}`;

/** One browser's cookies across the toCallback → deliver steps (the binding cookie lives here). */
let browser: CookieJar = new Map();

/** A fresh browser up to the provider's redirect back to the app (not yet delivered). */
const toCallback = (login: string, provider = 'test') => {
  browser = new Map();
  return idp.signIn(startUrl(provider), { login, stopAt: `${api}/login/oauthresponse/`, jar: browser });
};

/** The provider's redirect back, opened in `jar` (default: the browser that started the flow). */
async function deliver(callback: string, jar: CookieJar = browser): Promise<{ status: number; location: string | null; headers: Headers; body: string }> {
  const cookie = cookieHeader(jar, callback);
  const res = await fetch(callback, { redirect: 'manual', headers: cookie ? { cookie } : {} });
  return { status: res.status, location: res.headers.get('location'), headers: res.headers, body: await res.text() };
}

/** The whole browser flow: start → provider login → callback → next. Returns next's URL. */
async function signIn(login: string, provider = 'test', next = NEXT): Promise<URL> {
  return new URL(await idp.signIn(startUrl(provider, next), { login, stopAt: next.startsWith('countyapp:') ? 'countyapp:' : SPA }));
}

/** A browser holding the cookies a response set (a start made with fetch, e.g. with a bearer header). */
function jarAfter(res: Response, url: string): CookieJar {
  const cookies = new Map<string, string>();
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const i = pair!.indexOf('=');
    cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
  }
  return new Map([[new URL(url).host, cookies]]);
}

async function exchange(loginCode: string) {
  const res = await fetch(`${api}/login/oauth/exchange`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login_code: loginCode }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> & { user?: { id: number; email: string; roles: string[] } } };
}

const auditActions = async (userId: number) =>
  (await t.db.sql<{ action: string; details: Record<string, unknown> }[]>`select action, details from audit_events where target_user_id = ${userId} order by id`);

describe('the sign-in flow against the provider', () => {
  it('creates a confirmed Citizen without a usable password, then logs in with the login_code (no token in any URL)', async () => {
    const cb = await toCallback('carol-sub');
    const back = await deliver(cb);
    expect(back.status).toBe(302);
    expect(back.headers.get('referrer-policy')).toBe('no-referrer');
    const next = new URL(back.location!);
    expect(`${next.origin}${next.pathname}`).toBe(NEXT);
    expect([...next.searchParams.keys()]).toEqual(['login_code']);
    expect(back.location).not.toMatch(/access_token|refresh_token|id_token/);

    const r = await exchange(next.searchParams.get('login_code')!);
    expect(r.status).toBe(200);
    expect(r.body.access_token).toEqual(expect.any(String));
    expect(r.body.user!.email).toBe('carol@example.com');
    expect(r.body.user!.roles).toEqual(['Citizen']);

    const user = (await findUser(t.db.db, { email: 'carol@example.com' }))!;
    expect(user.confirmedAt).not.toBeNull();
    expect(user.loginCount).toBe(1);
    expect(user.password.startsWith('!oidc$')).toBe(true);
    const pw = await t.app.inject({ method: 'POST', url: '/login', payload: { email: 'carol@example.com', password: user.password } });
    expect(pw.statusCode).toBe(401);
    const actions = await auditActions(user.id);
    // then the refused password attempt above
    expect(actions.map((a) => a.action)).toEqual(['user.registered', 'login.succeeded', 'login.failed']);
    expect(actions[1]!.details.method).toBe('oidc');
  });

  it('finds the account by (provider, subject) even after the address changes at the provider', async () => {
    const first = await exchange((await signIn('kim-sub')).searchParams.get('login_code')!);
    idp.accounts['kim-sub']!.email = 'kim-renamed@example.com';
    const second = await exchange((await signIn('kim-sub')).searchParams.get('login_code')!);
    expect(second.status).toBe(200);
    expect(second.body.user!.id).toBe(first.body.user!.id);
    expect(second.body.user!.email).toBe('kim-at-idp@example.com');
  });

  it('links to an existing confirmed account when the provider asserts email_verified', async () => {
    const local = await makeUser(t.ctx, { email: 'dave@example.com' });
    const r = await exchange((await signIn('dave-sub')).searchParams.get('login_code')!);
    expect(r.status).toBe(200);
    expect(r.body.user!.id).toBe(local.id);
    const ids = await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, local.id));
    expect(ids.map((i) => [i.provider, i.subject])).toEqual([['test', 'dave-sub']]);
    expect((await auditActions(local.id)).map((a) => a.action)).toContain('identity.linked');
  });

  it('a cancelled sign-in at the provider comes back as error=access_denied', async () => {
    const url = new URL(await idp.signIn(startUrl(), { login: 'carol-sub', stopAt: SPA, abort: true }));
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.has('login_code')).toBe(false);
  });

  it('the mobile flow: a custom-scheme next gets the login_code', async () => {
    const url = await signIn('carol-sub', 'test', 'countyapp://signin/done');
    expect(url.protocol).toBe('countyapp:');
    expect((await exchange(url.searchParams.get('login_code')!)).status).toBe(200);
  });

  it('scripts/oidc-curl.sh signs in with curl alone (the documented recipe)', async () => {
    const { stdout } = await promisify(execFile)('bash', ['scripts/oidc-curl.sh', 'test', 'carol-sub'], {
      env: { ...process.env, BASE_URL: api, NEXT, CS_STATE: join(mkdtempSync(join(tmpdir(), 'cs-oidc-')), 'state') }, timeout: 30_000,
    });
    const answer = JSON.parse(stdout);
    expect(answer.user.email).toBe('carol@example.com');
    expect(answer.access_token).toEqual(expect.any(String));
  });

  it('an account without an address at the provider: error=email_required, nothing created', async () => {
    const url = await signIn('noemail-sub');
    expect(url.searchParams.get('error')).toBe('email_required');
    expect(await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.subject, 'noemail-sub'))).toEqual([]);
  });
});

describe('account linking rules', () => {
  it('email_verified:false never links to the existing account (error=account_exists, no identity, no session)', async () => {
    const local = await makeUser(t.ctx, { email: 'erin@example.com' });
    const url = await signIn('erin-sub');
    expect(url.searchParams.get('error')).toBe('account_exists');
    expect(url.searchParams.has('login_code')).toBe(false);
    expect(await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, local.id))).toEqual([]);
    expect(Number((await t.db.sql`select count(*)::int as n from sessions where user_id = ${local.id}`)[0]!.n)).toBe(0);
  });

  it('a verified address does not link to an unconfirmed local account', async () => {
    const local = await makeUser(t.ctx, { email: 'fay@example.com', confirmedAt: null });
    const url = await signIn('fay-sub');
    expect(url.searchParams.get('error')).toBe('account_exists');
    expect(await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, local.id))).toEqual([]);
  });

  it('email_verified:false with no local account creates nothing (error=email_unverified)', async () => {
    const url = await signIn('gus-sub');
    expect(url.searchParams.get('error')).toBe('email_unverified');
    expect(await findUser(t.db.db, { email: 'gus-unverified@example.com' })).toBeNull();
  });
});

describe('state, PKCE and nonce', () => {
  it('a wrong state is 400 LINK_INVALID and consumes nothing', async () => {
    const cb = new URL(await toCallback('carol-sub'));
    const forged = new URL(cb);
    forged.searchParams.set('state', 'not-the-state');
    const r = await deliver(forged.toString());
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).code).toBe('LINK_INVALID');
    // the real state still works once
    expect(new URL((await deliver(cb.toString())).location!).searchParams.has('login_code')).toBe(true);
  });

  it('a callback opened in another browser (login CSRF) is refused: error=browser_mismatch, and the state is spent', async () => {
    const cb = await toCallback('carol-sub');
    const elsewhere = await deliver(cb, new Map());
    expect(elsewhere.status).toBe(302);
    const url = new URL(elsewhere.location!);
    expect(url.searchParams.get('error')).toBe('browser_mismatch');
    expect(url.searchParams.has('login_code')).toBe(false);
    expect((await deliver(cb)).status).toBe(400);
  });

  it('the binding cookie is HttpOnly, Lax and scoped to the callback path', async () => {
    const res = await fetch(startUrl(), { redirect: 'manual' });
    const set = res.headers.getSetCookie().find((c) => c.startsWith('oidc_'))!;
    expect(set).toMatch(/HttpOnly/i);
    expect(set).toMatch(/SameSite=Lax/i);
    expect(set).toMatch(/Path=\/login\/oauthresponse\/test/);
  });

  it('a replayed state works once, also when the replays race', async () => {
    const cb = await toCallback('carol-sub');
    const answers = await Promise.all(Array.from({ length: 12 }, () => deliver(cb)));
    const ok = answers.filter((a) => a.status === 302 && new URL(a.location!).searchParams.has('login_code'));
    expect(ok).toHaveLength(1);
    expect(answers.filter((a) => a.status === 400)).toHaveLength(11);
    expect((await deliver(cb)).status).toBe(400);
  });

  it('the state of one provider is refused at another provider\'s callback', async () => {
    const cb = new URL(await toCallback('carol-sub', 'test'));
    const r = await deliver(`${api}/login/oauthresponse/trusted${cb.search}`);
    expect(r.status).toBe(400);
  });

  it('a tampered PKCE verifier: the provider refuses the code (error=provider_error)', async () => {
    const cb = await toCallback('carol-sub');
    const state = new URL(cb).searchParams.get('state')!;
    await t.db.db.update(oauthStates).set({ codeVerifier: 'A'.repeat(64) })
      .where(eq(oauthStates.stateHash, (await import('../../../src/security/tokens.js')).sha256(state)));
    const r = await deliver(cb);
    expect(new URL(r.location!).searchParams.get('error')).toBe('provider_error');
  });

  it('the provider itself requires PKCE: an authorization request without code_challenge is refused', async () => {
    const u = new URL(`${idp.issuer}/auth`);
    u.search = new URLSearchParams({
      client_id: CLIENT.client_id, response_type: 'code', scope: 'openid email', redirect_uri: `${api}/login/oauthresponse/test`, state: 'x', nonce: 'y',
    }).toString();
    const res = await fetch(u, { redirect: 'manual' });
    const back = new URL(res.headers.get('location')!);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('a start redirects with S256 PKCE, state and nonce, and stores the state only hashed', async () => {
    const res = await fetch(startUrl(), { redirect: 'manual' });
    const auth = new URL(res.headers.get('location')!);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const state = auth.searchParams.get('state')!;
    expect(auth.searchParams.get('nonce')).toEqual(expect.any(String));
    const rows = await t.db.sql`select state_hash from oauth_states where state_hash = ${state}`;
    expect(rows).toHaveLength(0);
  });

  it('a nonce mismatch is refused (error=id_token_invalid)', async () => {
    const cb = await toCallback('carol-sub');
    const state = new URL(cb).searchParams.get('state')!;
    const { sha256 } = await import('../../../src/security/tokens.js');
    await t.db.db.update(oauthStates).set({ nonce: 'another-nonce' }).where(eq(oauthStates.stateHash, sha256(state)));
    expect(new URL((await deliver(cb)).location!).searchParams.get('error')).toBe('id_token_invalid');
  });

  it('an expired state sends the browser back with error=state_expired', async () => {
    const cb = await toCallback('carol-sub');
    t.clock.advance(11 * 60);
    try {
      expect(new URL((await deliver(cb)).location!).searchParams.get('error')).toBe('state_expired');
    } finally {
      t.clock.advance(-11 * 60);
    }
  });
});

describe('ID token validation (forged token responses)', () => {
  const forgedSignIn = async (tamper: (idToken: string) => Promise<string>) => {
    idp.tamperIdToken = tamper;
    try {
      return new URL(await signIn('carol-sub'));
    } finally {
      idp.tamperIdToken = null;
    }
  };
  const now = () => Math.floor(Date.now() / 1000);

  it.each([
    ['another issuer', { claims: { iss: 'https://evil.example.com' } }],
    ['another audience', { claims: { aud: 'some-other-client' } }],
    ['an expired token', { claims: { iat: now() - 3600, exp: now() - 1800 } }],
    ['a token signed with a key the provider never published (its kid)', { key: 'foreign' as const }],
    ['a token with an unknown kid', { key: 'foreign' as const, kid: 'unknown-kid' }],
    ['another nonce', { claims: { nonce: 'forged-nonce' } }],
  ])('refuses %s (error=id_token_invalid, no login_code)', async (_name, forge) => {
    const url = await forgedSignIn((tok) => idp.forge(tok, forge));
    expect(url.searchParams.get('error')).toBe('id_token_invalid');
    expect(url.searchParams.has('login_code')).toBe(false);
  });

  it('accepts the provider\'s own token re-signed with its key (the forging itself is sound)', async () => {
    const url = await forgedSignIn((tok) => idp.forge(tok, {}));
    expect(url.searchParams.has('login_code')).toBe(true);
  });

  it('a provider that rotates its keys mid-test: sign-in still works, the code is redeemed once', async () => {
    expect((await signIn('carol-sub')).searchParams.has('login_code')).toBe(true);
    const kid = await idp.rotateKeys();
    let signedWith: string | undefined;
    idp.tamperIdToken = async (tok) => {
      signedWith = JSON.parse(Buffer.from(tok.split('.')[0]!, 'base64url').toString()).kid;
      return tok;
    };
    const before = idp.tokenRequests;
    try {
      const url = await signIn('carol-sub');
      expect(url.searchParams.has('login_code')).toBe(true);
      expect((await exchange(url.searchParams.get('login_code')!)).status).toBe(200);
    } finally {
      idp.tamperIdToken = null;
    }
    expect(signedWith).toBe(kid);
    expect(idp.tokenRequests - before).toBe(1);
  });
});

describe('the login_code', () => {
  it('works once; a replay is 400 LINK_INVALID, also when the replays race', async () => {
    const code = (await signIn('carol-sub')).searchParams.get('login_code')!;
    const answers = await Promise.all(Array.from({ length: 16 }, () => exchange(code)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 400 && a.body.code === 'LINK_INVALID')).toHaveLength(15);
    expect((await exchange(code)).status).toBe(400);
  });

  it('expires after 60 s', async () => {
    const code = (await signIn('carol-sub')).searchParams.get('login_code')!;
    t.clock.advance(61);
    try {
      expect((await exchange(code)).status).toBe(400);
    } finally {
      t.clock.advance(-61);
    }
  });

  it('is stored hashed', async () => {
    const code = (await signIn('carol-sub')).searchParams.get('login_code')!;
    expect(await t.db.sql`select 1 from oauth_login_codes where code_hash = ${code}`).toHaveLength(0);
  });

  it('a deactivated account cannot use it (403 ACCOUNT_DISABLED)', async () => {
    const first = await exchange((await signIn('hal-sub')).searchParams.get('login_code')!);
    const code = (await signIn('hal-sub')).searchParams.get('login_code')!;
    await deactivateUser(t.ctx, first.body.user!.id);
    const r = await exchange(code);
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('ACCOUNT_DISABLED');
  });

  it('logout-all between the callback and the exchange kills it', async () => {
    const first = await exchange((await signIn('max-sub')).searchParams.get('login_code')!);
    const code = (await signIn('max-sub')).searchParams.get('login_code')!;
    const res = await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization: `Bearer ${first.body.access_token}` } });
    expect(res.statusCode).toBe(204);
    expect((await exchange(code)).status).toBe(400);
  });
});

describe('forced two-factor authentication', () => {
  it('staff in a 2FA-required role still set up 2FA after the provider', async () => {
    await makeUser(t.ctx, { email: 'ida@example.com', roles: ['County Admin'] });
    const r = await exchange((await signIn('ida-sub', 'test')).searchParams.get('login_code')!);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tf_required: true, tf_setup_required: true });
    expect(r.body.access_token).toBeUndefined();
  });

  it('an account with 2FA on gets the code step after the provider, and POST /tf-validate completes it', async () => {
    const local = await makeUser(t.ctx, { email: 'nia@example.com' });
    const access = (await t.app.inject({ method: 'POST', url: '/login', payload: { email: local.email, password: 'Quiet-Harbor-93-Lantern' } })).json().access_token;
    const setup = (await t.app.inject({ method: 'POST', url: '/tf-setup', payload: { method: 'authenticator' }, headers: { authorization: `Bearer ${access}` } })).json();
    const epoch = () => Math.floor(t.clock.now().getTime() / 1000);
    const done = await t.app.inject({ method: 'POST', url: `/tf-setup/${setup.tf_setup_token}`,
      payload: { code: await generate({ secret: setup.secret, epoch: epoch() }) }, headers: { authorization: `Bearer ${access}` } });
    expect(done.statusCode, done.body).toBe(200);
    t.clock.advance(30);
    const r = await exchange((await signIn('nia-sub')).searchParams.get('login_code')!);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tf_required: true, tf_method: expect.any(String) });
    expect(r.body.access_token).toBeUndefined();
    const tf = await t.app.inject({ method: 'POST', url: '/tf-validate',
      payload: { tf_token: r.body.tf_token, code: await generate({ secret: setup.secret, epoch: epoch() }) } });
    expect(tf.statusCode, tf.body).toBe(200);
    expect(tf.json().user.email).toBe('nia@example.com');
    // the completed login is audited under its real first factor, the provider
    const [event] = await t.db.db.select().from(auditEvents)
      .where(and(eq(auditEvents.targetUserId, local.id), eq(auditEvents.action, 'login.succeeded'))).orderBy(desc(auditEvents.id)).limit(1);
    expect(event!.details).toMatchObject({ method: 'oidc', second_factor: 'totp' });
  });

  it('a provider marked trusted_mfa completes the login', async () => {
    await makeUser(t.ctx, { email: 'jo@example.com', roles: ['County Admin'] });
    const r = await exchange((await signIn('jo-sub', 'trusted')).searchParams.get('login_code')!);
    expect(r.status).toBe(200);
    expect(r.body.access_token).toEqual(expect.any(String));
  });
});

describe('next', () => {
  it.each([
    'https://evil.example.com/oauth/done',
    'https://app.example.test.evil.com/oauth/done',
    'https://app.example.test@evil.com/oauth/done',
    'https://app.example.test/oauthx',
    'http://app.example.test/oauth/done',
    'javascript:alert(1)',
    '/relative/path',
    'otherapp://signin',
  ])('refuses %s with 400 before going to the provider', async (next) => {
    const res = await fetch(startUrl('test', next), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
  });

  it('an unknown provider is 404', async () => {
    expect((await fetch(startUrl('nope'), { redirect: 'manual' })).status).toBe(404);
    expect((await fetch(`${api}/login/oauthresponse/nope?state=x`, { redirect: 'manual' })).status).toBe(404);
  });
});

describe('identities on the account page', () => {
  const authed = (token: string) => ({ authorization: `Bearer ${token}` });

  it('lists, links (link mode, fresh session) and unlinks; the last way in cannot be unlinked', async () => {
    const lee = await exchange((await signIn('lee-sub')).searchParams.get('login_code')!);
    const token = lee.body.access_token as string;
    const list = await t.app.inject({ method: 'GET', url: '/auth/identities', headers: authed(token) });
    expect(list.statusCode).toBe(200);
    expect(list.json().identities.map((i: { provider: string }) => i.provider)).toEqual(['test']);

    // OIDC-only account: unlinking its only identity is 409
    const last = await t.app.inject({ method: 'DELETE', url: '/auth/identities/test', headers: authed(token) });
    expect(last.statusCode).toBe(409);

    // link a second provider explicitly: the IdP account is the same person at "trusted"
    const start = await fetch(`${api}/auth/identities/link/trusted?next=${encodeURIComponent(NEXT)}`, { headers: authed(token), redirect: 'manual' });
    expect(start.status).toBe(302);
    const back = new URL(await idp.signIn(start.headers.get('location')!, { login: 'lee-sub', stopAt: SPA, jar: jarAfter(start, api) }));
    expect(back.searchParams.get('linked')).toBe('trusted');
    const after = await t.app.inject({ method: 'GET', url: '/auth/identities', headers: authed(token) });
    expect(after.json().identities.map((i: { provider: string }) => i.provider).sort()).toEqual(['test', 'trusted']);

    const unlink = await t.app.inject({ method: 'DELETE', url: '/auth/identities/test', headers: authed(token) });
    expect(unlink.statusCode).toBe(204);
    expect((await t.app.inject({ method: 'DELETE', url: '/auth/identities/trusted', headers: authed(token) })).statusCode).toBe(409);
    expect((await t.app.inject({ method: 'DELETE', url: '/auth/identities/test', headers: authed(token) })).statusCode).toBe(404);
  });

  it('an identity linked to someone else is not moved (error=identity_in_use)', async () => {
    await exchange((await signIn('carol-sub')).searchParams.get('login_code')!);
    const other = await makeUser(t.ctx, { email: 'other-linker@example.com' });
    const login = await t.app.inject({ method: 'POST', url: '/login', payload: { email: other.email, password: 'Quiet-Harbor-93-Lantern' } });
    const token = login.json().access_token;
    const start = await fetch(`${api}/auth/identities/link/test?next=${encodeURIComponent(NEXT)}`, { headers: authed(token), redirect: 'manual' });
    const back = new URL(await idp.signIn(start.headers.get('location')!, { login: 'carol-sub', stopAt: SPA, jar: jarAfter(start, api) }));
    expect(back.searchParams.get('error')).toBe('identity_in_use');
    expect(await t.db.db.select().from(oauthIdentities).where(eq(oauthIdentities.userId, other.id))).toEqual([]);
  });

  it('a user with a password may unlink the only identity', async () => {
    const local = await makeUser(t.ctx, { email: 'pw-owner@example.com' });
    await t.db.db.insert(oauthIdentities).values({ provider: 'test', subject: 'pw-owner-sub', userId: local.id, email: local.email, createdAt: new Date() });
    const login = await t.app.inject({ method: 'POST', url: '/login', payload: { email: local.email, password: 'Quiet-Harbor-93-Lantern' } });
    const res = await t.app.inject({ method: 'DELETE', url: '/auth/identities/test', headers: authed(login.json().access_token) });
    expect(res.statusCode).toBe(204);
  });

  it('two concurrent unlinks of the last two identities: one wins, one is 409', async () => {
    const local = await makeUser(t.ctx, { email: 'two-ids@example.com' });
    await t.db.db.update(users).set({ password: '!oidc$none' }).where(eq(users.id, local.id));
    for (const provider of ['test', 'trusted']) {
      await t.db.db.insert(oauthIdentities).values({ provider, subject: `two-${provider}`, userId: local.id, createdAt: new Date() });
    }
    const tok = await t.app.inject({ method: 'POST', url: '/login/oauth/exchange', payload: { login_code: 'nope' } });
    expect(tok.statusCode).toBe(400);
    // a session for the account straight from the pipeline (the account has no password)
    const { completeLogin } = await import('../../../src/security/login.js');
    const s = await completeLogin(t.ctx, { user: (await findUser(t.db.db, { id: local.id }))!, attempt: null, method: 'oidc', remember: false, client: { ip: null, userAgent: null } });
    const access = t.app.tokens.accessToken(s.user, s.session).token;
    const answers = await Promise.all(['test', 'trusted'].map((p) =>
      t.app.inject({ method: 'DELETE', url: `/auth/identities/${p}`, headers: authed(access) })));
    expect(answers.map((a) => a.statusCode).sort()).toEqual([204, 409]);
    const left = await t.db.sql`select count(*)::int as n from oauth_identities where user_id = ${local.id}`;
    expect(left[0]!.n).toBe(1);
  });

  it('personal access tokens cannot manage identities (403)', async () => {
    const local = await makeUser(t.ctx, { email: 'pat-owner@example.com' });
    const login = await t.app.inject({ method: 'POST', url: '/login', payload: { email: local.email, password: 'Quiet-Harbor-93-Lantern' } });
    const pat = await t.app.inject({ method: 'POST', url: '/auth/tokens', headers: authed(login.json().access_token), payload: { name: 'script' } });
    expect(pat.statusCode).toBe(201);
    const h = authed(pat.json().token);
    expect((await t.app.inject({ method: 'GET', url: '/auth/identities', headers: h })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'DELETE', url: '/auth/identities/test', headers: h })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: `/auth/identities/link/test?next=${encodeURIComponent(NEXT)}`, headers: h })).statusCode).toBe(403);
  });

  it('another site cannot start a link by navigation (Sec-Fetch-Site: cross-site → 403)', async () => {
    const local = await makeUser(t.ctx, { email: 'xsite@example.com' });
    const login = await t.app.inject({ method: 'POST', url: '/login', payload: { email: local.email, password: 'Quiet-Harbor-93-Lantern' } });
    const cookie = `session=${login.cookies.find((c) => c.name === 'session')!.value}`;
    const url = `/auth/identities/link/test?next=${encodeURIComponent(NEXT)}`;
    expect((await t.app.inject({ url, headers: { cookie, 'sec-fetch-site': 'cross-site' } })).statusCode).toBe(403);
    const same = await t.app.inject({ url, headers: { cookie, 'sec-fetch-site': 'same-site' } });
    expect(same.statusCode).toBe(302);
    expect(same.headers.location).toMatch(new RegExp(`^${idp.issuer}/auth\\?`));
  });

  it('identities routes need authentication (401)', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/auth/identities' })).statusCode).toBe(401);
  });
});
