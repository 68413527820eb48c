import { beforeEach, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { bearer, envelopeOf, GOOD_PASSWORD, login, makeUser, type LoginResult } from '../../support/helper.js';
import { linkToken } from '../../support/smtp.js';
import { buildMailTestApp, useMailFixture } from '../../support/mail.js';
import { sessions, users } from '../../../src/db/schema/index.js';

describe('POST /verify and the change of email address', () => {
  // a short freshness window so the test can outlive it without outliving the access token
  const { smtp, t } = useMailFixture({ env: { SECURITY_FRESHNESS: '300' }, clearEach: false });
  // each test starts with an empty outbox and mailbox
  beforeEach(async () => {
    await t.deliver();
    smtp.clear();
  });

  const requestChange = (s: LoginResult, email: string, password = GOOD_PASSWORD) =>
    t.app.inject({ method: 'POST', url: '/change-email', headers: bearer(s.access_token), payload: { email, password } });
  const useLink = (token: string, payload?: object) =>
    t.app.inject({ method: 'POST', url: `/change-email/${token}`, ...(payload ? { payload } : {}) });

  it('POST /verify: wrong password is a field error; the right one marks the session fresh', async () => {
    const user = await makeUser(t.ctx, { email: 'verify@example.com' });
    const s = await login(t.app, user.email);
    t.clock.advance(120);
    const wrong = await t.app.inject({ method: 'POST', url: '/verify', headers: bearer(s.access_token), payload: { password: 'nope-nope-nope' } });
    expect(wrong.statusCode).toBe(400);
    expect(envelopeOf(wrong).fields).toEqual({ password: ['Password is incorrect'] });

    const sid = JSON.parse(Buffer.from(s.access_token.split('.')[1]!, 'base64url').toString()).sid;
    const [before] = await t.db.db.select().from(sessions).where(eq(sessions.id, sid));
    const ok = await t.app.inject({ method: 'POST', url: '/verify', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD } });
    expect(ok.statusCode).toBe(200);
    const [after] = await t.db.db.select().from(sessions).where(eq(sessions.id, sid));
    expect(after!.fsPaa.getTime() - before!.fsPaa.getTime()).toBeGreaterThanOrEqual(120_000);

    expect((await t.app.inject({ method: 'POST', url: '/verify', payload: { password: GOOD_PASSWORD } })).statusCode).toBe(401);
  });

  it('the whole flow: link to the new address, notice to the old, swap without a session, notice of the change', async () => {
    const user = await makeUser(t.ctx, { email: 'old-addr@example.com', firstName: 'Olga' });
    const s = await login(t.app, user.email);
    const res = await requestChange(s, 'New-Addr@Example.com');
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ message: expect.any(String) });
    // nothing changes yet
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).json().user.email).toBe('old-addr@example.com');

    await t.deliver(2);
    const link = smtp.single('New-Addr@Example.com');
    expect(link.subject).toBe('Confirm your new email address');
    expect(link.text).toContain('Hello Olga,');
    expect(link.text).toContain('valid for 2 hours');
    const notice = smtp.single('old-addr@example.com');
    expect(notice.subject).toBe('A change of your email address was requested');
    // the domain is stored in its canonical form (lower case, IDN-normalised); the local part as typed
    expect(notice.text).toContain('N***@example.com');
    expect(notice.text).not.toContain('New-Addr@');

    const token = linkToken(link, 'change-email');
    const swapped = await useLink(token);
    expect(swapped.statusCode).toBe(200);
    expect(swapped.json().user).toMatchObject({ id: user.id, email: 'New-Addr@example.com' });
    expect(swapped.json().user.confirmed_at).not.toBeNull();

    await t.deliver(3);
    expect(smtp.to('old-addr@example.com').map((m) => m.subject)).toEqual([
      'A change of your email address was requested', 'Your email address was changed',
    ]);

    await login(t.app, 'new-addr@example.com');
    expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: 'old-addr@example.com', password: GOOD_PASSWORD } })).statusCode).toBe(401);
    // the existing session lives on
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(200);

    const reuse = await useLink(token);
    expect(reuse.statusCode).toBe(400);
    expect(envelopeOf(reuse).code).toBe('LINK_INVALID');
  });

  it('needs a fresh session: 401 REAUTH_REQUIRED with reauth_required, then POST /verify', async () => {
    const user = await makeUser(t.ctx, { email: 'stale@example.com' });
    const s = await login(t.app, user.email);
    t.clock.advance(301);
    const res = await requestChange(s, 'stale-new@example.com');
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ code: 'REAUTH_REQUIRED', reauth_required: true });
    expect((await t.app.inject({ method: 'POST', url: '/verify', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD } })).statusCode).toBe(200);
    expect((await requestChange(s, 'stale-new@example.com')).statusCode).toBe(202);
    const anonymous = await t.app.inject({ method: 'POST', url: '/change-email', payload: { email: 'x@example.com', password: GOOD_PASSWORD } });
    expect(anonymous.statusCode).toBe(401);
    expect(envelopeOf(anonymous).code).toBe('AUTH_REQUIRED');
  });

  it('wrong password, the same address, a taken address, bad input', async () => {
    const user = await makeUser(t.ctx, { email: 'ce-errors@example.com' });
    await makeUser(t.ctx, { email: 'taken@example.com' });
    const s = await login(t.app, user.email);
    const wrong = await requestChange(s, 'free@example.com', 'wrong-password-1');
    expect(wrong.statusCode).toBe(400);
    expect(envelopeOf(wrong).fields).toEqual({ password: ['Password is incorrect'] });
    const same = await requestChange(s, 'CE-ERRORS@example.com');
    expect(same.statusCode).toBe(400);
    expect(Object.keys(envelopeOf(same).fields!)).toEqual(['email']);
    const taken = await requestChange(s, 'TAKEN@example.com');
    expect(taken.statusCode).toBe(409);
    expect(envelopeOf(taken).code).toBe('EMAIL_TAKEN');
    for (const payload of [{ email: 'a@b.co' }, { email: 'a@b.co\r\nBcc: x@evil.test', password: GOOD_PASSWORD }, { email: 'a@b.co', password: 'x', role: 'admin' }]) {
      const bad = await t.app.inject({ method: 'POST', url: '/change-email', headers: bearer(s.access_token), payload });
      expect(bad.statusCode).toBe(400);
      expect(envelopeOf(bad).code).toBe('VALIDATION_FAILED');
    }
    expect(await t.deliver()).toMatchObject({ claimed: 0 });
  });

  it('an address taken between the request and the link is 409 EMAIL_TAKEN; the account keeps its address', async () => {
    const user = await makeUser(t.ctx, { email: 'racer@example.com' });
    const s = await login(t.app, user.email);
    expect((await requestChange(s, 'contested@example.com')).statusCode).toBe(202);
    await t.deliver(2);
    const token = linkToken(smtp.single('contested@example.com'), 'change-email');
    await makeUser(t.ctx, { email: 'Contested@Example.com' });
    const res = await useLink(token);
    expect(res.statusCode).toBe(409);
    expect(envelopeOf(res).code).toBe('EMAIL_TAKEN');
    const [row] = await t.db.db.select().from(users).where(eq(users.id, user.id));
    expect(row!.email).toBe('racer@example.com');
  });

  it('the link expires (SECURITY_CHANGE_EMAIL_WITHIN), and dies with logout-all or a password change', async () => {
    const user = await makeUser(t.ctx, { email: 'ce-dies@example.com' });
    let s = await login(t.app, user.email);
    const linkFor = async (email: string) => {
      smtp.clear();
      expect((await requestChange(s, email)).statusCode).toBe(202);
      await t.deliver(2);
      return linkToken(smtp.single(email), 'change-email');
    };

    const old = await linkFor('ce-exp@example.com');
    t.clock.advance(7201);
    const expired = await useLink(old);
    expect(expired.statusCode).toBe(400);
    expect(envelopeOf(expired).code).toBe('LINK_EXPIRED');

    s = await login(t.app, user.email);
    const beforeLogoutAll = await linkFor('ce-la@example.com');
    expect((await t.app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(s.access_token) })).statusCode).toBe(204);
    expect(envelopeOf(await useLink(beforeLogoutAll)).code).toBe('LINK_INVALID');

    s = await login(t.app, user.email);
    const beforePasswordChange = await linkFor('ce-pw@example.com');
    const changed = await t.app.inject({ method: 'POST', url: '/change-password', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD, new_password: 'Amber-Meadow-41-Compass' } });
    expect(changed.statusCode).toBe(200);
    expect(envelopeOf(await useLink(beforePasswordChange)).code).toBe('LINK_INVALID');
  });

  it('POST /change-email/{token} takes no fields; tampering, other purposes and garbage are LINK_INVALID', async () => {
    const user = await makeUser(t.ctx, { email: 'ce-body@example.com' });
    const s = await login(t.app, user.email);
    expect((await requestChange(s, 'ce-body-new@example.com')).statusCode).toBe(202);
    await t.deliver(2);
    const token = linkToken(smtp.single('ce-body-new@example.com'), 'change-email');
    const [body, mac] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const hijack = Buffer.from(JSON.stringify({ ...claims, e: 'attacker@evil.test' })).toString('base64url');

    const extra = await useLink(token, { email: 'attacker@evil.test' });
    expect(extra.statusCode).toBe(400);
    expect(envelopeOf(extra).code).toBe('VALIDATION_FAILED');
    for (const bad of [`${hijack}.${mac}`, 'garbage', `${body}.${mac.slice(1)}`]) {
      const res = await useLink(bad);
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('LINK_INVALID');
    }
    // a change-email link is not a reset link
    expect(envelopeOf(await t.app.inject(`/reset/${token}`)).code).toBe('LINK_INVALID');
    expect((await useLink(token, {})).statusCode).toBe(200);
  });
});

describe('change of email address with SECURITY_RETURN_GENERIC_RESPONSES', () => {
  const { smtp, database } = useMailFixture({ app: false, clearEach: false });

  it('a taken address answers 202 like a free one; no link goes out for it; the notice goes to the old address either way', async () => {
    const t = await buildMailTestApp(database, smtp, { SECURITY_RETURN_GENERIC_RESPONSES: 'true', SECURITY_SEND_EMAIL_CHANGE_NOTICE: 'false' });
    try {
      const user = await makeUser(t.ctx, { email: 'gen-owner@example.com' });
      await makeUser(t.ctx, { email: 'gen-taken@example.com' });
      const s = await login(t.app, user.email);
      const taken = await t.app.inject({ method: 'POST', url: '/change-email', headers: bearer(s.access_token), payload: { email: 'gen-taken@example.com', password: GOOD_PASSWORD } });
      const free = await t.app.inject({ method: 'POST', url: '/change-email', headers: bearer(s.access_token), payload: { email: 'gen-free@example.com', password: GOOD_PASSWORD } });
      expect(taken.statusCode).toBe(202);
      expect(taken.body).toBe(free.body);
      await t.deliver(3);
      expect(smtp.to('gen-taken@example.com')).toHaveLength(0);
      expect(smtp.to('gen-owner@example.com')).toHaveLength(2);
      const token = linkToken(smtp.single('gen-free@example.com'), 'change-email');
      expect((await t.app.inject({ method: 'POST', url: `/change-email/${token}` })).statusCode).toBe(200);
      // SECURITY_SEND_EMAIL_CHANGE_NOTICE=false: no "changed" notice
      expect(await t.deliver()).toMatchObject({ claimed: 0 });
    } finally {
      await t.close();
    }
  });
});
