// Production runs what was built: `npm run build` compiles src/ to dist/, and `node dist/server.js`
// (no tsx, as in the Docker image's CMD) starts in the production profile against a real database
// and answers /ready. Without DATABASE_URL a production start refuses, saying so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from './support/helper.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const secret = () => randomBytes(32).toString('base64url');

describe('the built server (dist/)', { timeout: 180_000 }, () => {
  let database: TestDatabase;
  let dataDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), 'cs-dist-'));
    await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: ROOT });
  }, 180_000);
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await database.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  function start(env: Record<string, string>) {
    const child = spawn(process.execPath, ['dist/server.js'], {
      cwd: ROOT,
      // NODE_OPTIONS could carry a loader (tsx) in from the runner; the image has none
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, exited, output: () => output };
  }

  it('emits dist/server.js and dist/cli/index.js', () => {
    expect(existsSync(path.join(ROOT, 'dist/server.js'))).toBe(true);
    expect(existsSync(path.join(ROOT, 'dist/cli/index.js'))).toBe(true);
  });

  it('node dist/server.js (production profile) migrates, listens and answers /ready; SIGTERM ends it with 0', async () => {
    const s = start({ NODE_ENV: 'production', DATABASE_URL: database.url, SECRET_KEY: secret(), SECURITY_PASSWORD_SALT: secret(), LOG_LEVEL: 'info' });
    let base: string | undefined;
    for (let i = 0; i < 600 && !base && s.child.exitCode === null; i++) {
      const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(s.output());
      if (m) base = m[1];
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(base, s.output()).toBeDefined();
    const ready = await fetch(`${base}/ready`);
    expect(ready.status, s.output()).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', database: 'up' });
    s.child.kill('SIGTERM');
    expect(await s.exited, s.output()).toBe(0);
  });

  it('a production start without DATABASE_URL exits 1 and says that DATABASE_URL is needed', async () => {
    const s = start({ NODE_ENV: 'production', SECRET_KEY: secret(), SECURITY_PASSWORD_SALT: secret() });
    expect(await s.exited, s.output()).toBe(1);
    expect(s.output()).toMatch(/DATABASE_URL is not set\. In production the service needs a PostgreSQL server/);
    expect(s.output()).not.toMatch(/undefined/);
  });
});
