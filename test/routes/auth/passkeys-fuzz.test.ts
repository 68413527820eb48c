// Rules, not cases: any single-byte change to a valid assertion (authenticator data, client data,
// signature) and any wrong or malformed email code is refused with the documented 4xx — never a
// session, never a 500. fast-check picks the field, the byte and the change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { and, eq, isNull, sql } from 'drizzle-orm';
import { sessions } from '../../../src/db/schema/index.js';
import { buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../../support/helper.js';
import { PASSKEY_ENV, registerPasskey } from '../../support/passkeys.js';

describe('passkey assertions and email codes under mutation (fast-check)', () => {
  let database: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, { ...PASSKEY_ENV, SECURITY_LOCKOUT_ENABLED: 'false' });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('a valid assertion with one byte changed anywhere is 401 WEBAUTHN_INVALID and opens no session', async () => {
    const user = await makeUser(t.ctx);
    const { key } = await registerPasskey(t.app, (await login(t.app, user.email)).access_token, 'k');
    const live = async () => (await t.db.db.select({ n: sql<number>`count(*)::int` }).from(sessions)
      .where(and(eq(sessions.userId, user.id), isNull(sessions.revokedAt))))[0]!.n;
    const before = await live();
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('authenticatorData', 'clientDataJSON', 'signature'),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      async (field, at, xor) => {
        const o = (await t.app.inject({ method: 'POST', url: '/wan-signin', payload: {} })).json();
        const assertion = key.get(o.credential_options) as { response: Record<string, string> };
        const bytes = Buffer.from(assertion.response[field]!, 'base64url');
        const i = at % bytes.length;
        bytes[i] = bytes[i]! ^ xor;
        assertion.response[field] = bytes.toString('base64url');
        const res = await t.app.inject({ method: 'POST', url: `/wan-signin/${o.wan_state}`, payload: { credential: assertion } });
        expect(res.statusCode, `${field}[${i}] ^ ${xor}: ${res.body}`).toBe(401);
        expect(res.json().code).toBe('WEBAUTHN_INVALID');
      },
    ), { numRuns: 150 });
    expect(await live()).toBe(before);
  });

  it('a valid signature in a non-canonical DER form (length byte, trailing byte, long-form length) is refused (one assertion, one encoding)', async () => {
    const user = await makeUser(t.ctx);
    const { key } = await registerPasskey(t.app, (await login(t.app, user.email)).access_token, 'k');
    const reshape: Record<string, (sig: Buffer) => Buffer> = {
      'sequence length + 1': (sig) => Buffer.concat([Buffer.from([0x30, sig[1]! + 1]), sig.subarray(2)]),
      'sequence length - 1': (sig) => Buffer.concat([Buffer.from([0x30, sig[1]! - 1]), sig.subarray(2)]),
      'trailing zero byte': (sig) => Buffer.concat([sig, Buffer.from([0])]),
      'long-form length': (sig) => Buffer.concat([Buffer.from([0x30, 0x81, sig[1]!]), sig.subarray(2)]),
    };
    for (const [name, change] of Object.entries(reshape)) {
      const o = (await t.app.inject({ method: 'POST', url: '/wan-signin', payload: {} })).json();
      const assertion = key.get(o.credential_options) as { response: Record<string, string> };
      assertion.response.signature = change(Buffer.from(assertion.response.signature!, 'base64url')).toString('base64url');
      const res = await t.app.inject({ method: 'POST', url: `/wan-signin/${o.wan_state}`, payload: { credential: assertion } });
      expect(res.statusCode, `${name}: ${res.body}`).toBe(401);
      expect(res.json().code).toBe('WEBAUTHN_INVALID');
    }
    // the unchanged signature still signs in: the rule refuses only the other forms
    const o = (await t.app.inject({ method: 'POST', url: '/wan-signin', payload: {} })).json();
    const ok = await t.app.inject({ method: 'POST', url: `/wan-signin/${o.wan_state}`, payload: { credential: key.get(o.credential_options) } });
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it('arbitrary passcode strings are 401 INVALID_CREDENTIALS or 400 VALIDATION_FAILED, never a 500 or a session', async () => {
    const user = await makeUser(t.ctx);
    // a live code exists (its value is only ever in the email): no guess may pass
    expect((await t.app.inject({ method: 'POST', url: '/us-signin/send-code', payload: { identity: user.email, chosen_method: 'email' } })).statusCode).toBe(202);
    await fc.assert(fc.asyncProperty(fc.string({ maxLength: 20 }), async (passcode) => {
      const res = await t.app.inject({ method: 'POST', url: '/us-signin', payload: { identity: user.email, passcode } });
      expect([400, 401], res.body).toContain(res.statusCode);
      expect(res.json().code).toBe(res.statusCode === 400 ? 'VALIDATION_FAILED' : 'INVALID_CREDENTIALS');
      expect(res.cookies).toEqual([]);
    }), { numRuns: 60 });
  });
});
