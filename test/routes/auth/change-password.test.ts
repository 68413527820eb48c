import { describe, expect, it } from 'vitest';
import { bearer, envelopeOf, GOOD_PASSWORD, login, makeUser, sessionCookie } from '../../support/helper.js';
import { linkToken } from '../../support/smtp.js';
import { buildMailTestApp, useMailFixture } from '../../support/mail.js';

const NEW_PASSWORD = 'Amber-Meadow-41-Compass';

describe('changeable: POST /change-password', () => {
  const { smtp, t } = useMailFixture();

  const change = (headers: Record<string, string>, payload: object) =>
    t.app.inject({ method: 'POST', url: '/change-password', headers, payload });

  it('answers like a login for this client; every other session and token dies; the notice is emailed', async () => {
    const user = await makeUser(t.ctx, { email: 'cp1@example.com', firstName: 'Cara' });
    const mine = await login(t.app, user.email);
    const other = await login(t.app, user.email);

    const res = await change(bearer(mine.access_token), { password: GOOD_PASSWORD, new_password: NEW_PASSWORD });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ token_type: 'Bearer', user: { email: 'cp1@example.com' } });
    for (const k of ['access_token', 'refresh_token', 'csrf_token']) expect(body[k]).toEqual(expect.any(String));
    expect(sessionCookie(res)).toMatch(/^session=/);

    // the new pair works
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(body.access_token) })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: body.refresh_token } })).statusCode).toBe(200);
    // everything from before is dead, this client's old token included
    for (const token of [mine.access_token, other.access_token]) {
      const dead = await t.app.inject({ url: '/auth/current-user', headers: bearer(token) });
      expect(dead.statusCode).toBe(401);
      expect(envelopeOf(dead).code).toBe('TOKEN_INVALID');
    }
    expect((await t.app.inject({ url: '/auth/current-user', headers: { cookie: other.cookie } })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'POST', url: '/refresh-token', payload: { refresh_token: other.refresh_token } })).statusCode).toBe(401);

    expect((await t.app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } })).statusCode).toBe(401);
    await login(t.app, user.email, NEW_PASSWORD);

    await t.deliver(1);
    const mail = smtp.single('cp1@example.com');
    expect(mail.subject).toBe('Your password was changed');
    expect(mail.text).toContain('Hello Cara,');
  });

  it('a wrong current password is a field error on `password`; nothing changes, no mail', async () => {
    const user = await makeUser(t.ctx, { email: 'cp2@example.com' });
    const s = await login(t.app, user.email);
    const res = await change(bearer(s.access_token), { password: 'Wrong-Password-00', new_password: NEW_PASSWORD });
    expect(res.statusCode).toBe(400);
    const env = envelopeOf(res);
    expect(env.code).toBe('VALIDATION_FAILED');
    expect(Object.keys(env.fields!)).toEqual(['password']);
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) })).statusCode).toBe(200);
    await login(t.app, user.email);
    expect(await t.deliver()).toMatchObject({ claimed: 0 });
  });

  it('the new password must differ from the current one and pass the policy', async () => {
    const user = await makeUser(t.ctx, { email: 'cp3@example.com' });
    const s = await login(t.app, user.email);
    const same = await change(bearer(s.access_token), { password: GOOD_PASSWORD, new_password: GOOD_PASSWORD });
    expect(same.statusCode).toBe(400);
    expect(envelopeOf(same).fields).toEqual({ new_password: ['The new password must differ from the current one'] });
    for (const new_password of ['short', 'password123']) {
      const res = await change(bearer(s.access_token), { password: GOOD_PASSWORD, new_password });
      expect(res.statusCode).toBe(400);
      expect(Object.keys(envelopeOf(res).fields!)).toEqual(['new_password']);
    }
    const extra = await change(bearer(s.access_token), { password: GOOD_PASSWORD, new_password: NEW_PASSWORD, confirm: NEW_PASSWORD });
    expect(extra.statusCode).toBe(400);
    expect(envelopeOf(extra).fields).toMatchObject({ confirm: ['Unknown field'] });
  });

  it('needs authentication; a cookie session needs the CSRF header, then gets a new cookie', async () => {
    const none = await t.app.inject({ method: 'POST', url: '/change-password', payload: { password: GOOD_PASSWORD, new_password: NEW_PASSWORD } });
    expect(none.statusCode).toBe(401);
    expect(envelopeOf(none).code).toBe('AUTH_REQUIRED');

    const user = await makeUser(t.ctx, { email: 'cp4@example.com' });
    const s = await login(t.app, user.email);
    const noCsrf = await change({ cookie: s.cookie }, { password: GOOD_PASSWORD, new_password: NEW_PASSWORD });
    expect(noCsrf.statusCode).toBe(403);
    expect(envelopeOf(noCsrf).code).toBe('CSRF_FAILED');

    const ok = await change({ cookie: s.cookie, 'x-csrf-token': s.csrf_token }, { password: GOOD_PASSWORD, new_password: NEW_PASSWORD });
    expect(ok.statusCode).toBe(200);
    const newCookie = sessionCookie(ok);
    expect(newCookie).not.toBe(s.cookie);
    expect((await t.app.inject({ url: '/auth/current-user', headers: { cookie: s.cookie } })).statusCode).toBe(401);
    expect((await t.app.inject({ url: '/auth/current-user', headers: { cookie: newCookie } })).statusCode).toBe(200);
  });

  it('kills a pending reset link', async () => {
    const user = await makeUser(t.ctx, { email: 'cp5@example.com' });
    await t.app.inject({ method: 'POST', url: '/reset', payload: { email: user.email } });
    await t.deliver(1);
    const token = linkToken(smtp.single(user.email), 'reset');
    const s = await login(t.app, user.email);
    expect((await change(bearer(s.access_token), { password: GOOD_PASSWORD, new_password: NEW_PASSWORD })).statusCode).toBe(200);
    const res = await t.app.inject(`/reset/${token}`);
    expect(res.statusCode).toBe(400);
    expect(envelopeOf(res).code).toBe('LINK_INVALID');
  });
});

describe('changeable: configuration', () => {
  const { smtp, database } = useMailFixture({ app: false, clearEach: false });

  it('SECURITY_CHANGEABLE=false: 404; SECURITY_SEND_PASSWORD_CHANGE_EMAIL=false: no notice', async () => {
    const off = await buildMailTestApp(database, smtp, { SECURITY_CHANGEABLE: 'false' });
    try {
      await makeUser(off.ctx, { email: 'cp-off@example.com' });
      const s = await login(off.app, 'cp-off@example.com');
      const res = await off.app.inject({ method: 'POST', url: '/change-password', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD, new_password: NEW_PASSWORD } });
      expect(res.statusCode).toBe(404);
      expect(envelopeOf(res).code).toBe('NOT_FOUND');
    } finally {
      await off.close();
    }
    const quiet = await buildMailTestApp(database, smtp, { SECURITY_SEND_PASSWORD_CHANGE_EMAIL: 'false' });
    try {
      const s = await login(quiet.app, 'cp-off@example.com');
      const res = await quiet.app.inject({ method: 'POST', url: '/change-password', headers: bearer(s.access_token), payload: { password: GOOD_PASSWORD, new_password: NEW_PASSWORD } });
      expect(res.statusCode).toBe(200);
      expect(await quiet.deliver()).toMatchObject({ claimed: 0 });
    } finally {
      await quiet.close();
    }
  });
});
