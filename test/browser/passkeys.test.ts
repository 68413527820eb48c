// Passkeys in a real browser: the example SPA (examples/spa) in Chromium with CDP virtual
// authenticators (WebAuthn.enable, WebAuthn.addVirtualAuthenticator: ctap2, internal transport,
// resident keys, user verification). @simplewebauthn/browser in the page, @simplewebauthn/server in
// the API, real ceremonies between them: register a passkey on the account page, sign out, sign in
// with it with no address typed — by the sign-in form's conditional UI (a get with mediation
// "conditional", autocomplete="username webauthn") and by the button — delete it and see its sign-in
// refused; then a second authenticator (a USB security key) registered as a second factor completes
// a password + 2FA login, also as the only second factor; two-factor by email with "Email me
// another code". And "Email me a code" through the real SMTP server.
//
// Conditional UI, what Chromium can and cannot show headless: PublicKeyCredential
// .isConditionalMediationAvailable() is true, and with a CDP virtual authenticator a conditional
// request is answered by the authenticator itself as soon as it holds a discoverable credential for
// the RP (and refused at once when it holds none). So the test proves the page starts a conditional
// request with no identity on the sign-in form, that its assertion signs in, that a refused one is
// shown, and that the button still works beside it; the autofill drop-down a person clicks is
// browser UI that the virtual environment skips.
// No skipping: without Chromium the suite fails (CI installs it, see .ci/run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { generate } from 'otplib';
import { webauthnCredentials } from '../../src/db/schema/index.js';
import { startSpaServer, type SpaServer } from '../../examples/spa/serve.js';
import { createTestDatabase, GOOD_PASSWORD, makeUser, type TestDatabase } from '../support/helper.js';
import { SmtpCapture } from '../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../support/mail.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const STEP_TIMEOUT = 10_000;
const TEST_TIMEOUT = 40_000;

describe('passkeys and email codes in the example SPA (Chromium, virtual authenticators)', { timeout: TEST_TIMEOUT }, () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  let spa: SpaServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let api: string;
  let spaPage: string;
  const pageErrors: string[] = [];
  const email = 'pat@example.com';

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}. Install it (apt-get install -y chromium) or point CHROMIUM_PATH at one.`);
    }
    database = await createTestDatabase();
    await smtp.start();
    spa = await startSpaServer({ port: 0, host: '127.0.0.1' });
    // the relying party is the site both share: localhost; only the SPA's origin may run ceremonies
    // the API's port is known only once it listens, so the link template names the SPA and the SPA's
    // own /config.json names the API
    t = await buildMailTestApp(database, smtp, {
      CORS_ORIGINS: spa.url, SECURITY_WAN_RP_ID: 'localhost', SECURITY_WAN_ALLOWED_ORIGINS: spa.url,
      SECURITY_US_SIGNIN_URL_TEMPLATE: `${spa.url}/?signin_token={token}`,
    });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    api = `http://localhost:${(t.app.server.address() as AddressInfo).port}`;
    spa.setApi(api);
    spaPage = `${spa.url}/?api=${encodeURIComponent(api)}`;
    await makeUser(t.ctx, { email, firstName: 'Pat' });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: TEST_TIMEOUT });
    context = await browser.newContext();
    context.setDefaultTimeout(STEP_TIMEOUT);
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await spa?.close();
    await t?.close();
    await smtp.stop();
    await database?.drop();
  }, TEST_TIMEOUT);

  const state = (value: string) => page.waitForSelector(`body[data-state="${value}"]`);
  const addAuthenticator = async (transport: 'internal' | 'usb', resident: boolean) => (await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport, hasResidentKey: resident, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  })).authenticatorId;
  const heldBy = async (authenticatorId: string) => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;

  async function passwordSignin(address: string) {
    await page.goto(spaPage);
    await state('signed-out');
    await page.fill('#email', address);
    await page.fill('#password', GOOD_PASSWORD);
    await page.click('#login-button');
  }
  async function signOut() {
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    await state('signed-out');
  }
  async function addPasskey(name: string, usage: 'first' | 'secondary') {
    await page.fill('#wan-name', name);
    await page.selectOption('#wan-usage', usage);
    const [finish] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${api}/wan-register/`) && r.request().method() === 'POST'),
      page.click('#wan-add'),
    ]);
    expect(finish.status(), await finish.text()).toBe(201);
    await page.waitForSelector(`#passkeys tr[data-passkey-name="${name}"]`);
  }
  async function passkeyButton() {
    const [finish] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${api}/wan-signin/`) && r.request().method() === 'POST'),
      page.click('#passkey-button'),
    ]);
    return finish;
  }

  let platform = '';

  it('registers a passkey on the account page, signs out, and signs in with it with no address typed: conditional UI, then the button', async () => {
    platform = await addAuthenticator('internal', true);
    await passwordSignin(email);
    await state('signed-in');
    await addPasskey('This laptop', 'first');
    expect(await page.textContent('#passkeys tbody')).toContain('sign-in');
    // a discoverable (resident) credential with user verification, holding our RP id
    const held = await heldBy(platform);
    expect(held).toHaveLength(1);
    expect(held[0]).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
    const [row] = await t.db.db.select().from(webauthnCredentials);
    expect(row!.credentialId).toBe(Buffer.from(held[0]!.credentialId, 'base64').toString('base64url'));

    expect(await page.getAttribute('#email', 'autocomplete')).toBe('username webauthn');

    // sign out: the sign-in form at once starts a conditional request with no identity, which the
    // authenticator answers (headless Chromium skips the autofill UI, see the header): signed in
    const options = page.waitForRequest((r) => r.url() === `${api}/wan-signin` && r.method() === 'POST');
    const conditional = page.waitForResponse((r) => r.url().startsWith(`${api}/wan-signin/`) && r.request().method() === 'POST');
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    expect((await options).postDataJSON()).toEqual({});
    const auto = await conditional;
    expect(auto.status(), await auto.text()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
    expect(await page.getAttribute('body', 'data-conditional')).toBe('off');
    expect((await heldBy(platform))[0]!.signCount).toBeGreaterThanOrEqual(1);

    // the button still works: with the credential out of the authenticator the conditional request
    // is refused at once (nothing shown); put back, the button's modal ceremony signs in
    const [saved] = await heldBy(platform);
    await cdp.send('WebAuthn.clearCredentials', { authenticatorId: platform });
    await signOut();
    await page.waitForSelector('body[data-conditional="off"]');
    expect(await page.isHidden('#error')).toBe(true);
    await cdp.send('WebAuthn.addCredential', { authenticatorId: platform, credential: saved! });
    expect(await page.inputValue('#email')).toBe('');
    const finish = await passkeyButton();
    expect(finish.status(), await finish.text()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
  });

  it('deletes the passkey on the account page; the authenticator still offers it, and the API refuses it', async () => {
    await page.click('#passkeys tr[data-passkey-name="This laptop"] .passkey-delete');
    await page.waitForSelector('#passkeys tr[data-passkey-name="This laptop"]', { state: 'detached' });
    // the conditional request on the sign-in form offers the deleted passkey: refused, and said so
    const conditional = page.waitForResponse((r) => r.url().startsWith(`${api}/wan-signin/`) && r.request().method() === 'POST');
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    expect((await conditional).status()).toBe(401);
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toMatch(/\(WEBAUTHN_INVALID\)$/);
    // and the button's ceremony alike
    const finish = await passkeyButton();
    expect(finish.status()).toBe(401);
    expect(((await finish.json()) as { code: string }).code).toBe('WEBAUTHN_INVALID');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toMatch(/\(WEBAUTHN_INVALID\)$/);
    expect(await page.getAttribute('body', 'data-state')).toBe('signed-out');
  });

  let securityKey = '';

  it('a second authenticator (a USB security key) registered as a second factor completes a password + 2FA login', async () => {
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: platform });
    securityKey = await addAuthenticator('usb', false);
    const tfEmail = 'quinn@example.com';
    await makeUser(t.ctx, { email: tfEmail });
    // two-factor authentication on (authenticator app) through the API
    const access = (await t.app.inject({ method: 'POST', url: '/login', payload: { email: tfEmail, password: GOOD_PASSWORD } })).json().access_token;
    const auth = { authorization: `Bearer ${access}` };
    const setup = (await t.app.inject({ method: 'POST', url: '/tf-setup', headers: auth, payload: { method: 'authenticator' } })).json();
    const now = Math.floor(Date.now() / 1000);
    const on = await t.app.inject({ method: 'POST', url: `/tf-setup/${setup.tf_setup_token}`, headers: auth,
      payload: { code: await generate({ secret: setup.secret, epoch: now }) } });
    expect(on.statusCode, on.body).toBe(200);

    // signed in with password + code, the user adds the security key as a second factor
    await passwordSignin(tfEmail);
    await page.waitForSelector('#tf-form:not([hidden])');
    await page.fill('#tf-code', await generate({ secret: setup.secret, epoch: now + 30 }));
    await page.click('#tf-button');
    await state('signed-in');
    await addPasskey('Blue key', 'secondary');
    expect(await heldBy(securityKey)).toEqual([expect.objectContaining({ isResidentCredential: false })]);
    await signOut();

    // password, then the key in place of a code
    await passwordSignin(tfEmail);
    await page.waitForSelector('#tf-form:not([hidden])');
    const [finish] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${api}/wan-signin/`) && r.request().method() === 'POST'),
      page.click('#tf-passkey'),
    ]);
    expect(finish.status(), await finish.text()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(tfEmail);
    await signOut();
  });

  it('a security key as the only second factor: added with no 2FA, it switches two-factor on; the code step offers just the key', async () => {
    const keyEmail = 'rae@example.com';
    await makeUser(t.ctx, { email: keyEmail });
    await passwordSignin(keyEmail);
    await state('signed-in'); // no two-factor yet
    await addPasskey('Green key', 'secondary');
    await signOut();

    await passwordSignin(keyEmail);
    await page.waitForSelector('#tf-form:not([hidden])');
    expect(await page.isVisible('#tf-passkey')).toBe(true);
    expect(await page.isHidden('#tf-resend')).toBe(true);
    expect(await page.textContent('#status')).toContain('use your security key');
    const [finish] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${api}/wan-signin/`) && r.request().method() === 'POST'),
      page.click('#tf-passkey'),
    ]);
    expect(finish.status(), await finish.text()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(keyEmail);
    expect(await heldBy(securityKey)).toHaveLength(2);
    await signOut();
  });

  it('two-factor by email: the code step says a code was mailed, "Email me another code" mails one, it completes the login', async () => {
    const mailEmail = 'sol@example.com';
    await makeUser(t.ctx, { email: mailEmail });
    const access = (await t.app.inject({ method: 'POST', url: '/login', payload: { email: mailEmail, password: GOOD_PASSWORD } })).json().access_token;
    const auth = { authorization: `Bearer ${access}` };
    const setup = await t.app.inject({ method: 'POST', url: '/tf-setup', headers: auth, payload: { method: 'email' } });
    expect(setup.statusCode, setup.body).toBe(200);
    smtp.clear();
    await t.deliver(1);
    const setupCode = /confirmation code is ([0-9]{6})/.exec(smtp.to(mailEmail).at(-1)!.text)![1]!;
    expect((await t.app.inject({ method: 'POST', url: `/tf-setup/${setup.json().tf_setup_token}`, headers: auth, payload: { code: setupCode } })).statusCode).toBe(200);

    smtp.clear();
    await passwordSignin(mailEmail);
    await page.waitForSelector('#tf-form:not([hidden])');
    expect(await page.textContent('#status')).toContain('we emailed you a code');
    expect(await page.isHidden('#tf-passkey')).toBe(true);
    await t.deliver(1);
    const [resent] = await Promise.all([page.waitForResponse((r) => r.url() === `${api}/tf-send-code`), page.click('#tf-resend')]);
    expect(resent.status()).toBe(202);
    await t.deliver(2);
    const code = /two-factor code is ([0-9]{6})/.exec(smtp.to(mailEmail).at(-1)!.text)![1]!;
    await page.fill('#tf-code', code);
    await page.click('#tf-button');
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(mailEmail);
    await signOut();
  });

  it('"Email me a code": the code from the real mailbox signs in', async () => {
    await page.goto(spaPage);
    await state('signed-out');
    await page.fill('#email', email);
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/us-signin/send-code`), page.click('#us-send-button')]);
    await page.waitForSelector('#us-form:not([hidden])');
    await t.deliver(1);
    const code = /sign-in code is ([0-9]{6})/.exec(smtp.to(email).at(-1)!.text)![1]!;
    await page.fill('#us-code', code);
    await page.click('#us-button');
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
  });

  it('the emailed link opens the SPA (SECURITY_US_SIGNIN_URL_TEMPLATE) and signs in; the token leaves the address bar', async () => {
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    await state('signed-out');
    smtp.clear();
    await page.fill('#email', email);
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/us-signin/send-code`), page.click('#us-send-button')]);
    await t.deliver(1);
    const link = /(http:\/\/localhost:[0-9]+\/\?[^\s]*signin_token=[^\s]+)/.exec(smtp.to(email).at(-1)!.text)![1]!;
    expect(link.startsWith(`${spa.url}/?`)).toBe(true);
    const [used] = await Promise.all([page.waitForResponse((r) => r.url() === `${api}/us-signin/link`), page.goto(link)]);
    expect(used.status()).toBe(200);
    await state('signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
    expect(page.url()).not.toContain('signin_token');
    // used once: opening the same link again signs in no more
    await Promise.all([page.waitForResponse((r) => r.url() === `${api}/logout`), page.click('#logout-button')]);
    const [again] = await Promise.all([page.waitForResponse((r) => r.url() === `${api}/us-signin/link`), page.goto(link)]);
    expect(again.status()).toBe(400);
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toMatch(/\(LINK_INVALID\)$/);
  });

  it('the page ran without script errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
