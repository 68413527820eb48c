// The access-token attack list: every forged, altered, stale or malformed bearer credential is a 401
// with the RFC 6750 challenge, never a 500 and never a pass. Tokens are built here by hand with
// node:crypto so nothing of the verifier is reused to produce them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { keyId } from '../../../src/security/keyring.js';
import type { UserRecord } from '../../../src/security/datastore.js';
import {
  bearer, buildTestApp, createTestDatabase, envelopeOf, login, makeUser, TestClock,
  type LoginResult, type TestApp, type TestDatabase,
} from '../../support/helper.js';

type Json = Record<string, unknown>;

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const HASHES = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const;

/** header.payload.signature with an HMAC over the first two parts. */
function hmacToken(header: unknown, payload: unknown, key: string, alg: keyof typeof HASHES = 'HS256'): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(HASHES[alg], key).update(input).digest('base64url')}`;
}

function decodePart(token: string, index: 0 | 1): Json {
  return JSON.parse(Buffer.from(token.split('.')[index]!, 'base64url').toString('utf8')) as Json;
}

function expectRejected(res: LightMyRequestResponse, code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED' = 'TOKEN_INVALID') {
  expect(res.statusCode, res.body).toBe(401);
  expect(envelopeOf(res).code).toBe(code);
  const challenge = res.headers['www-authenticate'];
  expect(typeof challenge).toBe('string');
  expect(challenge as string).toMatch(/^Bearer /);
  expect(challenge as string).toContain('error="invalid_token"');
}

describe('bearer access tokens', () => {
  let database: TestDatabase;
  let t: TestApp;
  let alice: UserRecord;
  let bob: UserRecord;
  let aliceLogin: LoginResult;
  let bobLogin: LoginResult;
  let key: string;
  let kid: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    key = t.config.SECRET_KEY;
    kid = keyId(key);
    alice = await makeUser(t.ctx);
    bob = await makeUser(t.ctx);
    aliceLogin = await login(t.app, alice.email);
    bobLogin = await login(t.app, bob.email);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const me = (headers: Record<string, string>) => t.app.inject({ method: 'GET', url: '/auth/current-user', headers });
  const nowS = () => Math.floor(t.clock.now().getTime() / 1000);
  /** The claims of alice's real access token, for variations. */
  const aliceClaims = (): Json => decodePart(aliceLogin.access_token, 1);
  const goodHeader = (): Json => ({ alg: 'HS256', typ: 'JWT', kid });
  const call = (token: string) => me(bearer(token));

  describe('baseline (the hand-built tokens below are otherwise correct)', () => {
    it('the issued token has the pinned header and all claims', () => {
      expect(decodePart(aliceLogin.access_token, 0)).toMatchObject({ alg: 'HS256', kid });
      const claims = aliceClaims();
      expect(claims).toMatchObject({
        sub: String(alice.id), uq: alice.fsUniquifier, iss: t.config.JWT_ISSUER, aud: t.config.JWT_AUDIENCE,
      });
      expect(claims.sid).toMatch(/^[0-9a-f-]{36}$/);
      expect(claims.exp).toBe((claims.iat as number) + t.config.SECURITY_TOKEN_MAX_AGE);
    });

    it('the issued token authenticates', async () => {
      const res = await call(aliceLogin.access_token);
      expect(res.statusCode).toBe(200);
      expect(res.json().user.email).toBe(alice.email);
    });

    it('a token built here with the right key, kid and claims authenticates (so the builder is sound)', async () => {
      const res = await call(hmacToken(goodHeader(), { ...aliceClaims(), iat: nowS(), exp: nowS() + 60 }, key));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().user.id).toBe(alice.id);
    });

    it('no Authorization header and no cookie → 401 AUTH_REQUIRED (not TOKEN_INVALID)', async () => {
      const res = await me({});
      expect(res.statusCode).toBe(401);
      expect(envelopeOf(res).code).toBe('AUTH_REQUIRED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
      expect(res.headers['www-authenticate']).not.toContain('invalid_token');
    });
  });

  describe('algorithm attacks', () => {
    it('alg "none" with an empty signature', async () => {
      const token = `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(aliceClaims())}.`;
      expectRejected(await call(token));
    });

    it('alg "none" with a non-empty signature part', async () => {
      const token = `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(aliceClaims())}.AAAA`;
      expectRejected(await call(token));
    });

    it('alg "None"/"NONE" variants signed with the key', async () => {
      for (const alg of ['None', 'NONE', 'hs256']) {
        const input = `${b64({ alg, typ: 'JWT', kid })}.${b64(aliceClaims())}`;
        const token = `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
        expectRejected(await call(token));
      }
    });

    it('HS512 signed with the right key', async () => {
      expectRejected(await call(hmacToken({ alg: 'HS512', typ: 'JWT', kid }, aliceClaims(), key, 'HS512')));
    });

    it('HS384 signed with the right key', async () => {
      expectRejected(await call(hmacToken({ alg: 'HS384', typ: 'JWT', kid }, aliceClaims(), key, 'HS384')));
    });

    it('RS256 header with an HMAC signature keyed by the secret (algorithm confusion)', async () => {
      expectRejected(await call(hmacToken({ alg: 'RS256', typ: 'JWT', kid }, aliceClaims(), key)));
    });

    it('RS256 header with a genuine RSA signature from an attacker key', async () => {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const input = `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${b64(aliceClaims())}`;
      const signature = createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
      expectRejected(await call(`${input}.${signature}`));
    });
  });

  describe('keys and signatures', () => {
    it('a foreign key with the same claims and our kid', async () => {
      expectRejected(await call(hmacToken(goodHeader(), aliceClaims(), 'attacker-chosen-secret-key-0123456789')));
    });

    it('a foreign key with its own kid (unknown kid)', async () => {
      const foreign = 'attacker-chosen-secret-key-0123456789';
      expectRejected(await call(hmacToken({ alg: 'HS256', typ: 'JWT', kid: keyId(foreign) }, aliceClaims(), foreign)));
    });

    it('the right key under an unknown kid', async () => {
      expectRejected(await call(hmacToken({ alg: 'HS256', typ: 'JWT', kid: 'not-a-known-kid' }, aliceClaims(), key)));
    });

    it('the right key with no kid at all', async () => {
      expectRejected(await call(hmacToken({ alg: 'HS256', typ: 'JWT' }, aliceClaims(), key)));
    });

    it('a non-string kid', async () => {
      for (const badKid of [123, null, [kid], { kid }]) {
        expectRejected(await call(hmacToken({ alg: 'HS256', typ: 'JWT', kid: badKid }, aliceClaims(), key)));
      }
    });

    it('tampered payload: sub changed to another user, original signature kept', async () => {
      const [h, , s] = aliceLogin.access_token.split('.');
      const tampered = `${h}.${b64({ ...aliceClaims(), sub: String(bob.id) })}.${s}`;
      expectRejected(await call(tampered));
    });

    it('tampered payload: every claim swapped to bob, alice\'s signature kept', async () => {
      const [h, , s] = aliceLogin.access_token.split('.');
      const tampered = `${h}.${b64(decodePart(bobLogin.access_token, 1))}.${s}`;
      expectRejected(await call(tampered));
    });

    it('a flipped signature character', async () => {
      const t0 = aliceLogin.access_token;
      const last = t0.at(-2) === 'A' ? 'B' : 'A';
      expectRejected(await call(`${t0.slice(0, -2)}${last}${t0.at(-1)}`));
    });

    it('a truncated signature', async () => {
      expectRejected(await call(aliceLogin.access_token.slice(0, -5)));
    });
  });

  describe('claims (correctly signed, so only the claim checks can refuse them)', () => {
    const without = (name: string): Json => {
      const c = { ...aliceClaims() };
      delete c[name];
      return c;
    };

    it.each(['iss', 'aud', 'sid', 'uq', 'sub', 'exp', 'iat'])('missing %s', async (claim) => {
      expectRejected(await call(hmacToken(goodHeader(), without(claim), key)));
    });

    it('wrong iss', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), iss: 'someone-else' }, key)));
    });

    it('wrong aud', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), aud: 'another-api' }, key)));
    });

    it('uq not the user\'s current fs_uniquifier', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), uq: bob.fsUniquifier }, key)));
    });

    it('sid of another user\'s session', async () => {
      const bobSid = decodePart(bobLogin.access_token, 1).sid;
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), sid: bobSid }, key)));
    });

    it('sid that is not a session / not a uuid', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), sid: '00000000-0000-4000-8000-000000000000' }, key)));
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), sid: "x' or 1=1 --" }, key)));
    });

    it('sub of the wrong type or shape', async () => {
      for (const sub of [alice.id, `${alice.id} `, '-1', '99999999999', null]) {
        expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), sub }, key)));
      }
    });

    it('exp / iat that are not numbers', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), exp: String(nowS() + 600) }, key)));
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), iat: String(nowS()) }, key)));
    });

    it('not yet valid: nbf an hour in the future', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), nbf: nowS() + 3600 }, key)));
    });

    it('issued in the future: iat a day ahead (exp after it)', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), iat: nowS() + 86400, exp: nowS() + 86400 + 900 }, key)));
    });

    it('exp already in the past → TOKEN_EXPIRED', async () => {
      expectRejected(await call(hmacToken(goodHeader(), { ...aliceClaims(), iat: nowS() - 1000, exp: nowS() - 100 }, key)), 'TOKEN_EXPIRED');
    });

    it('a payload that is not an object', async () => {
      for (const payload of ['null', '[]', '"x"', '42']) {
        expectRejected(await call(hmacToken(goodHeader(), payload, key)));
      }
    });

    it('a header that is JSON but not an object', async () => {
      for (const header of ['null', '[]', '"HS256"', '42', 'true']) {
        expectRejected(await call(hmacToken(header, aliceClaims(), key)));
      }
    });

    it('a header that is not JSON', async () => {
      expectRejected(await call(hmacToken('{"alg":"HS256",', aliceClaims(), key)));
    });
  });

  describe('malformed Authorization headers', () => {
    it.each([
      ['garbage', 'Bearer garbage'],
      ['three garbage parts', 'Bearer a.b.c'],
      ['"Bearer" with no token', 'Bearer'],
      ['"Bearer " with only a space', 'Bearer '],
      ['two tokens', 'Bearer a.b.c d.e.f'],
      ['lower-case scheme', 'bearer x.y.z'],
      ['Basic scheme', `Basic ${Buffer.from('user:pass').toString('base64')}`],
      ['empty value', ''],
      ['four parts', 'Bearer a.b.c.d'],
      ['non-base64url characters', 'Bearer a+b.c/d.e='],
    ])('%s', async (_name, value) => {
      expectRejected(await me({ authorization: value }));
    });

    it('the scheme with the real token but doubled spacing', async () => {
      expectRejected(await me({ authorization: `Bearer  ${aliceLogin.access_token}` }));
    });

    it('a 10 KB header value', async () => {
      expectRejected(await me({ authorization: `Bearer ${'A'.repeat(10 * 1024)}` }));
      expectRejected(await me({ authorization: `Bearer ${'A'.repeat(5000)}.${'B'.repeat(5000)}.${'C'.repeat(300)}` }));
    });

    it('a huge but well-formed, correctly signed token is still judged on its claims', async () => {
      const res = await call(hmacToken(goodHeader(), { ...aliceClaims(), pad: 'x'.repeat(8000), iss: 'nope' }, key));
      expectRejected(res);
    });

    it('a bad bearer token is not rescued by a valid cookie', async () => {
      const res = await me({ authorization: 'Bearer a.b.c', cookie: aliceLogin.cookie });
      expectRejected(res);
    });
  });

  describe('expiry against the injected clock', () => {
    it('works just before SECURITY_TOKEN_MAX_AGE, TOKEN_EXPIRED just after', async () => {
      const clock = new TestClock();
      const local = await buildTestApp(database, {}, clock);
      try {
        const user = await makeUser(local.ctx);
        const { access_token } = await login(local.app, user.email);
        const get = () => local.app.inject({ url: '/auth/current-user', headers: bearer(access_token) });
        clock.advance(local.config.SECURITY_TOKEN_MAX_AGE - 5);
        expect((await get()).statusCode).toBe(200);
        clock.advance(10);
        const res = await get();
        expectRejected(res, 'TOKEN_EXPIRED');
        expect(res.headers['www-authenticate']).toContain('expired');
      } finally {
        await local.close();
      }
    });
  });
});

describe('key rotation (SECRET_KEY signs, SECRET_KEY_FALLBACKS verify)', () => {
  const KEY_A = 'rotation-key-A-0123456789abcdef';
  const KEY_B = 'rotation-key-B-0123456789abcdef';
  let database: TestDatabase;
  let appA: TestApp;
  let appB: TestApp;
  let appBOnly: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    appA = await buildTestApp(database, { SECRET_KEY: KEY_A });
    appB = await buildTestApp(database, { SECRET_KEY: KEY_B, SECRET_KEY_FALLBACKS: KEY_A });
    appBOnly = await buildTestApp(database, { SECRET_KEY: KEY_B });
  });
  afterAll(async () => {
    await Promise.all([appA.close(), appB.close(), appBOnly.close()]);
    await database.drop();
  });

  const me = (t: TestApp, token: string) => t.app.inject({ url: '/auth/current-user', headers: bearer(token) });

  it('a token signed under key A carries kid(A) and works on the app that rotated to B with A as fallback', async () => {
    const user = await makeUser(appA.ctx);
    const { access_token } = await login(appA.app, user.email);
    expect(decodePart(access_token, 0).kid).toBe(keyId(KEY_A));
    expect((await me(appA, access_token)).statusCode).toBe(200);
    const res = await me(appB, access_token);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().user.id).toBe(user.id);
  });

  it('once A is dropped from the fallbacks, the A token is refused', async () => {
    const user = await makeUser(appA.ctx);
    const { access_token } = await login(appA.app, user.email);
    expectRejected(await me(appBOnly, access_token));
  });

  it('the rotated app signs with B (kid(B)); the old app, not knowing B, refuses those tokens', async () => {
    const user = await makeUser(appB.ctx);
    const { access_token } = await login(appB.app, user.email);
    expect(decodePart(access_token, 0).kid).toBe(keyId(KEY_B));
    expect((await me(appB, access_token)).statusCode).toBe(200);
    expect((await me(appBOnly, access_token)).statusCode).toBe(200);
    expectRejected(await me(appA, access_token));
  });

  it('a token claiming kid(A) but signed with B is refused even where both keys are known', async () => {
    const user = await makeUser(appB.ctx);
    const { access_token } = await login(appB.app, user.email);
    const forged = hmacToken({ alg: 'HS256', typ: 'JWT', kid: keyId(KEY_A) }, decodePart(access_token, 1), KEY_B);
    expectRejected(await me(appB, forged));
  });

  it('session cookies issued under A survive the rotation too, and die without the fallback', async () => {
    const user = await makeUser(appA.ctx);
    const { cookie } = await login(appA.app, user.email);
    const get = (t: TestApp) => t.app.inject({ url: '/auth/current-user', headers: { cookie } });
    expect((await get(appB)).statusCode).toBe(200);
    const dead = await get(appBOnly);
    expect(dead.statusCode).toBe(401);
    expect(envelopeOf(dead).code).toBe('TOKEN_INVALID');
  });
});
