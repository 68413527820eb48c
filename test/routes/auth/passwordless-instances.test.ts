// Passwordless state is in PostgreSQL, so single use and limits hold across instances: two apps on
// one database, parallel requests split between them, repeated so a rare race would show.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { usSigninCodes, webauthnCredentials } from '../../../src/db/schema/index.js';
import { bearer, buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { SoftwareAuthenticator } from '../../support/authenticator.js';
import { PASSKEY_ENV, PASSKEY_ORIGIN, registerPasskey } from '../../support/passkeys.js';
import { SmtpCapture } from '../../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../../support/mail.js';

describe('passwordless across two instances', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let a: MailTestApp;
  let b: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    const env = { ...PASSKEY_ENV, SECURITY_US_SEND_LIMIT: '4/15m', SECURITY_LOCKOUT_THRESHOLD: '50' };
    a = await buildMailTestApp(database, smtp, env);
    b = await buildTestApp(database, env);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await smtp.stop();
    await database.drop();
  });

  const on = (i: number) => (i % 2 ? b.app : a.app);

  it('one sign-in challenge answered on both instances at once: exactly one session (20 rounds)', async () => {
    const user = await makeUser(a.ctx);
    const { key } = await registerPasskey(a.app, (await login(a.app, user.email)).access_token, 'k');
    for (let round = 0; round < 20; round++) {
      const o = (await on(round).inject({ method: 'POST', url: '/wan-signin', payload: {} })).json();
      const assertion = key.get(o.credential_options);
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        on(i).inject({ method: 'POST', url: `/wan-signin/${o.wan_state}`, payload: { credential: assertion } })));
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 401, 401, 401, 401, 401]);
    }
  });

  it('one registration challenge finished on both instances at once: exactly one credential (10 rounds)', async () => {
    const user = await makeUser(a.ctx);
    const access = (await login(a.app, user.email)).access_token;
    for (let round = 0; round < 10; round++) {
      const start = (await a.app.inject({ method: 'POST', url: '/wan-register', payload: { name: `k${round}`, usage: 'first' }, headers: bearer(access) })).json();
      const attestation = new SoftwareAuthenticator(PASSKEY_ORIGIN, 'localhost').create(start.credential_options);
      const results = await Promise.all(Array.from({ length: 4 }, (_, i) =>
        on(i).inject({ method: 'POST', url: `/wan-register/${start.wan_state}`, payload: { credential: attestation }, headers: bearer(access) })));
      expect(results.map((r) => r.statusCode).sort()).toEqual([201, 400, 400, 400]);
    }
    expect(await a.db.db.select().from(webauthnCredentials).where(eq(webauthnCredentials.userId, user.id))).toHaveLength(10);
  });

  it('the send limit is one budget across instances, and one code signs in once (10 rounds)', async () => {
    for (let round = 0; round < 10; round++) {
      const user = await makeUser(a.ctx);
      const sends = await Promise.all(Array.from({ length: 10 }, (_, i) =>
        on(i).inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: user.email, chosen_method: 'email' } })));
      expect(sends.filter((r) => r.statusCode === 202)).toHaveLength(4);
      expect(sends.filter((r) => r.statusCode === 429)).toHaveLength(6);
      expect(await a.db.db.select().from(usSigninCodes).where(eq(usSigninCodes.email, user.email.toLowerCase()))).toHaveLength(4);
      smtp.clear();
      await a.deliver(4);
      const codes = smtp.to(user.email).map((m) => /sign-in code is ([0-9]{6})/.exec(m.text)![1]!);
      const code = codes[0]!;
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        on(i).inject({ method: 'POST', url: '/us-signin', payload: { identity: user.email, passcode: code } })));
      expect(results.filter((r) => r.statusCode === 200)).toHaveLength(1);
      expect(results.filter((r) => r.statusCode === 401)).toHaveLength(5);
    }
  });
});
