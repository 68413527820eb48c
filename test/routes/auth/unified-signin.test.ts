// Unified sign-in by email through the real SMTP server (test/support/smtp.ts): the 6-digit code and
// the sign-in link, single use, expiry on the injected clock, scanner-safe GET, enumeration parity
// (same answers, nothing delivered for an unknown address), lockout (also under a parallel burst),
// per-address and per-IP send limits (parallel too), 2FA still applying, nothing usable at rest.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { generate } from 'otplib';
import { outbox, usSigninCodes, webauthnChallenges } from '../../../src/db/schema/index.js';
import { pruneSecurityState } from '../../../src/security/lockout.js';
import { bearer, buildTestApp, createTestDatabase, envelopeOf, login, makeUser, TestClock, type TestDatabase } from '../../support/helper.js';
import { SmtpCapture, type CapturedMail } from '../../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../../support/mail.js';

const codeOf = (mail: CapturedMail) => {
  const m = /sign-in code is ([0-9]{6})/.exec(mail.text);
  if (!m) throw new Error(`no code in: ${mail.text}`);
  return m[1]!;
};
const linkOf = (mail: CapturedMail) => {
  const m = /\/us-signin\/link\/([A-Za-z0-9_.%-]+)/.exec(mail.text) ?? /token=([A-Za-z0-9_.%-]+)/.exec(mail.text);
  if (!m) throw new Error(`no link in: ${mail.text}`);
  return decodeURIComponent(m[1]!);
};

describe('unified sign-in by email (/us-signin)', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  let clock: TestClock;

  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    clock = new TestClock();
    t = await buildMailTestApp(database, smtp, { SECURITY_LOCKOUT_THRESHOLD: '8', SECURITY_US_SEND_LIMIT: '20/15m' }, clock);
  });
  afterAll(async () => {
    await t.close();
    await smtp.stop();
    await database.drop();
  });
  beforeEach(() => smtp.clear());

  const send = (identity: string) => t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity, chosen_method: 'email' } });
  const signin = (identity: string, passcode: string) => t.app.inject({ method: 'POST', url: '/us-signin', payload: { identity, passcode } });
  const linkSignin = (token: string) => t.app.inject({ method: 'POST', url: '/us-signin/link', payload: { token } });

  async function mailFor(email: string): Promise<CapturedMail> {
    expect((await send(email)).statusCode).toBe(202);
    await t.deliver();
    const mail = smtp.to(email).at(-1);
    if (!mail) throw new Error(`no mail for ${email}`);
    return mail;
  }

  it('the code signs in once: the login answer with a session; reuse is 401', async () => {
    const user = await makeUser(t.ctx, { firstName: 'Ursula' });
    const mail = await mailFor(user.email);
    expect(mail.subject).toBe('Your sign-in code');
    expect(mail.text).toContain('Hello Ursula,');
    expect(mail.text).toContain('valid for 10 minutes');
    const code = codeOf(mail);
    const res = await signin(user.email.toUpperCase(), code);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.email).toBe(user.email);
    expect(res.cookies.some((c) => c.name === 'session')).toBe(true);
    expect((await t.app.inject({ url: '/auth/current-user', headers: bearer(res.json().access_token) })).statusCode).toBe(200);
    const again = await signin(user.email, code);
    expect(again.statusCode).toBe(401);
    expect(envelopeOf(again).code).toBe('INVALID_CREDENTIALS');
    // and the link mailed with it died with it
    expect((await linkSignin(linkOf(mail))).statusCode).toBe(400);
  });

  it('the link: GET checks without consuming (scanners), POST signs in once; the code mailed with it is then used up', async () => {
    const user = await makeUser(t.ctx);
    const mail = await mailFor(user.email);
    const token = linkOf(mail);
    expect(mail.text).toContain(`http://127.0.0.1:5000/us-signin/link/${encodeURIComponent(token)}`);
    for (let i = 0; i < 3; i++) {
      const check = await t.app.inject(`/us-signin/link/${encodeURIComponent(token)}`);
      expect(check.statusCode).toBe(200);
      expect(check.json()).toEqual({ valid: true });
    }
    const res = await linkSignin(token);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.id).toBe(user.id);
    const reuse = await linkSignin(token);
    expect(reuse.statusCode).toBe(400);
    expect(envelopeOf(reuse).code).toBe('LINK_INVALID');
    expect((await t.app.inject(`/us-signin/link/${encodeURIComponent(token)}`)).statusCode).toBe(400);
    expect((await signin(user.email, codeOf(mail))).statusCode).toBe(401);
    const forged = `${token.split('.')[0]}.${'A'.repeat(43)}`;
    expect(envelopeOf(await linkSignin(forged)).code).toBe('LINK_INVALID');
  });

  it('both expire after SECURITY_US_TOKEN_VALIDITY (injected clock)', async () => {
    const user = await makeUser(t.ctx);
    const mail = await mailFor(user.email);
    clock.advance(601);
    expect(envelopeOf(await signin(user.email, codeOf(mail))).code).toBe('INVALID_CREDENTIALS');
    const link = await linkSignin(linkOf(mail));
    expect(link.statusCode).toBe(400);
    expect(envelopeOf(link).code).toBe('LINK_EXPIRED');
  });

  it('enumeration parity: an unknown address gets the same answer, nothing is delivered, and a sign-in fails alike', async () => {
    const user = await makeUser(t.ctx);
    const known = await send(user.email);
    const unknown = await send('nobody-at-all@example.com');
    expect(unknown.statusCode).toBe(known.statusCode);
    expect(unknown.body).toBe(known.body);
    await t.deliver();
    await smtp.waitFor(1);
    expect(smtp.to('nobody-at-all@example.com')).toEqual([]);
    expect(smtp.to(user.email)).toHaveLength(1);
    const rows = await t.db.db.select().from(outbox).where(eq(outbox.template, 'us_signin'));
    expect(rows.find((r) => r.recipient === 'nobody-at-all@example.com')!.status).toBe('skipped');
    const a = await signin('nobody-at-all@example.com', '123456');
    const b = await signin(user.email, codeOf(smtp.to(user.email)[0]!) === '123456' ? '654321' : '123456');
    expect(a.statusCode).toBe(401);
    expect(b.statusCode).toBe(401);
    expect(a.body).toBe(b.body);
  });

  it('nothing usable at rest: the code row holds a keyed hash, the outbox row only the row id', async () => {
    const user = await makeUser(t.ctx);
    const mail = await mailFor(user.email);
    const code = codeOf(mail);
    const token = linkOf(mail);
    const [row] = await t.db.db.select().from(outbox).where(eq(outbox.recipient, user.email));
    expect(JSON.stringify(row!.payload)).not.toContain(code);
    expect(Object.keys(row!.payload)).toEqual(['code_id']);
    const codes = await t.db.db.select().from(usSigninCodes).where(eq(usSigninCodes.email, user.email.toLowerCase()));
    expect(codes).toHaveLength(1);
    expect(JSON.stringify(codes)).not.toContain(code);
    expect(JSON.stringify(codes)).not.toContain(token.split('.')[1]);
  });

  it('wrong codes count toward the lockout; five wrong codes kill the code itself', async () => {
    const user = await makeUser(t.ctx);
    const mail = await mailFor(user.email);
    const right = codeOf(mail);
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i++) expect((await signin(user.email, wrong)).statusCode).toBe(401);
    // the code is dead (5 attempts), though the address is not locked yet (threshold 8)
    expect((await signin(user.email, right)).statusCode).toBe(401);
    const fresh = await mailFor(user.email);
    for (let i = 0; i < 2; i++) expect((await signin(user.email, wrong)).statusCode).toBe(401);
    // the 8th failure locks: even the right code is refused now
    const locked = await signin(user.email, codeOf(fresh));
    expect(locked.statusCode).toBe(429);
    expect(envelopeOf(locked).code).toBe('ACCOUNT_LOCKED');
    expect(locked.headers['retry-after']).toBeDefined();
  });

  it('a parallel burst of wrong codes cannot pass the threshold (repeated)', async () => {
    for (let round = 0; round < 5; round++) {
      const user = await makeUser(t.ctx);
      await mailFor(user.email);
      const results = await Promise.all(Array.from({ length: 16 }, () => signin(user.email, '999999')));
      const statuses = results.map((r) => r.statusCode);
      expect(statuses.filter((s) => s === 401)).toHaveLength(8);
      expect(statuses.filter((s) => s === 429)).toHaveLength(8);
    }
  });

  it('two-factor authentication still applies after an email code', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const setup = await t.app.inject({ method: 'POST', url: '/tf-setup', payload: { method: 'authenticator' }, headers: bearer(s.access_token) });
    const code = await generate({ secret: setup.json().secret, epoch: Math.floor(clock.now().getTime() / 1000) });
    expect((await t.app.inject({ method: 'POST', url: `/tf-setup/${setup.json().tf_setup_token}`, payload: { code }, headers: bearer(s.access_token) })).statusCode).toBe(200);
    const mail = await mailFor(user.email);
    const res = await signin(user.email, codeOf(mail));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ tf_required: true, tf_token: expect.any(String), tf_method: 'authenticator', tf_methods: ['authenticator'] });
    expect(res.cookies.some((c) => c.name === 'session')).toBe(false);
  });

  it('a disabled account gets no code mailed', async () => {
    const user = await makeUser(t.ctx, { active: false });
    expect((await send(user.email)).statusCode).toBe(202);
    await t.deliver();
    expect(smtp.to(user.email)).toEqual([]);
  });

  it('pruning drops code rows and WebAuthn challenges a day past their expiry, and keeps live ones', async () => {
    const user = await makeUser(t.ctx);
    await send(user.email);
    await t.app.inject({ method: 'POST', url: '/wan-signin', payload: {} });
    const count = async () => [
      (await t.db.db.select().from(usSigninCodes).where(eq(usSigninCodes.email, user.email.toLowerCase()))).length,
      (await t.db.db.select().from(webauthnChallenges)).length > 0,
    ];
    await pruneSecurityState(t.ctx);
    expect(await count()).toEqual([1, true]);
    clock.advance(86400 + 601);
    await pruneSecurityState(t.ctx);
    expect(await count()).toEqual([0, false]);
  });

  it('bad input is 400 (malformed address, wrong method, unknown fields)', async () => {
    for (const payload of [{ identity: 'not-an-email', chosen_method: 'email' }, { identity: 'a@example.com', chosen_method: 'sms' },
      { identity: 'a@example.com', chosen_method: 'email', x: 1 }, ['a@example.com']]) {
      const res = await t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: payload as object });
      expect(res.statusCode).toBe(400);
      expect(envelopeOf(res).code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('unified sign-in: send limits and templates', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();

  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
  });
  afterAll(async () => {
    await smtp.stop();
    await database.drop();
  });

  it('per address (known or not): a parallel burst gets exactly SECURITY_US_SEND_LIMIT codes, then 429 with Retry-After (repeated)', async () => {
    const t = await buildTestApp(database, { SECURITY_US_SEND_LIMIT: '3/15m' });
    try {
      const known = await makeUser(t.ctx);
      for (const [i, email] of [known.email, 'ghost-1@example.com', 'ghost-2@example.com', 'ghost-3@example.com'].entries()) {
        const results = await Promise.all(Array.from({ length: 10 }, () =>
          t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: i % 2 ? email.toUpperCase() : email, chosen_method: 'email' } })));
        expect(results.filter((r) => r.statusCode === 202)).toHaveLength(3);
        const refused = results.filter((r) => r.statusCode === 429);
        expect(refused).toHaveLength(7);
        expect(envelopeOf(refused[0]!).code).toBe('RATE_LIMITED');
        expect(Number(refused[0]!.headers['retry-after'])).toBeGreaterThan(0);
        const rows = await t.db.db.select().from(usSigninCodes).where(eq(usSigninCodes.email, email.toLowerCase()));
        expect(rows).toHaveLength(3);
      }
    } finally {
      await t.close();
    }
  });

  it('per client address: RATE_LIMIT_AUTH counts send-code requests across addresses', async () => {
    const t = await buildTestApp(database, { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_AUTH: '4/1m', RATE_LIMIT_GLOBAL: '1000/1m' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push((await t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: `ip-${i}@example.com`, chosen_method: 'email' } })).statusCode);
      }
      expect(statuses).toEqual([202, 202, 202, 202, 429, 429]);
    } finally {
      await t.close();
    }
  });

  it('SECURITY_US_SIGNIN_URL_TEMPLATE puts the token into the app\'s own link', async () => {
    const t = await buildMailTestApp(database, smtp, { SECURITY_US_SIGNIN_URL_TEMPLATE: 'countyapp://signin?token={token}' });
    try {
      const user = await makeUser(t.ctx);
      await t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: user.email, chosen_method: 'email' } });
      await t.deliver(1);
      const mail = smtp.to(user.email)[0]!;
      expect(mail.text).toMatch(/countyapp:\/\/signin\?token=[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}/);
      const res = await t.app.inject({ method: 'POST', url: '/us-signin/link', payload: { token: linkOf(mail) } });
      expect(res.statusCode, res.body).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('SECURITY_UNIFIED_SIGNIN=false: the routes are 404', async () => {
    const t = await buildTestApp(database, { SECURITY_UNIFIED_SIGNIN: 'false', SECURITY_WAN_ENABLED: 'false' });
    try {
      expect((await t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: 'a@example.com', chosen_method: 'email' } })).statusCode).toBe(404);
      expect((await t.app.inject({ method: 'POST', url: '/wan-signin', payload: {} })).statusCode).toBe(404);
    } finally {
      await t.close();
    }
  });
});
