// Internationalised addresses (issue 14): UTF-8 local parts and IDN domains accepted, one canonical
// form for uniqueness, mixed-script confusables refused; mail goes out with SMTPUTF8 when the server
// offers it (the real smtp-server on loopback).
import { domainToASCII } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { canonicalEmail, isMailAddress, isMixedScript, needsSmtpUtf8 } from '../../src/security/email-address.js';
import { createTestDatabase, envelopeOf, GOOD_PASSWORD, type TestDatabase } from '../support/helper.js';
import { SmtpCapture } from '../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../support/mail.js';

describe('email addresses', () => {
  it('accepts UTF-8 local parts and IDN domains', () => {
    for (const ok of ['ünïcødé@exämple.com', 'δοκιμή@παράδειγμα.δοκιμή', '用户@例子.广告', 'अजय@डाटा.भारत', 'квіточка@пошта.укр', 'jane@bücher.example',
      'jane@xn--bcher-kva.example', 'a@example.com', "o'brien@example.ie", 'Ünïcødé@Bücher.EXAMPLE', 'しらせ@例え.jp']) {
      expect(isMailAddress(ok), ok).toBe(true);
    }
  });
  it('stays strict: no spaces, quotes, display names, controls, empty labels, numeric TLDs', () => {
    for (const bad of ['a b@example.com', '"a"@example.com', 'Eve <a@example.com>', 'a\u0000@example.com', 'a@exa mple.com', 'a@example..com',
      'a@-example.com', 'a@example', 'a@1.2.3.4', '.a@example.com', 'a.@example.com', 'a@b@example.com', `${'ü'.repeat(33)}@example.com`,
      'a@example.com\r\n', 'a@ex_ample.com', 'a\u202e@example.com']) {
      expect(isMailAddress(bad), JSON.stringify(bad)).toBe(false);
    }
  });
  it('refuses mixed-script confusables (UTS #39 highly restrictive), allows the CJK combinations', () => {
    expect(isMixedScript('pаypal')).toBe(true); // Cyrillic а
    expect(isMailAddress('jane@pаypal.example')).toBe(false);
    expect(isMailAddress('jаne@example.com')).toBe(false);
    expect(isMixedScript('paypal')).toBe(false);
    expect(isMixedScript('東京abc')).toBe(false);
    expect(isMixedScript('ひらがなカタカナ漢字')).toBe(false);
    expect(isMixedScript('한국어漢字')).toBe(false);
    expect(isMixedScript('αβγabc')).toBe(true);
  });
  it('one canonical form: NFC, domain lower-cased and IDN-normalised, local part as typed', () => {
    expect(canonicalEmail('Jane@BÜCHER.Example')).toBe('Jane@bücher.example');
    expect(canonicalEmail('Jane@xn--bcher-kva.example')).toBe('Jane@bücher.example');
    expect(canonicalEmail('Jose\u0301@example.com')).toBe('José@example.com');
    expect(canonicalEmail(' a@Example.COM ')).toBe('a@example.com');
    expect(needsSmtpUtf8('josé@example.com')).toBe(true);
    expect(needsSmtpUtf8('jose@bücher.example')).toBe(false);
  });
});

describe('registration with internationalised addresses', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    t = await buildMailTestApp(database, smtp, { SECURITY_SEND_REGISTER_EMAIL: 'true', SECURITY_CONFIRMABLE: 'false' });
  });
  afterAll(async () => {
    await t.close();
    await smtp.stop();
    await database.drop();
  });
  beforeEach(() => smtp.clear());

  const register = (email: string) => t.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD } });

  it('a UTF-8 local part registers, logs in, and gets its welcome mail with SMTPUTF8', async () => {
    const res = await register('Jose\u0301@Bücher.EXAMPLE');
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().user.email).toBe('José@bücher.example');
    const login = await t.app.inject({ method: 'POST', url: '/login', payload: { email: 'José@xn--bcher-kva.example', password: GOOD_PASSWORD } });
    expect(login.statusCode).toBe(200);
    await t.deliver(1);
    const mail = smtp.messages[0]!;
    expect(mail.rcptTo).toEqual(['José@bücher.example']);
    expect(mail.smtpUtf8).toBe(true);
  });

  it('the same address in another form (punycode, case of the domain, decomposed) is taken', async () => {
    expect((await register('ana@xn--bcher-kva.example')).statusCode).toBe(201);
    for (const other of ['ana@bücher.example', 'ana@BÜCHER.EXAMPLE', 'ANA@bu\u0308cher.example']) {
      const res = await register(other);
      expect(res.statusCode, other).toBe(409);
      expect(envelopeOf(res).code).toBe('EMAIL_TAKEN');
    }
  });

  it('an ASCII local part at an IDN domain is delivered to that domain', async () => {
    expect((await register('plain@例子.广告')).statusCode).toBe(201);
    await t.deliver(2); // the previous test's welcome is still queued
    const mail = smtp.messages.find((m) => m.rcptTo[0]!.startsWith('plain@'))!;
    const ascii = domainToASCII('例子.广告');
    expect(ascii).toMatch(/^xn--/);
    expect(domainToASCII(mail.rcptTo[0]!.split('@')[1]!)).toBe(ascii);
    expect([`plain@${ascii}`, 'plain@例子.广告'].some((a) => (mail.header('to') ?? '').includes(a))).toBe(true);
  });

  it('a mixed-script confusable is a field error', async () => {
    const res = await register('jane@pаypal.example');
    expect(res.statusCode).toBe(400);
    expect(Object.keys(envelopeOf(res).fields!)).toContain('email');
  });
});
