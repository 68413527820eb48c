// Email as a second-factor method, through the real SMTP server (test/support/smtp.ts): setup by a
// mailed code (POST /tf-setup method "email", confirmed like TOTP), the code mailed at every login
// (tf_required with tf_method "email"), POST /tf-validate completing the login through the one
// pipeline, POST /tf-send-code, single use, expiry on the injected clock, wrong codes counted toward
// the lockout, the send budget, nothing usable at rest, disable and reset-access, forced roles, the
// first factor named in the audit (bullet: an email-code first factor), and a concurrent test: two
// parallel validations of one code on two app instances open exactly one session (200 rounds).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { and, desc, eq, sql } from 'drizzle-orm';
import { auditEvents, outbox, twoFactorEmailCodes } from '../../../src/db/schema/index.js';
import { findUser, resetUserAccess } from '../../../src/security/datastore.js';
import { openTwoFactorLogin, twoFactorMailContent } from '../../../src/security/two-factor.js';
import { NO_SOURCE } from '../../../src/security/audit.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, login, makeUser, TestClock, type TestApp, type TestDatabase,
} from '../../support/helper.js';
import { SmtpCapture, type CapturedMail } from '../../support/smtp.js';
import { buildMailTestApp, type MailTestApp } from '../../support/mail.js';
import { PASSKEY_ENV, registerPasskey } from '../../support/passkeys.js';

const post = (app: FastifyInstance, url: string, payload: object = {}, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, payload, headers });

const codeIn = (mail: CapturedMail) => {
  const m = /(?:two-factor|confirmation) code is ([0-9]{6})/.exec(mail.text);
  if (!m) throw new Error(`no code in: ${mail.text}`);
  return m[1]!;
};

describe('email as a second factor', () => {
  let database: TestDatabase;
  const smtp = new SmtpCapture();
  let t: MailTestApp;
  let clock: TestClock;

  beforeAll(async () => {
    database = await createTestDatabase();
    await smtp.start();
    clock = new TestClock();
    t = await buildMailTestApp(database, smtp, {
      SECURITY_LOCKOUT_THRESHOLD: '6', SECURITY_US_SEND_LIMIT: '4/15m', SECURITY_FRESHNESS: '1h', SECURITY_UNIFIED_SIGNIN: 'true', ...PASSKEY_ENV,
    }, clock);
  });
  afterAll(async () => {
    await t.close();
    await smtp.stop();
    await database.drop();
  });
  beforeEach(() => smtp.clear());

  /** The newest mail to the address after one delivery pass. */
  async function lastMail(email: string): Promise<CapturedMail> {
    await t.deliver();
    const mail = smtp.to(email).at(-1);
    if (!mail) throw new Error(`no mail for ${email}`);
    return mail;
  }

  const methodOf = async (userId: number) => (await findUser(t.ctx.db, { id: userId }))!.tfPrimaryMethod;

  /** A user with the email method on (set up over HTTP), and the session that set it up. */
  async function enrolled() {
    const user = await makeUser(t.ctx, { firstName: 'Edna' });
    const s = await login(t.app, user.email);
    const start = await post(t.app, '/tf-setup', { method: 'email' }, bearer(s.access_token));
    expect(start.statusCode, start.body).toBe(200);
    const code = codeIn(await lastMail(user.email));
    const done = await post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code }, bearer(s.access_token));
    expect(done.statusCode, done.body).toBe(200);
    smtp.clear();
    return { user, access: s.access_token, recoveryCodes: done.json().recovery_codes as string[] };
  }

  async function passwordStep(email: string) {
    const res = await post(t.app, '/login', { email, password: GOOD_PASSWORD });
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { tf_required: true; tf_token: string; tf_method: string; tf_methods: string[] };
  }

  it('setup: POST /tf-setup {method:"email"} mails a code to the account; a wrong code is 400, the right one switches it on once', async () => {
    const user = await makeUser(t.ctx, { firstName: 'Edna' });
    const s = await login(t.app, user.email);
    const start = await post(t.app, '/tf-setup', { method: 'email' }, bearer(s.access_token));
    expect(start.statusCode, start.body).toBe(200);
    expect(start.json()).toEqual({ method: 'email', tf_setup_token: expect.any(String), expires_in: 600 });
    expect(await methodOf(user.id)).toBeNull(); // nothing changes before the code
    const mail = await lastMail(user.email);
    expect(mail.subject).toBe('Confirm two-factor sign-in by email');
    expect(mail.text).toContain('Hello Edna,');
    expect(mail.text).toContain('valid for 10 minutes');
    const code = codeIn(mail);
    // nothing usable at rest: the outbox row names the code row; the code row holds a keyed hash
    const [queued] = await t.db.db.select().from(outbox).where(and(eq(outbox.template, 'tf_email_code'), eq(outbox.userId, user.id)));
    expect(JSON.stringify(queued!.payload)).not.toContain(code);
    const [row] = await t.db.db.select().from(twoFactorEmailCodes).where(eq(twoFactorEmailCodes.userId, user.id));
    expect(row!.codeHash).not.toContain(code);

    const wrongCode = code === '000000' ? '111111' : '000000';
    const wrong = await post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code: wrongCode }, bearer(s.access_token));
    expect(wrong.statusCode).toBe(400);
    expect(envelopeOf(wrong).code).toBe('TWO_FACTOR_INVALID');
    const ok = await post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code }, bearer(s.access_token));
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().recovery_codes).toHaveLength(10);
    expect(await methodOf(user.id)).toBe('email');
    const me = await t.app.inject({ url: '/auth/current-user', headers: bearer(s.access_token) });
    expect(JSON.stringify(me.json())).toContain('"tf_enabled":true');
    // the code works once
    const again = await post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code }, bearer(s.access_token));
    expect(again.statusCode).toBe(400);
  });

  it('setup: the mailed code expires (injected clock) and dies after 5 wrong tries, even for the right code', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const a = await post(t.app, '/tf-setup', { method: 'email' }, bearer(s.access_token));
    const codeA = codeIn(await lastMail(user.email));
    const b = await post(t.app, '/tf-setup', { method: 'email' }, bearer(s.access_token));
    const codeB = codeIn(await lastMail(user.email));
    for (let i = 0; i < 5; i++) {
      const guess = String((Number(codeB) + 1 + i) % 1_000_000).padStart(6, '0');
      expect((await post(t.app, `/tf-setup/${b.json().tf_setup_token}`, { code: guess }, bearer(s.access_token))).statusCode).toBe(400);
    }
    expect((await post(t.app, `/tf-setup/${b.json().tf_setup_token}`, { code: codeB }, bearer(s.access_token))).statusCode).toBe(400);
    clock.advance(601);
    try {
      const late = await post(t.app, `/tf-setup/${a.json().tf_setup_token}`, { code: codeA }, bearer(s.access_token));
      expect(late.statusCode).toBe(400);
      expect(await methodOf(user.id)).toBeNull();
    } finally {
      clock.advance(-601);
    }
  });

  it('login: tf_required names the email method and mails a code; POST /tf-validate with it completes the login once', async () => {
    const { user } = await enrolled();
    const step = await passwordStep(user.email);
    expect(step).toEqual({ tf_required: true, tf_token: expect.any(String), tf_method: 'email', tf_methods: ['email'] });
    const mail = await lastMail(user.email);
    expect(mail.subject).toBe('Your two-factor sign-in code');
    expect(mail.text).toContain('valid for 5 minutes'); // never past the pending login (SECURITY_TWO_FACTOR_TOKEN_WITHIN)
    const code = codeIn(mail);
    const res = await post(t.app, '/tf-validate', { tf_token: step.tf_token, code });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.email).toBe(user.email);
    expect(res.cookies.some((c) => c.name === 'session')).toBe(true);
    const [event] = await t.db.db.select().from(auditEvents)
      .where(and(eq(auditEvents.targetUserId, user.id), eq(auditEvents.action, 'login.succeeded'))).orderBy(desc(auditEvents.id)).limit(1);
    expect(event!.details).toMatchObject({ second_factor: 'email' });
    expect(event!.details).not.toHaveProperty('method');
    // reuse: the tf_token is spent, and a new pending login does not take the old code
    expect((await post(t.app, '/tf-validate', { tf_token: step.tf_token, code })).statusCode).toBe(401);
    const next = await passwordStep(user.email);
    const reuse = await post(t.app, '/tf-validate', { tf_token: next.tf_token, code });
    expect(reuse.statusCode).toBe(401);
    expect(envelopeOf(reuse).code).toBe('TWO_FACTOR_INVALID');
  });

  it('a recovery code completes an email-method login too', async () => {
    const { user, recoveryCodes } = await enrolled();
    const step = await passwordStep(user.email);
    expect((await post(t.app, '/tf-validate', { tf_token: step.tf_token, code: recoveryCodes[0]! })).statusCode).toBe(200);
  });

  it('the login code expires with the injected clock', async () => {
    const { user } = await enrolled();
    const step = await passwordStep(user.email);
    const code = codeIn(await lastMail(user.email));
    clock.advance(5 * 60 + 1);
    try {
      expect((await post(t.app, '/tf-validate', { tf_token: step.tf_token, code })).statusCode).toBe(401);
    } finally {
      clock.advance(-(5 * 60 + 1));
    }
  });

  it('POST /tf-send-code mails another code (the earlier one still works); over the budget 429, and a login over it still answers tf_required', async () => {
    const { user } = await enrolled(); // setup used 1 of the 4 sends
    const step = await passwordStep(user.email); // 2
    const first = codeIn(await lastMail(user.email));
    const resend = await post(t.app, '/tf-send-code', { tf_token: step.tf_token }); // 3
    expect(resend.statusCode, resend.body).toBe(202);
    const second = codeIn(await lastMail(user.email));
    expect(smtp.to(user.email)).toHaveLength(2);
    expect((await post(t.app, '/tf-send-code', { tf_token: step.tf_token })).statusCode).toBe(202); // 4
    const over = await post(t.app, '/tf-send-code', { tf_token: step.tf_token });
    expect(over.statusCode).toBe(429);
    expect(envelopeOf(over).code).toBe('RATE_LIMITED');
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    // over the budget a login still answers tf_required (a recovery code still works); no mail goes out
    await t.deliver();
    smtp.clear();
    const throttled = await passwordStep(user.email);
    expect(throttled.tf_method).toBe('email');
    await t.deliver();
    expect(smtp.to(user.email)).toHaveLength(0);
    // the earlier code still works after a resend; the pending login is then used up for the later one
    expect(second).toMatch(/^[0-9]{6}$/);
    expect((await post(t.app, '/tf-validate', { tf_token: step.tf_token, code: first })).statusCode).toBe(200);
    expect((await post(t.app, '/tf-validate', { tf_token: step.tf_token, code: second })).statusCode).toBe(401);
    const dead = await post(t.app, '/tf-send-code', { tf_token: 'nope' });
    expect(dead.statusCode).toBe(401);
    expect(envelopeOf(dead).code).toBe('TWO_FACTOR_INVALID');
  });

  it('concurrent: 12 parallel resends against a budget with 2 sends left: exactly 2 × 202, the rest 429', async () => {
    const { user } = await enrolled(); // setup: 1 of 4
    const step = await passwordStep(user.email); // login: 2 of 4
    const answers = await Promise.all(Array.from({ length: 12 }, () => post(t.app, '/tf-send-code', { tf_token: step.tf_token })));
    const statuses = answers.map((r) => r.statusCode);
    expect(statuses.filter((c) => c === 202)).toHaveLength(2);
    expect(statuses.filter((c) => c === 429)).toHaveLength(10);
    const [{ n }] = await t.db.sql`select count(*)::int as n from two_factor_email_codes where user_id = ${user.id} and purpose = 'login'` as unknown as [{ n: number }];
    expect(n).toBe(3);
  });

  it('concurrent: 15 parallel wrong guesses at a setup code take exactly 5 attempts; the right code is then refused', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const start = await post(t.app, '/tf-setup', { method: 'email' }, bearer(s.access_token));
    const code = codeIn(await lastMail(user.email));
    const guesses = Array.from({ length: 15 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, '0'));
    const answers = await Promise.all(guesses.map((g) => post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code: g }, bearer(s.access_token))));
    expect(answers.every((r) => r.statusCode === 400)).toBe(true);
    const [row] = await t.db.db.select().from(twoFactorEmailCodes).where(eq(twoFactorEmailCodes.userId, user.id));
    expect(row!.attempts).toBe(5);
    expect((await post(t.app, `/tf-setup/${start.json().tf_setup_token}`, { code }, bearer(s.access_token))).statusCode).toBe(400);
    expect(await methodOf(user.id)).toBeNull();
  });

  it('/tf-send-code for an authenticator-method login is 409 CONFLICT', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const setup = await post(t.app, '/tf-setup', { method: 'authenticator' }, bearer(s.access_token));
    const { generate } = await import('otplib');
    const code = await generate({ secret: setup.json().secret, epoch: Math.floor(clock.now().getTime() / 1000) });
    expect((await post(t.app, `/tf-setup/${setup.json().tf_setup_token}`, { code }, bearer(s.access_token))).statusCode).toBe(200);
    const step = await passwordStep(user.email);
    const res = await post(t.app, '/tf-send-code', { tf_token: step.tf_token });
    expect(res.statusCode).toBe(409);
    expect(envelopeOf(res).code).toBe('CONFLICT');
  });

  it('wrong codes count toward the account lockout, like wrong TOTP codes', async () => {
    const { user } = await enrolled();
    const wrongFor = (code: string) => (code === '000000' ? '111111' : '000000');
    // five wrong codes use up one tf_token (each a counted failure)
    const one = await passwordStep(user.email);
    const wrong1 = wrongFor(codeIn(await lastMail(user.email)));
    for (let i = 0; i < 5; i++) expect((await post(t.app, '/tf-validate', { tf_token: one.tf_token, code: wrong1 })).statusCode).toBe(401);
    // the sixth failure (threshold 6) starts the lock; the next check is refused before the code is looked at
    const two = await passwordStep(user.email);
    const right = codeIn(await lastMail(user.email));
    expect((await post(t.app, '/tf-validate', { tf_token: two.tf_token, code: wrongFor(right) })).statusCode).toBe(401);
    const locked = await post(t.app, '/tf-validate', { tf_token: two.tf_token, code: right });
    expect(locked.statusCode).toBe(429);
    expect(envelopeOf(locked).code).toBe('ACCOUNT_LOCKED');
    expect((await post(t.app, '/login', { email: user.email, password: GOOD_PASSWORD })).statusCode).toBe(429);
  });

  it('tf-disable and reset-access switch the email method off', async () => {
    const a = await enrolled();
    expect((await t.app.inject({ method: 'POST', url: '/tf-disable', headers: bearer(a.access) })).statusCode).toBe(204);
    expect(await methodOf(a.user.id)).toBeNull();
    expect((await post(t.app, '/login', { email: a.user.email, password: GOOD_PASSWORD })).json().access_token).toEqual(expect.any(String));

    const b = await enrolled();
    await resetUserAccess(t.ctx, b.user.id);
    expect(await methodOf(b.user.id)).toBeNull();
    expect((await post(t.app, '/login', { email: b.user.email, password: GOOD_PASSWORD })).json().access_token).toEqual(expect.any(String));
  });

  it('an email-code first factor with the email second factor: the completed login is audited under email_code', async () => {
    const { user } = await enrolled();
    expect((await post(t.app, '/us-signin/send-code', { identity: user.email, chosen_method: 'email' })).statusCode).toBe(202);
    const signinMail = await lastMail(user.email);
    const passcode = /sign-in code is ([0-9]{6})/.exec(signinMail.text)![1]!;
    const first = await post(t.app, '/us-signin', { identity: user.email, passcode });
    expect(first.json()).toMatchObject({ tf_required: true, tf_method: 'email' });
    const code = codeIn(await lastMail(user.email));
    const res = await post(t.app, '/tf-validate', { tf_token: first.json().tf_token, code });
    expect(res.statusCode, res.body).toBe(200);
    const [event] = await t.db.db.select().from(auditEvents)
      .where(and(eq(auditEvents.targetUserId, user.id), eq(auditEvents.action, 'login.succeeded'))).orderBy(desc(auditEvents.id)).limit(1);
    expect(event!.details).toMatchObject({ method: 'email_code', second_factor: 'email' });
  });

  it('an email-code first factor completed by a security key (the key alone is the two-factor method): audited as email_code + passkey', async () => {
    const user = await makeUser(t.ctx);
    const s = await login(t.app, user.email);
    const { key } = await registerPasskey(t.app, s.access_token, 'Key', 'secondary');
    expect(await methodOf(user.id)).toBe('webauthn');
    expect((await post(t.app, '/us-signin/send-code', { identity: user.email, chosen_method: 'email' })).statusCode).toBe(202);
    const passcode = /sign-in code is ([0-9]{6})/.exec((await lastMail(user.email)).text)![1]!;
    const first = await post(t.app, '/us-signin', { identity: user.email, passcode });
    expect(first.json()).toEqual({ tf_required: true, tf_token: expect.any(String), tf_method: 'webauthn', tf_methods: ['webauthn'] });
    const o = await post(t.app, '/wan-signin', { tf_token: first.json().tf_token });
    const res = await post(t.app, `/wan-signin/${o.json().wan_state}`, { credential: key.get(o.json().credential_options, { uv: false }) });
    expect(res.statusCode, res.body).toBe(200);
    const [event] = await t.db.db.select().from(auditEvents)
      .where(and(eq(auditEvents.targetUserId, user.id), eq(auditEvents.action, 'login.succeeded'))).orderBy(desc(auditEvents.id)).limit(1);
    expect(event!.details).toMatchObject({ method: 'email_code', second_factor: 'passkey' });
  });

  it('a forced role accepts the email method: setup with the setup tf_token by mail completes the login; later logins ask for the mailed code', async () => {
    const forced = await buildMailTestApp(database, smtp, { SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'Citizen', SECURITY_US_SEND_LIMIT: '4/15m' }, clock);
    try {
      const user = await makeUser(forced.ctx);
      const res = await post(forced.app, '/login', { email: user.email, password: GOOD_PASSWORD });
      expect(res.json()).toMatchObject({ tf_required: true, tf_setup_required: true });
      const start = await post(forced.app, '/tf-setup', { method: 'email', tf_token: res.json().tf_token });
      expect(start.statusCode, start.body).toBe(200);
      await forced.deliver();
      const code = codeIn(smtp.to(user.email).at(-1)!);
      const done = await post(forced.app, `/tf-setup/${start.json().tf_setup_token}`, { code });
      expect(done.statusCode, done.body).toBe(200);
      expect(done.json().access_token).toEqual(expect.any(String));
      expect(await methodOf(user.id)).toBe('email');
      const later = await post(forced.app, '/login', { email: user.email, password: GOOD_PASSWORD });
      expect(later.json()).toMatchObject({ tf_required: true, tf_method: 'email' });
      expect(later.json()).not.toHaveProperty('tf_setup_required');
    } finally {
      await forced.close();
    }
  });
});

describe('email second factor: two parallel validations of one code on two instances open exactly one session', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = { SECURITY_US_SEND_LIMIT: '1000/15m', SECURITY_LOCKOUT_ENABLED: 'false' };
    a = await buildTestApp(database, env);
    b = await buildTestApp(database, env);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await database.drop();
  });

  it('200 rounds: one 200, one 401, one new session each', async () => {
    const user = await makeUser(a.ctx);
    await a.db.sql`update users set tf_primary_method = 'email' where id = ${user.id}`;
    const record = (await findUser(a.ctx.db, { id: user.id }))!;
    const sessionsOf = async () => (await a.db.sql`select count(*)::int as n from sessions where user_id = ${user.id}` as unknown as [{ n: number }])[0].n;
    for (let round = 0; round < 200; round++) {
      // the pending login as the pipeline opens it; the code as the outbox renders it at delivery
      const pending = await openTwoFactorLogin(a.ctx, record, { remember: false, firstFactor: 'password', source: NO_SOURCE });
      const [queued] = await a.db.db.select().from(outbox).where(eq(outbox.userId, user.id)).orderBy(sql`created_at desc, id desc`).limit(1);
      const content = await twoFactorMailContent(a.ctx, (queued!.payload as { code_id: string }).code_id, user.id);
      const before = await sessionsOf();
      const answers = await Promise.all([a, b].map((x) => post(x.app, '/tf-validate', { tf_token: pending.token, code: content!.code })));
      expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 401]);
      expect(await sessionsOf()).toBe(before + 1);
      await a.db.sql`delete from outbox where user_id = ${user.id}`;
    }
  }, 120_000);
});
