// `users passkeys` and `users remove-passkey` as real child processes against the test database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTestApp, createTestDatabase, login, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { passkeySignin, PASSKEY_ENV, registerPasskey } from '../support/passkeys.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('ops CLI: passkeys', { timeout: 60_000 }, () => {
  let database: TestDatabase;
  let t: TestApp;

  function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
        cwd: ROOT, env: { ...process.env, DATABASE_URL: database.url, NODE_ENV: 'test' }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database, PASSKEY_ENV);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('lists a user\'s passkeys and removes one; the removed key no longer signs in; an unknown id fails with one line', async () => {
    const user = await makeUser(t.ctx);
    const { key, credential } = await registerPasskey(t.app, (await login(t.app, user.email)).access_token, 'Work laptop');
    const listed = await run(['users', 'passkeys', user.email, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual({ credentials: [expect.objectContaining({ id: credential.id, name: 'Work laptop' })] });

    const removed = await run(['users', 'remove-passkey', String(user.id), credential.id]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain(`removed passkey ${credential.id}`);
    expect((await passkeySignin(t.app, key)).statusCode).toBe(401);

    const again = await run(['users', 'remove-passkey', String(user.id), credential.id]);
    expect(again.code).toBe(1);
    expect(again.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^error: .*not found/i)]);
    const empty = await run(['users', 'passkeys', user.email]);
    expect(empty.stdout).toContain('has no passkeys');
  });
});
