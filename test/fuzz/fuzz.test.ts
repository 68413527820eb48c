// The schema-driven fuzzer (issue 14). For every operation in openapi/openapi.json — whatever it
// holds when the test runs, so new routes are fuzzed without touching this file — and for each kind
// of principal (none, bearer citizen/officer/admin, cookie + CSRF admin, personal token), it sends
// valid and mutated requests generated from the declared schemas and checks every answer: a
// documented status, never 5xx, the body matching that status's schema, the error envelope, the
// security headers, and no secret (password hashes, uniquifiers, tokens, passwords) in the body or
// in the captured log.
//
// CI: a fixed seed and FUZZ_RUNS requests (default 3000). `npm run fuzz`: a random seed, more runs
// (FUZZ_RUNS, default 20000); every failure prints the seed and run index that reproduce it
// (FUZZ_SEED=<seed> npm run fuzz).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../../src/config.js';
import { connect, type DbHandle } from '../../src/db/client.js';
import { users } from '../../src/db/schema/index.js';
import { securityContext, type SecurityContext } from '../../src/security/context.js';
import { createTestDatabase, GOOD_PASSWORD, makeUser, TestClock, type TestDatabase } from '../support/helper.js';
import { buildRequest, checkAnswer, describeRequest, loadOperations, mutationArb, secretsIn, type Known, type Operation } from './engine.js';

const LONG = process.env.FUZZ_MODE === 'long';
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : LONG ? Date.now() % 2_147_483_647 : 20261201;
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : LONG ? 20_000 : 3000;

type PrincipalKind = 'anonymous' | 'citizen' | 'officer' | 'admin' | 'adminCookie' | 'adminToken';
const KINDS: PrincipalKind[] = ['anonymous', 'citizen', 'officer', 'admin', 'adminCookie', 'adminToken'];
/** Who sends an authenticated operation's request: admins more often (they reach the most code). */
const PICK: PrincipalKind[] = ['anonymous', 'citizen', 'officer', 'admin', 'admin', 'admin', 'adminCookie', 'adminCookie', 'adminToken'];
interface Principal { kind: PrincipalKind; headers: Record<string, string>; userId?: number; secrets: string[]; csrf?: string }

describe('schema-driven fuzzer', () => {
  let database: TestDatabase;
  let db: DbHandle;
  let ctx: SecurityContext;
  let app: Awaited<ReturnType<typeof buildApp>>;
  const log: string[] = [];
  const ops: Operation[] = loadOperations();

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = testConfig({
      DATABASE_URL: database.url, LOG_LEVEL: 'info', SECURITY_REGISTERABLE: 'true', SECURITY_RECOVERABLE: 'true',
      SECURITY_CHANGEABLE: 'true', SECURITY_CONFIRMABLE: 'true',
    });
    db = connect(database.url, { max: 5 });
    const clock = new TestClock();
    app = await buildApp(config, { db, clock, logger: { write: (line) => { log.push(line); } } });
    await app.ready();
    ctx = securityContext(config, { db, clock });
  });
  afterAll(async () => {
    await app?.close();
    await db?.close();
    await database?.drop();
  });

  async function makePrincipal(kind: PrincipalKind): Promise<Principal> {
    if (kind === 'anonymous') return { kind, headers: {}, secrets: [] };
    const roles = kind === 'citizen' ? ['Citizen'] : kind === 'officer' ? ['Department Officer'] : ['County Admin'];
    const user = await makeUser(ctx, { roles, countyId: kind === 'officer' ? 1 : undefined });
    const res = await app.inject({ method: 'POST', url: '/login', payload: { email: user.email, password: GOOD_PASSWORD } });
    if (res.statusCode !== 200) throw new Error(`fuzzer login failed: ${res.statusCode} ${res.body}`);
    const b = res.json() as { access_token: string; refresh_token: string; csrf_token: string };
    const secrets = [b.access_token, b.refresh_token, b.csrf_token];
    if (kind === 'adminCookie') {
      const cookie = res.cookies.find((c) => c.name === 'session')!.value;
      return { kind, userId: user.id, headers: { cookie: `session=${cookie}`, 'x-csrf-token': b.csrf_token }, secrets: [...secrets, cookie], csrf: b.csrf_token };
    }
    if (kind === 'adminToken') {
      const t = await app.inject({ method: 'POST', url: '/auth/tokens', payload: { name: 'fuzz' }, headers: { authorization: `Bearer ${b.access_token}` } });
      if (t.statusCode !== 201) throw new Error(`fuzzer personal token failed: ${t.statusCode} ${t.body}`);
      const token = (t.json() as { token: string }).token;
      return { kind, userId: user.id, headers: { authorization: `Bearer ${token}` }, secrets: [...secrets, token], csrf: b.csrf_token };
    }
    return { kind, userId: user.id, headers: { authorization: `Bearer ${b.access_token}` }, secrets, csrf: b.csrf_token };
  }

  it(`answers ${RUNS} generated requests as documented (seed ${SEED})`, { timeout: LONG ? 3_600_000 : 300_000 }, async () => {
    expect(ops.length).toBeGreaterThan(40);
    const principals = new Map<PrincipalKind, Principal>();
    for (const kind of KINDS) principals.set(kind, await makePrincipal(kind));
    const retired: string[] = [];
    let uniquifiers: string[] = [];
    const refreshUniquifiers = async () => {
      uniquifiers = (await db.db.select({ u: users.fsUniquifier }).from(users)).map((r) => r.u);
    };
    await refreshUniquifiers();
    const known = (): Known => ({
      ids: [1, 2, 3, ...[...principals.values()].flatMap((p) => (p.userId ? [p.userId] : []))],
      roleNames: ['Citizen', 'Department Officer', 'County Admin', 'Nobody'],
      password: GOOD_PASSWORD,
    });
    // Everything secret, for the log; the body may carry the caller's own CSRF token (GET /auth/csrf).
    const secrets = () => [...uniquifiers, GOOD_PASSWORD, ...retired, ...[...principals.values()].flatMap((p) => p.secrets)];
    const csrfTokens = () => new Set([...principals.values()].map((p) => p.csrf));
    const bodySecrets = () => { const own = csrfTokens(); return secrets().filter((s) => !own.has(s)); };

    const inputs = fc.sample(fc.tuple(fc.nat(ops.length * 97), fc.nat(KINDS.length * 31), fc.integer({ min: 0, max: 2 ** 30 }), mutationArb), { seed: SEED, numRuns: RUNS });
    const failures: string[] = [];
    const seen = new Set<string>();
    const statusCounts: Record<string, number> = {};
    const started = Date.now();
    let logFrom = 0;

    for (const [index, [opPick, principalPick, seed, mutation]] of inputs.entries()) {
      const op = ops[opPick % ops.length]!;
      // anonymous-only operations are mostly sent anonymously, but a principal must not break them either
      const kind = !op.authenticated && principalPick % 3 !== 0 ? 'anonymous' : PICK[principalPick % PICK.length]!;
      const principal = principals.get(kind)!;
      const req = buildRequest(op, seed, mutation, known());
      const res = await app.inject({ method: req.method as 'GET', url: req.url, headers: { ...req.headers, ...principal.headers }, payload: req.payload });
      statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
      const problems = checkAnswer(op, req, { statusCode: res.statusCode, headers: res.headers, body: res.body }, bodySecrets());
      const newLog = log.slice(logFrom).join('\n');
      logFrom = log.length;
      problems.push(...secretsIn(newLog, secrets()).map((s) => `secret in the log: ${s}`));
      if (newLog.includes('database refused a value')) problems.push(`a value reached PostgreSQL that it refused: ${newLog.match(/.*database refused a value.*/)?.[0]?.slice(0, 400)}`);
      if (/"level":50/.test(newLog)) problems.push(`an error-level log line: ${newLog.match(/.*"level":50.*/)?.[0]?.slice(0, 400)}`);
      for (const p of problems) {
        const key = `${op.id} ${p.replace(/body=.*/, '').slice(0, 120)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        failures.push(`[FUZZ_SEED=${SEED} run ${index}] ${op.id} as ${kind} (${mutation.kind}): ${p}\n    ${describeRequest(req)}`);
      }
      // Principals the fuzz has logged out, deactivated or stripped: replace them, keep their old
      // secrets on the list (a dead token must not show up anywhere either).
      if (index % 20 === 19 || res.statusCode === 401) {
        for (const [k, p] of principals) {
          if (k === 'anonymous') continue;
          const check = await app.inject({ method: 'GET', url: '/auth/sessions', headers: p.headers });
          const me = check.statusCode === 200 ? await app.inject({ method: 'GET', url: '/auth/current-user', headers: p.headers }) : check;
          const roles = me.statusCode === 200 ? (me.json() as { user: { roles: string[] } }).user.roles : [];
          const wanted = k === 'citizen' ? 'Citizen' : k === 'officer' ? 'Department Officer' : 'County Admin';
          if (check.statusCode !== 200 || !roles.includes(wanted)) {
            retired.push(...p.secrets);
            principals.set(k, await makePrincipal(k));
          }
        }
      }
      if (index % 200 === 199) await refreshUniquifiers();
      if (failures.length >= 60) break;
    }
    await refreshUniquifiers();
    const wholeLog = log.join('\n');
    for (const s of secretsIn(wholeLog, secrets())) failures.push(`[FUZZ_SEED=${SEED}] secret in the log (end of run): ${s}`);
    const seconds = (Date.now() - started) / 1000;
    console.log(`fuzz: seed ${SEED}, ${inputs.length} requests over ${ops.length} operations in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(statusCounts)}`);
    if (failures.length) console.log(`fuzz failures (reproduce with FUZZ_SEED=${SEED}):\n${failures.join('\n')}`);
    expect(failures).toEqual([]);
  });
});
