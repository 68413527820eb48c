import { describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { envelopeOf, GOOD_PASSWORD, login, makeUser } from '../../support/helper.js';
import { linkToken } from '../../support/smtp.js';
import { useMailFixture } from '../../support/mail.js';
import { outbox } from '../../../src/db/schema/index.js';
import { registerUser } from '../../../src/security/auth.js';

describe('registration email with SECURITY_RETURN_GENERIC_RESPONSES', () => {
  const { smtp, t } = useMailFixture({ env: { SECURITY_RETURN_GENERIC_RESPONSES: 'true', SECURITY_CONFIRMABLE: 'true' } });

  const register = (email: string, extra: Record<string, unknown> = {}) =>
    t.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD, ...extra } });

  it('new and existing addresses get the same 202; the new one a confirmation link, the owner of the existing one a warning with a reset link', async () => {
    await makeUser(t.ctx, { email: 'owner@example.com', firstName: 'Owen' });
    const fresh = await register('newcomer@example.com');
    const existing = await register('OWNER@example.com', { first_name: 'Mallory' });
    expect(fresh.statusCode).toBe(202);
    expect(existing.statusCode).toBe(202);
    expect(existing.body).toBe(fresh.body);
    expect(fresh.json()).toEqual({ message: expect.any(String) });

    await t.deliver(2);
    expect(smtp.single('newcomer@example.com').subject).toBe('Confirm your email address');
    const warning = smtp.single('owner@example.com');
    expect(warning.subject).toBe('Someone tried to register with your email address');
    // addressed to the owner by the owner's name, never the name the caller typed
    expect(warning.text).toContain('Hello Owen,');
    expect(warning.raw).not.toContain('Mallory');
    const token = linkToken(warning, 'reset');
    expect((await t.app.inject(`/reset/${token}`)).json()).toEqual({ valid: true, email: 'owner@example.com' });

    // repeated attempts do not flood the owner
    for (let i = 0; i < 3; i++) expect((await register('owner@example.com')).statusCode).toBe(202);
    expect(await t.deliver()).toMatchObject({ sent: 0 });
  });
});

describe('header injection through names and addresses', () => {
  const { smtp, t } = useMailFixture({ env: { SECURITY_SEND_REGISTER_EMAIL: 'true' } });

  it('CR/LF in first and last names never become headers or recipients; HTML in names is escaped', async () => {
    const hostile = { first_name: 'Eve\r\nBcc: attacker@evil.test\r\nSubject: pwned', last_name: '<script>alert(1)</script>\nX-Injected: 1' };
    // The API refuses control characters at the edge (the text policy) ...
    const refused = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'victim@example.com', password: GOOD_PASSWORD, ...hostile } });
    expect(refused.statusCode).toBe(400);
    expect(Object.keys(envelopeOf(refused).fields!)).toEqual(expect.arrayContaining(['first_name', 'last_name']));
    // ... and the mail layer holds on its own for names that got in another way (the CLI, old rows)
    await registerUser(t.ctx, { email: 'victim@example.com', password: GOOD_PASSWORD, firstName: hostile.first_name, lastName: hostile.last_name });
    await t.deliver(1);
    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0]!;
    expect(mail.rcptTo).toEqual(['victim@example.com']);
    expect(mail.subject).toBe('Welcome to County Services');
    const names = mail.headers.map(([k]) => k);
    expect(names).not.toContain('bcc');
    expect(names).not.toContain('x-injected');
    expect(names.filter((n) => n === 'subject')).toHaveLength(1);
    expect(names.filter((n) => n === 'to')).toHaveLength(1);
    // the header block: every line is a header we wrote, or the folded continuation of one
    const headerBlock = mail.raw.slice(0, mail.raw.search(/\r?\n\r?\n/));
    for (const line of headerBlock.split(/\r?\n/)) {
      expect(line, line).toMatch(/^([ \t]|(Auto-Submitted|X-Auto-Response-Suppress|From|To|Subject|Message-ID|Date|MIME-Version|Content-Type|Content-Transfer-Encoding):)/i);
    }
    expect(mail.header('to')).toContain('victim@example.com');
    expect(mail.header('to')).not.toContain('evil');
    expect(mail.html).not.toContain('<script>');
    // the name carries an address (attacker@evil.test), so the message leaves it out altogether
    expect(mail.text).not.toContain('evil.test');
    expect(mail.text.startsWith('Hello,')).toBe(true);
  });

  it('addresses with CR/LF, several recipients or display names are refused at the edge (400), nothing is queued', async () => {
    const before = await t.db.db.select({ n: sql<number>`count(*)::int` }).from(outbox);
    for (const email of [
      'a@example.com\r\nBcc: attacker@evil.test', 'a@example.com, attacker@evil.test', 'a@example.com;b@evil.test',
      'Eve <a@example.com>', 'a@example.com\nb@evil.test', '"a\r\nb"@example.com', 'a@example.com%0d%0abcc:x@evil.test',
    ]) {
      for (const url of ['/register', '/reset']) {
        const res = await t.app.inject({ method: 'POST', url, payload: { email, password: GOOD_PASSWORD } });
        expect(res.statusCode, `${url} ${JSON.stringify(email)}`).toBe(400);
        expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
      }
    }
    const after = await t.db.db.select({ n: sql<number>`count(*)::int` }).from(outbox);
    expect(after[0]!.n).toBe(before[0]!.n);
    expect(await t.deliver()).toMatchObject({ claimed: 0 });
  });

  it('the link in a message cannot be steered by the Host header', async () => {
    await makeUser(t.ctx, { email: 'hosted@example.com' });
    await t.app.inject({ method: 'POST', url: '/reset', payload: { email: 'hosted@example.com' }, headers: { host: 'evil.test', 'x-forwarded-host': 'evil.test' } });
    await t.deliver(1);
    const mail = smtp.single('hosted@example.com');
    expect(mail.raw).not.toContain('evil.test');
    expect(mail.text).toContain('http://127.0.0.1:5000/reset/');
    await login(t.app, 'hosted@example.com');
  });
});
