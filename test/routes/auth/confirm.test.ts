import { describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { envelopeOf, GOOD_PASSWORD } from '../../support/helper.js';
import { linkToken } from '../../support/smtp.js';
import { buildMailTestApp, useMailFixture } from '../../support/mail.js';
import { outbox, users } from '../../../src/db/schema/index.js';

describe('confirmable: confirmation email, POST /confirm, GET /confirm/{token}', () => {
  const { smtp, t } = useMailFixture({ env: { SECURITY_CONFIRMABLE: 'true' } });

  const register = (email: string, extra: Record<string, unknown> = {}) =>
    t.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD, ...extra } });
  const login = (email: string) => t.app.inject({ method: 'POST', url: '/login', payload: { email, password: GOOD_PASSWORD } });

  it('registration queues the confirmation email in the same transaction; the link confirms; login works after', async () => {
    const res = await register('conf1@example.com', { first_name: 'Ada' });
    expect(res.statusCode).toBe(201);
    expect(res.json().access_token).toBeUndefined();
    const user = res.json().user;
    expect(user.confirmed_at).toBeNull();

    const rows = await t.db.db.select().from(outbox).where(eq(outbox.userId, user.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ template: 'confirm', status: 'pending', recipient: 'conf1@example.com' });
    // the row holds no usable token: links are signed when the message is rendered
    expect(JSON.stringify(rows[0]!.payload)).not.toMatch(/\./);

    const before = await login('conf1@example.com');
    expect(before.statusCode).toBe(403);
    expect(envelopeOf(before).code).toBe('CONFIRMATION_REQUIRED');

    await t.deliver(1);
    const mail = smtp.single('conf1@example.com');
    expect(mail.subject).toBe('Confirm your email address');
    expect(mail.text).toContain('Hello Ada,');
    expect(mail.text).toContain('48 hours');
    expect(mail.text).toContain('http://127.0.0.1:5000/confirm/');
    expect(mail.html).toContain('<a href="http://127.0.0.1:5000/confirm/');

    const token = linkToken(mail, 'confirm');
    const ok = await t.app.inject(`/confirm/${token}`);
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ confirmed: true });
    const [row] = await t.db.db.select().from(users).where(eq(users.id, user.id));
    expect(row!.confirmedAt).not.toBeNull();

    expect((await login('conf1@example.com')).statusCode).toBe(200);
    // idempotent
    const again = await t.app.inject(`/confirm/${token}`);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ confirmed: true });
  });

  it('an old link is 400 LINK_EXPIRED (SECURITY_CONFIRM_EMAIL_WITHIN, injected clock); a new one from POST /confirm works', async () => {
    await register('conf2@example.com');
    await t.deliver(1);
    const token = linkToken(smtp.single('conf2@example.com'), 'confirm');
    t.clock.advance(48 * 3600 + 1);
    const res = await t.app.inject(`/confirm/${token}`);
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).code).toBe('LINK_EXPIRED');

    smtp.clear();
    const resend = await t.app.inject({ method: 'POST', url: '/confirm', payload: { email: 'CONF2@example.com' } });
    expect(resend.statusCode).toBe(202);
    await t.deliver(1);
    const fresh = linkToken(smtp.single('conf2@example.com'), 'confirm');
    expect((await t.app.inject(`/confirm/${fresh}`)).statusCode).toBe(200);
    // a stale link for an address that is confirmed by now: nothing to do, so 200
    expect((await t.app.inject(`/confirm/${token}`)).statusCode).toBe(200);
  });

  it('tampered, truncated and foreign tokens are 400 LINK_INVALID', async () => {
    await register('conf3@example.com');
    await t.deliver(1);
    const token = linkToken(smtp.single('conf3@example.com'), 'confirm');
    const [body, mac] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const other = await register('conf3b@example.com');
    const forged = Buffer.from(JSON.stringify({ ...claims, u: other.json().user.id })).toString('base64url');
    const flip = (s: string) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');
    for (const bad of [`${forged}.${mac}`, `${body}.${flip(mac)}`, body, 'x', `${body}.${mac}x`, `${flip(body)}.${mac}`]) {
      const res = await t.app.inject(`/confirm/${encodeURIComponent(bad)}`);
      expect(res.statusCode, bad).toBe(400);
      expect(envelopeOf(res).code).toBe('LINK_INVALID');
    }
    const [row] = await t.db.db.select().from(users).where(eq(users.email, 'conf3b@example.com'));
    expect(row!.confirmedAt).toBeNull();
  });

  it('POST /confirm is generic: same status and body for unconfirmed, confirmed and unknown addresses; mail only where useful', async () => {
    await register('conf4@example.com');
    await t.deliver(1);
    smtp.clear();
    t.clock.advance(61); // past the registration message's throttle window
    const answers = [];
    for (const email of ['conf4@example.com', 'conf1@example.com', 'nobody-here@example.com']) {
      const res = await t.app.inject({ method: 'POST', url: '/confirm', payload: { email } });
      answers.push({ status: res.statusCode, body: res.body });
    }
    expect(answers[0]!.status).toBe(202);
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    const report = await t.deliver();
    expect(report).toMatchObject({ sent: 1, skipped: 2 });
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.rcptTo).toEqual(['conf4@example.com']);
  });

  it('at most one confirmation email per address per minute (the registration\'s message counts)', async () => {
    await register('conf5@example.com');
    const resend = () => t.app.inject({ method: 'POST', url: '/confirm', payload: { email: 'conf5@example.com' } });
    for (let i = 0; i < 3; i++) expect((await resend()).statusCode).toBe(202);
    await t.deliver();
    expect(smtp.to('conf5@example.com')).toHaveLength(1);
    t.clock.advance(61);
    for (let i = 0; i < 3; i++) expect((await resend()).statusCode).toBe(202);
    await t.deliver(2);
    expect(smtp.to('conf5@example.com')).toHaveLength(2);
  });

  it('POST /confirm validates its body', async () => {
    for (const payload of [{}, { email: 'not-an-email' }, { email: 'a@b.co', extra: 1 }, { email: ['a@b.co'] }]) {
      const res = await t.app.inject({ method: 'POST', url: '/confirm', payload });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('confirmable: welcome email, link templates, switched off', () => {
  const { smtp, database } = useMailFixture({ app: false });

  it('SECURITY_SEND_REGISTER_EMAIL + confirmable: one welcome message carrying the confirmation link, to the client\'s own route', async () => {
    const t = await buildMailTestApp(database, smtp, {
      SECURITY_CONFIRMABLE: 'true', SECURITY_SEND_REGISTER_EMAIL: 'true', SECURITY_CONFIRM_URL_TEMPLATE: 'myapp://confirm?token={token}',
    });
    try {
      await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'welcome1@example.com', password: GOOD_PASSWORD } });
      await t.deliver(1);
      const mail = smtp.single('welcome1@example.com');
      expect(mail.subject).toBe('Welcome to County Services: confirm your email address');
      const m = /myapp:\/\/confirm\?token=([A-Za-z0-9_.%-]+)/.exec(mail.text);
      expect(m).not.toBeNull();
      expect((await t.app.inject(`/confirm/${decodeURIComponent(m![1]!)}`)).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('SECURITY_SEND_REGISTER_EMAIL without confirmable: a welcome email, auto-login as before', async () => {
    const t = await buildMailTestApp(database, smtp, { SECURITY_SEND_REGISTER_EMAIL: 'true' });
    try {
      const res = await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'welcome2@example.com', password: GOOD_PASSWORD } });
      expect(res.statusCode).toBe(201);
      expect(res.json().access_token).toEqual(expect.any(String));
      await t.deliver(1);
      const mail = smtp.single('welcome2@example.com');
      expect(mail.subject).toBe('Welcome to County Services');
      expect(mail.text).not.toMatch(/\/confirm\//);
    } finally {
      await t.close();
    }
  });

  it('neither confirmable nor SEND_REGISTER_EMAIL (development default): no email; /confirm routes are 404', async () => {
    const t = await buildMailTestApp(database, smtp);
    try {
      expect((await t.app.inject({ method: 'POST', url: '/register', payload: { email: 'silent-one@example.com', password: GOOD_PASSWORD } })).statusCode).toBe(201);
      expect(await t.deliver()).toMatchObject({ claimed: 0 });
      expect(smtp.messages).toHaveLength(0);
      for (const res of [
        await t.app.inject({ method: 'POST', url: '/confirm', payload: { email: 'silent-one@example.com' } }),
        await t.app.inject('/confirm/abc.def'),
      ]) {
        expect(res.statusCode).toBe(404);
        expect(envelopeOf(res).code).toBe('NOT_FOUND');
      }
    } finally {
      await t.close();
    }
  });
});
