import { describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { bearer, envelopeOf, GOOD_PASSWORD, login, makeUser } from '../../support/helper.js';
import { linkToken } from '../../support/smtp.js';
import { buildMailTestApp, useMailFixture } from '../../support/mail.js';
import { outbox, users } from '../../../src/db/schema/index.js';
import { deactivateUser, setPassword } from '../../../src/security/datastore.js';

const NEW_PASSWORD = 'Amber-Meadow-41-Compass';

describe('recoverable: POST /reset, GET/POST /reset/{token}', () => {
  const { smtp, t } = useMailFixture();

  const requestReset = (email: string) => t.app.inject({ method: 'POST', url: '/reset', payload: { email } });
  /** requests a reset for `email`, delivers, and returns the token from the received message */
  async function resetToken(email: string): Promise<string> {
    expect((await requestReset(email)).statusCode).toBe(202);
    await t.deliver();
    const mail = smtp.to(email).at(-1);
    if (!mail) throw new Error(`no reset mail for ${email}`);
    expect(mail.subject).toBe('Reset your password');
    return linkToken(mail, 'reset');
  }

  it('the whole flow: link by email, check without consuming, set the password, every session dies, notice, link used up', async () => {
    const user = await makeUser(t.ctx, { email: 'reset1@example.com', firstName: 'Rita' });
    const session = await login(t.app, user.email);

    const token = await resetToken('RESET1@example.com');
    const mail = smtp.single('reset1@example.com');
    expect(mail.text).toContain('Hello Rita,');
    expect(mail.text).toContain('valid for 1 hour');
    expect(mail.text).toContain(`http://127.0.0.1:5000/reset/${token}`);

    for (let i = 0; i < 2; i++) {
      const check = await t.app.inject(`/reset/${token}`);
      expect(check.statusCode).toBe(200);
      expect(check.json()).toEqual({ valid: true, email: 'reset1@example.com' });
    }

    const res = await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: NEW_PASSWORD } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ message: expect.any(String) });

    const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(session.access_token) });
    expect(me.statusCode).toBe(401);
    const cookie = await t.app.inject({ url: '/auth/current-user', headers: { cookie: session.cookie } });
    expect(cookie.statusCode).toBe(401);
    const refresh = await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: session.refresh_token } });
    expect(refresh.statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } })).statusCode).toBe(401);
    await login(t.app, user.email, NEW_PASSWORD);

    await t.deliver(2);
    expect(smtp.to('reset1@example.com').map((m) => m.subject)).toEqual(['Reset your password', 'Your password was reset']);

    for (const again of [
      await t.app.inject(`/reset/${token}`),
      await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: 'Another-Quiet-77-River' } }),
    ]) {
      expect(again.statusCode).toBe(400);
      expect(envelopeOf(again).code).toBe('LINK_INVALID');
    }
  });

  it('is generic: identical status and body for known and unknown addresses; only the known one gets mail', async () => {
    await makeUser(t.ctx, { email: 'known@example.com' });
    const known = await requestReset('known@example.com');
    const unknown = await requestReset('unknown-person@example.com');
    expect(known.statusCode).toBe(202);
    expect(unknown.statusCode).toBe(known.statusCode);
    expect(unknown.body).toBe(known.body);
    expect(unknown.headers['content-type']).toBe(known.headers['content-type']);
    // the same work: each request wrote one outbox row, resolved only at delivery
    const rows = await t.db.db.select().from(outbox).where(eq(outbox.template, 'reset'));
    expect(rows.map((r) => r.recipient).sort()).toEqual(expect.arrayContaining(['known@example.com', 'unknown-person@example.com']));
    const report = await t.deliver();
    expect(report.sent).toBe(1);
    expect(report.skipped).toBeGreaterThanOrEqual(1);
    expect(smtp.messages.map((m) => m.rcptTo)).toEqual([['known@example.com']]);
  });

  it('expires after SECURITY_RESET_PASSWORD_WITHIN (injected clock)', async () => {
    await makeUser(t.ctx, { email: 'reset-exp@example.com' });
    const token = await resetToken('reset-exp@example.com');
    t.clock.advance(3601);
    for (const res of [
      await t.app.inject(`/reset/${token}`),
      await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: NEW_PASSWORD } }),
    ]) {
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('LINK_EXPIRED');
    }
  });

  it('dies with any password change', async () => {
    const user = await makeUser(t.ctx, { email: 'reset-pw@example.com' });
    const token = await resetToken(user.email);
    await setPassword(t.ctx, user.id, 'Changed-Elsewhere-55-Pine');
    const res = await t.app.inject(`/reset/${token}`);
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).code).toBe('LINK_INVALID');
  });

  it('cross-user and cross-purpose use, and tampering, are LINK_INVALID', async () => {
    const a = await makeUser(t.ctx, { email: 'reset-a@example.com' });
    const b = await makeUser(t.ctx, { email: 'reset-b@example.com' });
    const token = await resetToken(a.email);
    const [body, mac] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const asB = Buffer.from(JSON.stringify({ ...claims, u: b.id })).toString('base64url');
    const longer = Buffer.from(JSON.stringify({ ...claims, t: claims.t + 3600 })).toString('base64url');
    const asConfirm = Buffer.from(JSON.stringify({ ...claims, p: 'confirm' })).toString('base64url');
    for (const bad of [`${asB}.${mac}`, `${longer}.${mac}`, `${asConfirm}.${mac}`, `${body}.${'A'.repeat(43)}`]) {
      const res = await t.app.inject({ method: 'POST', url: `/reset/${bad}`, payload: { password: NEW_PASSWORD } });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('LINK_INVALID');
    }
    // a reset link is not a change-email link
    const cross = await t.app.inject({ method: 'POST', url: `/change-email/${token}` });
    expect(cross.statusCode).toBe(400);
    expect(envelopeOf(cross).code).toBe('LINK_INVALID');
    // and b's password is untouched
    await login(t.app, b.email);
    // the genuine link still works for a
    expect((await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: NEW_PASSWORD } })).statusCode).toBe(200);
  });

  it('a new password that breaks the policy is 400 VALIDATION_FAILED and leaves the link usable', async () => {
    await makeUser(t.ctx, { email: 'reset-policy@example.com' });
    const token = await resetToken('reset-policy@example.com');
    for (const password of ['short', 'password123', 'xxreset-policy@example.comxx']) {
      const res = await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password } });
      expect(res.statusCode).toBe(400);
      const env = envelopeOf(res);
      expect(env.code).toBe('VALIDATION_FAILED');
      expect(env.fields!.password!.length).toBeGreaterThan(0);
    }
    const bad = await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: NEW_PASSWORD, extra: true } });
    expect(bad.statusCode).toBe(400);
    expect((await t.app.inject(`/reset/${token}`)).statusCode).toBe(200);
  });

  it('two concurrent uses of one link: exactly one succeeds', async () => {
    await makeUser(t.ctx, { email: 'reset-race@example.com' });
    const token = await resetToken('reset-race@example.com');
    const results = await Promise.all([NEW_PASSWORD, 'Second-Quiet-88-Harbor'].map((password) =>
      t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password } })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    expect(envelopeOf(results.find((r) => r.statusCode === 400)!).code).toBe('LINK_INVALID');
  });

  it('a deactivated account gets no reset mail, and its links stop working', async () => {
    const user = await makeUser(t.ctx, { email: 'reset-off@example.com' });
    const token = await resetToken(user.email);
    await deactivateUser(t.ctx, user.id);
    expect((await t.app.inject(`/reset/${token}`)).statusCode).toBe(400);
    smtp.clear();
    t.clock.advance(61);
    expect((await requestReset(user.email)).statusCode).toBe(202);
    expect(await t.deliver()).toMatchObject({ sent: 0, skipped: 1 });
    expect(smtp.messages).toHaveLength(0);
  });

  it('at most one reset email per address per minute', async () => {
    await makeUser(t.ctx, { email: 'reset-flood@example.com' });
    for (let i = 0; i < 5; i++) expect((await requestReset('reset-flood@example.com')).statusCode).toBe(202);
    await t.deliver();
    expect(smtp.to('reset-flood@example.com')).toHaveLength(1);
  });

  it('validates bodies and path tokens', async () => {
    for (const payload of [{}, { email: 'nope' }, { email: 'a@b.co', x: 1 }]) {
      const res = await t.app.inject({ method: 'POST', url: '/reset', payload });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    }
    // over the router's 1 KB parameter limit
    const long = await t.app.inject(`/reset/${'a'.repeat(1025)}`);
    expect(long.statusCode).toBe(414);
    envelopeOf(long);
    // control characters in a path token are refused by the text policy before any lookup
    const garbage = await t.app.inject('/reset/%00%0d%0a');
    expect(garbage.statusCode).toBe(400);
    expect(envelopeOf(garbage)).toMatchObject({ code: 'VALIDATION_FAILED', fields: { token: expect.any(Array) } });
  });
});

describe('recoverable: configuration', () => {
  const { smtp, database } = useMailFixture({ app: false });

  it('SECURITY_RESET_URL_TEMPLATE: the link opens the client\'s route; no notice when SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL=false', async () => {
    const t = await buildMailTestApp(database, smtp, {
      SECURITY_RESET_URL_TEMPLATE: 'https://app.example.org/#/reset?token={token}', SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL: 'false',
    });
    try {
      await makeUser(t.ctx, { email: 'tmpl@example.com' });
      await t.app.inject({ method: 'POST', url: '/reset', payload: { email: 'tmpl@example.com' } });
      await t.deliver(1);
      const m = /https:\/\/app\.example\.org\/#\/reset\?token=([A-Za-z0-9_.%-]+)/.exec(smtp.single('tmpl@example.com').text);
      expect(m).not.toBeNull();
      const res = await t.app.inject({ method: 'POST', url: `/reset/${decodeURIComponent(m![1]!)}`, payload: { password: NEW_PASSWORD } });
      expect(res.statusCode).toBe(200);
      expect(await t.deliver()).toMatchObject({ claimed: 0 });
    } finally {
      await t.close();
    }
  });

  it('with confirmable, a reset link also confirms the address (it proves it)', async () => {
    const t = await buildMailTestApp(database, smtp, { SECURITY_CONFIRMABLE: 'true' });
    try {
      const user = await makeUser(t.ctx, { email: 'unconfirmed@example.com', confirmedAt: null });
      await t.app.inject({ method: 'POST', url: '/reset', payload: { email: user.email } });
      await t.deliver(1);
      const token = linkToken(smtp.single(user.email), 'reset');
      expect((await t.app.inject({ method: 'POST', url: `/reset/${token}`, payload: { password: NEW_PASSWORD } })).statusCode).toBe(200);
      const [row] = await t.db.db.select().from(users).where(eq(users.id, user.id));
      expect(row!.confirmedAt).not.toBeNull();
      await login(t.app, user.email, NEW_PASSWORD);
    } finally {
      await t.close();
    }
  });

  it('SECURITY_RECOVERABLE=false: the reset views are 404', async () => {
    const t = await buildMailTestApp(database, smtp, { SECURITY_RECOVERABLE: 'false' });
    try {
      for (const res of [
        await t.app.inject({ method: 'POST', url: '/reset', payload: { email: 'a@b.co' } }),
        await t.app.inject('/reset/abc.def'),
        await t.app.inject({ method: 'POST', url: '/reset/abc.def', payload: { password: NEW_PASSWORD } }),
      ]) {
        expect(res.statusCode).toBe(404);
        expect(envelopeOf(res).code).toBe('NOT_FOUND');
      }
    } finally {
      await t.close();
    }
  });
});
