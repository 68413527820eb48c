// The ops CLI beside a running server on the embedded PostgreSQL (no DATABASE_URL), both as real
// processes: the server advertises its PostgreSQL in DATA_DIR/postgres-connection.json (mode 600), the
// CLI finds it and works on the live database, and a deactivation made there reaches the server's
// authentication cache before the user's next request (NOTIFY). After shutdown the file is gone and
// the CLI starts its own embedded PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONNECTION_FILE } from '../../src/db/connection-file.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PASSWORD = 'Amber-Kettle-71-Meadow';

interface Result { code: number | null; stdout: string; stderr: string }

describe('CLI beside a running server (embedded PostgreSQL)', { timeout: 180_000 }, () => {
  let dir: string;
  let dataDir: string;
  let server: ChildProcess | undefined;
  let output = '';

  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'development', DATA_DIR: dataDir, BCRYPT_LOG_ROUNDS: '4', LOG_FORMAT: 'json' };
    delete e.DATABASE_URL;
    return e;
  };

  function cli(args: string[], input?: string): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], { cwd: ROOT, env: env(), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      if (input !== undefined) child.stdin.write(input);
      child.stdin.end();
    });
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cs-beside-'));
    // as root, PostgreSQL runs as the postgres user, which must be able to enter the directory
    await chmod(dir, 0o755);
    dataDir = path.join(dir, 'data');
  });
  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the server, deactivates a user whose next request is 401, and works alone once the server is gone', async () => {
    server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT, env: { ...env(), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => server!.on('exit', (code) => resolve(code)));
    let base: string | undefined;
    for (let i = 0; i < 1200 && !base && server.exitCode === null; i++) {
      const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) base = m[1];
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(base, output).toBeDefined();

    // the advertisement: owner-only, naming the server and its PostgreSQL
    const file = path.join(dataDir, CONNECTION_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const advertised = JSON.parse(await readFile(file, 'utf8'));
    expect(advertised).toMatchObject({ pid: server.pid, port: expect.any(Number), url: expect.stringMatching(/^postgres:\/\/.*@127\.0\.0\.1:\d+\/county_services$/) });

    const email = `beside-${process.pid}@example.com`;
    const created = await cli(['users', 'create', email, '--password-stdin', '--json'], `${PASSWORD}\n`);
    expect(created.code, created.stderr).toBe(0);
    const userId = JSON.parse(created.stdout).user.id as number;

    const login = await fetch(`${base}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }),
    });
    expect(login.status).toBe(200);
    const { access_token } = await login.json() as { access_token: string };
    const me = () => fetch(`${base}/auth/current-user`, { headers: { authorization: `Bearer ${access_token}` } });
    // twice: the second answer comes from the server's authentication cache
    expect((await me()).status).toBe(200);
    expect((await me()).status).toBe(200);

    const deactivated = await cli(['users', 'deactivate', String(userId)]);
    expect(deactivated.code, deactivated.stderr).toBe(0);
    expect(deactivated.stdout).toMatch(/active: no/);
    const after = await me();
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe('TOKEN_INVALID');

    server.kill('SIGTERM');
    expect(await exited, output).toBe(0);
    expect(existsSync(file)).toBe(false);

    // no server: the CLI starts (and stops) its own embedded PostgreSQL on the same data
    const shown = await cli(['users', 'show', email, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).user).toMatchObject({ id: userId, active: false });
    expect(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  });
});
