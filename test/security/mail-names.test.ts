// Attacker text in mail (issue 14): a name is plain text, capped, and left out when it looks like a
// link; every link points at the configured base or templates. Real SMTP (smtp-server on loopback).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, GOOD_PASSWORD, type TestDatabase } from '../support/helper.js';
import { SmtpCapture } from '../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../support/mail.js';
import { MAIL_NAME_MAX, mailSafeName, templates } from '../../src/security/mail-templates.js';
import { isConfiguredLink } from '../../src/security/links.js';
import { testConfig } from '../../src/config.js';

describe('mailSafeName', () => {
  it('keeps ordinary names, in any script, as plain text', () => {
    for (const name of ['Jane', 'Wanjiru Kamau', "O'Brien-Smith", 'J. R. R. Tolkien', 'مريم', 'Zoë Åsa', 'Jean-Luc de la Tour', '<b>Jane</b> & Co']) {
      expect(mailSafeName(name), name).toBe(name);
    }
  });
  it('leaves out names that carry a link: a scheme, ://, www., an @ or a bare domain', () => {
    for (const name of [
      'Click https://evil.example/verify now', 'hxxp://x', 'javascript:alert(1)', 'mailto:eve@evil.example', 'see www.evil.example',
      'WWW.EVIL.EXAMPLE', 'evil.example', 'Visit secure-login.co.uk today', 'eve@evil.example', 'пример.рф', 'ｅｖｉｌ．ｅｘａｍｐｌｅ', 'data:text/html,x',
    ]) expect(mailSafeName(name), name).toBeNull();
  });
  it('caps the length and strips controls', () => {
    expect(Array.from(mailSafeName('a'.repeat(500))!).length).toBe(MAIL_NAME_MAX);
    expect(mailSafeName('Eve\r\nBcc: x')).toBe('Eve Bcc: x');
    expect(mailSafeName(null)).toBeNull();
    expect(mailSafeName('   ')).toBeNull();
  });
  it('templates greet without the name when it is left out', () => {
    const m = templates.welcome({ name: 'Click https://evil.example/verify now', email: 'v@example.com' });
    expect(m.text.startsWith('Hello,\n')).toBe(true);
    expect(m.text + m.html).not.toContain('evil');
    const ok = templates.welcome({ name: '<b>Jane</b>', email: 'v@example.com' });
    expect(ok.text.startsWith('Hello <b>Jane</b>,')).toBe(true);
    expect(ok.html).toContain('Hello &lt;b&gt;Jane&lt;/b&gt;,');
  });
});

describe('isConfiguredLink', () => {
  it('accepts only links under SECURITY_LINK_BASE_URL or of a configured template', () => {
    const c = testConfig({ SECURITY_LINK_BASE_URL: 'https://county.example', SECURITY_RESET_URL_TEMPLATE: 'countyapp://reset?token={token}' });
    expect(isConfiguredLink(c, 'https://county.example/confirm/abc.def-1')).toBe(true);
    expect(isConfiguredLink(c, 'countyapp://reset?token=abc%2Edef')).toBe(true);
    for (const bad of ['https://evil.example/confirm/abc', 'https://county.example.evil.example/confirm/abc', 'https://county.example/confirm/abc?next=https://evil.example',
      'countyapp://reset?token=abc&next=https://evil.example', 'https://county.example/other/abc']) {
      expect(isConfiguredLink(c, bad), bad).toBe(false);
    }
  });
});

describe('registration mail with a hostile first name', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    t = await buildMailTestApp(database, smtp, { SECURITY_SEND_REGISTER_EMAIL: 'true', SECURITY_CONFIRMABLE: 'true' });
  });
  afterAll(async () => {
    await t.close();
    await smtp.stop();
    await database.drop();
  });
  beforeEach(() => smtp.clear());

  it('"Click https://evil.example/verify now" never reaches the welcome/confirmation email; the links are ours', async () => {
    const res = await t.app.inject({
      method: 'POST', url: '/register',
      payload: { email: 'owner@example.com', password: GOOD_PASSWORD, first_name: 'Click https://evil.example/verify now', last_name: 'or www.evil.example' },
    });
    expect(res.statusCode).toBe(201);
    // with confirmation on, the welcome is the confirmation message ("Welcome …: confirm your email address")
    await t.deliver(1);
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.subject).toMatch(/^Welcome/);
    for (const mail of smtp.messages) {
      expect(mail.raw).not.toMatch(/evil/i);
      expect(mail.text.startsWith('Hello,')).toBe(true);
      for (const url of mail.text.match(/[a-z][a-z0-9+.-]*:\/\/\S+/gi) ?? []) expect(isConfiguredLink(t.config, url), url).toBe(true);
    }
  });
});
