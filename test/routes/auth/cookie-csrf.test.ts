// Cookie sessions over a real listening server and fetch: the Set-Cookie attributes, cookie-only
// authentication, the CSRF rule for unsafe methods, logout clearing the cookie, tampering and idle
// expiry (PERMANENT_SESSION_LIFETIME) against the injected clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, sidOf, type TestApp, type TestDatabase, listen,
} from '../../support/helper.js';

interface HttpLogin { cookie: string; setCookie: string; csrf: string; access: string; refresh: string; sid: string }

const attributes = (setCookie: string) => setCookie.split(';').slice(1).map((a) => a.trim().toLowerCase());

describe('cookie sessions and CSRF over real HTTP', () => {
  let database: TestDatabase;
  let t: TestApp;
  let secure: TestApp;
  let base: string;
  let secureBase: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    secure = await buildTestApp(database, { SESSION_COOKIE_SECURE: 'true' });
    base = await listen(t.app);
    secureBase = await listen(secure.app);
  });
  afterAll(async () => {
    await Promise.all([t.close(), secure.close()]);
    await database.drop();
  });

  const cookieName = () => t.config.SESSION_COOKIE_NAME;

  async function http(method: string, path: string, opts: {
    cookie?: string; csrf?: string; bearer?: string; body?: unknown; origin?: string;
  } = {}) {
    const headers: Record<string, string> = {};
    if (opts.cookie) headers.cookie = opts.cookie;
    if (opts.csrf !== undefined) headers['x-csrf-token'] = opts.csrf;
    if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${opts.origin ?? base}${path}`, {
      method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), redirect: 'manual',
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) as Record<string, unknown> : null;
    return { status: res.status, headers: res.headers, json, setCookies: res.headers.getSetCookie() };
  }

  async function httpLogin(email: string, extra: Record<string, unknown> = {}, origin = base): Promise<HttpLogin> {
    const res = await http('POST', '/login', { body: { email, password: GOOD_PASSWORD, ...extra }, origin });
    expect(res.status).toBe(200);
    const setCookie = res.setCookies.find((c) => c.startsWith(`${cookieName()}=`));
    expect(setCookie, 'login sets the session cookie').toBeDefined();
    const access = res.json!.access_token as string;
    const sid = sidOf(access);
    return {
      cookie: setCookie!.split(';')[0]!, setCookie: setCookie!, csrf: res.json!.csrf_token as string,
      access, refresh: res.json!.refresh_token as string, sid,
    };
  }

  async function freshLogin(extra: Record<string, unknown> = {}) {
    const user = await makeUser(t.ctx, { firstName: 'Original' });
    return { user, ...(await httpLogin(user.email, extra)) };
  }

  describe('the Set-Cookie header', () => {
    it('is HttpOnly, SameSite=Lax, Path=/, signed, and not Secure in the test profile', async () => {
      const s = await freshLogin();
      const attrs = attributes(s.setCookie);
      expect(attrs).toContain('httponly');
      expect(attrs).toContain('samesite=lax');
      expect(attrs).toContain('path=/');
      expect(attrs).not.toContain('secure');
      // a session cookie (no persistence) unless "remember" is asked for
      expect(attrs.some((a) => a.startsWith('max-age') || a.startsWith('expires'))).toBe(false);
      const value = decodeURIComponent(s.cookie.slice(cookieName().length + 1));
      expect(value.startsWith(`${s.sid}.`)).toBe(true);
      expect(value.length).toBeGreaterThan(s.sid.length + 20);
    });

    it('with remember:true it persists for the refresh lifetime', async () => {
      const s = await freshLogin({ remember: true });
      expect(attributes(s.setCookie)).toContain(`max-age=${t.config.SECURITY_REFRESH_TOKEN_MAX_AGE}`);
    });

    it('with SESSION_COOKIE_SECURE=true it is Secure', async () => {
      const user = await makeUser(secure.ctx);
      const s = await httpLogin(user.email, {}, secureBase);
      const attrs = attributes(s.setCookie);
      expect(attrs).toContain('secure');
      expect(attrs).toContain('httponly');
      expect(attrs).toContain('samesite=lax');
    });
  });

  describe('cookie-only authentication', () => {
    it('the cookie alone authenticates GET /dashboard and GET /auth/current-user', async () => {
      const s = await freshLogin();
      const me = await http('GET', '/auth/current-user', { cookie: s.cookie });
      expect(me.status).toBe(200);
      expect((me.json!.user as { email: string }).email).toBe(s.user.email);
      const dash = await http('GET', '/dashboard', { cookie: s.cookie });
      expect(dash.status).toBe(200);
      expect(dash.json!.message).toBe(`Welcome to your dashboard, ${s.user.email}!`);
      expect(dash.headers.get('cache-control')).toBe('no-store');
    });

    it('without the cookie → 401 AUTH_REQUIRED', async () => {
      const res = await http('GET', '/auth/current-user');
      expect(res.status).toBe(401);
      expect(res.json!.code).toBe('AUTH_REQUIRED');
    });

    it('safe methods need no CSRF header, and a wrong one does not matter', async () => {
      const s = await freshLogin();
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie, csrf: 'wrong' })).status).toBe(200);
    });

    it('GET /auth/csrf returns the session\'s csrf_token (the one login returned), and refresh returns it too', async () => {
      const s = await freshLogin();
      const res = await http('GET', '/auth/csrf', { cookie: s.cookie });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ csrf_token: s.csrf });
      const refreshed = await http('POST', '/refresh-token', { body: { refresh_token: s.refresh } });
      expect(refreshed.status).toBe(200);
      expect(refreshed.json!.csrf_token).toBe(s.csrf);
      // each session has its own token
      const other = await freshLogin();
      expect(other.csrf).not.toBe(s.csrf);
    });
  });

  describe('CSRF on unsafe cookie-authenticated requests', () => {
    it('PATCH /auth/current-user: no header → 403 CSRF_FAILED, wrong → 403, another session\'s → 403, right → 200', async () => {
      const s = await freshLogin();
      const other = await freshLogin();
      const patch = (csrf?: string) => http('PATCH', '/auth/current-user', { cookie: s.cookie, csrf, body: { first_name: 'Changed' } });

      for (const csrf of [undefined, '', 'wrong', other.csrf, `${s.csrf}x`, s.csrf.slice(0, -1)]) {
        const res = await patch(csrf);
        expect(res.status, String(csrf)).toBe(403);
        expect(res.json!.code).toBe('CSRF_FAILED');
      }
      const unchanged = await http('GET', '/auth/current-user', { cookie: s.cookie });
      expect((unchanged.json!.user as { first_name: string }).first_name).toBe('Original');

      const ok = await patch(s.csrf);
      expect(ok.status).toBe(200);
      expect((ok.json!.user as { first_name: string }).first_name).toBe('Changed');
    });

    it('POST /auth/logout-all: no header → 403 and nothing happens; wrong → 403; right → 204 and the cookie dies', async () => {
      const s = await freshLogin();
      const missing = await http('POST', '/auth/logout-all', { cookie: s.cookie });
      expect(missing.status).toBe(403);
      expect(missing.json!.code).toBe('CSRF_FAILED');
      const wrong = await http('POST', '/auth/logout-all', { cookie: s.cookie, csrf: 'nope' });
      expect(wrong.status).toBe(403);
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(200);
      expect((await http('GET', '/auth/current-user', { bearer: s.access })).status).toBe(200);

      const ok = await http('POST', '/auth/logout-all', { cookie: s.cookie, csrf: s.csrf });
      expect(ok.status).toBe(204);
      const dead = await http('GET', '/auth/current-user', { cookie: s.cookie });
      expect(dead.status).toBe(401);
      expect(dead.json!.code).toBe('TOKEN_INVALID');
      expect((await http('GET', '/auth/current-user', { bearer: s.access })).status).toBe(401);
    });

    it('DELETE /auth/sessions/{id} by cookie needs the header too', async () => {
      const s = await freshLogin();
      const denied = await http('DELETE', `/auth/sessions/${s.sid}`, { cookie: s.cookie });
      expect(denied.status).toBe(403);
      expect(denied.json!.code).toBe('CSRF_FAILED');
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(200);
      expect((await http('DELETE', `/auth/sessions/${s.sid}`, { cookie: s.cookie, csrf: s.csrf })).status).toBe(204);
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(401);
    });

    it('bearer-authenticated unsafe requests need no CSRF header (even with the cookie also present)', async () => {
      const s = await freshLogin();
      const patched = await http('PATCH', '/auth/current-user', { bearer: s.access, body: { last_name: 'ByBearer' } });
      expect(patched.status).toBe(200);
      expect((patched.json!.user as { last_name: string }).last_name).toBe('ByBearer');
      const both = await http('PATCH', '/auth/current-user', { bearer: s.access, cookie: s.cookie, body: { last_name: 'Both' } });
      expect(both.status).toBe(200);
      const out = await http('POST', '/auth/logout-all', { bearer: s.access });
      expect(out.status).toBe(204);
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(401);
    });
  });

  describe('cookie logout', () => {
    it('without CSRF → 403 and the session lives; with → 204, the cookie is cleared and dead', async () => {
      const s = await freshLogin();
      const denied = await http('POST', '/logout', { cookie: s.cookie });
      expect(denied.status).toBe(403);
      expect(denied.json!.code).toBe('CSRF_FAILED');
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(200);

      const res = await http('POST', '/logout', { cookie: s.cookie, csrf: s.csrf });
      expect(res.status).toBe(204);
      const cleared = res.setCookies.find((c) => c.startsWith(`${cookieName()}=`));
      expect(cleared).toBeDefined();
      expect(cleared!.split(';')[0]).toBe(`${cookieName()}=`);
      const expires = attributes(cleared!).find((a) => a.startsWith('expires='));
      expect(expires).toBeDefined();
      expect(new Date(expires!.slice('expires='.length)).getTime()).toBeLessThan(Date.now());
      expect(attributes(cleared!)).toContain('path=/');

      // a client that ignores the clearing still cannot use the old cookie, nor the session's bearer token
      const dead = await http('GET', '/auth/current-user', { cookie: s.cookie });
      expect(dead.status).toBe(401);
      expect(dead.json!.code).toBe('TOKEN_INVALID');
      expect((await http('GET', '/dashboard', { bearer: s.access })).status).toBe(401);
    });
  });

  describe('tampered and stale cookies', () => {
    it('a tampered cookie value → 401 TOKEN_INVALID', async () => {
      const s = await freshLogin();
      const other = await freshLogin();
      const value = decodeURIComponent(s.cookie.slice(cookieName().length + 1));
      const [sid, sig] = [value.slice(0, 36), value.slice(37)];
      const flip = (str: string, i: number) => str.slice(0, i) + (str[i] === 'a' ? 'b' : 'a') + str.slice(i + 1);
      const variants = [
        `${flip(sid, 0)}.${sig}`, // another session id, original signature
        `${sid}.${flip(sig, 3)}`, // original id, broken signature
        `${other.sid}.${sig}`, // someone else's session id with my signature
        sid, // unsigned session id
        'garbage',
      ];
      for (const v of variants) {
        const res = await http('GET', '/auth/current-user', { cookie: `${cookieName()}=${encodeURIComponent(v)}` });
        expect(res.status, v).toBe(401);
        expect(res.json!.code).toBe('TOKEN_INVALID');
      }
      expect((await http('GET', '/auth/current-user', { cookie: s.cookie })).status).toBe(200);
    });

    it('an idle cookie session (> PERMANENT_SESSION_LIFETIME) → 401; use slides the window', async () => {
      const s = await freshLogin();
      const lifetime = t.config.PERMANENT_SESSION_LIFETIME;
      const get = () => http('GET', '/auth/current-user', { cookie: s.cookie });
      // activity inside the window keeps it alive past one lifetime in total
      t.clock.advance(lifetime - 600);
      expect((await get()).status).toBe(200);
      t.clock.advance(lifetime - 600);
      expect((await get()).status).toBe(200);
      t.clock.advance(lifetime + 1);
      const res = await get();
      expect(res.status).toBe(401);
      expect(res.json!.code).toBe('TOKEN_INVALID');
    });
  });
});
