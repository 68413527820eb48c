import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildTestApp, createTestDatabase, GOOD_PASSWORD, type TestDatabase } from '../support/helper.js';
import { parseMail, SmtpCapture, smtpTransportFor, linkToken } from '../support/smtp.js';
import { loadConfig, testConfig } from '../../src/config.js';
import {
  createMailTransport, escapeHtml, headerText, isMailAddress, parseSender, PermanentMailError, toMessage, type OutgoingMail,
} from '../../src/security/mail.js';
import { humanDuration, maskEmail, templates } from '../../src/security/mail-templates.js';
import { deliverPending } from '../../src/security/outbox.js';

// (no address or domain in it: a name that carries one is left out of messages altogether, see mail-names.test.ts)
const HOSTILE = 'Eve\r\nBcc: attacker <script>alert("x")</script> & \'co\'';

describe('mail building blocks', () => {
  it('isMailAddress: one plain address, nothing else', () => {
    for (const ok of ['a@example.com', 'first.last+tag@sub.example.org', "o'brien@example.ie"]) expect(isMailAddress(ok), ok).toBe(true);
    for (const bad of [
      'a@example.com\r\nBcc: x@evil.test', 'a@example.com\n', 'a@example.com, b@example.com', 'a@example.com;b@example.com',
      'Eve <a@example.com>', '"a b"@example.com', 'a@@example.com', 'a..b@example.com', 'a@localhost', '', 'a@example.com ',
      `${'x'.repeat(65)}@example.com`, `a@${'x'.repeat(250)}.com`, 'a@exa mple.com',
    ]) expect(isMailAddress(bad), JSON.stringify(bad)).toBe(false);
  });

  it('headerText: control characters (CR/LF included) become spaces; one bounded line', () => {
    expect(headerText('Eve\r\nBcc: x@evil.test')).toBe('Eve Bcc: x@evil.test');
    expect(headerText('a\u0000b\u2028c\td')).toBe('a b c d');
    expect(headerText(null)).toBe('');
    expect(Array.from(headerText('é'.repeat(300))).length).toBe(100);
    expect(headerText('😀'.repeat(150), 10)).toBe('😀'.repeat(10));
  });

  it('escapeHtml escapes the five characters', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('parseSender: "Name <address>" or an address; anything else is a configuration error', () => {
    expect(parseSender('County Services <no-reply@county.example>')).toEqual({ name: 'County Services', address: 'no-reply@county.example' });
    expect(parseSender('"County, Services" <no-reply@county.example>')).toEqual({ name: 'County, Services', address: 'no-reply@county.example' });
    expect(parseSender('no-reply@county.example')).toEqual({ name: '', address: 'no-reply@county.example' });
    for (const bad of ['County Services', 'X <a@b.example, c@d.example>', 'X <a@b.example>\r\nBcc: c@d.example', '<>']) {
      expect(() => parseSender(bad), bad).toThrow(/MAIL_DEFAULT_SENDER/);
    }
  });

  it('toMessage: one recipient in the envelope, a bad recipient is a permanent failure', () => {
    const mail: OutgoingMail = { id: 'id-1', template: 'welcome', to: { name: HOSTILE, address: 'v@example.com' }, subject: 'Hi\r\nBcc: x@evil.test', text: 't', html: 'h', links: [] };
    const msg = toMessage({ name: 'CS', address: 'no-reply@cs.example' }, mail);
    expect(msg.envelope).toEqual({ from: 'no-reply@cs.example', to: ['v@example.com'] });
    expect(msg.to.name).not.toMatch(/[\r\n]/);
    expect(msg.subject).toBe('Hi Bcc: x@evil.test');
    expect(msg.messageId).toBe('<id-1@cs.example>');
    expect(() => toMessage({ name: '', address: 'a@cs.example' }, { ...mail, to: { name: '', address: 'v@example.com,\r\nw@evil.test' } }))
      .toThrow(PermanentMailError);
  });

  it('every template escapes user values in HTML and keeps them out of the subject', () => {
    const rendered = [
      templates.welcome({ name: HOSTILE, email: 'v@example.com' }),
      templates.confirm({ name: HOSTILE, email: 'v@example.com', link: 'https://x.example/c?t=a&b="', within: '1 hour', welcome: true }),
      templates.register_existing({ name: HOSTILE, email: 'v@example.com', resetLink: 'https://x.example/r', within: '1 hour' }),
      templates.reset({ name: HOSTILE, link: 'https://x.example/r', within: '1 hour' }),
      templates.password_reset({ name: HOSTILE }),
      templates.password_changed({ name: HOSTILE }),
      templates.change_email({ name: HOSTILE, newEmail: 'n@example.com', link: 'https://x.example/e', within: '2 hours' }),
      templates.change_email_requested({ name: HOSTILE, maskedNew: 'n***@example.com' }),
      templates.email_changed({ name: HOSTILE, maskedNew: 'n***@example.com' }),
    ];
    for (const r of rendered) {
      expect(r.html).not.toContain('<script>');
      expect(r.html).toContain('&lt;script&gt;');
      expect(r.html).not.toMatch(/href="[^"]*"[^>]*"/);
      expect(r.subject).not.toMatch(/Eve|script|[\r\n]/);
      // the greeting is one line: no header-looking line sneaks into the text either
      expect(r.text.split('\n')[0]).toMatch(/^Hello Eve Bcc: attacker /);
    }
    expect(rendered[1]!.html).toContain('href="https://x.example/c?t=a&amp;b=&quot;"');
  });

  it('maskEmail and humanDuration', () => {
    expect(maskEmail('jane.doe@example.com')).toBe('j***@example.com');
    expect(maskEmail('x')).toBe('***');
    expect(humanDuration(3600)).toBe('1 hour');
    expect(humanDuration(48 * 3600)).toBe('48 hours');
    expect(humanDuration(1800)).toBe('30 minutes');
    expect(humanDuration(90)).toBe('90 seconds');
  });

  it('createMailTransport: SMTP with MAIL_SERVER; .eml files without one; none in production without one', () => {
    const log = { info: () => undefined, warn: () => undefined };
    expect(createMailTransport(testConfig({ MAIL_SERVER: 'smtp.example', MAIL_PORT: '2525' }), log)).toMatchObject({ kind: 'smtp', description: 'smtp://smtp.example:2525' });
    expect(createMailTransport(testConfig({ DATA_DIR: '/tmp/x' }), log)).toMatchObject({ kind: 'file', description: path.resolve('/tmp/x/outbox') });
    const prod = loadConfig({ NODE_ENV: 'production', SECRET_KEY: 'k'.repeat(40), SECURITY_PASSWORD_SALT: 's'.repeat(32) });
    expect(createMailTransport(prod, log)).toBeNull();
    expect(() => createMailTransport(testConfig({ MAIL_SERVER: 'smtp.example', MAIL_DEFAULT_SENDER: 'not an address' }), log)).toThrow(/MAIL_DEFAULT_SENDER/);
  });
});

describe('the SMTP transport against a real SMTP server', () => {
  const smtp = new SmtpCapture();
  beforeAll(async () => {
    await smtp.start();
  });
  afterAll(async () => {
    await smtp.stop();
  });

  it('a hostile display name reaches the server as one folded To header, one recipient, no Bcc', async () => {
    const transport = smtpTransportFor(testConfig({ MAIL_SERVER: '127.0.0.1', MAIL_PORT: String(smtp.port) }));
    try {
      await transport.send({ id: 'direct-1', template: 'welcome', to: { name: HOSTILE, address: 'v@example.com' }, subject: 'Hello\r\nBcc: x@evil.test', text: 'body', html: '<p>body</p>', links: [] });
      await expect(transport.send({ id: 'direct-2', template: 'welcome', to: { name: '', address: 'v@example.com\r\nRCPT TO:<x@evil.test>' }, subject: 's', text: 't', html: 'h', links: [] }))
        .rejects.toBeInstanceOf(PermanentMailError);
      await smtp.waitFor(1);
      expect(smtp.messages).toHaveLength(1);
      const mail = smtp.messages[0]!;
      expect(mail.rcptTo).toEqual(['v@example.com']);
      expect(mail.mailFrom).toBe('no-reply@county-services.local');
      expect(mail.headers.map(([k]) => k)).not.toContain('bcc');
      expect(mail.subject).toBe('Hello Bcc: x@evil.test');
      expect(mail.header('from')).toBe('County Services <no-reply@county-services.local>');
      expect(mail.header('auto-submitted')).toBe('auto-generated');
    } finally {
      await transport.close();
    }
  });
});

describe('the development outbox: .eml files when MAIL_SERVER is empty', () => {
  let database: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    database = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'cs-outbox-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await database.drop();
  });

  it('writes each message to DATA_DIR/outbox (private files), logs the link and nothing else secret; the link works', async () => {
    const t = await buildTestApp(database, { DATA_DIR: dir, SECURITY_CONFIRMABLE: 'true' });
    const lines: string[] = [];
    const transport = createMailTransport(t.config, { info: (m) => lines.push(m), warn: (m) => lines.push(m) })!;
    try {
      expect(transport.kind).toBe('file');
      const res = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'dev-mail@example.com', password: GOOD_PASSWORD } });
      expect(res.statusCode).toBe(201);
      expect(await deliverPending(t.ctx, transport)).toMatchObject({ sent: 1 });

      const outboxDir = path.join(dir, 'outbox');
      const files = await readdir(outboxDir);
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(/-confirm-[0-9a-f-]{36}\.eml$/);
      expect((await stat(outboxDir)).mode & 0o777).toBe(0o700);
      const file = path.join(outboxDir, files[0]!);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const mail = parseMail(await readFile(file, 'utf8'));
      expect(mail.subject).toBe('Confirm your email address');
      expect(mail.header('to')).toBe('dev-mail@example.com');
      const token = linkToken(mail, 'confirm');

      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(file);
      expect(lines[0]).toContain(`http://127.0.0.1:5000/confirm/${token}`);
      expect(lines[0]).not.toContain(GOOD_PASSWORD);

      expect((await t.app.inject(`/confirm/${token}`)).statusCode).toBe(200);
    } finally {
      await transport.close();
      await t.close();
    }
  });
});
