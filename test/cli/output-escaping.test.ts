// The ops CLI prints user-controlled values escaped in text mode (issue 14): an ANSI escape, CR/LF or
// a bidi override in a name is shown as \uXXXX, never acted on by the terminal; --json stays exact.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTestApp, createTestDatabase, makeUser, type TestApp, type TestDatabase } from '../support/helper.js';
import { shown, terminalSafe } from '../../src/cli/io.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// What an attacker could have stored before the text policy (or an operator typed): colours, a
// cursor move, a fake second line, a right-to-left override.
const HOSTILE = 'Eve\u001b[31m\u001b[2K\rroot\nid:            1\u202eevil';

describe('CLI output escaping', { timeout: 60_000 }, () => {
  it('shown(): every control, newline included, as \\uXXXX; ordinary text untouched', () => {
    expect(shown(HOSTILE)).toBe('Eve\\u001B[31m\\u001B[2K\\u000Droot\\u000Aid:            1\\u202Eevil');
    expect(shown('Wanjiru 👩🏽‍💻 مريم e\u0301')).toBe('Wanjiru 👩🏽‍💻 مريم e\u0301');
    expect(shown('a\u009bb\ud800c\u2066d')).toBe('a\\u009Bb\\uD800c\\u2066d');
  });
  it('terminalSafe(): keeps the lines of a whole output, escapes the rest', () => {
    expect(terminalSafe('a\nb\u001b[0m\r\n')).toBe('a\nb\\u001B[0m\\u000D\n');
  });

  let database: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });
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

  it('users show and users list: escaped in text, exact in --json', async () => {
    const u = await makeUser(t.ctx, { email: 'hostile-name@example.com', firstName: HOSTILE, lastName: null });
    const show = await run(['users', 'show', String(u.id)]);
    expect(show.code, show.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex -- looking for raw controls is the point
    expect(show.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(show.stdout).toContain('name:          Eve\\u001B[31m\\u001B[2K\\u000Droot\\u000Aid:            1\\u202Eevil');
    expect(show.stdout.split('\n').filter((l) => l.startsWith('id:'))).toHaveLength(1);

    const list = await run(['users', 'list', '--q', 'hostile-name']);
    expect(list.code, list.stderr).toBe(0);
    // eslint-disable-next-line no-control-regex -- as above
    expect(list.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);

    const json = await run(['users', 'show', String(u.id), '--json']);
    expect(JSON.parse(json.stdout).user.first_name).toBe(HOSTILE);
  });
});
