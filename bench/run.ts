// npm run bench: starts PostgreSQL (embedded) and the API itself, seeds users, and measures every
// scenario side by side with a bare Fastify hello-world and a bcrypt micro-benchmark in the same
// run, so each figure is also a ratio. Output: a table and bench/results/latest.json.
//
// Environment: BENCH_DURATION (seconds per scenario, default 8), BENCH_CONNECTIONS (default 32),
// BCRYPT_LOG_ROUNDS (default 12), BENCH_ONLY (comma-separated scenario names), BENCH_CPU_PROF (a
// directory for the API's V8 CPU profile), BENCH_OUT (the results file under bench/results; default
// latest.json, partial.json when BENCH_ONLY is set).
import autocannon from 'autocannon';
import bcrypt from 'bcrypt';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
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

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const LOGIN_DURATION = Math.max(DURATION, 20);
// a partial run (BENCH_ONLY) never overwrites the full results
const OUT = process.env.BENCH_OUT ?? (process.env.BENCH_ONLY ? 'partial.json' : 'latest.json');
const ROUNDS = Number(process.env.BCRYPT_LOG_ROUNDS ?? 12);
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const PASSWORD = 'Bench-Quiet-Harbor-93';
// production refuses secrets written in the repository: fresh random ones per run
const SECRETS = { SECRET_KEY: randomBytes(32).toString('hex'), SECURITY_PASSWORD_SALT: randomBytes(32).toString('hex') };

interface Row { scenario: string; rps: number; p50: number; p99: number; errors: number; non2xx: number; ratio?: number; note?: string }
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
    const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${stderr.slice(-2000)}`)));
    waitFor(`http://127.0.0.1:${env.PORT}/ready`).then(() => resolve({ child, port: Number(env.PORT) }), reject);
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
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
    await db.sql`insert into roles_users (user_id, role_id) select u.id, r.id from users u, roles r
      where r.name = 'Citizen' and u.email like 'bench%'`;
    await db.sql`insert into roles_users (user_id, role_id) select u.id, r.id from users u, roles r
      where r.name = 'County Admin' and u.email = 'bench1@example.com'`;
    await db.close();

    // ---- the API ----
    const port = await freePort();
    const env = {
      NODE_ENV: 'production', ...SECRETS, DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1',
      BCRYPT_LOG_ROUNDS: String(ROUNDS), LOG_LEVEL: 'warn', RATE_LIMIT_ENABLED: 'false',
      SECURITY_TWO_FACTOR_REQUIRED_ROLES: '', DB_POOL_MAX: '10',
    };
    const { child: api } = await startServer(env);
    children.push(api);
    const apiUrl = `http://127.0.0.1:${port}`;
    const loginAs = async (email: string) => {
      const res = await fetch(`${apiUrl}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
      if (!res.ok) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
      const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      return { ...(await res.json()) as { access_token: string; refresh_token: string }, cookie };
    };
    const citizen = await loginAs('bench2@example.com');
    const admin = await loginAs('bench1@example.com');
    const rssStart = await rss(api.pid!);

    await load('GET /health', { url: `${apiUrl}/health` });
    const me = await load('GET /auth/current-user (bearer)', { url: `${apiUrl}/auth/current-user`, headers: { authorization: `Bearer ${citizen.access_token}` } });
    await load('GET /auth/current-user (cookie)', { url: `${apiUrl}/auth/current-user`, headers: { cookie: citizen.cookie } });
    await load('GET /auth/current-user (invalid token → 401)', { url: `${apiUrl}/auth/current-user`, headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6Inh4eHh4eHh4eHh4eCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW5vdC12YWxpZC1hdC1hbGwtMDEyMzQ1Njc4OQ' } });
    const usersList = await fetch(`${apiUrl}/users?per_page=50`, { headers: { authorization: `Bearer ${admin.access_token}` } });
    if (usersList.status === 200) {
      await load('GET /users?per_page=50 (County Admin)', { url: `${apiUrl}/users?per_page=50`, headers: { authorization: `Bearer ${admin.access_token}` } });
    } else {
      log(`GET /users answered ${usersList.status}; measuring the admin dashboard instead`);
      await load('GET /dashboard (County Admin)', { url: `${apiUrl}/dashboard`, headers: { authorization: `Bearer ${admin.access_token}` } }, 'admin list not available in this build');
    }

    // Refresh: every request rotates its token; a shared queue hands each connection a live one.
    if (!ONLY || ONLY.includes('POST /refresh-token')) {
      const queue: string[] = [];
      for (let i = 0; i < CONNECTIONS * 2; i++) queue.push((await loginAs(`bench${10 + i}@example.com`)).refresh_token);
      await load('POST /refresh-token', {
        url: `${apiUrl}/refresh-token`,
        requests: [{
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: JSON.stringify({ refresh_token: queue.shift() ?? 'exhausted' }) }),
          onResponse: (status, body) => {
            if (status === 200) queue.push((JSON.parse(body) as { refresh_token: string }).refresh_token);
          },
        }],
      });
    }

    // Login flood at the configured bcrypt cost, with a light /health probe alongside.
    const ceiling = await bcryptCeiling();
    extra.bcrypt = ceiling;
    if (!ONLY || ONLY.includes('POST /login')) {
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
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: `bench${(i++ % 150) + 50}@example.com`, password: PASSWORD }) }),
          }],
        }),
        (async () => {
          await new Promise((r) => setTimeout(r, 1500));
          const r = await autocannon({ url: `${apiUrl}/health`, connections: 1, duration: Math.max(2, LOGIN_DURATION - 3), overallRate: 50 });
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
      const r = await autocannon({ url: `${apiUrl}/auth/current-user`, connections: CONNECTIONS, amount: soakRequests, headers: { authorization: `Bearer ${citizen.access_token}` } });
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

    const rssEnd = await rss(api.pid!);
    extra.rss = { startMiB: +(rssStart / 2 ** 20).toFixed(1), endMiB: +(rssEnd / 2 ** 20).toFixed(1) };
    await stop(api);

    // ---- the same paths with the per-instance cache off (AUTH_CACHE_TTL=0): every request reads the
    // database, as the naive design does; the same tokens (same database, same keys) ----
    const uncachedNames = ['GET /auth/current-user (bearer; cache off)', 'GET /users?per_page=50 (County Admin; cache off)'];
    if (!ONLY || uncachedNames.some((n) => ONLY.includes(n))) {
      const port2 = await freePort();
      const { child: cold } = await startServer({ ...env, PORT: String(port2), AUTH_CACHE_TTL: '0' });
      children.push(cold);
      const coldUrl = `http://127.0.0.1:${port2}`;
      await load(uncachedNames[0]!, { url: `${coldUrl}/auth/current-user`, headers: { authorization: `Bearer ${citizen.access_token}` } });
      await load(uncachedNames[1]!, { url: `${coldUrl}/users?per_page=50`, headers: { authorization: `Bearer ${admin.access_token}` } });
      await stop(cold);
    }

    // ---- start-up with an existing embedded data directory ----
    if (!ONLY || ONLY.includes('startup')) {
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
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
      settings: { durationSeconds: DURATION, connections: CONNECTIONS, bcryptRounds: ROUNDS, logLevel: 'warn' },
      rows, ...extra, elapsedSeconds: Math.round((Date.now() - started) / 1000),
    };
    await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
    await writeFile(path.join(ROOT, 'bench/results', OUT), JSON.stringify(result, null, 2) + '\n');

    const pad = (s: string, n: number) => s.padEnd(n);
    console.log(`\n${pad('scenario', 48)}${pad('req/s', 10)}${pad('p50 ms', 8)}${pad('p99 ms', 8)}${pad('ratio', 8)}non-2xx`);
    for (const r of rows) console.log(`${pad(r.scenario, 48)}${pad(String(r.rps), 10)}${pad(String(r.p50), 8)}${pad(String(r.p99), 8)}${pad(r.ratio?.toFixed(3) ?? '', 8)}${r.non2xx}${r.note ? `   (${r.note})` : ''}`);
    console.log(`\nbcrypt: ${ceiling.msPerHash} ms/hash at cost ${ROUNDS}; ceiling ${ceiling.ceilingPerSecond} hashes/s on ${ceiling.cores} cores`);
    if (extra.healthDuringLoginFlood) console.log(`/health during login flood: ${JSON.stringify(extra.healthDuringLoginFlood)}`);
    console.log(`server RSS: ${JSON.stringify(extra.rss)}; start-up with existing data: ${extra.startupWithExistingDataMs ?? '-'} ms`);
    if (extra.soak) console.log(`soak: ${JSON.stringify(extra.soak)}`);
    if (me && base) console.log(`token-authenticated current-user: ${me.rps} req/s = ${(me.rps / base.rps).toFixed(3)} × hello-world (goal ≥ 0.35)`);
    console.log(`results: bench/results/${OUT} (${result.elapsedSeconds} s)`);
  } finally {
    for (const c of children) await stop(c);
    await pg?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
