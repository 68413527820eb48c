// Start-up failures of the embedded PostgreSQL name their cause: with a broken postgresql.conf the
// error (and the server's one start-up line) carries PostgreSQL's own reason and its last log lines,
// never "start-up failed: undefined".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { appendFile, chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EmbeddedStartError, startEmbeddedPostgres } from '../../src/db/embedded.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe('embedded PostgreSQL start-up diagnostics', { timeout: 120_000 }, () => {
  let dir: string;
  let dataDir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cs-startup-'));
    await chmod(dir, 0o755);
    // the layout the server uses: DATA_DIR/postgres
    dataDir = path.join(dir, 'postgres');
    const pg = await startEmbeddedPostgres({ dataDir, ephemeral: true });
    await pg.stop();
    await appendFile(path.join(dataDir, 'postgresql.conf'), '\nshared_buffers = = 12 nonsense\n');
  }, 120_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('startEmbeddedPostgres rejects with the config line at fault and the last log lines', async () => {
    const err = await startEmbeddedPostgres({ dataDir, ephemeral: true }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(EmbeddedStartError);
    const message = (err as Error).message;
    const [first] = message.split('\n');
    expect(first).toMatch(/^embedded PostgreSQL did not start \(data directory .*postgres\): /);
    expect(first).toMatch(/syntax error in file ".*postgresql\.conf" line \d+/);
    expect(first).toMatch(/configuration file ".*postgresql\.conf" contains errors/);
    expect(message).toMatch(/its last log lines:\n {4}\S/);
    expect((err as EmbeddedStartError).logTail.some((l) => /FATAL/.test(l))).toBe(true);
    expect(message).not.toMatch(/undefined/);
  });

  it('npm start (src/server.ts, no DATABASE_URL) exits 1 printing the cause, not "start-up failed: undefined"', async () => {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'test', DATA_DIR: dir, PORT: '0', HOST: '127.0.0.1' };
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, output).toBe(1);
    expect(output).toMatch(/start-up failed: embedded PostgreSQL did not start .*syntax error in file ".*postgresql\.conf" line \d+/);
    expect(output).toMatch(/its last log lines:/);
    expect(output).not.toMatch(/start-up failed: undefined/);
  });
});
