// Idempotency-Key on POST /register and POST /users: replay, scoping, body mismatch, concurrency.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { buildTestApp, createTestDatabase, envelopeOf, GOOD_PASSWORD, makeUser, login, bearer, type TestApp, type TestDatabase } from '../support/helper.js';
import { idempotencyKeys } from '../../src/db/schema/index.js';
import { answerRecorder, purgeIdempotencyKeys, requestHash, startIdempotent, type IdempotencyScope } from '../../src/security/idempotency.js';
import { registerUser } from '../../src/security/auth.js';
import { createAccount, systemActor } from '../../src/security/users.js';

const unique = (p: string) => `${p}-${randomBytes(4).toString('hex')}@example.com`;

describe('Idempotency-Key', () => {
  let database: TestDatabase;
  let t: TestApp;
  let admin: Record<string, string>;
  let admin2: Record<string, string>;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    admin = bearer((await login(t.app, (await makeUser(t.ctx, { roles: ['County Admin'] })).email)).access_token);
    admin2 = bearer((await login(t.app, (await makeUser(t.ctx, { roles: ['County Admin'] })).email)).access_token);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  const register = (email: string, key?: string, extra: object = {}) => t.app.inject({
    method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD, ...extra }, headers: key ? { 'idempotency-key': key } : {},
  });
  const accounts = async (email: string) => Number((await t.db.db.execute<{ n: number }>(sql`select count(*)::int as n from users where lower(email) = lower(${email})`))[0]!.n);

  it('a retried registration gets the first 201 (same user, Idempotent-Replayed), without the token pair or a cookie, and no second account', async () => {
    const email = unique('replay');
    const key = randomUUID();
    const first = await register(email, key);
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json().access_token).toBeDefined();
    const again = await register(email, key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['set-cookie']).toBeUndefined();
    const body = again.json();
    expect(body.user).toEqual(first.json().user);
    for (const k of ['access_token', 'refresh_token', 'csrf_token', 'token_type', 'expires_in', 'refresh_expires_in']) expect(body).not.toHaveProperty(k);
    expect(await accounts(email)).toBe(1);
    // nothing usable is stored: no token, no password, not even an unkeyed hash of the body
    const [row] = await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
    const stored = JSON.stringify(row);
    expect(stored).not.toContain(first.json().refresh_token);
    expect(stored).not.toContain(first.json().access_token);
    expect(stored).not.toContain(GOOD_PASSWORD);
    expect(row!.expiresAt.getTime() - row!.createdAt.getTime()).toBe(24 * 3600 * 1000);
  });

  it('without a key the second registration is 409 EMAIL_TAKEN (the old behaviour)', async () => {
    const email = unique('nokey');
    expect((await register(email)).statusCode).toBe(201);
    expect(envelopeOf(await register(email)).code).toBe('EMAIL_TAKEN');
  });

  it('the same key with another body is 422 IDEMPOTENCY_KEY_REUSED and writes nothing; member order does not matter', async () => {
    const key = randomUUID();
    const email = unique('mismatch');
    expect((await register(email, key, { first_name: 'A', last_name: 'B' })).statusCode).toBe(201);
    const reordered = await t.app.inject({ method: 'POST', url: '/register', headers: { 'idempotency-key': key },
      payload: { last_name: 'B', first_name: 'A', password: GOOD_PASSWORD, email } });
    expect(reordered.statusCode).toBe(201);
    expect(reordered.headers['idempotent-replayed']).toBe('true');
    const other = unique('mismatch-other');
    const res = await register(other, key);
    expect(res.statusCode).toBe(422);
    expect(envelopeOf(res).code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await accounts(other)).toBe(0);
  });

  it('an error answer is remembered too (409 EMAIL_TAKEN replays as 409)', async () => {
    const email = unique('taken');
    await register(email);
    const key = randomUUID();
    expect(envelopeOf(await register(email, key)).code).toBe('EMAIL_TAKEN');
    const again = await register(email, key);
    expect(again.statusCode).toBe(409);
    expect(again.headers['idempotent-replayed']).toBe('true');
  });

  it('a malformed key is 400 VALIDATION_FAILED on the header', async () => {
    for (const key of ['x'.repeat(256), 'has space', 'tab\tkey']) {
      const res = await register(unique('badkey'), key);
      expect(res.statusCode, key).toBe(400);
      expect(envelopeOf(res).fields).toHaveProperty(['idempotency-key']);
    }
  });

  it('30 concurrent registrations with one key (repeated 5×): exactly one account; every answer is the 201, a replay of it, or 409 in flight', async () => {
    for (let round = 0; round < 5; round++) {
      const email = unique(`race${round}`);
      const key = randomUUID();
      const results = await Promise.all(Array.from({ length: 30 }, () => register(email, key)));
      const statuses = results.map((r) => r.statusCode);
      expect(statuses.every((s) => s === 201 || s === 409), statuses.join(',')).toBe(true);
      const fresh = results.filter((r) => r.statusCode === 201 && !r.headers['idempotent-replayed']);
      expect(fresh.length).toBe(1);
      for (const r of results.filter((x) => x.statusCode === 409)) {
        expect(envelopeOf(r).code).toBe('CONFLICT');
        expect(r.headers['retry-after']).toBe('1');
      }
      for (const r of results.filter((x) => x.headers['idempotent-replayed'])) expect(r.json().user.id).toBe(fresh[0]!.json().user.id);
      expect(await accounts(email)).toBe(1);
    }
  });

  it('POST /users: scoped to the principal — the same key from another admin is another operation', async () => {
    const key = randomUUID();
    const create = (headers: Record<string, string>, email: string) => t.app.inject({
      method: 'POST', url: '/users', headers: { ...headers, 'idempotency-key': key }, payload: { email, password: GOOD_PASSWORD, roles: ['Citizen'] },
    });
    const email = unique('admin-made');
    const first = await create(admin, email);
    expect(first.statusCode, first.body).toBe(201);
    const replay = await create(admin, email);
    expect(replay.statusCode).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(first.json());
    // another admin, same key and body: executes (and meets the unique email)
    const other = await create(admin2, email);
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    expect(envelopeOf(other).code).toBe('EMAIL_TAKEN');
    expect(await accounts(email)).toBe(1);
  });

  it('an unauthenticated POST /users with a key is 401 and claims nothing', async () => {
    const key = randomUUID();
    const res = await t.app.inject({ method: 'POST', url: '/users', headers: { 'idempotency-key': key }, payload: { email: unique('anon'), password: GOOD_PASSWORD } });
    expect(res.statusCode).toBe(401);
    expect(await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key))).toEqual([]);
  });

  it('an abandoned claim (a crashed instance) is taken over after its lease by the same body only; expired keys are purged', async () => {
    const key = randomUUID();
    const email = unique('abandoned');
    const now = t.clock.now();
    await t.db.db.insert(idempotencyKeys).values({
      operation: 'POST /register', principal: '', key, requestHash: 'another-body', lockedBy: randomUUID(),
      lockedUntil: new Date(now.getTime() + 30_000), createdAt: now, expiresAt: new Date(now.getTime() + 86_400_000),
    });
    // held for another body: 422; given up and claimed again for this body
    expect((await register(email, key)).statusCode).toBe(422);
    await t.db.db.delete(idempotencyKeys).where(eq(idempotencyKeys.key, key));
    expect((await register(email, key)).statusCode).toBe(201);
    // the answer was never stored (the instance died after committing): 409 in flight, then after the lease it executes again
    await t.db.db.update(idempotencyKeys).set({ responseStatus: null, responseBody: null, lockedBy: randomUUID(), lockedUntil: new Date(now.getTime() + 30_000) }).where(eq(idempotencyKeys.key, key));
    expect((await register(email, key)).statusCode).toBe(409);
    t.clock.advance(31);
    const taken = await register(email, key);
    expect(taken.headers['idempotent-replayed']).toBeUndefined();
    expect(envelopeOf(taken).code).toBe('EMAIL_TAKEN');
    t.clock.advance(86_400);
    expect(await purgeIdempotencyKeys(t.ctx)).toBeGreaterThanOrEqual(1);
    expect(await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key))).toEqual([]);
  });

  it('the answer commits with the registration: an error after it was recorded leaves neither account nor answer; a claim taken over meanwhile rolls the registration back (409 CONFLICT)', async () => {
    const scopeFor = (key: string): IdempotencyScope => ({ operation: 'POST /register', principal: '', key });
    const claim = async (scope: IdempotencyScope) => {
      const started = await startIdempotent(t.ctx, scope, requestHash(t.ctx, { any: 'body' }));
      if (started.kind !== 'execute') throw new Error(started.kind);
      return answerRecorder(t.ctx, scope, started.claim);
    };
    const keyRow = async (key: string) => (await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key)))[0];

    // recorded, then the transaction fails: no account, and the key holds no answer (a retry executes)
    const failing = scopeFor(randomUUID());
    const recorder = await claim(failing);
    const e1 = unique('rolled-back');
    await expect(registerUser(t.ctx, { email: e1, password: GOOD_PASSWORD }, {
      login: { ip: null, userAgent: null },
      beforeCommit: async (tx, r) => {
        await recorder.record(tx, 201, { user: { id: r.user.id } });
        throw new Error('the connection died before COMMIT');
      },
    })).rejects.toThrow('before COMMIT');
    expect(await accounts(e1)).toBe(0);
    expect((await keyRow(failing.key))?.responseStatus).toBeNull();

    // the claim was taken over (its lease passed while this request was slow): nothing commits
    const lost = scopeFor(randomUUID());
    const late = await claim(lost);
    await t.db.db.update(idempotencyKeys).set({ lockedBy: randomUUID() }).where(eq(idempotencyKeys.key, lost.key));
    const e2 = unique('lost-claim');
    await expect(registerUser(t.ctx, { email: e2, password: GOOD_PASSWORD }, {
      login: { ip: null, userAgent: null },
      beforeCommit: (tx) => late.record(tx, 201, {}),
    })).rejects.toMatchObject({ statusCode: 409, code: 'CONFLICT' });
    expect(await accounts(e2)).toBe(0);
    const sessionsOf = await t.db.db.execute<{ n: number }>(sql`select count(*)::int as n from sessions s join users u on u.id = s.user_id where lower(u.email) = lower(${e2})`);
    expect(sessionsOf[0]!.n).toBe(0);

    // held: account, audit rows, session and answer commit together; the answer has no token
    const ok = scopeFor(randomUUID());
    const held = await claim(ok);
    const e3 = unique('whole');
    const r = await registerUser(t.ctx, { email: e3, password: GOOD_PASSWORD }, {
      login: { ip: null, userAgent: null },
      beforeCommit: (tx, reg) => held.record(tx, 201, { user: { id: reg.user.id }, refresh_token: 'secret-refresh', access_token: 'secret-access' }),
    });
    expect(held.recorded()).toBe(201);
    expect(r.login?.kind).toBe('session');
    const row = await keyRow(ok.key);
    expect(row).toMatchObject({ responseStatus: 201, responseBody: { user: { id: r.user.id } }, lockedBy: null });
    expect(JSON.stringify(row)).not.toContain('secret-');
    const [counts] = await t.db.db.execute<{ registered: number; logins: number; sessions: number }>(sql`
      select (select count(*)::int from audit_events where target_user_id = ${r.user.id} and action = 'user.registered') as registered,
        (select count(*)::int from audit_events where target_user_id = ${r.user.id} and action = 'login.succeeded') as logins,
        (select count(*)::int from sessions where user_id = ${r.user.id}) as sessions`);
    expect(counts).toEqual({ registered: 1, logins: 1, sessions: 1 });
  });

  it('POST /users: the answer commits with the account and its audit row, or neither does', async () => {
    const actor = systemActor({ actorId: null, ip: null, userAgent: 'test', requestId: null });
    const scope: IdempotencyScope = { operation: 'POST /users', principal: 'user:0', key: randomUUID() };
    const started = await startIdempotent(t.ctx, scope, requestHash(t.ctx, { any: 'body' }));
    if (started.kind !== 'execute') throw new Error(started.kind);
    const recorder = answerRecorder(t.ctx, scope, started.claim);
    const email = unique('admin-made');
    await expect(createAccount(t.ctx, actor, { email, password: GOOD_PASSWORD }, {
      beforeCommit: async (tx, user) => {
        await recorder.record(tx, 201, { user: { id: user.id } });
        throw new Error('lost before COMMIT');
      },
    })).rejects.toThrow('before COMMIT');
    expect(await accounts(email)).toBe(0);
    const audits = await t.db.db.execute<{ n: number }>(sql`select count(*)::int as n from audit_events where action = 'user.created' and details->>'email' = ${email}`);
    expect(audits[0]!.n).toBe(0);
    const [row] = await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, scope.key));
    expect(row?.responseStatus).toBeNull();
    // and held to the end: all of it
    const user = await createAccount(t.ctx, actor, { email, password: GOOD_PASSWORD }, {
      beforeCommit: (tx, u) => recorder.record(tx, 201, { user: { id: u.id } }),
    });
    const [done] = await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, scope.key));
    expect(done).toMatchObject({ responseStatus: 201, responseBody: { user: { id: user.id } }, lockedBy: null });
    const audited = await t.db.db.execute<{ n: number }>(sql`select count(*)::int as n from audit_events where action = 'user.created' and target_user_id = ${user.id} and details->>'email' = ${email}`);
    expect(audited[0]!.n, 'the same query finds the committed audit row').toBe(1);
  });

  it('a registration answered with the forced 2FA setup: its tf_token is neither stored nor replayed; the replay says so and a login gets a new one', async () => {
    const forced = await buildTestApp(database, { SECURITY_TWO_FACTOR_REQUIRED_ROLES: 'Citizen' });
    try {
      const email = unique('forced');
      const key = randomUUID();
      const send = () => forced.app.inject({ method: 'POST', url: '/register', payload: { email, password: GOOD_PASSWORD }, headers: { 'idempotency-key': key } });
      const first = await send();
      expect(first.statusCode, first.body).toBe(201);
      const tfToken = first.json().tf_token as string;
      expect(first.json()).toMatchObject({ tf_required: true, tf_setup_required: true });
      expect(typeof tfToken).toBe('string');
      const [row] = await t.db.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, key));
      expect(row!.responseBody).toEqual({ tf_required: true, tf_setup_required: true });
      expect(JSON.stringify(row)).not.toContain(tfToken);
      const again = await send();
      expect(again.statusCode).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual({ tf_required: true, tf_setup_required: true });
      const relogin = await forced.app.inject({ method: 'POST', url: '/login', payload: { email, password: GOOD_PASSWORD } });
      expect(relogin.json()).toMatchObject({ tf_required: true, tf_setup_required: true });
      expect(typeof relogin.json().tf_token).toBe('string');
    } finally {
      await forced.close();
    }
  });

  it('the OpenAPI document declares the header and the 409/422 answers on both operations', async () => {
    const doc = (await t.app.inject('/openapi.json')).json();
    for (const [path, op] of [['/register', 'post'], ['/users', 'post']] as const) {
      const o = doc.paths[path][op];
      expect(o.parameters.some((p: { in: string; name: string }) => p.in === 'header' && p.name === 'idempotency-key'), path).toBe(true);
      expect(o.responses['409']).toBeDefined();
      expect(o.responses['422']).toBeDefined();
    }
  });
});
