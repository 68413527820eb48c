// The real server process (src/server.ts) on a test database: SIGTERM while a request is in flight
// lets that request finish, stops the outbox worker, closes the pool and exits 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildTestApp, createTestDatabase, GOOD_PASSWORD, makeUser, type TestDatabase } from './support/helper.js';

describe('server process: graceful shutdown on SIGTERM', () => {
  let database: TestDatabase;
  let dataDir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), 'cs-server-'));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('drains the in-flight login, stops the worker, exits 0', async () => {
    // A user whose hash is cheaper than the server's cost: the login verifies and then rehashes at
    // cost 13, which keeps the request in flight long enough to send SIGTERM during it.
    const t = await buildTestApp(database);
    const user = await makeUser(t.ctx);
    await t.close();

    child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: {
        ...process.env, NODE_ENV: 'test', DATABASE_URL: database.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info',
        BCRYPT_LOG_ROUNDS: '13', OUTBOX_WORKER_ENABLED: 'true', DATA_DIR: dataDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code, signal) => { output += `[exit ${code} ${signal}]`; resolve(code); }));

    let base: string | undefined;
    for (let i = 0; i < 300 && !base; i++) {
      const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) base = m[1];
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(base, output).toBeDefined();

    const inFlight = fetch(`${base}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: user.email, password: GOOD_PASSWORD }),
    });
    // SIGTERM once the server has the request (it logs each incoming request at info)
    for (let i = 0; i < 200 && !/incoming request[^\n]*\/login|\/login[^\n]*incoming request/.test(output); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGTERM');
    const res = await inFlight.catch(async (err: unknown) => { await exited; throw new Error(`in-flight request failed: ${String(err)}\n${output}`); });
    expect(res.status).toBe(200);
    expect((await res.json() as { access_token?: string }).access_token).toBeDefined();
    expect(await exited, output).toBe(0);
    expect(output).toContain('shutting down');
    expect(output).toContain('requests drained, workers stopped');
    expect(output).not.toMatch(/unhandled|fatal/i);
    // after shutdown nothing answers
    await expect(fetch(`${base}/health`)).rejects.toThrow();
  }, 60_000);
});
