// npm run bench: starts PostgreSQL (embedded) and the API itself AS DEPLOYED (NODE_ENV=production:
// rate limits on with the PostgreSQL store, lockout on, bcrypt 12, caches on), seeds users and 10,000
// sessions, and measures every scenario side by side with a bare Fastify hello-world and a bcrypt
// micro-benchmark in the same run, so each figure is also a ratio. Every setting that differs from
// the production defaults is a named flag (FLAGS below), printed with the table and written to
// docs/performance.md. Output: the table, bench/results/latest.json and (full runs) docs/performance.md.
//
// Environment: BENCH_DURATION (seconds per scenario, default 8), BENCH_CONNECTIONS (default 32),
// BCRYPT_LOG_ROUNDS (default 12), BENCH_ONLY (comma-separated scenario names), BENCH_CPU_PROF (a
// directory for the API's V8 CPU profile), BENCH_OUT (the results file under bench/results; default
// latest.json, partial.json when BENCH_ONLY is set; names as printed, comma-separated), BENCH_SESSIONS (distinct sessions, default 10000),
// BENCH_DOCS (1: write docs/performance.md even for a partial run; 0: never).
import autocannon from 'autocannon';
import bcrypt from 'bcrypt';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { openSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { performanceDoc, readmePerformance, withReadmePerformance } from './performance-doc.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { ensureDatabase } from '../src/db/index.js';
import { connect } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { seed } from '../src/security/seed.js';
import { securityContext } from '../src/security/context.js';
import { loadConfig } from '../src/config.js';
import { freePort } from '../src/db/embedded.js';
import { createSession } from '../src/security/sessions.js';
import { keyId } from '../src/security/keyring.js';
import { createHmac } from 'node:crypto';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const LOGIN_DURATION = Math.max(DURATION, 20);
// a partial run (BENCH_ONLY) never overwrites the full results
const OUT = process.env.BENCH_OUT ?? (process.env.BENCH_ONLY ? 'partial.json' : 'latest.json');
const ROUNDS = Number(process.env.BCRYPT_LOG_ROUNDS ?? 12);
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const PASSWORD = 'Bench-Quiet-Harbor-93';
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
// Deviations from the production defaults, each with its reason; printed with the table.
const FLAGS: Record<string, string> = {
  TRUST_PROXY: '127.0.0.1 — the bench plays many clients behind one proxy: X-Forwarded-For names each simulated client ' +
    '(one address per session), so per-client limits apply per client as they would in production',
  RATE_LIMIT_GLOBAL: '1000000000/1m — the one-session scenarios are one client at thousands of requests per second; the ' +
    'limiter still runs as deployed (PostgreSQL store, batched global counts, exact auth/refresh/totp classes at their defaults)',
  SECURITY_TWO_FACTOR_REQUIRED_ROLES: '(empty) — the County Admin of the /users scenario signs in with a password only',
  LOG_LEVEL: 'warn — the production default (info) writes two request log lines per request; that is pino, not this API',
};
if (ROUNDS !== 12) FLAGS.BCRYPT_LOG_ROUNDS = `${ROUNDS} — production default 12`;
// production refuses secrets written in the repository: fresh random ones per run
const SECRETS = { SECRET_KEY: randomBytes(32).toString('hex'), SECURITY_PASSWORD_SALT: randomBytes(32).toString('hex') };

interface Row { scenario: string; rps: number; p50: number; p99: number; errors: number; non2xx: number; ratio?: number; note?: string; hitRate?: number }
const rows: Row[] = [];
const extra: Record<string, unknown> = {};

function log(msg: string) {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function waitFor(url: string, timeoutMs = 30_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok) return performance.now() - start;
    } catch { /* not up yet */ }
    if (performance.now() - start > timeoutMs) throw new Error(`${url} not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

type Opts = Omit<autocannon.Options, 'url'> & { url: string };
async function load(name: string, opts: Opts, note?: string): Promise<Row | undefined> {
  if (ONLY && !ONLY.includes(name)) return undefined;
  log(`${name} …`);
  // a short warm-up lets the JIT and the caches settle
  await autocannon({ ...opts, duration: 1 });
  const r = await autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts });
  // completed requests over the run's length (seconds); two decimals for slow scenarios such as login
  const rate = r.requests.total / r.duration;
  const row: Row = { scenario: name, rps: Number(rate.toFixed(rate < 100 ? 2 : 0)), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, note };
  rows.push(row);
  return row;
}

function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    // BENCH_CPU_PROF=dir: the API writes a V8 CPU profile there when it stops (open it in Chrome DevTools)
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(process.env.BENCH_CPU_PROF)}`] : [];
    // bench/probe.ts answers questions about the caches over IPC (the hit rate); the server is otherwise as deployed
    // BENCH_SERVER_LOG=file: the API's log lines (stdout) go there
    const out = process.env.BENCH_SERVER_LOG ? openSync(process.env.BENCH_SERVER_LOG, 'a') : 'ignore';
    const child = spawn(process.execPath, [...prof, '--import', 'tsx', '--import', './bench/probe.ts', 'src/server.ts'], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', out, 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderr.slice(-2000)}`)));
    waitFor(`http://127.0.0.1:${env.PORT}/ready`).then(() => resolve({ child, port: Number(env.PORT) }), reject);
  });
}

interface CacheStats { auth: { hits: number; misses: number; hitRate: number; size: number; evictions: number; racedLoads: number } }
/** The server's cache statistics (bench/probe.ts); `reset` zeroes them first. Answers are matched by id (a busy server answers late). */
let probeId = 0;
function cacheStats(child: ChildProcess, reset = false): Promise<CacheStats[]> {
  const id = ++probeId;
  return new Promise((resolve) => {
    const onMessage = (m: { id?: number; cacheStats?: CacheStats[] }) => {
      if (m?.id !== id) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(m.cacheStats ?? []);
    };
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      log(`cache statistics: no answer from the server in 30 s`);
      resolve([]);
    }, 30_000);
    child.on('message', onMessage);
    child.send({ q: reset ? 'cache-stats-reset' : 'cache-stats', id });
  });
}
const hitRateOf = (stats: CacheStats[]) => {
  const hits = stats.reduce((n, s) => n + s.auth.hits, 0);
  const misses = stats.reduce((n, s) => n + s.auth.misses, 0);
  return hits + misses ? hits / (hits + misses) : 0;
};

/** HS256 access tokens exactly as the API signs them (kid, iss, aud), for sessions the bench created. */
function signAccess(secret: string, claims: { sub: string; uq: string; sid: string }, iss: string, aud: string): string {
  const iat = Math.floor(Date.now() / 1000);
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'HS256', typ: 'JWT', kid: keyId(secret) })}.${enc({ ...claims, iat, exp: iat + 3 * 3600, iss, aud })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/** A client address per index (X-Forwarded-For behind TRUST_PROXY=127.0.0.1). */
const clientIp = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const percentile = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(1);
};

/**
 * Ends a child: SIGTERM, then SIGKILL after 15 s. One that has already ended (by its code, or by a
 * signal: then exitCode stays null and only signalCode says so) resolves at once — waiting for the
 * 'exit' of a child stopped earlier kept the bench from ever ending.
 */
function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.removeAllListeners('exit');
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function bcryptCeiling() {
  const pw = 'x'.repeat(44);
  const t0 = performance.now();
  const n = 6;
  for (let i = 0; i < n; i++) await bcrypt.hash(pw, ROUNDS);
  const msPerHash = (performance.now() - t0) / n;
  const cores = cpus().length;
  // Throughput with every core hashing at once (libuv runs bcrypt on its thread pool).
  const t1 = performance.now();
  const parallel = cores * 6;
  await Promise.all(Array.from({ length: parallel }, () => bcrypt.hash(pw, ROUNDS)));
  const perSecond = parallel / ((performance.now() - t1) / 1000);
  return { msPerHash: Math.round(msPerHash), ceilingPerSecond: Number(perSecond.toFixed(2)), cores };
}

async function main() {
  const started = Date.now();
  const work = await mkdtemp(path.join(tmpdir(), 'county-bench-'));
  await chmod(work, 0o755);
  const children: ChildProcess[] = [];
  let pg: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
  const want = (name: string) => !ONLY || ONLY.includes(name);
  try {
    // ---- the baseline ----
    const hello = fork(path.join(ROOT, 'bench/hello.ts'), ['0'], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
    children.push(hello);
    const helloPort = await new Promise<number>((r) => hello.once('message', (m: { port: number }) => r(m.port)));
    const base = await load('hello-world (bare Fastify)', { url: `http://127.0.0.1:${helloPort}/` });
    await stop(hello);

    // ---- database and data ----
    pg = await startEmbeddedPostgres({ dataDir: path.join(work, 'pg') });
    await ensureDatabase(pg.url(), 'bench');
    const url = pg.url('bench');
    const config = loadConfig({ NODE_ENV: 'production', ...SECRETS, DATABASE_URL: url, BCRYPT_LOG_ROUNDS: String(ROUNDS) });
    const db = connect(url, { max: 4 });
    await runMigrations(db.db);
    const ctx = securityContext(config, { db });
    await seed(ctx, { devAdmin: false });
    const hash = await ctx.passwords.hash(PASSWORD);
    await db.sql`insert into users (email, password, first_name, last_name, fs_uniquifier, confirmed_at, county_id)
      select 'bench' || g || '@example.com', ${hash}, 'Bench', 'User ' || g, md5(random()::text) || g, now(), 1 from generate_series(1, 200) g`;
    // the many-sessions population: one user and one session each
    await db.sql`insert into users (email, password, first_name, last_name, fs_uniquifier, confirmed_at, county_id)
      select 'load' || g || '@example.com', ${hash}, 'Load', 'User ' || g, md5(random()::text) || g, now(), 1 from generate_series(1, ${SESSIONS}) g`;
    await db.sql`insert into roles_users (user_id, role_id) select u.id, r.id from users u, roles r
      where r.name = 'Citizen' and (u.email like 'bench%' or u.email like 'load%')`;
    await db.sql`insert into roles_users (user_id, role_id) select u.id, r.id from users u, roles r
      where r.name = 'County Admin' and u.email = 'bench1@example.com'`;
    log(`creating ${SESSIONS} sessions …`);
    const people = await db.sql<{ id: number; fs_uniquifier: string }[]>`select id, fs_uniquifier from users where email like 'load%' order by id`;
    const population: { sub: string; uq: string; sid: string; refresh: string; ip: string }[] = [];
    for (let i = 0; i < people.length; i += 100) {
      const chunk = people.slice(i, i + 100);
      const made = await Promise.all(chunk.map((u, j) => createSession(ctx, { userId: u.id, ip: clientIp(i + j), userAgent: 'bench' })));
      made.forEach((m, j) => population.push({ sub: String(chunk[j]!.id), uq: chunk[j]!.fs_uniquifier, sid: m.session.id, refresh: m.refreshToken, ip: clientIp(i + j) }));
    }
    await db.close();
    const accessTokens = () => population.map((p) => signAccess(SECRETS.SECRET_KEY, p, config.JWT_ISSUER, config.JWT_AUDIENCE));

    // ---- the API, as deployed except FLAGS ----
    const port = await freePort();
    const env: Record<string, string> = {
      NODE_ENV: 'production', ...SECRETS, DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1',
      BCRYPT_LOG_ROUNDS: String(ROUNDS), LOG_LEVEL: 'warn', TRUST_PROXY: '127.0.0.1',
      RATE_LIMIT_GLOBAL: '1000000000/1m', SECURITY_TWO_FACTOR_REQUIRED_ROLES: '',
    };
    const { child: api } = await startServer(env);
    children.push(api);
    const apiUrl = `http://127.0.0.1:${port}`;
    let loginIp = 1;
    const loginAs = async (email: string, to = apiUrl) => {
      const res = await fetch(`${to}/login`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp(200_000 + loginIp++) },
        body: JSON.stringify({ email, password: PASSWORD }),
      });
      if (!res.ok) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
      const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      return { ...(await res.json()) as { access_token: string; refresh_token: string }, cookie };
    };
    const citizen = await loginAs('bench2@example.com');
    const admin = await loginAs('bench1@example.com');
    const one = { 'x-forwarded-for': '10.255.0.1' };
    // check the bench's own tokens before measuring with them
    const probe = await fetch(`${apiUrl}/auth/current-user`, { headers: { authorization: `Bearer ${accessTokens()[0]}`, ...one } });
    if (probe.status !== 200) throw new Error(`bench-signed token refused: ${probe.status} ${await probe.text()}`);
    const rssStart = await rss(api.pid!);

    /** requests spread over every session of the population, each from its own client address */
    const spread = (tokens: string[], path = '/auth/current-user') => {
      let i = 0;
      return [{
        method: 'GET' as const, path,
        setupRequest: (req: Record<string, unknown>) => {
          const k = i++ % tokens.length;
          return { ...req, headers: { ...(req.headers as object), authorization: `Bearer ${tokens[k]}`, 'x-forwarded-for': population[k]!.ip } };
        },
      }];
    };
    /** measures `name` with the server's hit rate over the measured part only */
    const measured = async (name: string, opts: Parameters<typeof load>[1], note?: string, server: ChildProcess = api) => {
      if (!want(name)) return undefined;
      await cacheStats(server, true);
      const row = await load(name, opts, note);
      const stats = await cacheStats(server);
      if (row && stats.length) row.hitRate = +hitRateOf(stats).toFixed(4);
      return row;
    };
    /** every session once, so the many-session scenarios measure a population that is active (cached) */
    const warm = async (to: string, tokens: string[]) => {
      await autocannon({ url: `${to}/auth/current-user`, connections: CONNECTIONS, amount: tokens.length, requests: spread(tokens) as never });
    };

    await load('GET /health', { url: `${apiUrl}/health`, headers: one });
    const me = await measured('GET /auth/current-user (bearer) one session', { url: `${apiUrl}/auth/current-user`, headers: { authorization: `Bearer ${citizen.access_token}`, ...one } });
    await measured('GET /auth/current-user (cookie) one session', { url: `${apiUrl}/auth/current-user`, headers: { cookie: citizen.cookie, ...one } });
    await load('GET /auth/current-user (invalid token → 401)', { url: `${apiUrl}/auth/current-user`, headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Inh4eHh4eHh4eHh4eCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW5vdC12YWxpZC1hdC1hbGwtMDEyMzQ1Njc4OQ', ...one } });

    const manyName = `GET /auth/current-user (bearer) ${SESSIONS} sessions`;
    let many: Row | undefined;
    if (want(manyName)) {
      const tokens = accessTokens();
      await warm(apiUrl, tokens);
      many = await measured(manyName, { url: `${apiUrl}/auth/current-user`, requests: spread(tokens) as never });
    }
    await measured('GET /users?per_page=50 (County Admin)', { url: `${apiUrl}/users?per_page=50`, headers: { authorization: `Bearer ${admin.access_token}`, ...one } });

    // Refresh: every request rotates its token; a shared queue hands each connection a live one.
    if (want('POST /refresh-token')) {
      const queue: string[] = [];
      for (let i = 0; i < CONNECTIONS * 2; i++) queue.push((await loginAs(`bench${10 + i}@example.com`)).refresh_token);
      let n = 0;
      await load('POST /refresh-token', {
        url: `${apiUrl}/refresh-token`,
        requests: [{
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'x-forwarded-for': clientIp(300_000 + (n++ % 50_000)) }, body: JSON.stringify({ refresh_token: queue.shift() ?? 'exhausted' }) }),
          onResponse: (status, body) => {
            if (status === 200) queue.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
          },
        }],
      });
    }

    // ---- the mixed workload: 90 % reads over the population, 5 % refresh, 4 % profile writes, 1 % logins ----
    const mixedName = `mixed: 90% reads over ${SESSIONS} sessions / 5% refresh / 4% profile writes / 1% logins`;
    if (want(mixedName)) {
      const tokens = accessTokens();
      await warm(apiUrl, tokens);
      const refreshQueue = population.map((p, k) => ({ token: p.refresh, k }));
      const latencies: Record<string, number[]> = { read: [], refresh: [], write: [], login: [] };
      const statuses: Record<string, Record<number, number>> = { read: {}, refresh: {}, write: {}, login: {} };
      let seq = 0;
      let logins = 0;
      // a fixed, seeded sequence: the same mix every run
      let seed = 42;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
      type Ctx = { kind?: string; t0?: number; k?: number };
      await cacheStats(api, true);
      const row = await load(mixedName, {
        url: apiUrl,
        requests: [{
          setupRequest: (req: Record<string, unknown>, context: Ctx) => {
            const r = rnd();
            const k = Math.floor(rnd() * tokens.length);
            context.t0 = performance.now();
            context.k = k;
            const headers = { ...(req.headers as object), 'x-forwarded-for': population[k]!.ip };
            if (r < 0.90) {
              context.kind = 'read';
              return { ...req, method: 'GET', path: '/auth/current-user', body: undefined, headers: { ...headers, authorization: `Bearer ${tokens[k]}` } };
            }
            if (r < 0.95) {
              const next = refreshQueue.shift();
              context.kind = 'refresh';
              context.k = next?.k;
              return { ...req, method: 'POST', path: '/refresh-token', headers: { ...headers, 'content-type': 'application/json', 'x-forwarded-for': population[next?.k ?? 0]!.ip }, body: JSON.stringify({ refresh_token: next?.token ?? 'exhausted' }) };
            }
            if (r < 0.99) {
              context.kind = 'write';
              return { ...req, method: 'PATCH', path: '/auth/current-user', headers: { ...headers, 'content-type': 'application/json', authorization: `Bearer ${tokens[k]}` }, body: JSON.stringify({ first_name: `Load ${seq++}` }) };
            }
            context.kind = 'login';
            return { ...req, method: 'POST', path: '/login', headers: { ...headers, 'content-type': 'application/json', 'x-forwarded-for': clientIp(400_000 + logins) }, body: JSON.stringify({ email: `bench${50 + (logins++ % 150)}@example.com`, password: PASSWORD }) };
          },
          onResponse: (status: number, body: string, context: Ctx) => {
            const kind = context.kind ?? 'read';
            latencies[kind]!.push(performance.now() - (context.t0 ?? performance.now()));
            statuses[kind]![status] = (statuses[kind]![status] ?? 0) + 1;
            if (kind === 'refresh' && status === 200 && context.k !== undefined) {
              refreshQueue.push({ token: (JSON.parse(body) as { refresh_token: string }).refresh_token, k: context.k });
            }
          },
        }] as never,
      });
      if (row) {
        row.hitRate = +hitRateOf(await cacheStats(api)).toFixed(4);
        const perKind = Object.fromEntries(Object.entries(latencies).map(([k, xs]) => [k, { n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), statuses: statuses[k] }]));
        extra.mixed = perKind;
        row.note = `reads p50 ${perKind.read!.p50} ms p99 ${perKind.read!.p99} ms; logins p50 ${perKind.login!.p50} ms (bcrypt ${ROUNDS})`;
      }
    }

    // Login flood at the configured bcrypt cost, with a light /health probe alongside.
    const ceiling = await bcryptCeiling();
    extra.bcrypt = ceiling;
    if (want('POST /login')) {
      let i = 0;
      const [login, health] = await Promise.all([
        load('POST /login', {
          url: `${apiUrl}/login`,
          connections: 8,
          // At ~10 logins/s, the requests still in flight when a short run stops (up to one per
          // connection, ~0.8 s each) are a large share of the total and go uncounted: run longer.
          duration: LOGIN_DURATION,
          requests: [{
            method: 'POST', headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'x-forwarded-for': clientIp(500_000 + i) }, body: JSON.stringify({ email: `bench${(i++ % 150) + 50}@example.com`, password: PASSWORD }) }),
          }],
        }),
        (async () => {
          await new Promise((r) => setTimeout(r, 1500));
          const r = await autocannon({ url: `${apiUrl}/health`, headers: { 'x-forwarded-for': '10.254.0.1' }, connections: 1, duration: Math.max(2, LOGIN_DURATION - 3), overallRate: 50 });
          return { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max };
        })(),
      ]);
      extra.healthDuringLoginFlood = health;
      if (login) login.note = `bcrypt ceiling ${ceiling.ceilingPerSecond}/s at cost ${ROUNDS}: ${(login.rps / ceiling.ceilingPerSecond).toFixed(2)}×; /health p99 during flood ${health.p99} ms`;
    }

    // Memory and table growth: BENCH_SOAK_REQUESTS authenticated requests (npm run bench:soak = 1,000,000).
    const soakRequests = Number(process.env.BENCH_SOAK_REQUESTS ?? 0);
    if (soakRequests > 0) {
      const counter = connect(url, { max: 1 });
      const sessionsBefore = (await counter.sql`select count(*)::int as n from sessions`)[0]!.n as number;
      const samples: number[] = [await rss(api.pid!)];
      const sampler = setInterval(() => void rss(api.pid!).then((v) => samples.push(v)), 1000);
      log(`soak: ${soakRequests} authenticated requests …`);
      const r = await autocannon({ url: `${apiUrl}/auth/current-user`, connections: CONNECTIONS, amount: soakRequests, headers: { authorization: `Bearer ${citizen.access_token}`, ...one } });
      clearInterval(sampler);
      samples.push(await rss(api.pid!));
      const sessionsAfter = (await counter.sql`select count(*)::int as n from sessions`)[0]!.n as number;
      await counter.close();
      const mib = (v: number) => +(v / 2 ** 20).toFixed(1);
      // Growth, not the garbage collector's sawtooth: the mean of the second half of the samples against
      // the first half (a leak grows it), and the last sample against the first.
      const half = Math.floor(samples.length / 2);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const firstHalf = mean(samples.slice(0, half));
      const secondHalf = mean(samples.slice(half));
      extra.soak = {
        requests: r.requests.total, non2xx: r.non2xx, rps: Math.round(r.requests.total / r.duration), samples: samples.length,
        rssMiB: { first: mib(samples[0]!), min: mib(Math.min(...samples)), max: mib(Math.max(...samples)), last: mib(samples.at(-1)!) },
        secondHalfVsFirstHalfPercent: +((100 * (secondHalf - firstHalf)) / firstHalf).toFixed(1),
        lastVsFirstPercent: +((100 * (samples.at(-1)! - samples[0]!)) / samples[0]!).toFixed(1),
        sessionsBefore, sessionsAfter,
      };
    }

    // ---- two instances on one database, each loaded at once (per-instance throughput should hold) ----
    const twoName = `two instances: each GET /auth/current-user over ${SESSIONS} sessions (per instance)`;
    if (want(twoName)) {
      const port2 = await freePort();
      const { child: api2 } = await startServer({ ...env, PORT: String(port2) });
      children.push(api2);
      const url2 = `http://127.0.0.1:${port2}`;
      const tokens = accessTokens();
      await Promise.all([warm(apiUrl, tokens), warm(url2, tokens)]);
      await Promise.all([cacheStats(api, true), cacheStats(api2, true)]);
      log(`${twoName} …`);
      const half = Math.max(1, Math.floor(CONNECTIONS / 2));
      const [r1, r2] = await Promise.all([apiUrl, url2].map((u) => autocannon({ url: `${u}/auth/current-user`, connections: half, duration: DURATION, requests: spread(tokens) as never })));
      const hit = hitRateOf([...await cacheStats(api), ...await cacheStats(api2)]);
      const each = [r1!, r2!].map((r) => r.requests.total / r.duration);
      rows.push({
        scenario: twoName, rps: Math.round((each[0]! + each[1]!) / 2), p50: Math.max(r1!.latency.p50, r2!.latency.p50), p99: Math.max(r1!.latency.p99, r2!.latency.p99),
        errors: r1!.errors + r2!.errors + r1!.timeouts + r2!.timeouts, non2xx: r1!.non2xx + r2!.non2xx, hitRate: +hit.toFixed(4),
        note: `instances ${Math.round(each[0]!)} + ${Math.round(each[1]!)} = ${Math.round(each[0]! + each[1]!)} req/s, ${half} connections each; both on this machine's 2 cores`,
      });
      await stop(api2);
    }

    const rssEnd = await rss(api.pid!);
    extra.rss = { startMiB: +(rssStart / 2 ** 20).toFixed(1), endMiB: +(rssEnd / 2 ** 20).toFixed(1) };
    await stop(api);

    // ---- the cache off (AUTH_CACHE_TTL=0, USERS_PAGE_CACHE_TTL=0): every request reads the database ----
    const uncachedNames = ['GET /auth/current-user (bearer) one session · cache off', `GET /auth/current-user (bearer) ${SESSIONS} sessions · cache off`, 'GET /users?per_page=50 (County Admin) · cache off'];
    let cold1: Row | undefined;
    if (uncachedNames.some(want)) {
      const port2 = await freePort();
      const { child: cold } = await startServer({ ...env, PORT: String(port2), AUTH_CACHE_TTL: '0', USERS_PAGE_CACHE_TTL: '0' });
      children.push(cold);
      const coldUrl = `http://127.0.0.1:${port2}`;
      cold1 = await load(uncachedNames[0]!, { url: `${coldUrl}/auth/current-user`, headers: { authorization: `Bearer ${citizen.access_token}`, ...one } }, 'flag AUTH_CACHE_TTL=0');
      if (want(uncachedNames[1]!)) await load(uncachedNames[1]!, { url: `${coldUrl}/auth/current-user`, requests: spread(accessTokens()) as never }, 'flag AUTH_CACHE_TTL=0');
      await load(uncachedNames[2]!, { url: `${coldUrl}/users?per_page=50`, headers: { authorization: `Bearer ${admin.access_token}`, ...one } }, 'flag USERS_PAGE_CACHE_TTL=0');
      await stop(cold);
    }

    // ---- start-up with an existing embedded data directory ----
    if (want('startup')) {
      const dataDir = path.join(work, 'startup');
      await mkdir(dataDir, { recursive: true });
      const sEnv = { NODE_ENV: 'development', DATA_DIR: dataDir, PORT: String(await freePort()), LOG_LEVEL: 'warn', BCRYPT_LOG_ROUNDS: '4' };
      const first = await startServer(sEnv);
      await stop(first.child);
      const t0 = performance.now();
      const second = await startServer(sEnv);
      extra.startupWithExistingDataMs = Math.round(performance.now() - t0);
      await stop(second.child);
    }

    for (const r of rows) if (base) r.ratio = Number((r.rps / base.rps).toFixed(3));
    const mixed = rows.find((r) => r.scenario === mixedName);
    const login = rows.find((r) => r.scenario === 'POST /login');
    const goals = [
      { goal: 'one session ≥ 0.45 × hello', value: me?.ratio, met: me?.ratio !== undefined && me.ratio >= 0.45 },
      { goal: `${SESSIONS} sessions ≥ 0.35 × hello`, value: many?.ratio, met: many?.ratio !== undefined && many.ratio >= 0.35 },
      { goal: 'mixed ≥ 0.25 × hello', value: mixed?.ratio, met: mixed?.ratio !== undefined && mixed.ratio >= 0.25 },
      { goal: 'mixed p99 < 50 ms', value: mixed?.p99, met: mixed?.p99 !== undefined && mixed.p99 < 50 },
      { goal: 'mixed cache hit rate ≥ 95 %', value: mixed?.hitRate, met: mixed?.hitRate !== undefined && mixed.hitRate >= 0.95 },
      { goal: 'cache off ≥ 0.15 × hello', value: cold1?.ratio, met: cold1?.ratio !== undefined && cold1.ratio >= 0.15 },
      { goal: 'login ≥ 0.95 × bcrypt ceiling', value: login ? +(login.rps / ceiling.ceilingPerSecond).toFixed(2) : undefined, met: !!login && login.rps / ceiling.ceilingPerSecond >= 0.95 },
    ];
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAverage: loadavg().map((x) => +x.toFixed(2)) },
      settings: { durationSeconds: DURATION, connections: CONNECTIONS, bcryptRounds: ROUNDS, sessions: SESSIONS },
      flags: FLAGS, goals,
      rows, ...extra, elapsedSeconds: Math.round((Date.now() - started) / 1000),
    };
    await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
    await writeFile(path.join(ROOT, 'bench/results', OUT), JSON.stringify(result, null, 2) + '\n');
    const docs = process.env.BENCH_DOCS ?? (ONLY ? '0' : '1');
    if (docs === '1') {
      await writeFile(path.join(ROOT, 'docs/performance.md'), performanceDoc(result));
      const readme = path.join(ROOT, 'README.md');
      await writeFile(readme, withReadmePerformance(await readFile(readme, 'utf8'), readmePerformance(result)));
    }

    const pad = (s: string, n: number) => s.padEnd(n);
    console.log('\nflags (deviations from the production defaults):');
    for (const [k, v] of Object.entries(FLAGS)) console.log(`  ${k}=${v}`);
    console.log(`\n${pad('scenario', 92)}${pad('req/s', 10)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('ratio', 8)}${pad('hit', 8)}non-2xx`);
    for (const r of rows) console.log(`${pad(r.scenario, 92)}${pad(String(r.rps), 10)}${pad(String(r.p50), 8)}${pad(String(r.p99), 8)}${pad(r.ratio?.toFixed(3) ?? '', 8)}${pad(r.hitRate?.toFixed(3) ?? '', 8)}${r.non2xx}${r.note ? `   (${r.note})` : ''}`);
    console.log(`\nbcrypt: ${ceiling.msPerHash} ms/hash at cost ${ROUNDS}; ceiling ${ceiling.ceilingPerSecond} hashes/s on ${ceiling.cores} cores`);
    if (extra.mixed) console.log(`mixed by kind: ${JSON.stringify(extra.mixed)}`);
    if (extra.healthDuringLoginFlood) console.log(`/health during login flood: ${JSON.stringify(extra.healthDuringLoginFlood)}`);
    console.log(`server RSS: ${JSON.stringify(extra.rss)}; start-up with existing data: ${extra.startupWithExistingDataMs ?? '-'} ms`);
    if (extra.soak) console.log(`soak: ${JSON.stringify(extra.soak)}`);
    console.log('\ngoals:');
    for (const g of goals) console.log(`  ${g.met ? 'met    ' : 'NOT met'}  ${g.goal}: ${g.value ?? '-'}`);
    console.log(`results: bench/results/${OUT}${docs === '1' ? ' and docs/performance.md' : ''} (${result.elapsedSeconds} s)`);
  } finally {
    for (const c of children) await stop(c);
    await pg?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

// The results are written and every child stopped: exit, whatever handle (a load generator's
// keep-alive agent, a hashing worker) would keep the event loop alive.
main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
