// The curl recipes fail safe: without stored credentials (never logged in, or after scripts/logout.sh)
// every authenticated recipe stops with a clear message and a non-zero status before sending
// anything; the token travels in a header file, never in curl's arguments; scripts/curl-flow.sh
// removes the temporary state it created. A local HTTP server records what actually arrives.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = 'eyJ.recipe-test-token.sig';

interface Seen { method: string; url: string; headers: IncomingHttpHeaders }
interface Result { code: number | null; stdout: string; stderr: string }

describe('curl recipes fail safe', () => {
  let server: Server;
  let base: string;
  let dir: string;
  let state: string;
  const seen: Seen[] = [];

  function script(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<Result> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [path.join(ROOT, 'scripts', name), ...args], {
        cwd: dir, env: { ...process.env, BASE_URL: base, CS_STATE: state, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
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
    server = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      req.resume();
      if (req.method === 'POST' && req.url === '/logout') {
        res.writeHead(204).end();
      } else if (req.url === '/auth/current-user' && req.headers.authorization === `Bearer ${TOKEN}`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"user":{"id":1},"status":"success"}');
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"code":"NOT_FOUND"}');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp(path.join(tmpdir(), 'cs-recipes-'));
    state = path.join(dir, 'state');
    seen.length = 0;
  });

  it('never logged in: every authenticated recipe stops before sending, with a clear message', async () => {
    for (const [name, args] of [
      ['me.sh', []], ['logout.sh', []], ['dashboard.sh', []], ['refresh.sh', []], ['create-token.sh', ['ci']],
      ['admin-list-users.sh', []], ['admin-deactivate.sh', ['7']], ['admin-assign-role.sh', ['7', 'Citizen']],
    ] as const) {
      const r = await script(name, [...args]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(1);
      expect(r.stderr, name).toMatch(/run scripts\/login\.sh first \(no request was sent\)/);
    }
    expect(seen).toEqual([]);
  });

  it('after scripts/logout.sh, scripts/me.sh fails without sending; the token went in a header, not in argv', async () => {
    await script('me.sh'); // creates the state directory (mode 700)
    await writeFile(path.join(state, 'access_token'), TOKEN + '\n');
    await writeFile(path.join(state, 'cookies.txt'), '127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n');
    const me = await script('me.sh');
    expect(me.code, me.stderr).toBe(0);
    expect(seen.at(-1)).toMatchObject({ method: 'GET', url: '/auth/current-user', headers: { authorization: `Bearer ${TOKEN}` } });

    const out = await script('logout.sh');
    expect(out.code, out.stderr).toBe(0);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/logout', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await readdir(state)).toEqual([]);

    const before = seen.length;
    const after = await script('me.sh');
    expect(after.code).toBe(1);
    expect(after.stderr.trim()).toBe(`no access token in ${state}: run scripts/login.sh first (no request was sent)`);
    expect((await script('dashboard.sh')).code).toBe(1);
    expect(seen.length).toBe(before);
  });

  it('scripts/curl-flow.sh removes the temporary state it created, also when the flow fails', async () => {
    const tmp = path.join(dir, 'tmp');
    await mkdir(tmp);
    const r = await script('curl-flow.sh', [], { CS_STATE: '', TMPDIR: tmp, CS_PASSWORD: 'unused-here' });
    expect(r.code).not.toBe(0); // this server has no /register
    expect(seen.map((s) => s.url)).toEqual(['/register']);
    expect(await readdir(tmp)).toEqual([]);
    expect(existsSync(path.join(dir, '.cs'))).toBe(false);
  });
});
