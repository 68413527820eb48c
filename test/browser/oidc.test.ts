// "Sign in with <provider>" in a real browser: Debian's Chromium (playwright-core) signs in through
// the test provider's real login and consent pages (oidc-provider on loopback) and comes back to a
// small SPA page, which takes the login_code out of its address bar and exchanges it.
//   API   http://localhost:<apiPort>   the app (CORS_ORIGINS = both pages' origins)
//   IdP   http://127.0.0.1:<idpPort>   oidc-provider
//   page  http://localhost:<pagePort>  a minimal landing page: next = <page>/oauth/done
//   SPA   http://localhost:<spaPort>   the example SPA (examples/spa): its "Sign in with …" button
// No skipping: without Chromium the suite fails (CI installs it, see .ci/run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { startSpaServer, type SpaServer } from '../../examples/spa/serve.js';
import { buildTestApp, createTestDatabase, type TestApp, type TestDatabase } from '../support/helper.js';
import { freePort, startIdp, type TestIdp } from '../support/idp.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT = 30_000;

/** The SPA's landing page: read login_code, scrub it from the address bar and history, exchange it. */
function donePage(api: string): string {
  return `<!doctype html><meta charset="utf-8"><title>done</title><pre id="out">working</pre>
<script>
(async () => {
  const out = document.getElementById('out');
  const params = new URLSearchParams(location.search);
  const code = params.get('login_code');
  history.replaceState(null, '', location.pathname);
  window.results = { referrer: document.referrer, hadCode: !!code, error: params.get('error') };
  if (!code) { out.textContent = 'error: ' + params.get('error'); return; }
  const res = await fetch(${JSON.stringify(`${api}/login/oauth/exchange`)}, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login_code: code }),
  });
  const body = await res.json();
  window.results.status = res.status;
  out.textContent = res.ok ? 'signed in as ' + body.user.email : 'failed: ' + body.code;
})();
</script>`;
}

describe('OIDC sign-in in Chromium', () => {
  let db: TestDatabase;
  let t: TestApp;
  let idp: TestIdp;
  let spa: Server;
  let browser: Browser;
  let api: string;
  let spaOrigin: string;
  let exampleSpa: SpaServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    const port = await freePort();
    // localhost resolves to 127.0.0.1; the API and the example SPA share the site "localhost" (cookies)
    api = `http://localhost:${port}`;
    spa = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(donePage(api));
    });
    await new Promise<void>((resolve) => spa.listen(0, '127.0.0.1', resolve));
    spaOrigin = `http://localhost:${(spa.address() as AddressInfo).port}`;
    exampleSpa = await startSpaServer({ port: 0, host: '127.0.0.1' });
    exampleSpa.setApi(api);
    idp = await startIdp({
      clients: [{ client_id: 'county-services', client_secret: 'browser-test-secret-0123456789', redirect_uris: [`${api}/login/oauthresponse/test`] }],
      accounts: { 'pat-sub': { email: 'pat@example.com', email_verified: true }, 'quinn-sub': { email: 'quinn@example.com', email_verified: true } },
    });
    t = await buildTestApp(db, {
      SECURITY_OAUTH_PROVIDERS: JSON.stringify([{ name: 'test', issuer: idp.issuer, client_id: 'county-services',
        client_secret: 'browser-test-secret-0123456789', display_name: 'Test IdP' }]),
      SECURITY_OAUTH_ALLOWED_REDIRECTS: `${spaOrigin}/oauth/,${exampleSpa.url}/`,
      SECURITY_OAUTH_CALLBACK_BASE_URL: api,
      SECURITY_OAUTH_ALLOW_HTTP_ISSUERS: 'true',
      CORS_ORIGINS: `${spaOrigin},${exampleSpa.url}`,
    });
    await t.app.listen({ port, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: TIMEOUT });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await idp?.close();
    await new Promise<void>((resolve) => (spa ? spa.close(() => resolve()) : resolve()));
    await exampleSpa?.close();
    await db?.drop();
  });

  it('signs in through the provider\'s login page; the code leaves the address bar; no token in any URL', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const visited: string[] = [];
    page.on('request', (r) => { if (r.isNavigationRequest()) visited.push(r.url()); });
    await page.goto(`${api}/login/oauthstart/test?next=${encodeURIComponent(`${spaOrigin}/oauth/done`)}`, { timeout: TIMEOUT });
    // the provider's own login form
    await page.fill('input[name="login"]', 'pat-sub', { timeout: TIMEOUT });
    await page.fill('input[name="password"]', 'anything');
    await page.click('button[type="submit"]');
    // the provider's consent form
    await page.click('button[type="submit"]', { timeout: TIMEOUT });
    await page.waitForFunction(() => (globalThis as unknown as { results?: { status?: number; error?: string } }).results?.status !== undefined
      || (globalThis as unknown as { results?: { error?: string | null } }).results?.error != null, undefined, { timeout: TIMEOUT });
    expect(await page.textContent('#out')).toBe('signed in as pat@example.com');
    const results = await page.evaluate(() => (globalThis as unknown as { results: Record<string, unknown> }).results);
    expect(results).toMatchObject({ hadCode: true, status: 200, referrer: '' });
    expect(page.url()).toBe(`${spaOrigin}/oauth/done`);
    expect(visited.some((u) => u.startsWith(`${idp.issuer}/interaction/`))).toBe(true);
    for (const u of visited) expect(u).not.toMatch(/access_token|refresh_token|id_token=/);
    // the binding cookie went back to the callback and was cleared there
    const cookies = await context.cookies(api);
    expect(cookies.filter((c) => c.name.startsWith('oidc_'))).toEqual([]);
    await context.close();
  }, TIMEOUT * 2);

  it('the example SPA: "Sign in with Test IdP" → the provider\'s pages → signed in, the identity listed, the code gone from the address bar', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${exampleSpa.url}/?api=${encodeURIComponent(api)}`, { timeout: TIMEOUT });
    await page.click('a.provider:has-text("Sign in with Test IdP")', { timeout: TIMEOUT });
    await page.fill('input[name="login"]', 'quinn-sub', { timeout: TIMEOUT });
    await page.fill('input[name="password"]', 'anything');
    await page.click('button[type="submit"]');
    await page.click('button[type="submit"]', { timeout: TIMEOUT });
    await page.waitForSelector('#signed-in:not([hidden])', { timeout: TIMEOUT });
    expect(await page.textContent('#user-email')).toBe('quinn@example.com');
    expect(await page.textContent('#identities')).toContain('Test IdP (quinn@example.com)');
    expect(page.url()).not.toContain('login_code');
    // the session is the cookie one: a reload brings the page back signed in
    await page.reload();
    await page.waitForSelector('#signed-in:not([hidden])', { timeout: TIMEOUT });
    await context.close();
  }, TIMEOUT * 2);
});
