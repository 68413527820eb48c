// The example SPA (examples/spa) in a real browser: Debian's Chromium driven by playwright-core.
// Three origins on loopback:
//   API   http://localhost:<apiPort>    the app, CORS_ORIGINS = the SPA origin
//   SPA   http://localhost:<spaPort>    examples/spa/serve.ts: another origin, the same site
//   evil  http://127.0.0.1:<evilPort>   another site (an IP is its own site), forging requests
// It proves: credentialed CORS for the SPA origin only; the session cookie is HttpOnly, SameSite=Lax,
// Path=/ and invisible to the page; the SPA logs in, renders the user and sessions (as text), and logs
// out; a same-site unsafe request without X-CSRF-Token is 403 CSRF_FAILED; a cross-site forged POST
// reaches the API without the cookie and leaves the session alive; an account with two-factor
// authentication signs in through the code step (POST /tf-validate sets the cookie).
// No skipping: without Chromium the suite fails (CI installs it, see .ci/run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { generate } from 'otplib';
import { startSpaServer, type SpaServer } from '../../examples/spa/serve.js';
import {
  buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, type TestApp, type TestDatabase,
} from '../support/helper.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const STEP_TIMEOUT = 10_000;
const TEST_TIMEOUT = 30_000;

interface ApiHit {
  method: string; url: string; origin: string | undefined; sessionCookie: boolean; status: number;
  /** the Access-Control-Allow-Origin the API answered, if any */
  acao: string | undefined;
}

/**
 * What the functions passed to page.evaluate() touch in the browser. They run there, not here; the
 * project compiles without the DOM lib, so they reach the page's globals through this type.
 */
interface InPage {
  document: {
    cookie: string;
    addEventListener(type: 'securitypolicyviolation', listener: (e: { violatedDirective: string; blockedURI: string }) => void): void;
  };
  __csp: string[];
  __pwned?: number;
  results?: { done?: boolean };
}

/** The page a forger would host on another site: a no-cors fetch, a preflighted fetch, then a form post. */
function evilPage(api: string): string {
  const target = JSON.stringify(`${api}/auth/logout-all`);
  return `<!doctype html><meta charset="utf-8"><title>free prizes</title>
<form id="f" method="post" action=${target} enctype="text/plain"><input type="hidden" name='{"a":"' value='"}'></form>
<script>
window.results = {};
(async () => {
  try {
    await fetch(${target}, { method: 'POST', mode: 'no-cors', credentials: 'include' });
    window.results.noCors = 'answered';
  } catch (e) { window.results.noCors = 'rejected'; }
  try {
    const r = await fetch(${target}, { method: 'POST', credentials: 'include',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'guessed' }, body: '{}' });
    window.results.cors = 'status ' + r.status;
  } catch (e) { window.results.cors = 'rejected'; }
  window.results.done = true;
  if (location.hash === '#submit') document.getElementById('f').submit();
})();
</script>`;
}

async function listenOn(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

describe('the example SPA in Chromium (cookie session, CORS, CSRF)', { timeout: TEST_TIMEOUT }, () => {
  let database: TestDatabase;
  let t: TestApp;
  let spa: SpaServer;
  let evil: Server;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let api: string;
  let spaPage: string;
  let evilOrigin: string;
  const hits: ApiHit[] = [];
  const pageErrors: string[] = [];
  const email = 'ada@example.com';
  // rendered by the SPA: it must come out as text, never as markup
  const hostileName = '<img src=x onerror="window.__pwned=1">Ada';

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}. Install it (apt-get install -y chromium; .ci/run does) ` +
        'or point CHROMIUM_PATH at one. The browser test never skips.');
    }
    database = await createTestDatabase();
    // The SPA's port must be known for CORS_ORIGINS, and the API's origin for the SPA's CSP.
    spa = await startSpaServer({ port: 0, host: '127.0.0.1' });
    expect(spa.url).toBe(`http://localhost:${spa.port}`);
    t = await buildTestApp(database, { CORS_ORIGINS: spa.url });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    // localhost resolves to 127.0.0.1 here; both origins use the name so they share a site.
    api = `http://localhost:${(t.app.server.address() as AddressInfo).port}`;
    spa.setApi(api);
    spaPage = `${spa.url}/?api=${encodeURIComponent(api)}`;
    t.app.server.on('request', (req, res) => {
      res.on('finish', () => hits.push({
        method: req.method ?? '', url: req.url ?? '', origin: req.headers.origin,
        sessionCookie: /(^|;\s*)session=/.test(req.headers.cookie ?? ''), status: res.statusCode,
        acao: res.getHeader('access-control-allow-origin')?.toString(),
      }));
    });

    evil = createServer((req, res) => {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.end(evilPage(api));
    });
    evilOrigin = `http://127.0.0.1:${await listenOn(evil, '127.0.0.1')}`;

    await makeUser(t.ctx, { email, firstName: hostileName, lastName: 'Lovelace' });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: TEST_TIMEOUT });
    context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    // CSP violations on the SPA would mean the page needs something its policy forbids.
    await context.addInitScript(() => {
      const w = globalThis as unknown as InPage;
      w.__csp = [];
      w.document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await spa?.close();
    if (evil?.listening) await new Promise((resolve) => evil.close(resolve));
    await t?.close();
    await database?.drop();
  }, TEST_TIMEOUT);

  const state = (value: string) => page.waitForSelector(`body[data-state="${value}"]`);
  const sessionCookies = async () => (await context.cookies(api)).filter((c) => c.name === t.config.SESSION_COOKIE_NAME);
  /** fetch() from inside the SPA page (its origin, its CSP, the browser's cookies) */
  const fromSpa = (path: string, init: { method?: string; csrf?: string } = {}) => page.evaluate(async ({ url, method, csrf }) => {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = csrf;
    const res = await fetch(url, { method, headers, credentials: 'include', body: method === 'GET' ? undefined : '{}' });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) as Record<string, unknown> : null };
  }, { url: `${api}${path}`, method: init.method ?? 'GET', csrf: init.csrf });

  it('serves the SPA with a strict CSP, and the API allows credentialed CORS for the SPA origin only', async () => {
    const res = await fetch(`${spa.url}/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain(`connect-src 'self' ${api}`);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    // only the page's own files: not its server, nothing above the directory
    expect((await fetch(`${spa.url}/serve.ts`)).status).toBe(404);
    expect((await fetch(`${spa.url}/%2e%2e/package.json`)).status).toBe(404);

    const preflight = (origin: string) => fetch(`${api}/login`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-csrf-token' },
    });
    const allowed = await preflight(spa.url);
    expect(allowed.status).toBeLessThan(300);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(spa.url);
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true');
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-csrf-token');
    for (const origin of [evilOrigin, `http://localhost:${spa.port + 1}`, 'null']) {
      const denied = await preflight(origin);
      // (@fastify/cors still says Allow-Credentials: true; without a matching ACAO browsers ignore it)
      expect(denied.headers.get('access-control-allow-origin'), origin).toBeNull();
    }
  });

  it('shows the API error envelope, then logs in through the form and renders the user and sessions as text', async () => {
    await page.goto(spaPage);
    await state('signed-out');
    expect(await page.textContent('#api-origin')).toBe(api);
    expect(await page.isHidden('#warning')).toBe(true);

    await page.fill('#email', email);
    await page.fill('#password', 'Wrong-Password-123');
    await page.click('#login-button');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toMatch(/\(INVALID_CREDENTIALS\)$/);
    expect(await sessionCookies()).toEqual([]);

    await page.fill('#password', GOOD_PASSWORD);
    const [loginResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/login` && r.request().method() === 'POST'),
      page.click('#login-button'),
    ]);
    expect(loginResponse.status()).toBe(200);
    const headers = await loginResponse.allHeaders();
    expect(headers['access-control-allow-origin']).toBe(spa.url);
    expect(headers['access-control-allow-credentials']).toBe('true');
    await state('signed-in');
    expect(await page.isHidden('#error')).toBe(true);

    expect(await page.textContent('#user-email')).toBe(email);
    expect(await page.textContent('#user-name')).toBe(`${hostileName} Lovelace`);
    expect(await page.textContent('#user-roles')).toBe('Citizen');
    expect(await page.locator('#signed-in img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as InPage).__pwned)).toBeUndefined();

    const rows = page.locator('#sessions tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().getAttribute('class')).toBe('current');
    expect(await rows.first().textContent()).toContain('this browser');
    expect(await rows.first().textContent()).toContain('127.0.0.1');
  });

  it('the session cookie is HttpOnly, SameSite=Lax, Path=/, host-only on localhost, and the page cannot read it', async () => {
    const [cookie, ...others] = await sessionCookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ domain: 'localhost', path: '/', httpOnly: true, sameSite: 'Lax', secure: false });
    // cookies ignore ports: an HttpOnly-less cookie would be readable by the SPA on localhost:<spaPort>
    expect(await page.evaluate(() => (globalThis as unknown as InPage).document.cookie)).not.toContain(`${t.config.SESSION_COOKIE_NAME}=`);
    expect(await page.evaluate(() => (globalThis as unknown as InPage).document.cookie)).toBe('');
  });

  it('after a reload the page recovers its CSRF token (GET /auth/csrf) and stays signed in', async () => {
    const [csrfResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/auth/csrf`),
      page.reload(),
    ]);
    expect(csrfResponse.status()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
    const list = await fromSpa('/auth/sessions');
    expect(list.status).toBe(200);
    expect(list.body!.sessions).toHaveLength(1);
  });

  it('a same-site unsafe request with the cookie but without X-CSRF-Token is 403 CSRF_FAILED', async () => {
    for (const [method, path] of [['POST', '/auth/logout-all'], ['PATCH', '/auth/current-user']] as const) {
      const res = await fromSpa(path, { method });
      expect(res.status, path).toBe(403);
      expect(res.body).toMatchObject({ statusCode: 403, code: 'CSRF_FAILED' });
    }
    const hit = hits.findLast((h) => h.method === 'POST' && h.url === '/auth/logout-all');
    // the cookie did travel (same site): the CSRF header is what stopped it
    expect(hit).toMatchObject({ origin: spa.url, sessionCookie: true, status: 403 });
    expect((await fromSpa('/auth/current-user')).status).toBe(200);
  });

  it('a forged POST from another site (fetch and an auto-submitted form) reaches the API without the cookie and the session survives', async () => {
    const before = hits.length;
    const attacker = await context.newPage();
    attacker.on('pageerror', (err) => pageErrors.push(`evil: ${err.message}`));
    try {
      const [formResponse] = await Promise.all([
        attacker.waitForResponse((r) => r.url() === `${api}/auth/logout-all` && r.request().isNavigationRequest()),
        attacker.goto(`${evilOrigin}/#submit`),
      ]);
      // the form's top-level cross-site POST: SameSite=Lax keeps the cookie home
      expect(formResponse.status()).toBe(401);
      await attacker.waitForLoadState();
    } finally {
      await attacker.close();
    }

    const forged = hits.slice(before).filter((h) => h.origin === evilOrigin);
    const posts = forged.filter((h) => h.method === 'POST');
    // the no-cors fetch and the form arrived; the preflighted fetch was refused before its POST
    expect(posts).toHaveLength(2);
    for (const h of posts) expect(h).toMatchObject({ url: '/auth/logout-all', sessionCookie: false, status: 401 });
    expect(forged.filter((h) => h.method === 'OPTIONS')).toHaveLength(1);
    expect(forged.every((h) => !h.sessionCookie)).toBe(true);

    const me = await fromSpa('/auth/current-user');
    expect(me.status).toBe(200);
    expect((me.body!.user as { email: string }).email).toBe(email);
  });

  it('the forger reads nothing: its preflight gets no ACAO, and CORP same-site hides the no-cors answer', async () => {
    const before = hits.length;
    const attacker = await context.newPage();
    const failures: string[] = [];
    attacker.on('requestfailed', (r) => { if (r.url().startsWith(api)) failures.push(`${r.method()} ${r.failure()?.errorText}`); });
    try {
      await attacker.goto(`${evilOrigin}/`);
      const results = await attacker.waitForFunction(() => {
        const r = (globalThis as unknown as InPage).results;
        return r?.done ? r : null;
      });
      expect(await results.jsonValue()).toEqual({ noCors: 'rejected', cors: 'rejected', done: true });
    } finally {
      await attacker.close();
    }
    const forged = hits.slice(before).filter((h) => h.origin === evilOrigin);
    // the no-cors POST went out (without the cookie) and its 401 was withheld from the page
    expect(forged.filter((h) => h.method === 'POST')).toEqual([
      expect.objectContaining({ url: '/auth/logout-all', sessionCookie: false, status: 401 }),
    ]);
    expect(failures.some((f) => f.startsWith('POST') && f.includes('ERR_BLOCKED_BY_RESPONSE')), failures.join('; ')).toBe(true);
    // the JSON POST with a guessed CSRF header needed a preflight, which named no origin: never sent
    const preflights = forged.filter((h) => h.method === 'OPTIONS');
    expect(preflights).toHaveLength(1);
    expect(preflights[0]!.acao).toBeUndefined();
    expect((await fromSpa('/auth/current-user')).status).toBe(200);
  });

  it('logs out through the button: the session ends on the server and the cookie is gone', async () => {
    const [cookie] = await sessionCookies();
    expect(cookie).toBeDefined();
    const [logoutResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/logout`),
      page.click('#logout-button'),
    ]);
    expect(logoutResponse.status()).toBe(204);
    expect(logoutResponse.request().headers()['x-csrf-token']).toMatch(/.{16,}/);
    await state('signed-out');
    expect(await page.textContent('#status')).toBe('Signed out.');
    expect(await sessionCookies()).toEqual([]);

    // the old cookie, replayed outside the browser, names a dead session
    const replay = await fetch(`${api}/auth/current-user`, { headers: { cookie: `${cookie!.name}=${cookie!.value}` } });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { code: string }).code).toBe('TOKEN_INVALID');
    const after = await fromSpa('/auth/current-user');
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ code: 'AUTH_REQUIRED' });
  });

  it('an account with two-factor authentication signs in through the code step; a wrong code shows the error', async () => {
    const tfEmail = 'grace@example.com';
    const user = await makeUser(t.ctx, { email: tfEmail });
    const access = (await t.app.inject({ method: 'POST', url: '/login', payload: { email: tfEmail, password: GOOD_PASSWORD } })).json().access_token;
    const auth = { authorization: `Bearer ${access}` };
    const setup = (await t.app.inject({ method: 'POST', url: '/tf-setup', headers: auth, payload: { method: 'authenticator' } })).json();
    const now = Math.floor(Date.now() / 1000);
    const on = await t.app.inject({
      method: 'POST', url: `/tf-setup/${setup.tf_setup_token}`, headers: auth, payload: { code: await generate({ secret: setup.secret, epoch: now }) },
    });
    expect(on.statusCode, on.body).toBe(200);
    expect(user.id).toBeGreaterThan(0);

    await page.goto(spaPage);
    await state('signed-out');
    await page.fill('#email', tfEmail);
    await page.fill('#password', GOOD_PASSWORD);
    const [first] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/login` && r.request().method() === 'POST'),
      page.click('#login-button'),
    ]);
    expect(await first.json()).toMatchObject({ tf_required: true });
    await page.waitForSelector('#tf-form:not([hidden])');
    expect(await page.isHidden('#login-form')).toBe(true);
    expect(await sessionCookies()).toEqual([]);

    const right = await generate({ secret: setup.secret, epoch: now + 30 }); // the setup used this step's code
    await page.fill('#tf-code', right === '000000' ? '111111' : '000000');
    await page.click('#tf-button');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toMatch(/\(TWO_FACTOR_INVALID\)$/);
    expect(await sessionCookies()).toEqual([]);

    await page.fill('#tf-code', right);
    const [second] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${api}/tf-validate`),
      page.click('#tf-button'),
    ]);
    expect(second.status()).toBe(200);
    expect((await second.allHeaders())['access-control-allow-origin']).toBe(spa.url);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(tfEmail);
    const [cookie] = await sessionCookies();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });

    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    await state('signed-out');
    expect(await page.isVisible('#login-form')).toBe(true);
  });

  it('the SPA ran without script errors or CSP violations', async () => {
    expect(pageErrors).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as InPage).__csp)).toEqual([]);
  });
});
