// Database outages through a TCP proxy (test/support/tcp-proxy.ts) between a listening app and the
// test PostgreSQL: cut (connections closed, new ones refused) and black-holed (accepted, silent).
// Under load every request is answered — 200/201 or 503 with Retry-After — within the breaker's
// budget, /ready says 503 quickly, /health stays 200, the service recovers by itself, no write is
// half-done, and a registration the client never saw the answer of is completed by its retry: the
// account, its audit rows, its session and the key's answer commit in one transaction, so a retry
// with the key gets the original 201 whatever moment the cut hit (600 registrations, 25 cuts).
// The app runs the production defaults of the breaker (DB_* keys); the figures are printed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { buildTestApp, createTestDatabase, GOOD_PASSWORD, listen, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { securityContext } from '../../src/security/context.js';
import { connect, DEFAULT_DB_TIMEOUTS, type DbHandle } from '../../src/db/client.js';

/** The production defaults of the breaker (the test profile relaxes them for a loaded CI machine). */
const PRODUCTION_BREAKER = {
  DB_CONNECT_TIMEOUT_MS: '2000', DB_STATEMENT_TIMEOUT_MS: '5000', DB_HEALTH_TIMEOUT_MS: '600', DB_HEALTH_INTERVAL_MS: '250',
};

interface Sample { kind: string; start: number; ms: number; status: number; code?: string; retryAfter?: string | null; email?: string; key?: string }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : 0;
};

describe('database outage through a TCP proxy (production breaker defaults)', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let t: TestApp;
  let base: string;
  let token: string;
  let email: string;
  let direct: DbHandle; // the test's own view of the database, not through the proxy

  beforeAll(async () => {
    database = await createTestDatabase();
    direct = connect(database.url, { max: 2 });
    const u = new URL(database.url);
    proxy = await new TcpProxy(u.hostname, Number(u.port)).start();
    // the production defaults of the breaker (the test profile relaxes them for a loaded CI machine)
    t = await buildTestApp({ ...database, url: proxy.url(database.url) }, PRODUCTION_BREAKER);
    base = await listen(t.app);
    email = (await makeUser(t.ctx)).email;
    token = (await login(t.app, email)).access_token;
  });
  afterAll(async () => {
    await direct.close();
    await t.close();
    await proxy.stop();
    await database.drop();
  });

  async function call(kind: string, path: string, init: RequestInit = {}, extra: Partial<Sample> = {}): Promise<Sample> {
    const start = Date.now();
    let status = 0;
    let code: string | undefined;
    let retryAfter: string | null = null;
    try {
      const res = await fetch(base + path, { ...init, signal: AbortSignal.timeout(10_000) });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      const text = await res.text();
      if (status >= 400) code = (JSON.parse(text) as { code?: string }).code;
    } catch {
      status = 0; // no answer within 10 s: a hang
    }
    return { kind, start, ms: Date.now() - start, status, code, retryAfter, ...extra };
  }
  const json = (body: object, headers: Record<string, string> = {}): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const registerCall = (e: string, key: string) => call('register', '/register', json({ email: e, password: GOOD_PASSWORD }, { 'idempotency-key': key }), { email: e, key });

  /** Background load: `workers` loops of login, register, current user (bearer), dashboard. */
  function load(workers: number) {
    const samples: Sample[] = [];
    let running = true;
    const loops = Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; running; i++) {
        const kind = (i + w) % 4;
        const s = kind === 0 ? await call('login', '/login', json({ email, password: GOOD_PASSWORD }))
          : kind === 1 ? await registerCall(`load-${randomBytes(5).toString('hex')}@example.com`, randomUUID())
            : kind === 2 ? await call('current-user', '/auth/current-user', { headers: { authorization: `Bearer ${token}` } })
              : await call('dashboard', '/dashboard', { headers: { authorization: `Bearer ${token}` } });
        samples.push(s);
      }
    });
    return { samples, stop: async () => { running = false; await Promise.all(loops); } };
  }

  async function outage(mode: 'cut' | 'blackhole') {
    const bg = load(8);
    await sleep(700);
    const cutAt = Date.now();
    if (mode === 'cut') await proxy.cut();
    else proxy.blackhole();
    const ready: Sample[] = [];
    const health: Sample[] = [];
    while (Date.now() - cutAt < 3000) {
      const [r, h] = await Promise.all([call('ready', '/ready'), call('health', '/health')]);
      ready.push(r);
      health.push(h);
      await sleep(150);
    }
    const restoredAt = Date.now();
    await proxy.restore();
    let readyAgain = 0;
    while (!readyAgain && Date.now() - restoredAt < 10_000) {
      if ((await call('ready', '/ready')).status === 200) readyAgain = Date.now();
      else await sleep(25);
    }
    let loginAgain = 0;
    while (!loginAgain && Date.now() - restoredAt < 10_000) {
      if ((await call('login', '/login', json({ email, password: GOOD_PASSWORD }))).status === 200) loginAgain = Date.now();
      else await sleep(25);
    }
    await sleep(700);
    await bg.stop();
    return { samples: bg.samples, ready, health, cutAt, restoredAt, readyAgain, loginAgain };
  }

  function check(label: string, r: Awaited<ReturnType<typeof outage>>) {
    const during = r.samples.filter((s) => s.start + s.ms > r.cutAt && s.start < r.restoredAt);
    const ms = during.map((s) => s.ms);
    const unavailable = during.filter((s) => s.status === 503);
    const readyMs = r.ready.map((s) => s.ms);
    const figures = {
      requests: r.samples.length, during: during.length, answered503: unavailable.length,
      p50: pct(ms, 50), p99: pct(ms, 99), max: Math.max(...ms),
      readyP50: pct(readyMs, 50), readyMax: Math.max(...readyMs),
      readyRecoveryMs: r.readyAgain - r.restoredAt, loginRecoveryMs: r.loginAgain - r.restoredAt,
    };
    console.log(`[outage:${label}] ${JSON.stringify(figures)} (defaults ${JSON.stringify(DEFAULT_DB_TIMEOUTS)})`);

    // every request got an answer, and the only failure is 503 SERVICE_UNAVAILABLE with Retry-After
    expect(r.samples.filter((s) => s.status === 0), 'client timeouts').toEqual([]);
    const allowed = new Set([200, 201, 503]);
    expect(r.samples.filter((s) => !allowed.has(s.status) && !(s.kind === 'register' && s.status === 409)), 'unexpected statuses').toEqual([]);
    for (const s of r.samples.filter((x) => x.status === 503)) {
      expect(s.code).toBe('SERVICE_UNAVAILABLE');
      expect(Number(s.retryAfter)).toBeGreaterThan(0);
    }
    expect(unavailable.length, 'the outage was seen').toBeGreaterThan(0);
    // the issue's budgets: every request within 2 s, /ready 503 within 1 s, recovery within 2 s
    expect(figures.max, 'slowest request during the outage (ms)').toBeLessThan(2000);
    expect(r.ready.slice(1).every((s) => s.status === 503), 'ready during the outage').toBe(true);
    expect(figures.readyMax, '/ready during the outage (ms)').toBeLessThan(1000);
    expect(r.health.every((s) => s.status === 200), '/health stays 200').toBe(true);
    expect(r.readyAgain, 'ready again').toBeGreaterThan(0);
    expect(figures.readyRecoveryMs).toBeLessThan(2000);
    expect(figures.loginRecoveryMs).toBeLessThan(2000);
  }

  /** Registrations: no half-done account, and each one that was not answered 201 completes on retry with its key. */
  async function noPartialWrites(samples: Sample[]) {
    const regs = samples.filter((s) => s.kind === 'register');
    let inDoubt = 0;
    for (const s of regs.filter((x) => x.status !== 201)) {
      let retry = await registerCall(s.email!, s.key!);
      for (let i = 0; i < 80 && retry.status === 409 && retry.code === 'CONFLICT'; i++) {
        await sleep(500);
        retry = await registerCall(s.email!, s.key!);
      }
      // 201: executed now, or the stored answer. Never EMAIL_TAKEN: the answer commits with the account
      // (a first attempt that committed while its connection died is replayed, not in doubt)
      if (retry.status === 409 && retry.code === 'EMAIL_TAKEN') inDoubt++;
      expect(retry.status, `retry of ${s.status}: ${retry.code ?? ''}`).toBe(201);
    }
    const emails = regs.map((s) => s.email!);
    const rows = await direct.db.execute<{ email: string; roles: number; n: number }>(sql`
      select lower(u.email) as email, count(ru.role_id)::int as roles, count(distinct u.id)::int as n
      from users u left join roles_users ru on ru.user_id = u.id
      where lower(u.email) = any(${sql.raw(`array[${emails.map((e) => `'${e}'`).join(',') || "''"}]`)})
      group by lower(u.email)`);
    expect(rows.length, 'every registration has exactly one account').toBe(new Set(emails).size);
    expect(rows.filter((r) => r.n !== 1 || r.roles !== 1), 'complete accounts (one user, its Citizen role)').toEqual([]);
    console.log(`[outage] registrations: ${regs.length}, not 201 at first: ${regs.filter((s) => s.status !== 201).length}, in doubt: ${inDoubt}`);
  }

  it('cut (database down) under load: 503 fast, /ready 503, /health 200, recovery without restart, no partial write', async () => {
    const r = await outage('cut');
    check('cut', r);
    await noPartialWrites(r.samples);
  }, 120_000);

  it('black-holed (connections accepted, never answered) under load: the same', async () => {
    const r = await outage('blackhole');
    check('blackhole', r);
    await noPartialWrites(r.samples);
  }, 120_000);

  it('a password change cut at 8 different moments: new password, revoked sessions and notice mail commit together or not at all', async () => {
    const outcomes: string[] = [];
    for (let trial = 0; trial < 8; trial++) {
      const user = await makeUser(securityContext(t.config, { db: direct }));
      const s1 = await login(t.app, user.email);
      await login(t.app, user.email); // a second session, which a committed change revokes
      const [before] = await direct.db.execute<{ uq: string }>(sql`select fs_uniquifier as uq from users where id = ${user.id}`);
      const next = `Other-Quiet-Harbor-${trial}-Lantern`;
      proxy.delayMs = 10;
      const answer = fetch(`${base}/change-password`, json({ password: GOOD_PASSWORD, new_password: next }, { authorization: `Bearer ${s1.access_token}` }))
        .then((r) => r.status, () => 0);
      await sleep(trial * 35);
      await proxy.cut();
      const status = await answer;
      proxy.delayMs = 0;
      await proxy.restore();
      let up = false;
      for (let i = 0; i < 200 && !up; i++) {
        up = (await call('ready', '/ready')).status === 200;
        if (!up) await sleep(25);
      }
      expect(up, 'ready again').toBe(true);
      const [after] = await direct.db.execute<{ uq: string; password: string; live: number; notices: number }>(sql`
        select u.fs_uniquifier as uq, u.password,
          (select count(*)::int from sessions s where s.user_id = u.id and s.revoked_at is null) as live,
          (select count(*)::int from outbox o where o.user_id = u.id and o.template = 'password_changed') as notices
        from users u where u.id = ${user.id}`);
      const changed = (await t.ctx.passwords.verify(next, after!.password)).ok;
      const unchanged = (await t.ctx.passwords.verify(GOOD_PASSWORD, after!.password)).ok;
      expect(changed !== unchanged, 'exactly one password works').toBe(true);
      if (changed) {
        expect(after!.uq).not.toBe(before!.uq);
        expect(after!.live, 'only the new session of this client').toBe(1);
        expect(after!.notices).toBe(1);
      } else {
        expect(after!.uq).toBe(before!.uq);
        expect(after!.live).toBe(2);
        expect(after!.notices).toBe(0);
      }
      if (status === 200) expect(changed, 'a 200 was committed').toBe(true);
      expect([200, 503], `trial ${trial}`).toContain(status);
      outcomes.push(`${status}:${changed ? 'changed' : 'unchanged'}`);
    }
    console.log(`[outage] password change cut at 0..245 ms: ${outcomes.join(' ')}`);
  }, 90_000);

  it('registrations cut at many moments under load, each retried with its Idempotency-Key until answered: one 201 per client (original or replay), never 409 EMAIL_TAKEN, every account whole', async () => {
    // ROUNDS × CLIENTS registrations; each round cuts the database at another moment of their life
    // (claim, hash, insert, audit, session, answer, COMMIT, after it), and some clients give up on
    // their first attempt after a few ms (the server goes on without them). Every client retries
    // with its key after a 503, a timeout or a 409 CONFLICT (in flight) until it gets an answer.
    const ROUNDS = 25;
    const CLIENTS = 24;
    const background = { running: true, n: 0 };
    const bg = Array.from({ length: 2 }, async (_, w) => {
      for (let i = 0; background.running; i++, background.n++) {
        if ((i + w) % 2) await call('login', '/login', json({ email, password: GOOD_PASSWORD }));
        else await call('current-user', '/auth/current-user', { headers: { authorization: `Bearer ${token}` } });
      }
    });
    interface Outcome {
      email: string; key: string; status: number; code?: string; replayed: boolean;
      body?: { user: { id: number; email: string }; access_token?: string }; seen: string[];
    }
    async function client(e: string, key: string, giveUpFirstMs: number): Promise<Outcome> {
      const seen: string[] = [];
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const patience = seen.length === 0 && giveUpFirstMs ? giveUpFirstMs : 10_000;
        let res: Response;
        let text: string;
        const sentAt = Date.now();
        try {
          res = await fetch(`${base}/register`, { ...json({ email: e, password: GOOD_PASSWORD }, { 'idempotency-key': key }), signal: AbortSignal.timeout(patience) });
          text = await res.text();
        } catch (err) {
          if (Date.now() - sentAt > 2000) slow.push(`${e} attempt ${seen.length} after [${seen.join(' ')}]: ${String(err)} after ${Date.now() - sentAt} ms`);
          seen.push('timeout');
          await sleep(20);
          continue;
        }
        const body = JSON.parse(text) as Record<string, unknown>;
        const code = typeof body.code === 'string' ? body.code : undefined;
        seen.push(code ? `${res.status}:${code}` : String(res.status));
        if (res.status === 503 || (res.status === 409 && code === 'CONFLICT')) {
          await sleep(res.status === 503 ? 40 : 80);
          continue;
        }
        return { email: e, key, status: res.status, code, replayed: res.headers.get('idempotent-replayed') === 'true', body: body as Outcome['body'], seen };
      }
      return { email: e, key, status: 0, replayed: false, seen };
    }

    const outcomes: Outcome[] = [];
    const roundMs: number[] = [];
    const slow: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const roundStart = Date.now();
      const runs = Array.from({ length: CLIENTS }, (_, i) => client(
        `atomic-${round}-${i}-${randomBytes(3).toString('hex')}@example.com`, randomUUID(), i % 4 === 0 ? 3 + ((round * 7 + i) % 30) : 0));
      await sleep((round * 13) % 90); // the cut lands at another moment of the registrations each round
      await proxy.cut();
      await sleep(20);
      await proxy.restore();
      outcomes.push(...await Promise.all(runs));
      roundMs.push(Date.now() - roundStart);
    }
    background.running = false;
    await Promise.all(bg);

    const seen = outcomes.flatMap((o) => o.seen);
    const figures = {
      rounds: ROUNDS, clients: outcomes.length, cuts: ROUNDS, background: background.n,
      original201: outcomes.filter((o) => o.status === 201 && !o.replayed).length,
      replayed201: outcomes.filter((o) => o.status === 201 && o.replayed).length,
      retried: outcomes.filter((o) => o.seen.length > 1).length,
      seen503: seen.filter((x) => x.startsWith('503')).length, seenTimeouts: seen.filter((x) => x === 'timeout').length,
      seenInFlight409: seen.filter((x) => x === '409:CONFLICT').length, emailTaken409: seen.filter((x) => x === '409:EMAIL_TAKEN').length,
      roundMsP50: pct(roundMs, 50), roundMsMax: Math.max(...roundMs),
    };
    console.log(`[outage] registrations cut at ${ROUNDS} moments: ${JSON.stringify(figures)}`);
    // a request that hangs (the client gave up after 10 s) is a finding even when its retry completes
    // (postgres.js's savepoint inside a transaction could leave one idle in transaction until PostgreSQL's timeout)
    expect(slow, 'attempts left unanswered until the client gave up').toEqual([]);

    // every client ends with its 201, and no answer on the way was EMAIL_TAKEN
    expect(outcomes.filter((o) => o.status !== 201).map((o) => `${o.email}: ${o.seen.join(' ')}`), 'clients without their 201').toEqual([]);
    expect(figures.emailTaken409, '409 EMAIL_TAKEN answers').toBe(0);
    expect(figures.retried, 'cuts that hit registrations in flight').toBeGreaterThan(0);
    for (const o of outcomes) {
      expect(o.body!.user.email).toBe(o.email);
      // a replay is the first answer without its credentials; only the original carries the tokens
      if (o.replayed) expect(o.body!.access_token).toBeUndefined();
      else expect(typeof o.body!.access_token).toBe('string');
    }
    // the database: exactly one whole account per client — its role, its audit rows, the session of
    // its auto-login, and its key holding the answer that was (or will be) replayed
    const rows = await direct.db.execute<{ email: string; id: number; n: number; roles: number; registered: number; logins: number; sessions: number; answer: number | null; answer_user: string | null }>(sql`
      select lower(u.email) as email, min(u.id)::int as id, count(*)::int as n,
        sum((select count(*) from roles_users ru where ru.user_id = u.id))::int as roles,
        sum((select count(*) from audit_events a where a.target_user_id = u.id and a.action = 'user.registered'))::int as registered,
        sum((select count(*) from audit_events a where a.target_user_id = u.id and a.action = 'login.succeeded'))::int as logins,
        sum((select count(*) from sessions s where s.user_id = u.id))::int as sessions,
        null::int as answer, null::text as answer_user
      from users u where lower(u.email) like 'atomic-%' group by lower(u.email)`);
    const keys = await direct.db.execute<{ key: string; status: number | null; user_id: string | null }>(sql`
      select key, response_status as status, response_body->'user'->>'id' as user_id from idempotency_keys where operation = 'POST /register'`);
    const byKey = new Map(keys.map((k) => [k.key, k]));
    const byEmail = new Map(rows.map((r) => [r.email, r]));
    expect(rows.length, 'accounts').toBe(outcomes.length);
    const broken: string[] = [];
    for (const o of outcomes) {
      const r = byEmail.get(o.email.toLowerCase());
      const k = byKey.get(o.key);
      if (!r || r.n !== 1 || r.roles !== 1 || r.registered !== 1 || r.logins !== 1 || r.sessions !== 1) broken.push(`${o.email}: ${JSON.stringify(r)}`);
      else if (o.body!.user.id !== r.id || k?.status !== 201 || Number(k.user_id) !== r.id) broken.push(`${o.email}: answer ${o.body!.user.id}, key ${JSON.stringify(k)}, account ${r.id}`);
    }
    expect(broken, 'accounts without their role, audit rows, session or recorded answer').toEqual([]);
  }, 120_000);

  it('a registration whose answer the client never saw (it gave up) is completed by its retry with the same key: the original 201', async () => {
    const e = `slow-${randomBytes(4).toString('hex')}@example.com`;
    const key = randomUUID();
    proxy.delayMs = 150; // a slow path to the database: the request outlives the client's patience
    try {
      const gaveUp = await fetch(`${base}/register`, { ...json({ email: e, password: GOOD_PASSWORD }, { 'idempotency-key': key }), signal: AbortSignal.timeout(100) })
        .then(() => 'answered', () => 'gave up');
      expect(gaveUp).toBe('gave up');
      let retry: Response;
      for (;;) {
        retry = await fetch(`${base}/register`, json({ email: e, password: GOOD_PASSWORD }, { 'idempotency-key': key }));
        if (retry.status !== 409) break;
        expect(retry.headers.get('retry-after')).toBe('1');
        await sleep(200);
      }
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      const body = await retry.json() as { user: { id: number; email: string }; access_token?: string };
      expect(body.user.email).toBe(e);
      expect(body.access_token).toBeUndefined();
      const [row] = await direct.db.execute<{ id: number }>(sql`select id from users where lower(email) = lower(${e})`);
      expect(body.user.id).toBe(row!.id);
    } finally {
      proxy.delayMs = 0;
    }
    // the account works: the client signs in with the password it registered
    const res = await fetch(`${base}/login`, json({ email: e, password: GOOD_PASSWORD }));
    expect(res.status).toBe(200);
  }, 60_000);
});
