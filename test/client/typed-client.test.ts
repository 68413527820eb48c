// The OpenAPI document proven by a real client: types generated from openapi/openapi.json by
// openapi-typescript (npm run openapi:types, part of typecheck) drive a full journey through
// openapi-fetch against a listening server. A contract change that breaks clients fails tsc or this test.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import createClient from 'openapi-fetch';
import type { paths } from '../generated/api.js';
import { buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { SmtpCapture } from '../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../support/mail.js';

describe('typed client journey (openapi-typescript + openapi-fetch, real HTTP)', () => {
  let database: TestDatabase;
  let t: TestApp;
  let baseUrl: string;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('register → login → current user → refresh → sessions → change password → personal token → logout', async () => {
    const api = createClient<paths>({ baseUrl });
    const email = 'typed-client@example.com';

    const reg = await api.POST('/register', { body: { email, password: GOOD_PASSWORD, first_name: 'Typed', last_name: 'Client' } });
    expect(reg.response.status).toBe(201);
    expect(reg.data && 'user' in reg.data ? reg.data.user.full_name : null).toBe('Typed Client');

    const login = await api.POST('/login', { body: { email, password: GOOD_PASSWORD } });
    expect(login.response.status).toBe(200);
    // POST /login answers the token pair or, with two-factor authentication, a tf_token: narrow it
    const answer = login.data!;
    if (!('access_token' in answer)) throw new Error('expected a one-step login');
    const tokens = answer;
    expect(tokens.token_type).toBe('Bearer');
    const auth = { headers: { authorization: `Bearer ${tokens.access_token}` } };

    const me = await api.GET('/auth/current-user', auth);
    expect(me.data?.status).toBe('success');
    expect(me.data?.user.email).toBe(email);
    expect(me.data?.user.roles).toEqual(['Citizen']);

    const refreshed = await api.POST('/refresh-token', { body: { refresh_token: tokens.refresh_token } });
    expect(refreshed.response.status).toBe(200);
    const next = refreshed.data!;
    expect(next.refresh_token).not.toBe(tokens.refresh_token);
    const auth2 = { headers: { authorization: `Bearer ${next.access_token}` } };

    const sessions = await api.GET('/auth/sessions', auth2);
    expect(sessions.response.status, JSON.stringify(sessions.error)).toBe(200);
    expect(sessions.data?.sessions.filter((s) => s.current)).toHaveLength(1);

    const changed = await api.POST('/change-password', { ...auth2, body: { password: GOOD_PASSWORD, new_password: 'Brand-New-Harbor-71-Lantern' } });
    expect(changed.response.status).toBe(200);
    const auth3 = { headers: { authorization: `Bearer ${changed.data!.access_token}` } };
    // every other session died; this client got a new pair
    expect((await api.GET('/auth/current-user', auth2)).response.status).toBe(401);
    expect((await api.GET('/auth/current-user', auth3)).data?.user.email).toBe(email);

    const pat = await api.POST('/auth/tokens', { ...auth3, body: { name: 'typed-client', expires_in: 3600 } });
    expect(pat.response.status).toBe(201);
    const viaPat = await api.GET('/auth/current-user', { headers: { authorization: `Bearer ${pat.data!.token}` } });
    expect(viaPat.data?.user.email).toBe(email);
    const patList = await api.GET('/auth/tokens', auth3);
    expect(patList.data?.tokens.map((x) => x.name)).toEqual(['typed-client']);

    const bad = await api.POST('/login', { body: { email, password: 'Wrong-Password-123' } });
    expect(bad.response.status).toBe(401);
    expect(bad.error?.code).toBe('INVALID_CREDENTIALS');

    // requestBody.required is false: a generated client logs out without inventing a body
    const out = await api.POST('/logout', auth3);
    expect(out.response.status).toBe(204);
    const after = await api.GET('/auth/current-user', auth3);
    expect(after.response.status).toBe(401);
    expect(after.error?.code).toBe('TOKEN_INVALID');
  });
});

describe('typed client journey: sign in with an emailed code (real SMTP, real HTTP)', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  let baseUrl: string;
  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    t = await buildMailTestApp(database, smtp);
    baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await t.close();
    await smtp.stop();
    await database.drop();
  });

  it('send-code → code from the mailbox → us-signin → current user; the code works once', async () => {
    const api = createClient<paths>({ baseUrl });
    const user = await makeUser(t.ctx, { email: 'typed-code@example.com' });
    const sent = await api.POST('/us-signin/send-code', { body: { identity: user.email, chosen_method: 'email' } });
    expect(sent.response.status).toBe(202);
    await t.deliver(1);
    const code = /sign-in code is ([0-9]{6})/.exec(smtp.to(user.email)[0]!.text)![1]!;

    const signed = await api.POST('/us-signin', { body: { identity: user.email, passcode: code } });
    expect(signed.response.status).toBe(200);
    const answer = signed.data!;
    if (!('access_token' in answer)) throw new Error('expected a one-step sign-in');
    const me = await api.GET('/auth/current-user', { headers: { authorization: `Bearer ${answer.access_token}` } });
    expect(me.data?.user.email).toBe(user.email);

    const reused = await api.POST('/us-signin', { body: { identity: user.email, passcode: code } });
    expect(reused.response.status).toBe(401);
    expect(reused.error?.code).toBe('INVALID_CREDENTIALS');
  });
});
